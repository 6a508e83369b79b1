"""Structured-config schemas for the ``trainer`` and ``range_test`` groups, registered with Hydra.

A typed group fails at composition (``trainer.max_epochs=abc``, a mistyped key). The schemas are read off
the installed ``Trainer``'s and ``RangeTestConfig``'s signatures, plain types (or None) typed, the rest left
to the constructor; the app registers them when it starts (:func:`register`).

Example::

    >>> from omegaconf import OmegaConf
    >>> schema = OmegaConf.structured(trainer_schema())
    >>> schema.max_epochs = "abc"  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    omegaconf.errors.ValidationError: Value 'abc' of type 'str' could not be converted to Integer
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import typing
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from lightning_clr.app.slurm import gpus_per_node

_PLAIN = (int, float, bool, str)


def schema_from_signature(
    name: str, target: Callable[..., Any], exclude: Collection[str] = (), target_path: str | None = None
) -> type:
    """A (mutable) dataclass with one field per argument of ``target``, typed where OmegaConf can."""
    hints = typing.get_type_hints(target)
    parameters = [
        (
            p.name,
            _field_type(hints.get(p.name, Any)),
            None if p.default is inspect.Parameter.empty else p.default,
        )
        for p in inspect.signature(target).parameters.values()
        if p.name not in ("self", *exclude) and p.kind is not p.VAR_KEYWORD
    ]
    return _schema(name, parameters, target_path)


def trainer_schema() -> type:
    """The ``trainer`` group's schema: every ``Trainer`` argument but the callbacks and loggers, read off the
    installed Lightning's source without importing it (from ``Trainer`` itself if the source cannot be read).
    """
    exclude = ("callbacks", "logger")
    parameters = _trainer_parameters_from_source(exclude)
    if parameters is None:
        from lightning.pytorch import Trainer

        return schema_from_signature("TrainerConfig", Trainer.__init__, exclude, "lightning.pytorch.Trainer")
    return _schema("TrainerConfig", parameters, "lightning.pytorch.Trainer")


def range_test_schema() -> type:
    """The ``range_test`` group's schema: the settings of :class:`~lightning_clr.range_test.LRRangeTest`."""
    from lightning_clr.range_test.settings import RangeTestConfig

    return schema_from_signature("RangeTestGroupConfig", RangeTestConfig)


def _schema(name: str, parameters: list[tuple[str, Any, Any]], target_path: str | None) -> type:
    fields: list[tuple[str, Any, Any]] = []
    if target_path is not None:
        fields.append(("_target_", str, dataclasses.field(default=target_path)))
    for parameter, field_type, default in parameters:
        plain = default is None or isinstance(default, _PLAIN)
        fields.append((parameter, field_type, dataclasses.field(default=default if plain else None)))
    return dataclasses.make_dataclass(name, fields)


#: Annotations in Lightning's source that a schema types; any other is left to the constructor.
_SOURCE_TYPES = {t.__name__: t for t in _PLAIN} | {f"Optional[{t.__name__}]": Optional[t] for t in _PLAIN}  # noqa: UP045


def _trainer_parameters_from_source(exclude: Collection[str]) -> list[tuple[str, Any, Any]] | None:
    """``Trainer.__init__``'s keyword arguments as (name, type, default), parsed from its source file."""
    spec = importlib.util.find_spec("lightning")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pytorch" / "trainer" / "trainer.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
        init = next(n for n in trainer.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    except (OSError, SyntaxError, StopIteration):
        return None
    parameters = []
    for argument, default in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True):
        if argument.arg in exclude:
            continue
        try:
            value = None if default is None else ast.literal_eval(default)
        except ValueError:
            value = None
        annotation = ast.unparse(argument.annotation) if argument.annotation is not None else ""
        parameters.append((argument.arg, _SOURCE_TYPES.get(annotation, Any), value))
    return parameters


def register() -> None:
    """Store the schemas as ``trainer/schema`` and ``range_test/schema`` in Hydra's ConfigStore, and the
    app's resolver ``gpus_per_node`` (``conf/strategy/slurm.yaml``) with OmegaConf."""
    OmegaConf.register_new_resolver("gpus_per_node", gpus_per_node, replace=True)
    # our SLURM launcher, however the package is installed (an editable install serves ``hydra_plugins``
    # through an import hook, which Hydra's folder listing misses); without the [sweeps] extra, none
    with suppress(ImportError):
        from hydra_plugins.lightning_clr_slurm._slurm_sweep_launcher import SlurmSweepLauncher

        Plugins.instance().register(SlurmSweepLauncher)
    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=trainer_schema())
    store.store(group="range_test", name="schema", node=range_test_schema())


def _field_type(hint: Any) -> Any:
    if hint in _PLAIN:
        return hint
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and rest[0] in _PLAIN:
            return Optional[rest[0]]  # noqa: UP045 - OmegaConf needs typing.Optional, not X | None
    return Any

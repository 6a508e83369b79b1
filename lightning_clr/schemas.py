"""Structured-config schemas for the ``trainer`` and ``range_test`` groups, registered with Hydra.

A typed group fails at composition, before anything is built: ``trainer.max_epochs=abc`` is rejected with
the key and the type, and so is a mistyped key. The schemas are read off the signatures of
``lightning.pytorch.Trainer`` and :class:`~lightning_clr.range_test.LRRangeTest`, so they follow the
installed Lightning: every argument keeps its default, and arguments of a plain type (``int``, ``float``,
``bool``, ``str``, or one of those or None) are typed; the others (devices, precision, ...) are left to the
constructor, whose error is still reported against its key.

Each group's YAML lists ``schema`` first in its defaults; :func:`register` makes it known to Hydra. The
app calls it when it starts (:func:`lightning_clr.cli.hydra_app`); ``import lightning_clr`` registers
nothing.

Example::

    >>> from omegaconf import OmegaConf
    >>> schema = OmegaConf.structured(trainer_schema())
    >>> schema.max_epochs = "abc"  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    omegaconf.errors.ValidationError: Value 'abc' of type 'str' could not be converted to Integer
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Collection
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from lightning.pytorch import Trainer

from lightning_clr.range_test import LRRangeTest

_PLAIN = (int, float, bool, str)


def schema_from_signature(
    name: str, target: Callable[..., Any], exclude: Collection[str] = (), target_path: str | None = None
) -> type:
    """A (mutable) dataclass with one field per argument of ``target``, typed where OmegaConf can."""
    hints = typing.get_type_hints(target)
    fields: list[tuple[str, Any, Any]] = []
    if target_path is not None:
        fields.append(("_target_", str, dataclasses.field(default=target_path)))
    for parameter in inspect.signature(target).parameters.values():
        if parameter.name in ("self", *exclude) or parameter.kind is parameter.VAR_KEYWORD:
            continue
        default = parameter.default
        if default is inspect.Parameter.empty or not (default is None or isinstance(default, _PLAIN)):
            default = None
        field_type = _field_type(hints.get(parameter.name, Any))
        fields.append((parameter.name, field_type, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name, fields)


def trainer_schema() -> type:
    """The ``trainer`` group's schema: every ``Trainer`` argument but the callbacks and loggers."""
    exclude = ("callbacks", "logger")
    return schema_from_signature("TrainerConfig", Trainer.__init__, exclude, "lightning.pytorch.Trainer")


def range_test_schema() -> type:
    """The ``range_test`` group's schema: the :class:`LRRangeTest` arguments a config sets."""
    return schema_from_signature(
        "RangeTestGroupConfig", LRRangeTest.__init__, exclude=("update", "output_dir", "progress_bar")
    )


def register() -> None:
    """Store the schemas as ``trainer/schema`` and ``range_test/schema`` in Hydra's ConfigStore."""
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

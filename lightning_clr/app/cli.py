"""Command-line entry points: Hydra apps whose bad overrides fail in one line (key, value, what is allowed),
found by composing the config once per override value before Hydra starts.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_clr.app.checks import ConfigError, check_run, check_writable_dir

_PACKAGE = Path(__file__).resolve().parents[1]
#: The configs: ``lightning_clr/conf/`` in an installed wheel, else the source tree's ``conf/``.
CONFIG_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"

Task = Callable[[DictConfig], Any]


def override_error(
    overrides: Sequence[str],
    config_name: str = "config",
    config_dir: Path = CONFIG_DIR,
    multirun: bool = False,
) -> str | None:
    """The one-line reason ``overrides`` cannot start a run (a value that does not compose, a sweep without
    ``-m``, a run folder that is not writable), or None when they can.

    >>> override_error(["policy=nope"]).split(";")[0]
    "policy=nope is not a config of group 'policy'"
    >>> override_error(["policy.step_size=40,80"])
    'policy.step_size=40,80 gives several values (a sweep): add -m to run one job per value, or give ...'
    """
    from lightning_clr.app.schemas import register

    register()
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        return _one_line(error)[0]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            for variant in _variants(parsed):
                cfg, errors = _compose_naming_every_error(config_name, variant)
                if errors:
                    return "\n".join(errors)
                multirun = multirun or cfg.hydra.mode == RunMode.MULTIRUN
                sweeps = [o for o in parsed if o.is_sweep_override()]
                if sweeps and not multirun:
                    return (
                        f"{sweeps[0].input_line} gives several values (a sweep): add -m to run one job per "
                        "value, or give one value"
                    )
                launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
                if multirun and launcher.endswith("SlurmSweepLauncher") and shutil.which("srun") is None:
                    return (
                        "strategy=slurm submits the jobs to SLURM, but this machine has no SLURM commands "
                        "(srun, sbatch): run it where they are, e.g. on the cluster's login node"
                    )
                key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                check_writable_dir(key, OmegaConf.select(cfg, key))
    except ConfigError as error:
        return str(error)
    finally:
        GlobalHydra.instance().clear()
    return None


#: The package behind each Hydra plugin a config group asks for (the ``[sweeps]`` extra installs them).
PLUGINS = {"optuna": "hydra-optuna-sweeper", "submitit_slurm": "hydra-submitit-launcher"}
#: At most this many bad overrides are named at once.
MAX_ERRORS = 5


def _compose_naming_every_error(config_name: str, overrides: Sequence[str]) -> tuple[Any, list[str]]:
    """The config composed from ``overrides`` (None if any failed) and one line per bad override (each left
    out in turn)."""
    remaining, errors = list(overrides), list[str]()
    while len(errors) < MAX_ERRORS:
        try:
            cfg = compose(config_name, overrides=remaining, return_hydra_config=True)
            return (None if errors else cfg), errors
        except MissingConfigException as error:
            message, culprit = _missing_option(error, remaining)
        except ConfigCompositionException as error:
            message, culprit = _unknown_key(error, remaining, config_name)
        except (HydraException, OmegaConfBaseException) as error:
            message, culprit = _one_line(error)
        errors.append(message)
        matches = [o for o in remaining if culprit is not None and override_key(o) == culprit]
        if not matches:
            break
        remaining.remove(matches[0])
    return None, errors


def override_key(override: str) -> str:
    """The key an override sets.

    >>> override_key("+trainer.max_epochs=3")
    'trainer.max_epochs'
    """
    return override.split("=", 1)[0].lstrip("+~")


def hydra_app(
    task: Task | str, config_name: str = "config", runs_range_test: bool = False, keeps_run_dir: bool = False
) -> None:
    """Run ``task`` (a function, or ``"module:function"`` imported once the config is checked) over ``conf/``.

    The overrides (:func:`override_error`) and the composed config
    (:func:`~lightning_clr.app.checks.check_run`) are checked before torch is imported: a bad value ends as
    one ``error:`` line on stderr with exit status 2. ``runs_range_test``: the task runs the LR range test
    whatever the policy, so its span is checked too. ``keeps_run_dir``: the task only reads the run dir (a
    preview of a run's resume): Hydra writes no ``.hydra/`` config and no log there, so the run's own stay.
    """
    # Lightning 2.6 with torch >= 2.10 warns about its own use of torch's pytree API on every run
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    if keeps_run_dir:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    overrides = [arg for arg in sys.argv[1:] if not arg.startswith("-") and "=" in arg]
    multirun = any(arg in ("-m", "--multirun") for arg in sys.argv[1:])
    error = override_error(overrides, config_name, multirun=multirun)
    if error is not None:
        fail(error)

    def checked_task(cfg: DictConfig) -> Any:
        try:
            check_run(OmegaConf.to_container(cfg, resolve=True), runs_range_test)  # type: ignore[arg-type]
        except ConfigError as error:
            if in_multirun():  # one job of a sweep: let the sweep record it and run the others
                raise
            fail(str(error))
        if isinstance(task, str):
            module, _, name = task.partition(":")
            return getattr(importlib.import_module(module), name)(cfg)
        return task(cfg)

    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(checked_task)()


def fail(message: str, status: int = 2) -> NoReturn:
    """End the program with ``error: <message>`` on stderr (and in the run's log file), a line per line."""
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, "error: %s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print("\n".join(f"error: {line}" for line in message.splitlines()), file=sys.stderr)
    raise SystemExit(status)


def in_multirun() -> bool:
    """Whether this process runs one job of a Hydra multirun (``-m``).

    Example::

        >>> in_multirun()
        False
    """
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _variants(parsed: Sequence[Override]) -> list[list[str]]:
    """Non-sweep override lists covering every value of every swept key once."""
    choices = [options for options in map(_values, parsed) if options]
    first = [options[0] for options in choices]
    return [first] + [
        [*first[:i], option, *first[i + 1 :]] for i, options in enumerate(choices) for option in options[1:]
    ]


def _values(override: Override) -> list[str]:
    """The override once per value it gives (none for a sweep a sweeper samples, e.g. an interval)."""
    if not override.is_sweep_override():
        return [str(override.input_line)]  # set for every override parsed from text
    try:
        return [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
    except Exception:  # an interval or other sweep a sweeper samples: nothing to enumerate
        return []


def _missing_option(error: MissingConfigException, overrides: Sequence[str]) -> tuple[str, str | None]:
    """The line for a config option that does not exist, and the group whose override chose it."""
    missing = str(error.missing_cfg_file or "")
    plugin_group, _, plugin = missing.removeprefix("hydra/").rpartition("/")
    if missing.startswith("hydra/") and plugin_group in ("sweeper", "launcher"):
        package = PLUGINS.get(plugin, f"the Hydra {plugin_group} plugin '{plugin}'")
        chosen = [o for o in overrides if override_key(o) in ("hparams_search", "strategy")]
        asked = " ".join(chosen) or "the config"
        return (
            f"{asked} needs Hydra's {plugin_group} '{plugin}', which is not installed: "
            f'pip install "lightning-clr[sweeps]" (it brings {package})'
        ), None
    group = missing.split("/")[0]
    value = next((o.split("=", 1)[1] for o in overrides if override_key(o) == group), None)
    # ``schema`` (trainer, range_test) is the app's own typing of a group, not an option to choose
    options = ", ".join(sorted(option for option in error.options or [] if option != "schema"))
    if value is not None and options:
        return f"{group}={value} is not a config of group '{group}'; choose one of: {options}", group
    return _one_line(error)[0], None


def _unknown_key(
    error: ConfigCompositionException, overrides: Sequence[str], config_name: str
) -> tuple[str, str | None]:
    """The line for a key the config does not have (with the keys it has), and that key."""
    match = re.match(r"Could not override '([^']+)'", str(error))
    if match is None:
        return _one_line(error)
    key = match.group(1)
    parent, _, name = key.rpartition(".")
    try:  # the groups chosen give the structure; other overrides may be bad too
        root = compose(config_name, overrides=[o for o in overrides if "." not in override_key(o)])
    except (HydraException, OmegaConfBaseException):
        root = OmegaConf.create()
    node = OmegaConf.select(root, parent) if parent else None
    if parent and not isinstance(node, DictConfig):  # e.g. data.batch_size: no group `data`
        head = parent.split(".")[0]
        close = difflib.get_close_matches(head, [str(k) for k in root], n=1, cutoff=0.5)
        hint = f"; did you mean {key.replace(head, close[0], 1)}?" if close else ""
        return f"{key}: the config has no {head!r}{hint}", key
    keys = sorted(str(k) for k in node) if isinstance(node, DictConfig) else []
    where = f"{parent} has no key {name!r}" if parent else f"no top-level key {name!r}"
    close = difflib.get_close_matches(name, keys, n=1)
    if close:
        return f"{key}: {where}; did you mean {parent}.{close[0]}?", key
    hint = f"; known keys: {', '.join(keys)}" if keys else ""
    return f"{key}: {where}{hint} (add a new key with +{key}=...)", key


def _one_line(error: BaseException) -> tuple[str, str | None]:
    """The error in one line, and the key of the override whose value could not be merged, if it says so."""
    merging = re.match(r"Error merging override (\S+)", str(error))
    culprit = None if merging is None else override_key(merging.group(1))
    if merging is not None and error.__cause__ is not None:  # a typed key: say what the value failed
        return f"{merging.group(1)}: {str(error.__cause__).splitlines()[0]}", culprit
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("object_type=", "Set the environment"))]
    return ("; ".join(lines) if lines else type(error).__name__), culprit

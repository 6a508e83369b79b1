"""Checks of a composed configuration that need neither torch nor Lightning, so a bad value is reported in
under a second as one line naming the key, the value and what is allowed (:class:`ConfigError`).

Example::

    >>> check_trainer({"max_epochs": 4, "accumulate_grad_batches": 0})
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: trainer.accumulate_grad_batches=0 must be an integer >= 1
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lightning_clr.policies import Policy, check_momentum_bounds
from lightning_clr.range_test.settings import MAX_LR_FACTOR, UPDATABLE, RangeTestConfig, span_end
from lightning_clr.validation import InvalidArgument, boolean

AUTO = "auto"
#: Keys of the ``policy`` group that configure the callback rather than the policy.
MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")
#: The largest seed numpy accepts (``seed_everything`` seeds numpy too).
MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key, the value and what is allowed."""


def keyed(key: str, error: BaseException) -> ConfigError:
    """Turn a constructor's error into a :class:`ConfigError` naming the config key (and the argument of an
    :class:`~lightning_clr.validation.InvalidArgument`).

    >>> str(keyed("policy", InvalidArgument("step_size", 0, "must be an integer >= 1")))
    'policy.step_size=0 must be an integer >= 1'
    >>> str(keyed("dataset", TypeError("DigitsDataModule takes no argument 'size'")))
    "dataset: DigitsDataModule takes no argument 'size'"
    """
    if isinstance(error, InvalidArgument):
        return ConfigError(f"{key}.{error}")
    return ConfigError(f"{key}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- policy ---------------------------------------------------------------------------------------------


def build_policy(args: Mapping[str, Any]) -> tuple[Policy, list[str], dict[str, Any]]:
    """The policy of the ``policy`` group, the arguments left to the range test, the momentum settings.

    ``auto`` for ``base_lr``, ``max_lr`` or ``step_size`` leaves that argument to the LR range test (built
    with a valid placeholder, listed as pending).

    >>> policy, pending, momentum = build_policy({"_target_": "lightning_clr.policies.Triangular",
    ...                                           "base_lr": "auto", "max_lr": 0.1, "step_size": 100})
    >>> pending
    ['base_lr']
    """
    args = dict(args)
    momentum = {key: args.pop(key) for key in MOMENTUM_KEYS if key in args}
    policy_class = _policy_class(args.pop("_target_", None))
    pending = [key for key in UPDATABLE if args.get(key) == AUTO]  # what the range test can supply
    args.update(_placeholders(args, pending))
    try:
        boolean("cycle_momentum", momentum.get("cycle_momentum", False))
        check_momentum_bounds(momentum.get("base_momentum", 0.85), momentum.get("max_momentum", 0.95))
        return policy_class.from_config(**args), pending, momentum
    except (ValueError, TypeError) as error:
        raise keyed("policy", error) from error


def _policy_class(target: Any) -> type[Policy]:
    from importlib import import_module

    module_name, _, class_name = str(target).rpartition(".")
    try:
        policy_class = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"policy._target_={target!r} is not an importable policy class") from None
    if not (isinstance(policy_class, type) and issubclass(policy_class, Policy)):
        raise ConfigError(f"policy._target_={target!r} is not a lightning_clr.policies.Policy")
    return policy_class


def _placeholders(args: Mapping[str, Any], pending: list[str]) -> dict[str, Any]:
    """Valid stand-ins for arguments the range test will supply."""
    values: dict[str, Any] = {}
    base, high = args.get("base_lr"), args.get("max_lr")
    if "base_lr" in pending:  # a quarter of max_lr, or 1e-3 beside an `auto` max_lr
        values["base_lr"] = high / 4 if isinstance(high, int | float) else 1e-3
    if "max_lr" in pending:
        values["max_lr"] = base * 4 if isinstance(base, int | float) else 4e-3
    if "step_size" in pending:
        values.update(step_size=1, step_size_epochs=None)
    return values


# --- trainer --------------------------------------------------------------------------------------------


def _count(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number_at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) and v >= low


#: Values the ``Trainer`` takes without complaint although they cannot work (what Lightning checks itself
#: it is asked when the trainer is built).
TRAINER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "accumulate_grad_batches": (_count(1), "must be an integer >= 1"),
    "check_val_every_n_epoch": (_count(1), "must be an integer >= 1, or null"),
    "log_every_n_steps": (_count(1), "must be an integer >= 1"),
    "num_sanity_val_steps": (_count(-1), "must be an integer >= 0, or -1 (all batches)"),
    "min_epochs": (_count(0), "must be an integer >= 0"),
    "min_steps": (_count(0), "must be an integer >= 0"),
    "gradient_clip_val": (_number_at_least(0), "must be a number >= 0, or null (no clipping)"),
    "val_check_interval": (
        lambda v: _count(1)(v) or (isinstance(v, float) and 0 < v <= 1),
        "must be a fraction of an epoch in (0.0, 1.0] or a number of batches >= 1",
    ),
    "deterministic": (lambda v: v in (True, False, "warn"), "must be true, false or 'warn'"),
    "max_epochs": (lambda v: v != 0, "trains nothing: give at least 1"),
    "max_steps": (lambda v: v != 0, "trains nothing: give at least 1"),
}


def check_trainer(trainer: Mapping[str, Any], policy: Policy | None = None) -> None:
    """Check the ``trainer`` values Lightning lets through, and that the run has the length ``policy`` needs.

    Raises:
        ConfigError: naming ``trainer.<key>``, its value and the rule.
    """
    for key, (rule, allowed) in TRAINER_RULES.items():
        value = trainer.get(key)
        if value is not None and not rule(value):
            raise ConfigError(f"trainer.{key}={value!r} {allowed}")
    endless = trainer.get("max_epochs") == -1 and trainer.get("max_steps", -1) == -1
    if endless and policy is not None and policy.needs_run_length:
        raise ConfigError(
            f"trainer.max_epochs=-1 with max_steps=-1 trains without end, but policy {policy.name} needs the "
            "run's length: give trainer.max_epochs >= 1 or trainer.max_steps >= 1"
        )


def check_range_test(settings: Mapping[str, Any]) -> RangeTestConfig:
    """The ``range_test`` group's settings, validated (also when no ``auto`` bound asks for the test).

    >>> check_range_test({"mode": "cubic"})
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: range_test.mode='cubic' must be one of ('linear', 'exponential')
    """
    try:
        return RangeTestConfig(**{k: v for k, v in settings.items() if k != "_target_"})
    except (TypeError, ValueError) as error:
        raise keyed("range_test", error) from error


def check_span(range_test: RangeTestConfig, optimizer: Mapping[str, Any]) -> None:
    """With ``range_test.max_lr`` null the test spans up to 100 x ``optimizer.lr``: above ``min_lr``.

    >>> check_span(RangeTestConfig(), {"lr": 1e-7})
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: range_test.max_lr=null spans up to 100 x optimizer.lr=1e-07, ...
    """
    lr = optimizer.get("lr")
    if range_test.max_lr is not None or not isinstance(lr, int | float) or isinstance(lr, bool):
        return
    try:
        span_end(range_test, lr)
    except InvalidArgument:
        raise ConfigError(
            f"range_test.max_lr=null spans up to {MAX_LR_FACTOR} x optimizer.lr={lr!r}, "
            f"{MAX_LR_FACTOR * lr:.4g}, not above range_test.min_lr={range_test.min_lr!r}: give "
            "range_test.max_lr, or a lower range_test.min_lr"
        ) from None


def check_optimizer(optimizer: Mapping[str, Any]) -> None:
    """A number for ``lr`` (torch's own message compares strings) and momentum in [0, 1): torch checks the
    optimizer's other values, but trains SGD with momentum=2 (and diverges).

    >>> check_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 2})
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: optimizer.momentum=2 must be a number in [0, 1)
    """
    lr = optimizer.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float)):
        raise ConfigError(f"optimizer.lr={lr!r} must be a positive number")
    momentum = optimizer.get("momentum")
    if momentum is not None and not (_number_at_least(0)(momentum) and momentum < 1):
        raise ConfigError(f"optimizer.momentum={momentum!r} must be a number in [0, 1)")


# --- seed and paths -------------------------------------------------------------------------------------


def check_seed(seed: Any) -> int:
    """The seed, an integer in [0, 2**32 - 1] (numpy's range).

    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: seed=-1 must be an integer in [0, 4294967295]
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed!r} must be an integer in [0, {MAX_SEED}]")
    return seed


def check_writable_dir(key: str, path: str | os.PathLike[str]) -> None:
    """``path`` is a folder that exists or can be made, and can be written to.

    >>> check_writable_dir("paths.data_dir", "/proc/lightning-clr")
    Traceback (most recent call last):
    ...
    lightning_clr.app.checks.ConfigError: paths.data_dir='/proc/lightning-clr' cannot be written: ...
    """
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is a file; give a folder")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={str(path)!r} lies inside the file {str(existing)!r}; give a folder")
    try:  # the one sure test, even for root: make something there (and take it away)
        os.rmdir(tempfile.mkdtemp(prefix=".clr-probe-", dir=existing))
    except OSError as error:
        raise ConfigError(
            f"{key}={str(path)!r} cannot be written: {(error.strerror or str(error)).lower()} at "
            f"{str(existing)!r}"
        ) from None


def check_run(cfg: Mapping[str, Any], runs_range_test: bool = False) -> Policy | None:
    """Every check of this module on a composed config (resolved); the policy it built, if any.

    ``runs_range_test``: the command runs the range test whatever the policy (``clr-range-test``); else it
    runs when a bound is ``auto``.

    Raises:
        ConfigError: a line for each bad value, of every check whose inputs are good.
    """
    errors: list[str] = []

    def attempt(check: Callable[..., Any], *args: Any) -> Any:
        try:
            return check(*args)
        except ConfigError as error:
            errors.append(str(error))
            return None

    attempt(check_seed, cfg.get("seed"))
    policy_cfg = cfg.get("policy")
    built = attempt(build_policy, policy_cfg) if policy_cfg is not None else None
    policy, pending = (built[0], built[1]) if built else (None, [])
    attempt(check_trainer, cfg.get("trainer") or {}, policy)
    range_test = attempt(check_range_test, cfg.get("range_test") or {})
    optimizer = cfg.get("optimizer") or {}
    known = len(errors)
    attempt(check_optimizer, optimizer)
    if range_test is not None and len(errors) == known and (runs_range_test or pending):
        attempt(check_span, range_test, optimizer)
    paths = cfg.get("paths") or {}
    if paths.get("data_dir") is not None:
        attempt(check_writable_dir, "paths.data_dir", paths["data_dir"])
    if errors:
        raise ConfigError("\n".join(errors))
    return policy

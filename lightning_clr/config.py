"""From a composed Hydra config to validated objects, with one-line errors that name the key.

Every component is built here, before any training, so a bad configuration fails at start-up with a
:class:`ConfigError` such as ``policy.base_lr=0.5 must be less than max_lr=0.01``. Constructors in this
package raise ``ValueError("<argument>=<value> <rule>")``; this module prefixes the config key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_clr.callback import CyclicLR
from lightning_clr.policies import Policy
from lightning_clr.range_test import LRRangeTest
from lightning_clr.range_test.callback import UPDATABLE

AUTO = "auto"
#: Policy arguments that ``auto`` hands to the LR range test: those it can supply.
AUTO_KEYS = UPDATABLE
#: Keys of the ``policy`` group that configure the callback rather than the policy.
MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")

_ARGUMENT_FIRST = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key, the value and what is allowed."""


def keyed(key: str, error: BaseException) -> ConfigError:
    """Turn a constructor's error into a :class:`ConfigError` naming the config key.

    >>> str(keyed("policy", ValueError("step_size=0 must be an integer >= 1")))
    'policy.step_size=0 must be an integer >= 1'
    """
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if _ARGUMENT_FIRST.match(message):
        return ConfigError(f"{key}.{message}")
    return ConfigError(f"{key}: {message}")


def build_cyclic_lr(policy_cfg: DictConfig | Mapping[str, Any]) -> CyclicLR:
    """Build the :class:`CyclicLR` callback from the ``policy`` group.

    ``auto`` for ``base_lr``, ``max_lr`` or ``step_size`` leaves that argument to the LR range test: the
    callback is built with a placeholder and lists the argument as pending.

    >>> clr = build_cyclic_lr({"_target_": "lightning_clr.policies.Triangular", "base_lr": "auto",
    ...                        "max_lr": 0.1, "step_size": 100})
    >>> sorted(clr.pending)
    ['base_lr']
    """
    args = _plain(policy_cfg, "policy")
    momentum = {key: args.pop(key) for key in MOMENTUM_KEYS if key in args}
    target = args.pop("_target_", None)
    try:
        policy_class = get_class(str(target))
    except Exception as error:
        raise ConfigError(f"policy._target_={target!r} is not an importable policy class") from error
    if not (isinstance(policy_class, type) and issubclass(policy_class, Policy)):
        raise ConfigError(f"policy._target_={target!r} is not a lightning_clr.policies.Policy")
    pending = [key for key in AUTO_KEYS if args.get(key) == AUTO]
    args.update(_placeholders(args, pending))
    cycle_momentum = momentum.get("cycle_momentum", False)
    if not isinstance(cycle_momentum, bool):
        raise ConfigError(f"policy.cycle_momentum={cycle_momentum!r} must be true or false")
    try:
        policy = policy_class.from_config(**args)
        return CyclicLR(policy, pending=pending, **momentum)
    except (ValueError, TypeError) as error:
        raise keyed("policy", error) from error


def build_range_test(range_test_cfg: DictConfig | Mapping[str, Any], **kwargs: Any) -> LRRangeTest:
    """The :class:`LRRangeTest` for ``auto`` policy arguments, from the ``range_test`` group.

    >>> build_range_test({"min_lr": 1e-4, "num_epochs": 2}).update
    'pending'
    """
    args = {**_plain(range_test_cfg, "range_test"), **kwargs}
    args.setdefault("update", "pending")
    try:
        return LRRangeTest(**args)
    except (ValueError, TypeError) as error:
        raise keyed("range_test", error) from error


def build(key: str, node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the constructor's error reported against ``key``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        raise keyed(key, error.__cause__ or error) from error


def build_optimizer(node: Any) -> Callable[..., torch.optim.Optimizer]:
    """Instantiate the optimizer partial and try it once on a dummy parameter, so bad values fail now."""
    factory = build("optimizer", node)
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as error:
        raise keyed("optimizer", error) from error
    return factory


def _plain(node: DictConfig | Mapping[str, Any], key: str) -> dict[str, Any]:
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if not isinstance(container, dict):
        raise ConfigError(f"{key} must be a mapping of arguments, got {container!r}")
    return {str(k): v for k, v in container.items()}


def _placeholders(args: Mapping[str, Any], pending: list[str]) -> dict[str, Any]:
    """Valid stand-ins for arguments the range test will supply."""
    values: dict[str, Any] = {}
    base, high = args.get("base_lr"), args.get("max_lr")
    if "base_lr" in pending and "max_lr" in pending:
        values.update(base_lr=1e-3, max_lr=4e-3)
    elif "base_lr" in pending:
        values["base_lr"] = high / 4 if isinstance(high, int | float) else 1e-3
    elif "max_lr" in pending:
        values["max_lr"] = base * 4 if isinstance(base, int | float) else 4e-3
    if "step_size" in pending:
        values["step_size"] = 1
    return values

"""From a composed Hydra config to validated objects, with one-line errors that name the key
(``policy.base_lr=0.5 must be less than max_lr=0.01``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_clr.app.checks import ConfigError, build_policy, first_line, keyed
from lightning_clr.callback import CyclicLR
from lightning_clr.range_test import LRRangeTest
from lightning_clr.validation import InvalidArgument


def build_cyclic_lr(policy_cfg: DictConfig | Mapping[str, Any]) -> CyclicLR:
    """Build the :class:`CyclicLR` callback from the ``policy`` group (see :func:`checks.build_policy`).

    >>> clr = build_cyclic_lr({"_target_": "lightning_clr.policies.Triangular", "base_lr": "auto",
    ...                        "max_lr": 0.1, "step_size": 100})
    >>> sorted(clr.pending)
    ['base_lr']
    """
    policy, pending, momentum = build_policy(_plain(policy_cfg, "policy"))
    try:
        return CyclicLR(policy, pending=pending, **momentum)
    except (ValueError, TypeError) as error:
        raise keyed("policy", error) from error


def build_range_test(range_test_cfg: DictConfig | Mapping[str, Any], **kwargs: Any) -> LRRangeTest:
    """The :class:`LRRangeTest` for ``auto`` policy arguments, from the ``range_test`` group.

    >>> build_range_test({"min_lr": 1e-4, "num_epochs": 2}).update
    'pending'
    """
    try:
        return LRRangeTest(**{"update": "pending", **_plain(range_test_cfg, "range_test"), **kwargs})
    except (ValueError, TypeError) as error:
        raise keyed("range_test", error) from error


def build(key: str, node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the constructor's error reported against ``key`` (for the
    ``trainer``, against the one value Lightning refuses)."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        if key == "trainer":
            raise _against_one_value(key, node, cause, _quiet_trainer(node)) from error
        raise keyed(key, cause) from error


def build_optimizer(node: Any) -> Callable[..., torch.optim.Optimizer]:
    """Instantiate the optimizer partial and try it once on a dummy parameter, so bad values fail now
    (torch's refusal reported against the one value it refuses)."""
    factory = build("optimizer", node)
    params = [torch.nn.Parameter(torch.zeros(1))]
    try:
        factory(params)
    except (ValueError, TypeError) as error:
        optimizer_class = get_class(_plain(node, "optimizer")["_target_"])
        raise _against_one_value(
            "optimizer", node, error, lambda args: optimizer_class(params, **args)
        ) from error
    return factory


def _against_one_value(
    key: str, node: Any, error: BaseException, make: Callable[[dict[str, Any]], Any]
) -> ConfigError:
    """``error`` as ``<key>.<argument>=<value>: <message>`` when ``make`` refuses that argument alone."""
    if isinstance(error, InvalidArgument):
        return keyed(key, error)
    for argument, value in _plain(node, key).items():
        if argument.startswith("_"):
            continue
        try:
            make({argument: value})
        except Exception:  # the constructor's own refusal, whatever its type
            return ConfigError(f"{key}.{argument}={value!r}: {first_line(error)}")
    return keyed(key, error)


def _quiet_trainer(node: Any) -> Callable[[dict[str, Any]], Any]:
    """Build a ``Trainer`` from some arguments only, without its start-up lines."""
    trainer_class = get_class(_plain(node, "trainer").get("_target_", "lightning.pytorch.Trainer"))
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}

    def make(args: dict[str, Any]) -> Any:
        lightning_log = logging.getLogger("lightning.pytorch")
        level = lightning_log.level
        lightning_log.setLevel(logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return trainer_class(**{**quiet, **args})
        finally:
            lightning_log.setLevel(level)

    return make


def _plain(node: DictConfig | Mapping[str, Any], key: str) -> dict[str, Any]:
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if not isinstance(container, dict):
        raise ConfigError(f"{key} must be a mapping of arguments, got {container!r}")
    return {str(k): v for k, v in container.items()}

"""How a policy's values reach an optimizer's param groups: the rules :class:`~lightning_clr.CyclicLR` and
:class:`~lightning_clr.PolicyLR` share.

* **The group ratio**: with scalar bounds, the bounds are those of the group(s) with the largest starting
  ``lr`` and every other group keeps its ratio to it; per-group bounds give each group its own values.
* **Momentum** cycles inversely to the LR, between ``max_momentum`` (LR at its low end) and ``base_momentum``
  (LR at its peak), in ``momentum`` (SGD, RMSprop) or ``betas[0]`` (the Adam family).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.optim import Optimizer

from lightning_clr.policies import Policy
from lightning_clr.validation import InvalidArgument

__all__ = [
    "BASE_MOMENTUM",
    "MAX_MOMENTUM",
    "InvalidSetup",
    "SetupError",
    "check_cyclable_momentum",
    "check_param_groups",
    "group_scales",
    "momentum_at",
    "ratios_to_largest",
    "set_momentum",
]

BASE_MOMENTUM = 0.85  # momentum at the LR's peak, by default (Smith, 2018)
MAX_MOMENTUM = 0.95  # momentum at the LR's low end, by default


class SetupError(ValueError):
    """A setting that can only be rejected once training starts (it needs the optimizer or the data)."""


class InvalidSetup(SetupError, InvalidArgument):
    """A :class:`SetupError` about one argument: it carries the argument, the value and what is allowed."""


def group_scales(policy: Policy, starting_lrs: Sequence[float]) -> list[float]:
    """Each group's factor on the policy's LR: :func:`ratios_to_largest` of the starting LRs (scalar
    bounds), else 1.

    Example::

        >>> from lightning_clr.policies import Triangular
        >>> group_scales(Triangular(0.001, 0.01, step_size=5), [0.001, 0.01])  # backbone, head
        [0.1, 1.0]
    """
    if policy.num_groups is not None:
        return [1.0] * len(starting_lrs)
    return ratios_to_largest(starting_lrs)


def ratios_to_largest(lrs: Sequence[float]) -> list[float]:
    """Each LR over the largest (1 for all when the largest is 0: a ratio of nothing). The group ratio's one
    rule, for :class:`~lightning_clr.CyclicLR`, :class:`~lightning_clr.PolicyLR` and the range test.

    Example::

        >>> ratios_to_largest([0.0, 0.001, 0.01])  # frozen, backbone, head
        [0.0, 0.1, 1.0]
    """
    largest = max(lrs)
    return [lr / largest if largest > 0 else 1.0 for lr in lrs]


def momentum_at(policy: Policy, step: int, base_momentum: float, max_momentum: float) -> float:
    """The momentum of optimizer step ``step``: high where the LR is low.

    Example::

        >>> from lightning_clr.policies import Triangular
        >>> momentum_at(Triangular(0.001, 0.01, step_size=5), 5, BASE_MOMENTUM, MAX_MOMENTUM)  # the LR's peak
        0.85
    """
    return max_momentum - (max_momentum - base_momentum) * policy.momentum_scale(step)


def set_momentum(group: dict[str, object], momentum: float) -> None:
    """Write ``momentum`` into a param group: ``betas[0]`` for the Adam family, else ``momentum``."""
    if "betas" in group:
        group["betas"] = (momentum, group["betas"][1])  # type: ignore[index]
    else:
        group["momentum"] = momentum


def check_param_groups(policy: Policy, optimizer: Optimizer) -> None:
    """Per-group bounds need one value per param group (else :class:`SetupError`)."""
    groups = policy.num_groups
    if groups is not None and groups != len(optimizer.param_groups):
        raise SetupError(
            f"the policy has per-group bounds for {groups} param groups, but "
            f"{type(optimizer).__name__} has {len(optimizer.param_groups)}"
        )


def check_cyclable_momentum(optimizer: Optimizer) -> None:
    """``cycle_momentum=True`` needs an optimizer with a momentum that is switched on (else
    :class:`SetupError`)."""
    for group in optimizer.param_groups:
        key = next((k for k in ("betas", "momentum") if k in group), None)
        name = type(optimizer).__name__
        if key is None:
            why = (
                f"{name} has none (no 'momentum' or 'betas' in its param groups): use SGD, RMSprop or an "
                "Adam-family optimizer, or set cycle_momentum=False"
            )
        elif key == "momentum" and not group["momentum"]:
            why = (
                f"{name} was built with momentum=0: cycling would silently switch momentum on. Give the "
                "optimizer a momentum (e.g. 0.9) or set cycle_momentum=False"
            )
        else:
            continue
        raise InvalidSetup("cycle_momentum", True, f"needs a momentum to cycle, but {why}")

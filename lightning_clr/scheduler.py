""":class:`PolicyLR`: any policy as a ``torch.optim.lr_scheduler.LRScheduler``, for loops without Lightning's
``Trainer`` (plain PyTorch, Lightning Fabric, Hugging Face ``Trainer``)."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightning_clr.param_groups import (
    BASE_MOMENTUM,
    MAX_MOMENTUM,
    check_cyclable_momentum,
    check_param_groups,
    group_scales,
    momentum_at,
    set_momentum,
)
from lightning_clr.policies import Policy, check_momentum_bounds
from lightning_clr.validation import fail

__all__ = ["PolicyLR"]


class PolicyLR(LRScheduler):
    """A policy as a torch LR scheduler: call :meth:`step` after every ``optimizer.step()``.

    The LR of optimizer step ``k`` (from 0) is exactly ``policy(k, group)``, param groups scaled as by
    :class:`~lightning_clr.CyclicLR`; it resumes exactly in torch's usual order.

    Args:
        optimizer: the optimizer whose param groups get the LR.
        policy: the schedule, e.g. :class:`~lightning_clr.policies.Triangular`.
        total_steps: optimizer steps in the run, for a policy that plans from the run's length
            (``OneCycle(total_steps=None)``, ``final_anneal``, ``cycles``).
        steps_per_epoch: optimizer steps per epoch, for a policy given in epochs (``step_size_epochs``).
        cycle_momentum, base_momentum, max_momentum: as :class:`~lightning_clr.CyclicLR`.
        last_epoch: the index of the last step taken, as for every torch scheduler (-1: none yet).

    Raises:
        ValueError: a length the policy needs but was not given, or a set-up :class:`~lightning_clr.CyclicLR`
            rejects too.

    Example::

        >>> import torch
        >>> from lightning_clr import PolicyLR
        >>> from lightning_clr.policies import Triangular
        >>> model = torch.nn.Linear(4, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> scheduler = PolicyLR(optimizer, Triangular(0.001, 0.006, step_size=2))
        >>> lrs = []
        >>> for _ in range(5):
        ...     lrs.append(optimizer.param_groups[0]["lr"])
        ...     optimizer.step()
        ...     scheduler.step()
        >>> [round(lr, 6) for lr in lrs]
        [0.001, 0.0035, 0.006, 0.0035, 0.001]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        policy: Policy,
        *,
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        cycle_momentum: bool = False,
        base_momentum: float = BASE_MOMENTUM,
        max_momentum: float = MAX_MOMENTUM,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(policy, Policy):
            fail("policy", policy, "must be a lightning_clr.policies.Policy")
        if policy.needs_run_length and total_steps is None:
            raise ValueError(
                f"{policy!r} plans from the run's length: give PolicyLR(..., total_steps=<optimizer steps in "
                "the run>) or the policy's own total_steps"
            )
        self.policy = policy.resolve(steps_per_epoch, total_steps)
        check_param_groups(self.policy, optimizer)
        check_momentum_bounds(base_momentum, max_momentum)
        if cycle_momentum:
            check_cyclable_momentum(optimizer)
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        starting = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
        self.scales = group_scales(self.policy, starting)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]  # torch 2.4-2.6 annotate list[float | Tensor]
        """The LR of every param group at step ``last_epoch`` (and its momentum, when cycled)."""
        step = self.last_epoch
        if self.cycle_momentum:
            momentum = momentum_at(self.policy, step, self.base_momentum, self.max_momentum)
            for group in self.optimizer.param_groups:
                set_momentum(group, momentum)
        return [self.policy(step, index) * scale for index, scale in enumerate(self.scales)]

    def state_dict(self) -> dict[str, Any]:
        """Plain values only (``torch.load(weights_only=True)`` loads them); not the policy."""
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "policy")}

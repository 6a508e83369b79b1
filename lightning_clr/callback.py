"""The :class:`CyclicLR` callback: Lightning plumbing that applies a policy at every optimizer step.

The schedule itself is pure math (:mod:`lightning_clr.policies`); this module only decides *when* to ask
the policy (before each optimizer step, keyed by ``trainer.global_step``), writes the answer into the
optimizers' param groups, logs it, and keeps what was decided at start-up in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim import Optimizer

from lightning_clr.policies import Policy

_MOMENTUM_KEYS = ("betas", "momentum")
# Resolved values and the configured arguments they were derived from.
_DERIVED_FROM = {"step_size": ("step_size", "step_size_epochs")}


class SetupError(ValueError):
    """A setting that can only be rejected once training starts (it needs the optimizer or the data)."""


class CyclicLR(Callback):
    """Set the learning rate (and optionally momentum) of every param group from a policy, every step.

    The iteration is the number of optimizer steps taken so far (``trainer.global_step``), so the
    micro-batches of one accumulated step share one LR, resuming needs no counter of its own, and every
    DDP rank computes the same value. The LR used by optimizer step ``k`` is exactly ``policy(k, group)``;
    it is logged under ``lr`` (``lr/group{i}`` with several groups) at every step, straight to the
    loggers, so ``log_every_n_steps`` cannot alias the triangle away.

    Args:
        policy: the schedule, e.g. :class:`~lightning_clr.policies.Triangular`. A step size given in epochs
            (``step_size_epochs``) is resolved to optimizer steps when training starts.
        cycle_momentum: move momentum inversely to the LR, between ``max_momentum`` (LR at its low end) and
            ``base_momentum`` (LR at its peak), using ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam).
        base_momentum: momentum at the LR peak.
        max_momentum: momentum at the LR low end.
        pending: policy arguments whose configured values are placeholders, to be found at start-up
            (by :class:`~lightning_clr.LRRangeTest` through :meth:`update_policy`) or taken from a checkpoint.

    Raises:
        ValueError: momentum bounds outside ``0 <= base_momentum <= max_momentum < 1``, or an unknown name in
            ``pending``. At fit start (:class:`SetupError`, a ``ValueError``): ``cycle_momentum`` with an
            optimizer that has no momentum, per-group bounds whose length differs from the param groups, or a
            step size in epochs with a train loader of unknown length.

    Example::

        >>> import lightning as L
        >>> from lightning_clr import CyclicLR
        >>> from lightning_clr.policies import Triangular
        >>> clr = CyclicLR(Triangular(base_lr=0.001, max_lr=0.006, step_size_epochs=4))
        >>> trainer = L.Trainer(callbacks=[clr], max_epochs=1, logger=False)  # doctest: +SKIP
    """

    def __init__(
        self,
        policy: Policy,
        cycle_momentum: bool = False,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        pending: Collection[str] = (),
    ) -> None:
        if not isinstance(policy, Policy):
            raise ValueError(f"policy={policy!r} must be a lightning_clr.policies.Policy")
        if not 0.0 <= base_momentum <= max_momentum < 1.0:
            raise ValueError(
                f"base_momentum={base_momentum!r} and max_momentum={max_momentum!r} must satisfy "
                "0 <= base_momentum <= max_momentum < 1"
            )
        unknown = sorted(set(pending) - set(policy.params()))
        if unknown:
            raise ValueError(f"pending={sorted(pending)!r} names no argument of {policy.name}: {unknown}")
        self.policy = policy
        self._configured = policy.params()
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        self.pending = set(pending)
        self.resolved: dict[str, Any] = {}
        self._series: list[tuple[Optimizer, list[tuple[int, str, str]]]] = []
        self._applied_step = -1

    def update_policy(self, **changes: Any) -> None:
        """Replace policy arguments found at start-up, remembering them for checkpoints.

        Example::

            >>> from lightning_clr.policies import Triangular
            >>> clr = CyclicLR(Triangular(1e-3, 6e-3, step_size=10), pending=("base_lr", "max_lr"))
            >>> clr.update_policy(base_lr=0.002, max_lr=0.008)
            >>> clr.policy(10)
            0.008
        """
        self.policy = self.policy.replace(**changes)
        self.resolved.update(changes)
        self.pending -= set(changes)

    # --- start-up -------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_param_groups(trainer.optimizers)
        if self.cycle_momentum:
            for optimizer in trainer.optimizers:
                _check_momentum(optimizer)
        if trainer.lr_scheduler_configs:
            rank_zero_warn(
                "CyclicLR sets the LR at every step, but configure_optimizers also returned an LR scheduler;"
                " the two will fight over the LR. Return the optimizer alone."
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pending:
            raise SetupError(
                f"policy arguments {sorted(self.pending)} were left to be found at start-up ('auto'), but "
                "nothing supplied them: add an LRRangeTest callback or give the values"
            )
        if self.policy.needs_resolution:
            steps_per_epoch = _optimizer_steps_per_epoch(trainer, self.policy)
            total = trainer.estimated_stepping_batches  # inf when neither max_epochs nor max_steps is set
            resolved = self.policy.resolve(steps_per_epoch, int(total) if math.isfinite(total) else None)
            changed = {k: v for k, v in resolved.params().items() if self.policy.params()[k] != v}
            self.policy = resolved
            self.resolved.update(changed)
        self._series = _series_names(trainer.optimizers)
        self._applied_step = -1

    # --- every step -----------------------------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._applied_step:  # another micro-batch of the same accumulated step
            return
        self._applied_step = step
        metrics = self.apply(step, trainer.optimizers)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def apply(self, step: int, optimizers: list[Optimizer]) -> dict[str, float]:
        """Write the LR (and momentum) of optimizer step ``step`` into ``optimizers``; return what to log."""
        policy = self.policy
        metrics: dict[str, float] = {}
        momentum = None
        if self.cycle_momentum:
            momentum = self.max_momentum - (self.max_momentum - self.base_momentum) * policy.momentum_scale(
                step
            )
        for optimizer, names in self._series or _series_names(optimizers):
            groups = optimizer.param_groups
            for index, lr_name, momentum_name in names:
                group = groups[index]
                lr = policy(step, index)
                group["lr"] = lr
                metrics[lr_name] = lr
                if momentum is not None:
                    if "betas" in group:
                        group["betas"] = (momentum, group["betas"][1])
                    else:
                        group["momentum"] = momentum
                    metrics[momentum_name] = momentum
        cycle = getattr(policy, "cycle", None)
        if cycle is not None:
            metrics["cycle"] = float(cycle(step))
        return metrics

    # --- checkpoints ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.name,
            "configured": dict(self._configured),
            "resolved": dict(self.resolved),
            "params": self.policy.params(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue the checkpoint's cycle: take its start-up values, unless the configuration changed.

        A configured argument that differs from the one the checkpoint was trained with wins (with a
        warning), and so does everything derived from it (a step size resolved from a changed
        ``step_size_epochs`` is resolved again).
        """
        if state_dict.get("policy") != self.policy.name:
            rank_zero_warn(
                f"The checkpoint was trained with policy {state_dict.get('policy')!r}; continuing with the "
                f"configured {self.policy.name!r}."
            )
            return
        then: Mapping[str, Any] = state_dict.get("configured", {})
        changed = {
            key
            for key, value in self._configured.items()
            if key in then and then[key] != value and key not in self.pending
        }
        for key in sorted(changed):
            rank_zero_warn(
                f"The checkpoint was trained with {key}={then[key]!r}; continuing with the configured "
                f"{key}={self._configured[key]!r}."
            )
        take = {
            key: value
            for key, value in state_dict.get("resolved", {}).items()
            if changed.isdisjoint(_DERIVED_FROM.get(key, (key,)))
        }
        if take:
            self.policy = self.policy.replace(**take)
            self.resolved.update(take)
            self.pending -= set(take)

    # --- checks ---------------------------------------------------------------------------------------

    def _check_param_groups(self, optimizers: list[Optimizer]) -> None:
        groups = self.policy.num_groups
        for optimizer in optimizers:
            if groups is not None and groups != len(optimizer.param_groups):
                raise SetupError(
                    f"the policy has per-group bounds for {groups} param groups, but "
                    f"{type(optimizer).__name__} has {len(optimizer.param_groups)}"
                )


def _check_momentum(optimizer: Optimizer) -> None:
    for group in optimizer.param_groups:
        key = next((k for k in _MOMENTUM_KEYS if k in group), None)
        name = type(optimizer).__name__
        if key is None:
            raise SetupError(
                f"cycle_momentum=True, but {name} has no momentum to cycle (no 'momentum' or 'betas' in its "
                "param groups): use SGD, RMSprop or an Adam-family optimizer, or set cycle_momentum=False"
            )
        if key == "momentum" and not group["momentum"]:
            raise SetupError(
                f"cycle_momentum=True, but {name} was built with momentum=0: cycling would silently switch "
                "momentum on. Give the optimizer a momentum (e.g. 0.9) or set cycle_momentum=False"
            )


def _series_names(optimizers: list[Optimizer]) -> list[tuple[Optimizer, list[tuple[int, str, str]]]]:
    """Logged names of each (optimizer, group): ``lr``, or ``lr/group{i}``, or ``lr/opt{j}-group{i}``."""
    total = sum(len(o.param_groups) for o in optimizers)
    series = []
    for j, optimizer in enumerate(optimizers):
        names = []
        for i in range(len(optimizer.param_groups)):
            if total == 1:
                suffix = ""
            elif len(optimizers) == 1:
                suffix = f"/group{i}"
            else:
                suffix = f"/opt{j}-group{i}"
            names.append((i, f"lr{suffix}", f"momentum{suffix}"))
        series.append((optimizer, names))
    return series


def _optimizer_steps_per_epoch(trainer: pl.Trainer, policy: Policy) -> int:
    """Optimizer steps in one epoch on this rank (the last partial accumulation steps too)."""
    batches = trainer.num_training_batches
    if math.isinf(batches):
        params = policy.params()
        key = "step_size_epochs" if params.get("step_size_epochs") is not None else "total_steps"
        raise SetupError(
            f"{key}={params.get(key)!r} needs the number of batches per epoch, but the train dataloader has "
            "no length (an iterable dataset): give step_size (total_steps) in optimizer steps instead"
        )
    return optimizer_steps_per_epoch(int(batches), trainer.accumulate_grad_batches)


def optimizer_steps_per_epoch(batches: int, accumulate_grad_batches: int = 1) -> int:
    """Optimizer steps in an epoch of ``batches`` batches: Lightning steps on a last partial accumulation too.

    The one count used by the callback, the schedule preview and the range test.

    Example::

        >>> optimizer_steps_per_epoch(10, accumulate_grad_batches=3)  # 3 + 3 + 3 + 1 batches
        4
    """
    return max(1, math.ceil(batches / accumulate_grad_batches))

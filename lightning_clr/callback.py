"""The :class:`CyclicLR` callback: writes a policy's LR for each optimizer's step before that step."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping, Timer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.optim import Optimizer

from lightning_clr.param_groups import (
    BASE_MOMENTUM,
    MAX_MOMENTUM,
    InvalidSetup,
    SetupError,
    check_cyclable_momentum,
    check_param_groups,
    group_scales,
    momentum_at,
    set_momentum,
)
from lightning_clr.policies import Policy, check_momentum_bounds
from lightning_clr.run_length import SteppingPattern, manual_run_steps, optimizer_steps_per_epoch, run_steps
from lightning_clr.validation import InvalidArgument, fail

# A stream has no epoch end: how many of its batches show how the optimizers step (manual optimization).
_STREAM_BATCHES_SEEN = 1000


@dataclass
class _Plan:
    """How one optimizer is driven during a fit: its policy, the scale of each group, the logged names."""

    optimizer: Optimizer
    policy: Policy
    scales: list[float]  # per param group: its starting LR over the largest one (scalar bounds), else 1
    names: list[tuple[str, str]]  # per param group: the logged names of its LR and momentum
    cycle_name: str
    run_steps: int | None = None  # the steps planned for this optimizer (None: nothing bounds the run)


class CyclicLR(Callback):
    """Set the learning rate (and optionally momentum) of every param group from a policy, every step.

    An optimizer's ``n``-th step (from 0; ``trainer.global_step`` under automatic optimization, each
    optimizer's own count under manual optimization) uses exactly ``policy(n, group)``. Param groups, several
    optimizers, run lengths and resuming: docs/guide/callback.md.

    Args:
        policy: the schedule, e.g. :class:`~lightning_clr.policies.Triangular`, or one per optimizer.
        cycle_momentum: move momentum inversely to the LR, between ``max_momentum`` (LR at its low end) and
            ``base_momentum`` (LR at its peak), using ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam).
        base_momentum: momentum at the LR peak.
        max_momentum: momentum at the LR low end.
        pending: policy arguments whose configured values are placeholders, to be found at start-up
            (by :class:`~lightning_clr.LRRangeTest` through :meth:`update_policy`) or taken from a checkpoint.

    Raises:
        ValueError: a policy that is not a :class:`~lightning_clr.policies.Policy`, bad momentum bounds or
            an unknown name in ``pending``; at fit start (:class:`SetupError`) a set-up the policies cannot
            drive (policies per optimizer, momentum, param groups, a length in epochs without epochs).

    Example::

        >>> import lightning as L
        >>> from lightning_clr import CyclicLR
        >>> from lightning_clr.policies import Triangular
        >>> clr = CyclicLR(Triangular(base_lr=0.001, max_lr=0.006, step_size_epochs=4))
        >>> trainer = L.Trainer(callbacks=[clr], max_epochs=1, logger=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        policy: Policy | Sequence[Policy],
        cycle_momentum: bool = False,
        base_momentum: float = BASE_MOMENTUM,
        max_momentum: float = MAX_MOMENTUM,
        pending: Collection[str] = (),
    ) -> None:
        policies = (policy,) if isinstance(policy, Policy) else tuple(policy)
        if not policies or not all(isinstance(p, Policy) for p in policies):
            fail("policy", policy, "must be a lightning_clr.policies.Policy or a non-empty sequence of them")
        check_momentum_bounds(base_momentum, max_momentum)
        for candidate in policies:
            unknown = sorted(set(pending) - set(candidate.params()))
            if unknown:
                fail("pending", sorted(pending), f"names no argument of {candidate.name}: {unknown}")
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        # as configured (and updated outside a fit); every fit starts from these
        self._configured_policies = policies
        self._configured_pending = frozenset(pending)
        self._configured = [p.params() for p in policies]
        self._fitting = False
        self._batch_start: list[int] = []
        self._configured_for_fit: Sequence[Policy] = ()  # per optimizer, before resolution
        self._last_plan: dict[str, Any] = {}  # the last fit's plan state, for a checkpoint after it
        self._batches_per_epoch: int | None = None  # this fit's, for its checkpoints
        self._start_from_configuration()

    def _start_from_configuration(self) -> None:
        """The policies and pending arguments as configured; nothing resolved, planned or observed yet."""
        self.policies: tuple[Policy, ...] = self._configured_policies
        self.pending = set(self._configured_pending)
        self._resolved: list[dict[str, Any]] = [{} for _ in self.policies]  # per policy, as ``resolved``
        self.last_step: dict[str, float] = {}  # what the latest optimizer step used (the logged values)
        self._manual_steps: list[int] | None = None  # per-optimizer step counts, manual optimization only
        self._plans: list[_Plan] = []
        # manual optimization: how the optimizers step, observed over the run's first epoch
        self._stepping: SteppingPattern | None = None
        self._first_epoch: list[tuple[int, ...]] = []  # each batch's steps, while the first epoch is seen
        self._checkpoint_run_steps: list[int | None] | None = None  # the plan the checkpoint was trained on
        self._checkpoint_scales: list[list[float]] | None = None  # its param groups' ratios, exactly
        self._checkpoint_batches: int | None = None  # its epochs' length in batches
        self._epoch_start: tuple[int, int] | None = None  # (epoch, global step) where the epoch began

    @property
    def policy(self) -> Policy:
        """The policy in force (the first one, when there is one per optimizer)."""
        return self.policies[0]

    @property
    def resolved(self) -> dict[str, Any]:
        """What start-up found or resolved for :attr:`policy`: bounds from a range test, a step size."""
        return self._resolved[0]

    def update_policy(self, **changes: Any) -> None:
        """Replace policy arguments (of every policy): for this fit during one, else in the configuration.

        Example::

            >>> from lightning_clr.policies import Triangular
            >>> clr = CyclicLR(Triangular(1e-3, 6e-3, step_size=10), pending=("base_lr", "max_lr"))
            >>> clr.update_policy(base_lr=0.002, max_lr=0.008)
            >>> clr.policy(10)
            0.008
        """
        self.policies = tuple(p.replace(**changes) for p in self.policies)
        for resolved in self._resolved:
            resolved.update(changes)
        self.pending -= set(changes)
        if not self._fitting:
            self._configured_policies = self.policies
            self._configured_pending = frozenset(self.pending)

    # --- start-up -------------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Start every fit from the configuration (a checkpoint, loaded after this, may then add to it)."""
        if stage == "fit":
            self._fitting = True
            self._start_from_configuration()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._fitting = False
            self._last_plan = self._plan_state() if self._plans else self._last_plan
            self._plans = []  # no optimizer kept alive (or pickled) after the fit

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """A fit that raised is over too (Lightning skips ``teardown``): later updates are configuration."""
        self._fitting = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizers = trainer.optimizers
        if len(self.policies) not in (1, len(optimizers)):
            raise SetupError(
                f"CyclicLR was given {len(self.policies)} policies for {len(optimizers)} optimizers: give "
                "one policy (each optimizer follows it on its own steps) or one per optimizer, in the order "
                "configure_optimizers returns them"
            )
        for policy, optimizer in zip(self._per_optimizer(len(optimizers)), optimizers, strict=True):
            check_param_groups(policy, optimizer)
            if self.cycle_momentum:
                check_cyclable_momentum(optimizer)
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
        manual = not pl_module.automatic_optimization
        optimizers = trainer.optimizers
        if manual and self._manual_steps is None:
            self._manual_steps = [0] * len(optimizers)
        if manual and self._stepping is None and self._first_epoch and trainer.current_epoch > 0:
            self._stepping = SteppingPattern.observed(self._first_epoch)  # saved before the epoch's end
            self._first_epoch = []
        configured = self._per_optimizer(len(optimizers))
        self._batches_per_epoch = _batches_per_epoch(trainer)
        then = self._checkpoint_batches
        if manual and then is not None and then != self._batches_per_epoch:
            rank_zero_warn(
                f"CyclicLR: an epoch is {self._batches_per_epoch} batches now, {then} in the checkpoint's "
                "run; under manual optimization the plan counts every epoch at today's length: give the "
                "policies total_steps to plan the run yourself"
            )
        lengths = self._planned_run_steps(trainer, manual, len(optimizers))
        per_epoch = _steps_per_epoch(trainer, manual)
        try:
            policies = [p.resolve(per_epoch, n) for p, n in zip(configured, lengths, strict=True)]
        except ValueError as error:
            if isinstance(error, InvalidArgument):
                raise InvalidSetup(error.argument, error.value, error.allowed) from error
            raise SetupError(str(error)) from error
        earlier = self._resolved * len(policies) if len(self._resolved) == 1 else self._resolved
        self._resolved = [
            {**before, **{k: v for k, v in new.params().items() if old.params()[k] != v}}
            for before, old, new in zip(earlier, configured, policies, strict=True)
        ]
        one = len(self.policies) == 1 and all(p == policies[0] for p in policies)
        self.policies = (policies[0],) if one else tuple(policies)
        self._resolved = self._resolved[:1] if one else self._resolved
        self._plans = self._make_plans(optimizers, policies, lengths, self._checkpoint_scales)
        self._configured_for_fit = configured
        self._say_replanned(configured, per_epoch)
        problems = dict.fromkeys(  # once each, in order
            problem
            for plan in self._plans
            if plan.run_steps is not None
            and (problem := plan.policy.run_length_problem(plan.run_steps, per_epoch)) is not None
        )
        for problem in problems:
            rank_zero_warn(f"CyclicLR: {problem}")
        self._say_end_phase_needs_the_whole_run(trainer)
        self._write(trainer)

    def _planned_run_steps(self, trainer: pl.Trainer, manual: bool, optimizers: int) -> list[int | None]:
        """The steps each optimizer will take in this fit, from the trainer's limits (the one rule)."""
        batches = _batches_per_epoch(trainer)
        if not manual:
            steps = run_steps(
                batches,
                trainer.max_epochs,
                trainer.max_steps,
                trainer.accumulate_grad_batches,
                step=trainer.global_step,
                epoch=trainer.current_epoch,
                steps_in_epoch=self._steps_in_epoch(trainer),
            )
            return [steps] * optimizers
        stepping = self._stepping or SteppingPattern.every_batch(optimizers)
        counts = manual_run_steps(batches, trainer.max_epochs, trainer.max_steps, stepping)
        return [None] * optimizers if counts is None else list(counts)

    def _steps_in_epoch(self, trainer: pl.Trainer) -> int | None:
        """Steps already taken in this epoch, from where the checkpoint saw it begin; None when unknown."""
        if self._epoch_start is None:
            return None
        epoch, first_step = self._epoch_start
        return trainer.global_step - first_step if epoch == trainer.current_epoch else 0

    def _say_replanned(self, configured: Sequence[Policy], per_epoch: int | None) -> None:
        """One line per optimizer whose run length changed since its checkpoint: the policy was re-planned."""
        if self._checkpoint_run_steps is None:
            return
        for index, (plan, then) in enumerate(zip(self._plans, self._checkpoint_run_steps, strict=False)):
            now = plan.run_steps
            if then is None or now is None or then == now or not configured[index].needs_run_length:
                continue  # same length, or a length the user pinned (run_length_problem warns about it)
            before = configured[index].resolve(per_epoch, then)
            rank_zero_info(
                f"CyclicLR: {self._who(index)}this run is {now} optimizer steps; its checkpoint was planned "
                f"for {then}. {plan.policy.name} is re-planned as if total_steps={now} from the start"
                f"{_plan_change(before, plan.policy)}."
            )

    def _say_end_phase_needs_the_whole_run(self, trainer: pl.Trainer) -> None:
        """Once: a callback that may stop the run early (EarlyStopping, max_time) skips the end phase."""
        callbacks = trainer.callbacks  # type: ignore[attr-defined]
        stoppers = sorted({type(cb).__name__ for cb in callbacks if isinstance(cb, (EarlyStopping, Timer))})
        plan = next((p for p in self._plans if p.policy.end_phase_start() is not None), None)
        if stoppers and plan is not None and plan.run_steps is not None:
            start = plan.policy.end_phase_start()
            rank_zero_info(
                f"CyclicLR: {plan.policy.name}'s end phase is planned for steps {start}-{plan.run_steps - 1}"
                f" of a {plan.run_steps}-step run; a run that {' or '.join(stoppers)} "
                "stops earlier will not reach it."
            )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._observing(trainer):
            self._batch_start = list(self._manual_steps or ())

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = (trainer.current_epoch, trainer.global_step)
        if self._manual_steps is None and self._plans:
            self._replan_if_the_run_changed(trainer)

    def _replan_if_the_run_changed(self, trainer: pl.Trainer) -> None:
        """At an epoch's start the steps left are known exactly. They differ from the plan when a resume's
        epoch was run again at a new length (Lightning does so when the checkpoint is past the new epoch's
        end): plan the steps left for the run's real length, and say so."""
        now = self._planned_run_steps(trainer, False, len(self._plans))[0]
        for index, plan in enumerate(self._plans):
            configured = self._configured_for_fit[index]
            if now is None or plan.run_steps in (None, now) or not configured.needs_run_length:
                continue
            replanned = configured.resolve(_steps_per_epoch(trainer, manual=False), now)
            rank_zero_info(
                f"CyclicLR: {self._who(index)}at step {trainer.global_step} this run is {now} optimizer "
                f"steps, not the {plan.run_steps} planned; {plan.policy.name} follows a plan for {now} steps "
                f"from here{_plan_change(plan.policy, replanned)}."
            )
            plan.policy, plan.run_steps = replanned, now

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._observing(trainer) and self._first_epoch:
            self._stepping_seen(trainer)

    def _stepping_seen(self, trainer: pl.Trainer) -> None:
        """The first epoch (a stream's first batches) is over: how each optimizer steps is known."""
        batches = len(self._first_epoch)
        self._stepping = SteppingPattern.observed(self._first_epoch)
        self._first_epoch = []
        self._replan_from_stepping(trainer, batches)

    def _observing(self, trainer: pl.Trainer) -> bool:
        """Manual optimization, in the run's first epoch: each batch's steps are being recorded."""
        return self._manual_steps is not None and self._stepping is None and trainer.current_epoch == 0

    def _replan_from_stepping(self, trainer: pl.Trainer, batches: int) -> None:
        """After the first epoch: plan each optimizer for the steps it really takes, or stop and say why."""
        assert self._manual_steps is not None and self._stepping is not None
        in_epoch = self._stepping.steps_in(batches)
        lengths = self._planned_run_steps(trainer, True, len(self._plans))
        per_epoch = _steps_per_epoch(trainer, manual=True)
        for index, (plan, now) in enumerate(zip(self._plans, lengths, strict=True)):
            then, configured = plan.run_steps, self._configured_for_fit[index]
            taken = self._manual_steps[index]
            if now == then or now is None:
                continue
            plan.run_steps = now
            seen = (
                f"{self._who(index)}{type(plan.optimizer).__name__} stepped {in_epoch[index]} times in the "
                f"first {batches} batches, not once per batch: it takes {now} steps in this run, not "
                f"the {then} planned"
            )
            if not configured.needs_run_length:
                problem = plan.policy.run_length_problem(now, per_epoch)
                if problem is not None:
                    rank_zero_warn(f"CyclicLR: {seen}. {problem}")
                continue
            replanned = configured.resolve(per_epoch, now)
            groups = range(len(plan.optimizer.param_groups))
            if taken < now and any(
                replanned(k, g) != plan.policy(k, g) for k in range(taken) for g in groups
            ):
                raise SetupError(
                    f"CyclicLR: {seen}. {plan.policy.name}'s plan for {now} steps differs from the "
                    f"{then}-step plan already in its first {taken} steps, so it cannot be re-planned: give "
                    f"its policy total_steps={now} (one policy per optimizer: CyclicLR([...]))"
                )
            rank_zero_info(
                f"CyclicLR: {seen}; re-planned for {now} steps{_plan_change(plan.policy, replanned)}."
            )
            plan.policy = replanned

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One line when the run ended before (or after) the step it was planned to end on."""
        for index, plan in enumerate(self._plans):
            taken = self._step(index, trainer)
            if plan.run_steps is None or taken == plan.run_steps:
                continue
            start = plan.policy.end_phase_start()
            reached = start is None or taken > start
            missed = "" if reached else f"; its end phase (from step {start}) was not reached"
            rank_zero_info(
                f"CyclicLR: {self._who(index)}the run took {taken} of the {plan.run_steps} optimizer steps "
                f"{plan.policy.name} was planned for{missed}. Resume it (ckpt_path) to finish the plan."
            )

    def _who(self, index: int) -> str:
        return "" if len(self._plans) == 1 else f"optimizer {index}: "

    # --- every step -----------------------------------------------------------------------------------

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        index = next((j for j, plan in enumerate(self._plans) if plan.optimizer is optimizer), None)
        if index is None:  # an optimizer that appeared after train start: leave it alone
            return
        step = self._step(index, trainer)
        metrics = self._write_one(self._plans[index], step)
        self.last_step.update(metrics)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        if self._manual_steps is not None:
            self._manual_steps[index] += 1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._observing(trainer):
            steps = self._manual_steps or ()
            self._first_epoch.append(tuple(n - m for n, m in zip(steps, self._batch_start, strict=True)))
            if _batches_per_epoch(trainer) is None and len(self._first_epoch) == _STREAM_BATCHES_SEEN:
                self._stepping_seen(trainer)
        self._write(trainer)  # the coming step's LR, for whatever reads it before that step

    def apply(self, step: int, optimizers: Sequence[Optimizer]) -> dict[str, float]:
        """Write the LR (and momentum) of step ``step`` into ``optimizers``; return what to log.

        For loops without a Trainer (every optimizer at the same step). Example::

            >>> import torch
            >>> from lightning_clr.policies import Triangular
            >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            >>> CyclicLR(Triangular(0.001, 0.006, step_size=10)).apply(5, [optimizer])
            {'lr': 0.0035, 'cycle': 1.0}
            >>> optimizer.param_groups[0]["lr"]
            0.0035
        """
        if [plan.optimizer for plan in self._plans] != list(optimizers):
            self._plans = self._make_plans(optimizers)
        metrics: dict[str, float] = {}
        for plan in self._plans:
            metrics.update(self._write_one(plan, step))
        return metrics

    def _step(self, index: int, trainer: pl.Trainer) -> int:
        return trainer.global_step if self._manual_steps is None else self._manual_steps[index]

    def _write(self, trainer: pl.Trainer) -> None:
        for index, plan in enumerate(self._plans):
            self._write_one(plan, self._step(index, trainer))

    def _write_one(self, plan: _Plan, step: int) -> dict[str, float]:
        if len(plan.optimizer.param_groups) > len(plan.scales):
            self._adopt_new_groups(plan, step)
        policy = plan.policy
        metrics: dict[str, float] = {}
        momentum = (
            momentum_at(policy, step, self.base_momentum, self.max_momentum) if self.cycle_momentum else None
        )
        for index, group in enumerate(plan.optimizer.param_groups):
            lr_name, momentum_name = plan.names[index]
            group["lr"] = metrics[lr_name] = policy(step, index) * plan.scales[index]
            if momentum is not None:
                set_momentum(group, momentum)
                metrics[momentum_name] = momentum
        cycle = getattr(policy, "cycle", None)
        if cycle is not None:
            metrics[plan.cycle_name] = float(cycle(step))
        return metrics

    def _adopt_new_groups(self, plan: _Plan, step: int) -> None:
        """Param groups added during the run (e.g. by ``BackboneFinetuning``) join at their LR's ratio to the
        policy's LR of that step, and keep it."""
        if plan.policy.num_groups is not None:
            raise SetupError(
                f"{type(plan.optimizer).__name__} gained a param group during the run, but its policy has "
                f"per-group bounds for {plan.policy.num_groups} groups: give scalar bounds (a new group then "
                "keeps its LR's ratio to the policy's)"
            )
        reference = plan.policy(step)
        optimizer_tag = plan.cycle_name.partition("/")[2]  # "" or "opt{j}"
        for index in range(len(plan.scales), len(plan.optimizer.param_groups)):
            lr = float(plan.optimizer.param_groups[index]["lr"])
            plan.scales.append(lr / reference if reference > 0 else 1.0)
            suffix = f"/{optimizer_tag}-group{index}" if optimizer_tag else f"/group{index}"
            plan.names.append((f"lr{suffix}", f"momentum{suffix}"))
            rank_zero_info(
                f"CyclicLR: param group {index} (lr={lr:.4g}) was added at step {step}: it follows "
                f"{plan.policy.name} at {plan.scales[-1]:.4g} x its LR from now on, whatever else sets it"
            )

    def _per_optimizer(self, count: int) -> tuple[Policy, ...]:
        return self.policies * count if len(self.policies) == 1 else self.policies

    def _make_plans(
        self,
        optimizers: Sequence[Optimizer],
        policies: Sequence[Policy] | None = None,
        lengths: Sequence[int | None] | None = None,
        kept_scales: Sequence[list[float] | None] | None = None,
    ) -> list[_Plan]:
        """Plans for ``optimizers``: group ratios from their LRs now, or exactly as a checkpoint kept them."""
        names = _series_names(optimizers)
        policies = policies or self._per_optimizer(len(optimizers))
        lengths = lengths or [None] * len(optimizers)
        kept_scales = kept_scales or []
        plans = []
        for j, (policy, optimizer, length) in enumerate(zip(policies, optimizers, lengths, strict=True)):
            scales = group_scales(policy, [float(group["lr"]) for group in optimizer.param_groups])
            kept = kept_scales[j] if j < len(kept_scales) else None
            if kept is not None and policy.num_groups is None and len(kept) == len(scales):
                scales = [float(scale) for scale in kept]
            cycle_name = "cycle" if len(optimizers) == 1 else f"cycle/opt{j}"
            plans.append(_Plan(optimizer, policy, scales, names[j], cycle_name, length))
        return plans

    # --- checkpoints ----------------------------------------------------------------------------------

    def _plan_state(self) -> dict[str, Any]:
        """The fit's plan as its checkpoints keep it: each optimizer's run length and exact group ratios."""
        return {
            "run_steps": [plan.run_steps for plan in self._plans],
            # per-group bounds give every group its own values: no ratio to keep
            "scales": [None if p.policy.num_groups else list(p.scales) for p in self._plans],
            "batches_per_epoch": self._batches_per_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policies": [p.name for p in self._configured_policies],
            "configured": [dict(c) for c in self._configured],
            "resolved": [dict(resolved) for resolved in self._resolved],
            "params": [p.params() for p in self.policies],
            "manual_steps": None if self._manual_steps is None else list(self._manual_steps),
            **(self._plan_state() if self._plans else self._last_plan),
            "epoch_start": None if self._epoch_start is None else list(self._epoch_start),
            "stepping": None if self._stepping is None else [list(row) for row in self._stepping.counts],
            "first_epoch": [list(row) for row in self._first_epoch],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue the checkpoint's cycle: take its start-up values, unless the configuration changed.

        A configured argument that differs from the checkpoint's wins (with a warning), and so does
        everything derived from it. Each policy takes its own values (one policy per optimizer).
        """
        names = state_dict.get("policies", [state_dict.get("policy")])
        configured = state_dict.get("configured", {})
        then_configured = configured if isinstance(configured, list) else [configured]
        steps = state_dict.get("manual_steps")
        self._manual_steps = None if steps is None else [int(n) for n in steps]
        stepping = state_dict.get("stepping")
        self._stepping = None if stepping is None else SteppingPattern.observed(stepping)
        self._first_epoch = [tuple(row) for row in state_dict.get("first_epoch", [])]
        self._checkpoint_run_steps = state_dict.get("run_steps")
        self._checkpoint_scales = state_dict.get("scales")
        self._checkpoint_batches = state_dict.get("batches_per_epoch")
        start = state_dict.get("epoch_start")
        self._epoch_start = None if start is None else (int(start[0]), int(start[1]))
        ours = [p.name for p in self.policies]
        if list(names) != ours:
            then = names[0] if len(names) == 1 else names
            now = ours[0] if len(ours) == 1 else ours
            rank_zero_warn(
                f"The checkpoint was trained with policy {then!r}; continuing with the configured {now!r}."
            )
            return
        resolved = state_dict.get("resolved", {})
        then_resolved = resolved if isinstance(resolved, list) else [resolved]
        if len(self.policies) == 1 < len(then_resolved):  # one policy, planned per optimizer in that run
            self.policies *= len(then_resolved)
            self._resolved = [dict(self._resolved[0]) for _ in then_resolved]
        warned: set[str] = set()
        policies = []
        for index, policy in enumerate(self.policies):
            take = self._taken_from_checkpoint(
                policy,
                _nth(self._configured, index),
                _nth(then_configured, index),
                _nth(then_resolved, index),
                warned,
            )
            policies.append(policy.replace(**take) if take else policy)
            self._resolved[index].update(take)
            self.pending -= set(take)
        self.policies = tuple(policies)

    def _taken_from_checkpoint(
        self,
        policy: Policy,
        now: Mapping[str, Any],
        then: Mapping[str, Any],
        resolved: Mapping[str, Any],
        warned: set[str],
    ) -> dict[str, Any]:
        """What ``policy`` takes of its checkpoint's start-up values: those no configured change overrides."""
        pending = self.pending
        changed = {
            key for key, value in now.items() if key in then and then[key] != value and key not in pending
        }
        for key in sorted(changed - warned):
            rank_zero_warn(
                f"The checkpoint was trained with {key}={then[key]!r}; continuing with the configured "
                f"{key}={now[key]!r}."
            )
        warned |= changed
        # What the run's length decides (total_steps, a step size from cycles) is planned again at train
        # start for this run's length: the same values when the length is the same.
        from_cycles = {"step_size", "cycles"} if policy.params().get("cycles") else set()
        from_run_length = {"total_steps", *from_cycles}
        take = {
            key: value
            for key, value in resolved.items()
            # a resolved step size is derived from whichever of its three forms was configured
            if changed.isdisjoint((key, "step_size_epochs", "cycles") if key == "step_size" else (key,))
            and key not in from_run_length
        }
        if "step_size" in take:
            take.update({key: None for key in ("step_size_epochs", "cycles") if key in policy.params()})
        return {key: value for key, value in take.items() if key in policy.params()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_plans"] = []  # optimizers are the fit's, not the callback's
        for name in ("log", "log_dict"):  # the model's, bound to every callback by the Trainer
            state.pop(name, None)
        return state


def _nth(items: Sequence[Any], index: int) -> Any:
    """Item ``index``, or the only item (what one policy, or an older checkpoint, gave every optimizer)."""
    return items[0] if len(items) == 1 else items[index]


def _series_names(optimizers: Sequence[Optimizer]) -> list[list[tuple[str, str]]]:
    """Logged names of each (optimizer, group): ``lr``, or ``lr/group{i}``, or ``lr/opt{j}-group{i}``."""
    total = sum(len(o.param_groups) for o in optimizers)
    series = []
    for j, optimizer in enumerate(optimizers):
        suffixes = [
            "" if total == 1 else f"/group{i}" if len(optimizers) == 1 else f"/opt{j}-group{i}"
            for i in range(len(optimizer.param_groups))
        ]
        series.append([(f"lr{suffix}", f"momentum{suffix}") for suffix in suffixes])
    return series


def _batches_per_epoch(trainer: pl.Trainer) -> int | None:
    """Train batches per epoch on this rank; None for a loader without length (a stream)."""
    batches = trainer.num_training_batches
    return None if math.isinf(batches) else int(batches)


def _steps_per_epoch(trainer: pl.Trainer, manual: bool) -> int | None:
    """Optimizer steps per epoch, for lengths given in epochs (one per batch under manual optimization)."""
    batches = _batches_per_epoch(trainer)
    if batches is None:
        return None
    return optimizer_steps_per_epoch(batches, 1 if manual else trainer.accumulate_grad_batches)


def _plan_change(before: Policy, after: Policy) -> str:
    """What re-planning changed, for a one-line message: the end phase's first step, the step size."""
    changes = []
    end_before, end_after = before.end_phase_start(), after.end_phase_start()
    if end_after is not None and end_after != end_before:
        changes.append(f"its end phase now starts at step {end_after} (was {end_before})")
    step_before, step_after = before.params().get("step_size"), after.params().get("step_size")
    if step_before != step_after:
        changes.append(f"step_size {step_before} -> {step_after}")
    return "" if not changes else ": " + ", ".join(changes)

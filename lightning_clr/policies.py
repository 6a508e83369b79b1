"""Learning-rate policies as pure functions of the optimizer step: ``policy(iteration, group)`` is the LR.

Smith's cyclic policies (WACV 2017), the step-decay baseline, 1cycle, cosine and WSD; the formulas and the
rules are in docs/guide/policies.md.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from lightning_clr.validation import boolean, fail, finite, integer, is_list, positive

__all__ = [
    "WSD",
    "Cosine",
    "ExpRange",
    "Fixed",
    "OneCycle",
    "Policy",
    "Triangular",
    "Triangular2",
    "WholeCycles",
    "check_momentum_bounds",
]

Bounds = float | Sequence[float]
"""One value for every param group, or one value per param group."""

_P = TypeVar("_P", bound="Policy")
_C = TypeVar("_C", bound="_CyclicPolicy")
_LENGTHS = ("step_size", "step_size_epochs", "cycles")  # how a cyclic policy's length is given: one of them


class Policy:
    """Base class of the LR policies: a frozen dataclass, an immutable ``(iteration, group) -> lr``."""

    name: ClassVar[str]
    num_groups: int | None
    """None when the bounds are scalars, else the number of param groups they are given for."""

    def __call__(self, iteration: int, group: int = 0) -> float:
        """The LR of optimizer step ``iteration`` (0-based) for param group ``group``."""
        raise NotImplementedError

    def momentum_scale(self, iteration: int) -> float:
        """Where the schedule stands at ``iteration``, in [0, 1]: 0 at its low end, 1 at its peak.

        Momentum is ``max_momentum - (max_momentum - base_momentum) * momentum_scale(iteration)``.
        """
        raise NotImplementedError

    @property
    def needs_resolution(self) -> bool:
        """True while a length is still unknown (given in epochs, or the run length is not known yet)."""
        return False

    @property
    def needs_run_length(self) -> bool:
        """True when resolving needs the run's length in optimizer steps (a run without end cannot work)."""
        return False

    def resolve(self: _P, steps_per_epoch: int | None, total_steps: int | None = None) -> _P:
        """A copy with every length in optimizer steps; ``self`` when nothing needs resolving."""
        return self

    def run_length_problem(self, run_steps: int, steps_per_epoch: int | None = None) -> str | None:
        """Why a run of ``run_steps`` optimizer steps would not follow this schedule as meant, or None.

        Example::

            >>> Triangular(0.001, 0.006, step_size=500).run_length_problem(300)
            'step_size=500 is longer than the run (300 optimizer steps): the LR never reaches max_lr'
        """
        return None

    def end_phase_start(self) -> int | None:
        """The first optimizer step of the end phase (planned from the run's length), or None without one.

        Example::

            >>> Triangular(0.01, 0.1, step_size=5, final_anneal=0.2, total_steps=40).end_phase_start()
            32
        """
        return None

    def _planned_length_problem(self, run_steps: int) -> str | None:
        """Why an end phase planned for ``total_steps`` does not fit a run of ``run_steps``, or None."""
        total: int | None = getattr(self, "total_steps", None)
        if total is None or total == run_steps or self.end_phase_start() is None:
            return None
        if total > run_steps:
            return (
                f"total_steps={total} is longer than the run ({run_steps} optimizer steps): the end phase "
                f"planned from step {self.end_phase_start()} is cut short, the LR stops at "
                f"{self(run_steps - 1):.3g} instead of {self(total - 1):.3g}"
            )
        return (
            f"total_steps={total} is shorter than the run ({run_steps} optimizer steps): the last "
            f"{run_steps - total} steps stay at the final LR {self(total - 1):.3g}"
        )

    @classmethod
    def from_config(cls: type[_P], **arguments: Any) -> _P:
        """The policy from a config group listing every argument (unused ones None), with its precedence.

        Example::

            >>> Triangular.from_config(base_lr=0.001, max_lr=0.006, step_size=200, step_size_epochs=4)
            Triangular(base_lr=0.001, max_lr=0.006, step_size=200)
        """
        return cls(**cls._precedence(arguments))

    @staticmethod
    def _precedence(arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` with the policy's precedence rules applied (none for this policy)."""
        return arguments

    def replace(self: _P, **changes: Any) -> _P:
        """A validated copy with some constructor arguments changed (the policy's precedence applied).

        Raises:
            ValueError: if a change names no constructor argument or makes the policy invalid.
        """
        arguments = self.params()
        for key, value in changes.items():
            if key not in arguments:
                fail(key, value, f"is not an argument of {type(self).__name__} ({', '.join(arguments)})")
        # every subclass is a dataclass
        return dataclasses.replace(self, **self._precedence(changes))  # type: ignore[type-var]

    def params(self) -> dict[str, Any]:
        """The constructor arguments as plain values (per-group bounds as lists), in signature order."""
        return {field.name: _plain(getattr(self, field.name)) for field in self._fields()}

    def __repr__(self) -> str:
        """The constructor call, leaving out arguments at their defaults."""
        arguments = ", ".join(
            f"{field.name}={_plain(getattr(self, field.name))!r}"
            for field in self._fields()
            if getattr(self, field.name) != field.default
        )
        return f"{type(self).__name__}({arguments})"

    def _fields(self) -> list[dataclasses.Field[Any]]:
        """The constructor's fields in the order of its signature: positional, then keyword-only."""
        fields = dataclasses.fields(self)  # type: ignore[arg-type]  # every subclass is a dataclass
        return sorted(fields, key=lambda field: field.kw_only is True)


class WholeCycles(NamedTuple):
    """How a run of ``total_steps`` optimizer steps fits a cyclic policy's cycles."""

    cycles: float  # the run's length in cycles
    cycle_steps: int  # optimizer steps in one cycle (rise and fall)
    ends_on_boundary: bool  # the run is a whole number of cycles
    nearest_steps: int  # the whole-cycle run length nearest to total_steps (at least one cycle)


@dataclass(frozen=True, repr=False)
class _CyclicPolicy(Policy):
    """Smith's triangle, written once; subclasses choose the amplitude with :meth:`scale`."""

    base_lr: Bounds
    max_lr: Bounds
    step_size: int | None
    _: KW_ONLY
    step_size_epochs: float | None = None
    cycles: float | None = None
    final_anneal: float = 0.0
    final_div_factor: float = 100.0
    total_steps: int | None = None

    if TYPE_CHECKING:  # a field of each subclass, in its own place in the signature
        step_size_down: int | None
    _bounds: ClassVar[tuple[tuple[float, float], ...]]  # (base_lr, max_lr) per group, set per instance

    def __post_init__(self) -> None:
        bounds = _paired_bounds(self.base_lr, self.max_lr)
        _set(self, "_bounds", bounds)
        _set(self, "num_groups", len(bounds) if is_list(self.base_lr) or is_list(self.max_lr) else None)
        _set(self, "base_lr", _lr_values("base_lr", self.base_lr))
        _set(self, "max_lr", _lr_values("max_lr", self.max_lr))
        lengths = {name: getattr(self, name) for name in _LENGTHS if getattr(self, name) is not None}
        if not lengths:
            fail("step_size", None, "must be given when step_size_epochs and cycles are None (give one)")
        if len(lengths) > 1:
            (name, value), *others = lengths.items()
            given = " and ".join(f"{key}={other!r}" for key, other in others)
            fail(name, value, f"cannot be combined with {given} (give one of {', '.join(_LENGTHS)})")
        if self.step_size is None and self.step_size_down is not None:
            key = "step_size_epochs" if self.step_size_epochs is not None else "cycles"
            allowed = f"counts optimizer steps: give step_size, not {key}={lengths[key]!r}"
            fail("step_size_down", self.step_size_down, allowed)
        _check_given(self, integer, "step_size", "step_size_down", "total_steps")
        _check_given(self, positive, "step_size_epochs", "cycles")
        fraction = _within("final_anneal", self.final_anneal, "[0, 1)", " (a fraction of the run)")
        _set(self, "final_anneal", fraction)
        _set(self, "final_div_factor", positive("final_div_factor", self.final_div_factor))

    def scale(self, cycle: int, iteration: int) -> float:
        """The amplitude factor in cycle ``cycle`` (1-based) at ``iteration``."""
        raise NotImplementedError

    def cycle(self, iteration: int) -> int:
        """The 1-based index of the cycle that ``iteration`` belongs to."""
        rise, fall = self._half_cycles()
        return 1 + iteration // (rise + fall)  # floor(1 + iteration / (2 * step_size))

    def __call__(self, iteration: int, group: int = 0) -> float:
        base_lr, max_lr = self._bounds[0 if self.num_groups is None else group]
        anneal = self._anneal_position(iteration)
        if anneal is None:
            return base_lr + (max_lr - base_lr) * self._height(iteration)
        start, pct = anneal
        before = base_lr + (max_lr - base_lr) * self._height(start)  # the LR of the last plain step
        return _cosine(before, base_lr / self.final_div_factor, pct)

    def momentum_scale(self, iteration: int) -> float:
        """``max(0, 1 - x) * scale`` as torch's ``CyclicLR``; in the final anneal it falls to 0."""
        anneal = self._anneal_position(iteration)
        if anneal is None:
            return self._height(iteration)
        start, pct = anneal
        return _cosine(self._height(start), 0.0, pct)

    def anneal_start(self) -> int | None:
        """The first optimizer step of the final anneal (the last ``round(final_anneal * total_steps)``
        steps, at least 1 and never the first step), or None without one (``final_anneal=0``)."""
        if self.final_anneal == 0:
            return None
        if self.total_steps is None:
            raise _unresolved(self, f"has total_steps=None for final_anneal={self.final_anneal!r}")
        length = min(self.total_steps - 1, max(1, round(self.final_anneal * self.total_steps)))
        return None if length == 0 else self.total_steps - length

    def end_phase_start(self) -> int | None:
        return None if self.total_steps is None else self.anneal_start()

    def _anneal_position(self, iteration: int) -> tuple[int, float] | None:
        """``(last plain step, fraction of the anneal done)`` in the anneal; None before it."""
        first = self.anneal_start()
        if first is None or iteration < first:
            return None
        anchor = first - 1
        return anchor, min(1.0, (iteration - anchor) / (self.total_steps - 1 - anchor))  # type: ignore[operator]

    def whole_cycles(self, total_steps: int) -> WholeCycles:
        """How a run of ``total_steps`` optimizer steps fits the cycles (Smith: stop at the end of one).

        Example::

            >>> Triangular(0.01, 0.1, step_size=100).whole_cycles(500)
            WholeCycles(cycles=2.5, cycle_steps=200, ends_on_boundary=False, nearest_steps=600)
        """
        cycle_steps = sum(self._half_cycles())
        cycles = total_steps / cycle_steps
        nearest = max(1, math.floor(cycles + 0.5)) * cycle_steps  # halves round up, to more training
        return WholeCycles(cycles, cycle_steps, total_steps % cycle_steps == 0, nearest)

    def whole_cycle_epochs(self, steps_per_epoch: int, epochs: float) -> int:
        """The number of epochs (at least one) nearest to ``epochs`` that is a whole number of cycles.

        Example::

            >>> Triangular(0.01, 0.1, step_size=160).whole_cycle_epochs(steps_per_epoch=40, epochs=20)
            24
        """
        cycle_epochs = math.lcm(sum(self._half_cycles()), steps_per_epoch) // steps_per_epoch
        return max(1, math.floor(epochs / cycle_epochs + 0.5)) * cycle_epochs

    def _height(self, iteration: int) -> float:
        """``max(0, 1 - x) * scale`` of Smith's formula: 0 at base_lr, 1 at an unscaled peak."""
        rise, fall = self._half_cycles()
        cycle = self.cycle(iteration)
        position = iteration - (cycle - 1) * (rise + fall)  # optimizer steps into this cycle
        # Smith's x = |iteration / step_size - 2 * cycle + 1| is 1 where a cycle starts and ends and 0 at
        # its peak; here the rise and the fall each keep their own length.
        x = 1 - position / rise if position <= rise else (position - rise) / fall
        return max(0.0, 1 - x) * self.scale(cycle, iteration)

    def _cycle_end_problem(self, total_steps: int, steps_per_epoch: int | None = None) -> str | None:
        """Why a run of ``total_steps`` steps does not end on a cycle boundary, or None when it does (or when
        ``final_anneal > 0`` ends it).

        Example::

            >>> print(Triangular(0.01, 0.1, step_size=160).run_length_problem(800, steps_per_epoch=40))
            The run is 800 optimizer steps (20 epochs) but a cycle is 320 (8 epochs): it ends 2.5 cycles in, \
not on a cycle boundary (Smith: stop at the end of a cycle). For whole cycles set trainer.max_epochs=24 \
(or max_steps=960), or policy.cycles=2 or policy.final_anneal.
        """
        if self.final_anneal > 0:
            return None
        fit = self.whole_cycles(total_steps)
        if fit.ends_on_boundary:
            return None
        run, cycle = f"{total_steps} optimizer steps", f"{fit.cycle_steps}"
        fix = f"max_steps={fit.nearest_steps}"
        if steps_per_epoch:
            run += f" ({_epochs(total_steps / steps_per_epoch)})"
            cycle += f" ({_epochs(fit.cycle_steps / steps_per_epoch)})"
            epochs = self.whole_cycle_epochs(steps_per_epoch, total_steps / steps_per_epoch)
            fix = f"max_epochs={epochs} (or {fix})"
        return (
            f"The run is {run} but a cycle is {cycle}: it ends {fit.cycles:.3g} cycles in, not on a cycle "
            f"boundary (Smith: stop at the end of a cycle). For whole cycles set trainer.{fix}, or "
            f"policy.cycles={max(1, round(fit.cycles))} or policy.final_anneal."
        )

    @staticmethod
    def _precedence(arguments: dict[str, Any]) -> dict[str, Any]:
        """A step size in optimizer steps beats a number of cycles, which beats a step size in epochs."""
        if arguments.get("step_size") is not None:
            return {**arguments, "step_size_epochs": None, "cycles": None}
        if arguments.get("cycles") is not None:
            return {**arguments, "step_size_epochs": None}
        return arguments

    @property
    def needs_resolution(self) -> bool:
        return self.step_size is None or (self.final_anneal > 0 and self.total_steps is None)

    def resolve(self: _C, steps_per_epoch: int | None, total_steps: int | None = None) -> _C:
        """A copy with ``step_size`` (from ``step_size_epochs`` or ``cycles``) and ``total_steps`` known."""
        if not self.needs_resolution:
            return self
        if self.step_size_epochs is not None and steps_per_epoch is None:
            fail(
                "step_size_epochs",
                self.step_size_epochs,
                "needs the optimizer steps per epoch, but steps_per_epoch=None (a train loader without "
                "length, such as an iterable dataset, has none): give step_size in optimizer steps instead",
            )
        changes: dict[str, Any] = {}
        run = self.total_steps
        if self.needs_run_length:
            needs = "cycles" if self.cycles is not None else "final_anneal"
            run = _run_length(total_steps, f" to resolve {needs}={getattr(self, needs)!r}")
            if self.final_anneal > 0:
                changes["total_steps"] = run
        # a step size given, its other forms are dropped by the precedence rules of replace()
        if self.step_size is None and self.cycles is not None:
            changes["step_size"] = max(1, round(run / (2 * self.cycles)))  # type: ignore[operator]
        elif self.step_size is None:
            purpose = f" to resolve step_size_epochs={self.step_size_epochs!r}"
            steps = integer("steps_per_epoch", steps_per_epoch, purpose=purpose)
            changes["step_size"] = max(1, round(self.step_size_epochs * steps))  # type: ignore[operator]
        return self.replace(**changes)

    def run_length_problem(self, run_steps: int, steps_per_epoch: int | None = None) -> str | None:
        rise, _ = self._half_cycles()
        if rise > run_steps:
            return (
                f"step_size={rise} is longer than the run ({run_steps} optimizer steps): "
                "the LR never reaches max_lr"
            )
        return self._planned_length_problem(run_steps) or self._cycle_end_problem(run_steps, steps_per_epoch)

    @property
    def needs_run_length(self) -> bool:
        return self.total_steps is None and (self.cycles is not None or self.final_anneal > 0)

    def _half_cycles(self) -> tuple[int, int]:
        if self.step_size is None:
            given = "in epochs (step_size_epochs)" if self.cycles is None else "as a number of cycles"
            raise _unresolved(self, f"gives its step size {given}")
        return self.step_size, self.step_size if self.step_size_down is None else self.step_size_down


@dataclass(frozen=True, repr=False)
class Triangular(_CyclicPolicy):
    """Smith's ``triangular`` policy: a linear rise from ``base_lr`` to ``max_lr`` and back, repeated.

    Args:
        base_lr: the lowest LR; a list gives one per param group (a scalar on either side broadcasts).
        max_lr: the peak LR, larger than ``base_lr``.
        step_size: optimizer steps in the rising half cycle (Smith: 2-10 epochs' worth).
        step_size_down: optimizer steps in the falling half (default ``step_size``).
        step_size_epochs: ``step_size`` in epochs instead, resolved once the epoch length is known.
        cycles: ``step_size`` from the run length instead: ``round(total_steps / (2 * cycles))``.
        final_anneal: the fraction of the run, in [0, 1), at its end that anneals (cosine) from the
            policy's value down to ``base_lr / final_div_factor``; 0 keeps Smith's policy to the last step.
        final_div_factor: ``base_lr / final_div_factor`` is the last step's LR when ``final_anneal > 0``.
        total_steps: optimizer steps in the run, for ``cycles`` and ``final_anneal``; None resolves it when
            training starts.

    Raises:
        ValueError: on a bad bound or step size, none or several of ``step_size``, ``step_size_epochs``
            and ``cycles``, or ``final_anneal`` not in [0, 1).

    Example::

        >>> policy = Triangular(0.001, 0.006, step_size=2000)
        >>> policy(0), policy(1000), policy(2000), policy(4000)
        (0.001, 0.0035, 0.006, 0.001)
        >>> Triangular(0.001, 0.006, step_size_epochs=4).resolve(steps_per_epoch=500).step_size
        2000
        >>> annealed = Triangular(0.001, 0.006, step_size=2000, final_anneal=0.1, total_steps=10000)
        >>> annealed(8999) == policy(8999), annealed(9999)  # Smith's triangle, then down to base_lr / 100
        (True, 1e-05)
    """

    name: ClassVar[str] = "triangular"

    step_size: int | None = None
    step_size_down: int | None = None

    def scale(self, cycle: int, iteration: int) -> float:
        return 1.0


@dataclass(frozen=True, repr=False)
class Triangular2(Triangular):
    """Smith's ``triangular2`` policy: the triangle of :class:`Triangular`, its amplitude halved each cycle.

    Takes the arguments of :class:`Triangular` and raises the same errors.

    Example::

        >>> policy = Triangular2(0.001, 0.005, step_size=100)
        >>> policy(100), policy(300), policy(500)
        (0.005, 0.003, 0.002)
    """

    name: ClassVar[str] = "triangular2"

    def scale(self, cycle: int, iteration: int) -> float:
        return 0.5 ** (cycle - 1)


@dataclass(frozen=True, repr=False)
class ExpRange(_CyclicPolicy):
    """Smith's ``exp_range``: the triangle's amplitude decays as ``gamma**iteration`` (not ``base_lr``).

    Args:
        gamma: amplitude factor per optimizer step, in (0, 1] (e.g. 0.99994).

    The other arguments (``base_lr``, ``max_lr``, ``step_size``, ``step_size_down``, ``step_size_epochs``,
    ``cycles``, ``final_anneal``, ``final_div_factor``, ``total_steps``) are those of :class:`Triangular`.

    Raises:
        ValueError: as :class:`Triangular`, and when ``gamma`` is not in (0, 1].

    Example::

        >>> policy = ExpRange(0.001, 0.006, 2000, 0.99994)
        >>> round(policy(2000), 6)  # the first peak, 0.001 + 0.005 * 0.99994**2000
        0.005435
    """

    name: ClassVar[str] = "exp_range"

    gamma: float  # type: ignore[misc]  # mypy misreads the inherited keyword-only fields as positional
    step_size_down: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "gamma", _within("gamma", self.gamma, "(0, 1]"))

    def scale(self, cycle: int, iteration: int) -> float:
        return self.gamma**iteration


@dataclass(frozen=True, repr=False)
class Fixed(Policy):
    """The baseline: a fixed LR, multiplied by ``gamma`` at each milestone (Caffe's ``multistep``, torch's
    ``MultiStepLR`` stepped once per optimizer step).

    Args:
        lr: the initial LR; a list gives one per param group.
        milestones: strictly increasing optimizer steps (integers >= 1) at which the LR drops.
        gamma: the factor applied at each milestone, in (0, 1].

    Raises:
        ValueError: on a bad ``lr``, ``milestones`` or ``gamma``.

    Example::

        >>> policy = Fixed(0.1, milestones=[60000, 65000])
        >>> [round(policy(i), 9) for i in (0, 59999, 60000, 65000)]
        [0.1, 0.1, 0.01, 0.001]
    """

    name: ClassVar[str] = "fixed"

    lr: Bounds
    milestones: Sequence[int] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "_lrs", _per_group_lrs(self, "lr"))
        _set(self, "milestones", _milestones(self.milestones))
        _set(self, "gamma", _within("gamma", self.gamma, "(0, 1]"))

    def __call__(self, iteration: int, group: int = 0) -> float:
        lrs: tuple[float, ...] = self._lrs  # type: ignore[attr-defined]  # set in __post_init__
        lr = lrs[0 if self.num_groups is None else group]
        return lr * self.gamma ** bisect_right(self.milestones, iteration)

    def momentum_scale(self, iteration: int) -> float:
        return 0.0


class _PlannedOverTheRun(Policy):
    """A policy whose whole shape is planned over the run: ``total_steps``, resolved at fit start if None."""

    total_steps: int | None

    @property
    def needs_resolution(self) -> bool:
        return self.total_steps is None

    needs_run_length = needs_resolution  # the run's length is all such a policy needs

    def resolve(self: _P, steps_per_epoch: int | None, total_steps: int | None = None) -> _P:
        if not self.needs_resolution:
            return self
        return self.replace(total_steps=_run_length(total_steps, f" to resolve {self.name}"))

    def run_length_problem(self, run_steps: int, steps_per_epoch: int | None = None) -> str | None:
        return self._planned_length_problem(run_steps)


_START, _PEAK, _FINAL = 0, 1, 2  # OneCycle's LR levels: max_lr / div_factor, max_lr, the final LR


class _Phase(NamedTuple):
    """One phase of OneCycle: it anneals between two LR levels and two momentum scales."""

    end_step: float
    start_level: int
    end_level: int
    start_momentum_scale: float
    end_momentum_scale: float


@dataclass(frozen=True, repr=False)
class OneCycle(_PlannedOverTheRun):
    """Smith's 1cycle policy (2018), exactly as ``torch.optim.lr_scheduler.OneCycleLR``; past
    ``total_steps`` the LR stays at its final value (OneCycleLR raises an error there).

    Args:
        max_lr: the peak LR; a list gives one per param group.
        total_steps: optimizer steps in the run; None resolves it when training starts.
        pct_start: the fraction of the run spent warming up, in (0, 1) (at most 0.5 with ``three_phase``).
        div_factor: ``max_lr / div_factor`` is the starting LR.
        final_div_factor: ``max_lr / div_factor / final_div_factor`` is the final LR.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        three_phase: come back down to the starting LR before the final annealing.

    Raises:
        ValueError: on a bad argument.

    Example::

        >>> policy = OneCycle(0.1, total_steps=1000)
        >>> [round(policy(i), 9) for i in (0, 299, 999)]  # start, peak, end
        [0.004, 0.1, 4e-07]
    """

    name: ClassVar[str] = "one_cycle"

    max_lr: Bounds
    total_steps: int | None = None
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal_strategy: str = "cos"
    three_phase: bool = False

    def __post_init__(self) -> None:
        peaks = _per_group_lrs(self, "max_lr")
        _check_given(self, integer, "total_steps")
        boolean("three_phase", self.three_phase)
        pct_start = _within("pct_start", self.pct_start, "(0, 1)")
        if self.three_phase and pct_start > 0.5:
            fail("pct_start", self.pct_start, "must be at most 0.5 when three_phase=True")
        _set(self, "pct_start", pct_start)
        _set(self, "div_factor", positive("div_factor", self.div_factor))
        _set(self, "final_div_factor", positive("final_div_factor", self.final_div_factor))
        if self.anneal_strategy not in ("cos", "linear"):
            fail("anneal_strategy", self.anneal_strategy, "must be 'cos' or 'linear'")

        levels = tuple((p / self.div_factor, p, p / self.div_factor / self.final_div_factor) for p in peaks)
        _set(self, "_levels", levels)  # per param group, indexed by _START, _PEAK, _FINAL
        _set(self, "_phases", None if self.total_steps is None else self._phase_table(self.total_steps))

    def _phase_table(self, total: int) -> tuple[_Phase, ...]:
        """OneCycleLR's phases; momentum scale 0 is max_momentum, 1 is base_momentum."""
        warmup = _Phase(float(self.pct_start * total) - 1, _START, _PEAK, 0.0, 1.0)
        if self.three_phase:
            back = _Phase(float(2 * self.pct_start * total) - 2, _PEAK, _START, 1.0, 0.0)
            return warmup, back, _Phase(total - 1, _START, _FINAL, 0.0, 0.0)
        return warmup, _Phase(total - 1, _PEAK, _FINAL, 1.0, 0.0)

    def _locate(self, iteration: int) -> tuple[_Phase, float]:
        """The phase that ``iteration`` falls in and the fraction of it done, as OneCycleLR finds them."""
        phases: tuple[_Phase, ...] | None = self._phases  # type: ignore[attr-defined]  # see __post_init__
        if phases is None:
            raise _unresolved(self, "has total_steps=None")
        index = next((i for i, phase in enumerate(phases) if iteration <= phase.end_step), len(phases) - 1)
        phase, start = phases[index], phases[index - 1].end_step if index else 0.0
        pct = (iteration - start) / (phase.end_step - start) if phase.end_step > start else 1.0
        return phase, min(pct, 1.0)  # past total_steps the final value holds

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return _cosine(start, end, pct)
        return (end - start) * pct + start

    def __call__(self, iteration: int, group: int = 0) -> float:
        per_group: tuple[tuple[float, float, float], ...] = self._levels  # type: ignore[attr-defined]
        levels = per_group[0 if self.num_groups is None else group]
        phase, pct = self._locate(iteration)
        return self._anneal(levels[phase.start_level], levels[phase.end_level], pct)

    def momentum_scale(self, iteration: int) -> float:
        phase, pct = self._locate(iteration)
        return self._anneal(phase.start_momentum_scale, phase.end_momentum_scale, pct)

    def end_phase_start(self) -> int | None:
        """The first step of the final annealing phase (after the peak, or after coming back down)."""
        phases: tuple[_Phase, ...] | None = self._phases  # type: ignore[attr-defined]  # see __post_init__
        return None if phases is None else math.floor(phases[-2].end_step) + 1


#: How a decay falls from 1 to 0 as ``pct`` goes from 0 to 1 (WSD's cooldown; Hägele et al. 2024).
DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda pct: 1.0 - pct,
    "1-sqrt": lambda pct: 1.0 - math.sqrt(pct),
    "cosine": lambda pct: (1.0 + math.cos(math.pi * pct)) / 2.0,
}


class _RunLengthPolicy(_PlannedOverTheRun):
    """A warmup, then a shape planned over the whole run: needs ``total_steps`` (resolved at fit start)."""

    max_lr: Bounds
    total_steps: int | None
    warmup: float
    final_lr_ratio: float

    def __post_init__(self) -> None:
        _set(self, "_peaks", _per_group_lrs(self, "max_lr"))
        _check_given(self, integer, "total_steps")
        for name in ("warmup", "final_lr_ratio"):
            _set(self, name, _within(name, getattr(self, name), "[0, 1)"))

    def _warmup_steps(self) -> int:
        return round(self.warmup * self._total())

    def _total(self) -> int:
        if self.total_steps is None:
            raise _unresolved(self, "has total_steps=None")
        return self.total_steps

    def _decay(self, iteration: int) -> float:
        """After the warmup: 1 at ``max_lr``, 0 at the final LR."""
        raise NotImplementedError

    def __call__(self, iteration: int, group: int = 0) -> float:
        peaks: tuple[float, ...] = self._peaks  # type: ignore[attr-defined]  # set in __post_init__
        peak = peaks[0 if self.num_groups is None else group]
        warmed = self._warmed(iteration)
        if warmed is not None:  # from 0 up to the peak
            return peak * warmed
        final = peak * self.final_lr_ratio
        return final + (peak - final) * self._decay(iteration)

    def momentum_scale(self, iteration: int) -> float:
        warmed = self._warmed(iteration)
        return self._decay(iteration) if warmed is None else warmed

    def _warmed(self, iteration: int) -> float | None:
        """The warmup's height at ``iteration`` (linear, reaching 1 at its last step); None after it."""
        warmup = self._warmup_steps()
        return (iteration + 1) / warmup if iteration < warmup else None


@dataclass(frozen=True, repr=False)
class Cosine(_RunLengthPolicy):
    """Cosine annealing over the run (``CosineAnnealingLR`` to ``max_lr * final_lr_ratio``), after an optional
    linear warmup.

    Args:
        max_lr: the peak LR; a list gives one per param group.
        total_steps: optimizer steps in the run; None resolves it when training starts.
        warmup: the fraction of the run, in [0, 1), spent rising linearly to ``max_lr``.
        final_lr_ratio: the last step's LR over ``max_lr``, in [0, 1).

    Raises:
        InvalidArgument: on a bad ``max_lr``, ``total_steps``, ``warmup`` or ``final_lr_ratio``.

    Example::

        >>> policy = Cosine(0.1, total_steps=101)
        >>> [round(policy(k), 6) for k in (0, 50, 100)]
        [0.1, 0.05, 0.0]
    """

    name: ClassVar[str] = "cosine"

    max_lr: Bounds
    total_steps: int | None = None
    warmup: float = 0.0
    final_lr_ratio: float = 0.0

    def _decay(self, iteration: int) -> float:
        start, last = self._warmup_steps(), self._total() - 1
        pct = 1.0 if last <= start else min(1.0, (iteration - start) / (last - start))
        return DECAY_SHAPES["cosine"](pct)

    def end_phase_start(self) -> int | None:
        return None if self.total_steps is None else self._warmup_steps()


@dataclass(frozen=True, repr=False)
class WSD(_RunLengthPolicy):
    """Warmup-stable-decay: a linear warmup, ``max_lr`` held, then a short cooldown (Hägele et al. 2024).

    Args:
        max_lr: the LR of the stable phase; a list gives one per param group.
        total_steps: optimizer steps in the run; None resolves it when training starts.
        warmup: the fraction of the run, in [0, 1), spent rising linearly to ``max_lr``.
        cooldown: the fraction of the run, in (0, 1), at its end in which the LR falls to the final LR.
        cooldown_shape: ``"1-sqrt"`` (Hägele et al.'s best), ``"linear"`` or ``"cosine"``.
        final_lr_ratio: the last step's LR over ``max_lr``, in [0, 1).

    Raises:
        InvalidArgument: on a bad argument, or warmup and cooldown that leave no stable phase.

    Example::

        >>> policy = WSD(0.1, total_steps=100, warmup=0.05, cooldown=0.2, cooldown_shape="linear")
        >>> [round(policy(k), 6) for k in (0, 4, 50, 79, 89, 99)]
        [0.02, 0.1, 0.1, 0.1, 0.05, 0.0]
    """

    name: ClassVar[str] = "wsd"

    max_lr: Bounds
    total_steps: int | None = None
    warmup: float = 0.05
    cooldown: float = 0.2
    cooldown_shape: str = "1-sqrt"
    final_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        cooldown = _within("cooldown", self.cooldown, "(0, 1)")
        if self.warmup + cooldown >= 1:
            fail("cooldown", self.cooldown, f"and warmup={self.warmup!r} must add up to less than 1")
        _set(self, "cooldown", cooldown)
        if self.cooldown_shape not in DECAY_SHAPES:
            fail("cooldown_shape", self.cooldown_shape, f"must be one of {', '.join(DECAY_SHAPES)}")

    def _cooldown_steps(self) -> int:
        return max(1, round(self.cooldown * self._total()))

    def _decay(self, iteration: int) -> float:
        steps = self._cooldown_steps()
        done = iteration - (self._total() - steps) + 1  # 1 at the cooldown's first step
        if done <= 0:
            return 1.0
        return DECAY_SHAPES[self.cooldown_shape](min(1.0, done / steps))

    def end_phase_start(self) -> int | None:
        return None if self.total_steps is None else self._total() - self._cooldown_steps()


# --- validation --------------------------------------------------------------------------------------


def check_momentum_bounds(base_momentum: Any, max_momentum: Any) -> None:
    """Momentum cycles between ``base_momentum`` (LR peak) and ``max_momentum`` (LR low end).

    Raises:
        ValueError: unless ``0 <= base_momentum <= max_momentum < 1``.

    Example::

        >>> check_momentum_bounds(0.99, 0.9)
        Traceback (most recent call last):
        ...
        lightning_clr.validation.InvalidArgument: base_momentum=0.99 and max_momentum=0.9 must satisfy ...
    """
    low, high = finite(base_momentum), finite(max_momentum)
    if low is None or high is None or not 0.0 <= low <= high < 1.0:
        rule = "0 <= base_momentum <= max_momentum < 1"
        fail("base_momentum", base_momentum, f"and max_momentum={max_momentum!r} must satisfy {rule}")


def _set(policy: Policy, name: str, value: Any) -> None:
    """Set an attribute of a frozen policy while it is being constructed."""
    object.__setattr__(policy, name, value)


def _check_given(policy: Policy, check: Callable[[str, Any], Any], *names: str) -> None:
    """Validate (and normalise) the fields ``names`` that are not None with ``check(name, value)``."""
    for name in names:
        if getattr(policy, name) is not None:
            _set(policy, name, check(name, getattr(policy, name)))


def _per_group_lrs(policy: Policy, name: str) -> tuple[float, ...]:
    """Validate the LR field ``name``, set it and ``num_groups``; the LR of each param group."""
    lrs = _lr_values(name, getattr(policy, name))
    _set(policy, "num_groups", None if isinstance(lrs, float) else len(lrs))
    _set(policy, name, lrs)
    return (lrs,) if isinstance(lrs, float) else lrs


def _within(name: str, value: Any, interval: str, note: str = "") -> float:
    """``value`` as a float in ``interval``: ``"[0, 1)"``, ``"(0, 1)"`` or ``"(0, 1]"``."""
    number = finite(value)
    above = number is not None and (number > 0 if interval.startswith("(") else number >= 0)
    if number is None or not above or not (number <= 1 if interval.endswith("]") else number < 1):
        fail(name, value, f"must be a number in {interval}{note}")
    return number


def _unresolved(policy: Policy, what: str) -> RuntimeError:
    return RuntimeError(
        f"{policy!r} {what}, which must be resolved first with policy.resolve(steps_per_epoch, total_steps); "
        "the CyclicLR callback does it when training starts"
    )


def _epochs(count: float) -> str:
    return f"{count:g} epoch{'' if count == 1 else 's'}"


def _cosine(start: float, end: float, pct: float) -> float:
    """From ``start`` (``pct`` 0) to ``end`` (``pct`` 1) along half a cosine, as ``OneCycleLR``."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _run_length(total_steps: Any, purpose: str) -> int:
    """The run's optimizer steps as an integer >= 1; an unbounded run (None, inf) is an error."""
    number = finite(total_steps)
    if number is None:
        fail("total_steps", total_steps, f"must be a finite number of optimizer steps{purpose}")
    return integer("total_steps", number, purpose=purpose)


def _lr_values(name: str, value: Any) -> float | tuple[float, ...]:
    """A positive LR, or a non-empty list of them (one per param group)."""
    if not is_list(value):
        return positive(name, value)
    numbers_ = [finite(item) for item in value]
    if not numbers_:
        fail(name, value, "must not be empty (give one value per param group)")
    for group, number in enumerate(numbers_):
        if number is None or number <= 0:
            fail(name, value, f"must hold numbers > 0 (group {group} is {value[group]!r})")
    return tuple(numbers_)  # type: ignore[arg-type]


def _paired_bounds(base: Any, max_: Any) -> tuple[tuple[float, float], ...]:
    """(base_lr, max_lr) per param group, a scalar on either side broadcast; one pair for scalar bounds."""
    bases, maxes = _lr_values("base_lr", base), _lr_values("max_lr", max_)
    if isinstance(bases, tuple) and isinstance(maxes, tuple) and len(bases) != len(maxes):
        fail("max_lr", max_, f"must have as many groups as base_lr={base!r} ({len(maxes)} != {len(bases)})")
    groups = max(len(v) if isinstance(v, tuple) else 1 for v in (bases, maxes))
    lows, highs = (v if isinstance(v, tuple) else (v,) * groups for v in (bases, maxes))
    pairs = tuple(zip(lows, highs, strict=True))
    for group, (low, high) in enumerate(pairs):
        if low >= high:
            where = f" (group {group}: {low} >= {high})" if groups > 1 else ""
            fail("base_lr", base, f"must be less than max_lr={max_!r}{where}")
    return pairs


def _milestones(value: Any) -> tuple[int, ...]:
    numbers_ = [finite(item) for item in value] if is_list(value) else [None]
    steps = tuple(int(n) if n is not None and n >= 1 and n.is_integer() else 0 for n in numbers_)  # 0: bad
    if 0 in steps or any(a >= b for a, b in pairwise(steps)):
        fail("milestones", value, "must be a list of strictly increasing integers >= 1")
    return steps


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

"""The curve an LR range test records, what it suggests, and its plot and CSV."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from lightning_clr.suggest import Bounds, finite_prefix, smoothed_curve, suggest_bounds, suggest_step_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class RangeTestResult:
    """The curve of an LR range test, and what it suggests.

    Attributes:
        lrs: the LR of the param group with the largest LR (the others keep their ratio) at every step that
            ran.
        losses: the training loss of every step (mean over DDP ranks), NaN/inf included where it diverged.
        smoothed: the bias-corrected EMA of ``losses`` (what the divergence check watches).
        mode: ``"linear"`` or ``"exponential"``.
        monitor: ``"loss"`` or the validation metric that was monitored.
        monitor_mode: ``"min"`` or ``"max"``: whether ``monitor`` improves downwards or upwards.
        metric_steps: the steps (indices into ``lrs``) after which ``monitor`` was evaluated.
        metric_values: the value of ``monitor`` at each of ``metric_steps``.
        stop_reason: why the test ended before ``num_steps``, or None.
        num_steps: the number of steps planned.
        steps_per_epoch: optimizer steps in one training epoch, None for a loader without length.
        total_steps: optimizer steps the training run is set to take, None when unbounded.
        group_lrs: the param groups' LRs before the test (the per-group ratios of the bounds).
        pass_losses: with several passes, the training loss of each (``losses`` is their median).
        pass_metric_values: with several passes and a monitored metric, its values in each.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    mode: str = "linear"
    monitor: str = "loss"
    monitor_mode: str = "min"
    metric_steps: list[int] = field(default_factory=list)
    metric_values: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    num_steps: int | None = None
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    group_lrs: list[float] = field(default_factory=list)
    pass_losses: list[list[float]] = field(default_factory=list)
    pass_metric_values: list[list[float]] = field(default_factory=list)

    @classmethod
    def from_passes(cls, passes: Sequence[RangeTestResult], **info: Any) -> RangeTestResult:
        """One result from several passes of the test: at every step the median of the passes there.

        A step counts while more than half of the passes reached it with a finite loss (later steps are
        NaN), so one pass that diverged early (an unlucky batch) neither cuts the curve short nor drags it
        up. ``info`` gives the
        remaining fields (``mode``, ``num_steps``, ...).
        """
        if len(passes) == 1:
            return replace(passes[0], **info)
        longest = max(passes, key=lambda p: len(p.lrs))
        losses = _step_medians([p.losses for p in passes], len(longest.lrs))
        reached = sum(math.isfinite(loss) for loss in losses)
        metric_steps = [step for step in longest.metric_steps if step < reached]
        by_step = [dict(zip(p.metric_steps, p.metric_values, strict=True)) for p in passes]
        reasons = [f"pass {i + 1}: {p.stop_reason}" for i, p in enumerate(passes) if p.stop_reason]
        return cls(
            lrs=list(longest.lrs),
            losses=losses,
            smoothed=_step_medians([p.smoothed for p in passes], len(longest.lrs)),
            metric_steps=metric_steps,
            metric_values=[statistics.median(v[s] for v in by_step if s in v) for s in metric_steps],
            stop_reason="; ".join(reasons) or None,
            pass_losses=[list(p.losses) for p in passes],
            pass_metric_values=[list(p.metric_values) for p in passes],
            **info,
        )

    @property
    def diverged(self) -> bool:
        return self.stop_reason is not None

    def curve(self) -> tuple[list[float], list[float], str]:
        """``(lrs, values, mode)`` the suggestion is read from: the raw losses, or the monitored metric."""
        if self.monitor == "loss":
            return self.lrs, self.losses, "min"
        return [self.lrs[i] for i in self.metric_steps], self.metric_values, self.monitor_mode

    def suggest(self, **rule: Any) -> Bounds:
        """CLR bounds from :func:`~lightning_clr.suggest.suggest_bounds` and a step size.

        Args:
            rule: keyword arguments of :func:`~lightning_clr.suggest.suggest_bounds`
                (``max_fraction``, ``base_divisor``, ``window``).

        The step size is :func:`~lightning_clr.suggest.suggest_step_size` of the training run
        (``total_steps`` in 4 cycles, clipped to 2-10 epochs), None when the epoch length is unknown. With
        several passes, ``spread`` is the range of the ``max_lr`` each pass alone suggests.
        """
        bounds = suggest_bounds(*self.curve(), **rule)
        spread = None
        if len(self.pass_losses) > 1:
            alone = [
                suggest_bounds(*curve, **rule).max_lr
                for curve in self.pass_curves()
                if _readable(curve[0], curve[1])
            ]
            spread = (min(alone), max(alone)) if alone else None
        step_size = None
        if self.steps_per_epoch is not None:
            step_size = suggest_step_size(self.steps_per_epoch, self.total_steps)
        return Bounds(bounds.base_lr, bounds.max_lr, step_size, bounds.peak_lr, spread)

    def pass_curves(self) -> list[tuple[list[float], list[float], str]]:
        """``(lrs, values, mode)`` of every pass, as :meth:`curve` reads the combined one."""
        if self.monitor == "loss":
            return [(self.lrs[: len(losses)], losses, "min") for losses in self.pass_losses]
        steps = self.metric_steps  # those the combined curve reached: a pass may have gone on further
        return [
            ([self.lrs[i] for i in steps[: len(values)]], values[: len(steps)], self.monitor_mode)
            for values in self.pass_metric_values
        ]

    def resampled_spread(self, resamples: int = 64, seed: int = 0) -> float:
        """How far other passes could move the suggestion: the 90th over the 10th percentile of ``max_lr``,
        read as :meth:`suggest` reads it off the median curve of the passes drawn with replacement,
        ``resamples`` times (seeded); 1.0 with one pass. A draw whose median curve has fewer than 2 finite
        points (most of its passes diverged at once) is left out; inf when fewer than 2 draws are left.

        Example::

            >>> lrs = [0.01 * i for i in range(1, 101)]
            >>> def dip(at):  # a curve lowest at LR ``at``
            ...     return [(lr - at) ** 2 for lr in lrs]
            >>> RangeTestResult(lrs, dip(0.5), [], pass_losses=[dip(0.5)] * 4).resampled_spread()
            1.0
            >>> split = RangeTestResult(lrs, dip(0.5), [], pass_losses=[dip(0.3), dip(0.7)] * 2)
            >>> split.resampled_spread() > 2  # two dips: which one the median follows is chance
            True
        """
        curves = self.pass_curves()
        if len(curves) < 2:
            return 1.0
        lrs, _, mode = max(curves, key=lambda curve: len(curve[0]))
        values = np.full((len(curves), len(lrs)), np.nan)
        for row, (_, pass_values, _) in zip(values, curves, strict=True):
            row[: len(pass_values)] = pass_values
        values[~np.isfinite(values)] = np.nan
        generator = np.random.default_rng(seed)
        suggested = []
        for _ in range(resamples):
            drawn = values[generator.integers(0, len(curves), len(curves))]
            reached = np.isfinite(drawn).sum(axis=0) * 2 > len(drawn)  # as in the median curve
            median = np.full(len(lrs), np.nan)
            median[reached] = np.nanmedian(drawn[:, reached], axis=0)
            if _readable(lrs, median):
                suggested.append(suggest_bounds(lrs, median, mode).max_lr)
        if len(suggested) < 2:
            return math.inf
        low, high = np.quantile(suggested, [0.1, 0.9])
        return float(high / low)

    def best_at_top(self, bounds: Bounds | None = None) -> bool:
        """True when the curve was still improving at the top of the span: the test should go higher.

        That is, the (median) curve reaches the last step and its best point (``bounds.peak_lr``, from
        :meth:`suggest` unless given) lies in the top 5% of the span.
        """
        bounds = bounds or self.suggest()
        finite = len(finite_prefix(self.lrs, self.losses)[0])
        stopped = self.num_steps is not None and finite < self.num_steps  # (most passes) diverged
        if stopped or not self.lrs or bounds.peak_lr is None:
            return False
        low, high = self.lrs[0], self.lrs[-1]
        return bounds.peak_lr >= high - 0.05 * (high - low)

    def plot(self, bounds: Bounds | None = None, ax: Any = None) -> Figure:
        """The curve against the LR, with the bounds (``suggest()`` unless given) as a shaded band.

        With several passes, each pass's smoothed curve is drawn in gray and the spread of the ``max_lr``
        that single passes suggest is hatched.

        The smoothed lines are what the suggestion rule reads (:func:`~lightning_clr.suggest.smoothed_curve`);
        the EMA the divergence check watches is in ``smoothed`` and the CSV.

        Returns a :class:`matplotlib.figure.Figure` that is not registered with ``pyplot``: save it with
        ``fig.savefig(path)``, or display it in a notebook by leaving it as a cell's value.
        """
        from lightning_clr.plotting import new_figure

        if ax is None:
            fig = new_figure(figsize=(7, 4.5))
            ax = fig.subplots()
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="training loss")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        if self.mode == "exponential":
            ax.set_xscale("log")
        if len(self.pass_losses) > 1:
            for index, (lrs, losses, _) in enumerate(self.pass_curves() if self.monitor == "loss" else []):
                if len(finite_prefix(lrs, losses)[0]) >= 2:
                    label = f"single passes ({len(self.pass_losses)}), smoothed" if index == 0 else None
                    ax.plot(*smoothed_curve(lrs, losses), color="tab:gray", linewidth=0.7, label=label)
        if len(finite_prefix(self.lrs, self.losses)[0]) >= 2:
            curve_lrs, smoothed = smoothed_curve(self.lrs, self.losses)
            median = "median of the passes, " if len(self.pass_losses) > 1 else ""
            ax.plot(curve_lrs, smoothed, color="tab:blue", label=f"training loss, {median}smoothed")
            low, high = float(smoothed.min()), float(smoothed.max())
            ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low) + 1e-12)  # not the diverging tail
        handles = []
        if self.monitor != "loss" and len(self.metric_steps) >= 2:
            metric_ax = ax.twinx()
            metric_lrs, values = self.curve()[:2]
            handles += metric_ax.plot(
                metric_lrs, values, "o", color="tab:orange", markersize=3, label=self.monitor
            )
            handles += metric_ax.plot(
                *smoothed_curve(metric_lrs, values), color="tab:orange", label=f"{self.monitor}, smoothed"
            )
            metric_ax.set_ylabel(self.monitor)
        if bounds is None:
            try:
                bounds = self.suggest()
            except ValueError:
                bounds = None
        if bounds is not None:
            ax.axvspan(
                bounds.base_lr,
                bounds.max_lr,
                color="tab:green",
                alpha=0.2,
                label=f"CLR bounds [{bounds.base_lr:.3g}, {bounds.max_lr:.3g}]",
            )
            if bounds.spread is not None:
                ax.axvspan(
                    *bounds.spread,
                    facecolor="none",
                    edgecolor="tab:green",
                    hatch="//",
                    linewidth=0,
                    label=f"max_lr of single passes [{bounds.spread[0]:.3g}, {bounds.spread[1]:.3g}]",
                )
            if bounds.peak_lr is not None:
                ax.axvline(
                    bounds.peak_lr,
                    color="tab:red",
                    linestyle="--",
                    linewidth=1,
                    label=f"best {self.monitor} at {bounds.peak_lr:.3g}",
                )
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, loc="best", fontsize="small")
        ax.set_title(f"LR range test ({self.mode}, {len(self.lrs)} steps)")
        return fig

    def to_csv(self, path: str | Path) -> None:
        """Write columns ``lr, loss, smoothed`` (and ``monitor``, empty where it was not evaluated)."""
        metric = dict(zip(self.metric_steps, self.metric_values, strict=True))
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["lr", "loss", "smoothed"] + ([self.monitor] if self.monitor != "loss" else []))
            for i, row in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=True)):
                extra = [metric.get(i, "")] if self.monitor != "loss" else []
                writer.writerow([*row, *extra])

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> RangeTestResult:
        return cls(**{k: v for k, v in state.items() if k in cls.__dataclass_fields__})


def _readable(lrs: ArrayLike, values: ArrayLike) -> bool:
    """Whether a curve has the 2 finite values before its first NaN/inf that a reading needs."""
    return len(finite_prefix(lrs, values)[0]) > 1


def _step_medians(passes: Sequence[Sequence[float]], length: int) -> list[float]:
    """The median of the finite values at each step while more than half of ``passes`` have one, then NaN.

    Example::

        >>> _step_medians([[3.0, 2.0, 1.0], [5.0, 4.0, float("nan")], [4.0, 3.0]], 3)
        [4.0, 3.0, nan]
    """
    medians = []
    for step in range(length):
        finite = [v[step] for v in passes if step < len(v) and math.isfinite(v[step])]
        if 2 * len(finite) <= len(passes):
            break
        medians.append(statistics.median(finite))
    return medians + [math.nan] * (length - len(medians))

"""The curve an LR range test records, what it suggests, and its plot and CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_clr.suggest import Bounds, finite_prefix, smoothed_curve, suggest_bounds, suggest_step_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class RangeTestResult:
    """The curve of an LR range test, and what it suggests.

    Attributes:
        lrs: the LR of param group 0 at every step that ran.
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
        (``total_steps`` in 4 cycles, clipped to 2-10 epochs), None when the epoch length is unknown.
        """
        bounds = suggest_bounds(*self.curve(), **rule)
        if self.steps_per_epoch is None:
            return bounds
        step_size = suggest_step_size(self.steps_per_epoch, self.total_steps)
        return Bounds(bounds.base_lr, bounds.max_lr, step_size, bounds.peak_lr)

    def plot(self, bounds: Bounds | None = None, ax: Any = None) -> Figure:
        """The curve against the LR, with the bounds (``suggest()`` unless given) as a shaded band.

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
        if len(finite_prefix(self.lrs, self.losses)[0]) >= 2:
            lrs, smoothed = smoothed_curve(self.lrs, self.losses)
            ax.plot(lrs, smoothed, color="tab:blue", label="training loss, smoothed")
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

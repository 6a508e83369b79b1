"""What an LR range test suggests: CLR bounds and a step size, as pure functions of the recorded curve.

Smith (WACV 2017, Sec. 3.3) reads the curve by eye; :func:`suggest_bounds` writes that down: the curve up to
its first NaN/inf, smoothed by a centred moving average (no EMA lag), read at its best point against log-LR
(:func:`curve_best`), ``max_lr = 0.4 * peak_lr``, ``base_lr = max_lr / 3``. Why each step, and the
measurements behind the numbers: docs/guide/range-test.md and the range-test benchmark pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lightning_clr.validation import fail, integer

__all__ = [
    "MODES",
    "Bounds",
    "curve_best",
    "finite_prefix",
    "smooth",
    "smoothed_curve",
    "suggest_bounds",
    "suggest_step_size",
]

Array = NDArray[np.float64]

MODES = ("min", "max")
"""``min`` for a loss, ``max`` for an accuracy-like metric."""


@dataclass(frozen=True)
class Bounds:
    """CLR bounds suggested by a range test.

    Attributes:
        base_lr: the low end of the cycle.
        max_lr: the high end of the cycle.
        step_size: optimizer steps in half a cycle, or None when the epoch length is unknown.
        peak_lr: the LR where the smoothed curve was best, which the bounds derive from.
        spread: ``(lowest, highest)`` ``max_lr`` that single passes of the test suggested, when it made
            several; their ratio says how far one short test can be trusted.
    """

    base_lr: float
    max_lr: float
    step_size: int | None = None
    peak_lr: float | None = None
    spread: tuple[float, float] | None = None

    def __str__(self) -> str:
        """What the test suggests, with the range its single passes gave, and why when it lies outside.

        Example::

            >>> print(Bounds(0.0654, 0.196, 100, peak_lr=0.491, spread=(0.17, 0.22)))
            base_lr=0.0654 max_lr=0.196 step_size=100 (curve best at 0.491; max_lr of single passes 0.17-0.22)
            >>> print(Bounds(0.08, 0.24, spread=(0.17, 0.22)))  # doctest: +NORMALIZE_WHITESPACE
            base_lr=0.08 max_lr=0.24 (max_lr of single passes 0.17-0.22; above them: the passes' median
            curve turns later than any one pass, whose noise turns it early; more passes or steps narrow it)
        """
        text = f"base_lr={self.base_lr:.4g} max_lr={self.max_lr:.4g}"
        if self.step_size is not None:
            text += f" step_size={self.step_size}"
        notes = [] if self.peak_lr is None else [f"curve best at {self.peak_lr:.4g}"]
        if self.spread is not None:
            low, high = self.spread
            notes.append(f"max_lr of single passes {low:.3g}-{high:.3g}")
            if not low <= self.max_lr <= high:
                above = self.max_lr > high
                notes.append(
                    f"{'above' if above else 'below'} them: the passes' median curve turns "
                    f"{'later' if above else 'earlier'} than any one pass, whose noise turns it "
                    f"{'early' if above else 'late'}; more passes or steps narrow it"
                )
        return f"{text} ({'; '.join(notes)})" if notes else text


def finite_prefix(lrs: ArrayLike, values: ArrayLike) -> tuple[Array, Array]:
    """``(lrs, values)`` up to, not including, the first value that is NaN or infinite."""
    x, y = np.asarray(lrs, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"lrs and values must be 1-D and of one length, got {x.shape} and {y.shape}")
    bad = np.flatnonzero(~np.isfinite(y))
    end = bad[0] if bad.size else len(y)
    return x[:end], y[:end]


def smooth(values: ArrayLike, window: int) -> Array:
    """Centred moving average over ``window`` points (made odd), narrowing symmetrically at the ends.

    Example::

        >>> smooth([0.0, 3.0, 0.0, 3.0, 0.0], 3).tolist()
        [0.0, 1.0, 2.0, 1.0, 0.0]
    """
    y = np.asarray(values, dtype=float)
    half = max(0, int(window) // 2)
    cumsum = np.concatenate([[0.0], np.cumsum(y)])
    index = np.arange(len(y))
    reach = np.minimum(np.minimum(index, len(y) - 1 - index), half)
    averaged: Array = (cumsum[index + reach + 1] - cumsum[index - reach]) / (2 * reach + 1)
    return averaged


def suggest_bounds(
    lrs: ArrayLike,
    values: ArrayLike,
    mode: str = "min",
    *,
    max_fraction: float = 0.4,
    base_divisor: float = 3.0,
    window: float = 0.1,
) -> Bounds:
    """CLR bounds from a range-test curve: ``max_lr = max_fraction * peak_lr``, ``base_lr = max_lr / 3``.

    ``peak_lr`` is where :func:`smoothed_curve` is best (``min`` mode: lowest; ``max`` mode: highest), as
    :func:`curve_best` reads it.

    Args:
        lrs: the learning rate of every recorded point, increasing.
        values: the loss (``mode="min"``) or metric (``mode="max"``) recorded at each of ``lrs``.
        mode: ``"min"`` or ``"max"``.
        max_fraction: ``max_lr`` as a fraction of ``peak_lr``, in (0, 1].
        base_divisor: ``max_lr / base_lr``, > 1 (Smith: 3 to 4).
        window: the smoothing window as a fraction of the finite points, in [0, 1).

    Raises:
        ValueError: on an invalid argument, or fewer than 2 finite values before the first NaN/inf.

    Example::

        >>> lrs = [0.01 * 1.05**i for i in range(100)]
        >>> losses = [(math.log(lr / 0.6)) ** 2 for lr in lrs]  # best at 0.6
        >>> bounds = suggest_bounds(lrs, losses)
        >>> round(bounds.peak_lr, 2), round(bounds.max_lr, 2), round(bounds.base_lr, 2)
        (0.6, 0.24, 0.08)
    """
    if mode not in MODES:
        fail("mode", mode, f"must be one of {MODES}")
    if not 0 < max_fraction <= 1:
        fail("max_fraction", max_fraction, "must be in (0, 1]")
    if not base_divisor > 1:
        fail("base_divisor", base_divisor, "must be greater than 1")
    if not 0 <= window < 1:
        fail("window", window, "must be in [0, 1)")
    finite_lrs, smoothed = smoothed_curve(lrs, values, window)
    peak_lr = curve_best(finite_lrs, smoothed if mode == "min" else -smoothed)
    max_lr = max_fraction * peak_lr
    return Bounds(base_lr=max_lr / base_divisor, max_lr=max_lr, peak_lr=peak_lr)


def curve_best(lrs: ArrayLike, values: ArrayLike, depth: float = 0.3) -> float:
    """Where a (smoothed) loss curve is lowest, read against log-LR: the vertex of a parabola in
    ``log(lr)`` fitted to the points around the lowest one that lie within ``depth`` of its fall.

    The fall is from the highest point before the lowest one; the points are the contiguous run around the
    lowest point whose values are within ``depth * fall`` of it. A broad, flat bottom then gives its
    centre, not whichever noisy point happens to be lowest. With fewer than 4 such points, no positive
    curvature, or a non-positive LR among them, the lowest point itself; the vertex is kept within the run.

    Example::

        >>> lrs = [0.1 * 1.1**i for i in range(40)]
        >>> round(curve_best(lrs, [(math.log(lr) - math.log(0.5)) ** 2 for lr in lrs]), 3)
        0.5
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    lowest = int(np.argmin(values))
    fall = float(values[: lowest + 1].max() - values[lowest])
    near = values <= values[lowest] + depth * fall
    first, last = lowest, lowest
    while first > 0 and near[first - 1]:
        first -= 1
    while last < len(values) - 1 and near[last + 1]:
        last += 1
    run = slice(first, last + 1)
    if last - first < 3 or lrs[first] <= 0:
        return float(lrs[lowest])
    x = np.log(lrs[run])
    curvature, slope, _ = np.polyfit(x, values[run], 2)
    if curvature <= 0:
        return float(lrs[lowest])
    return float(np.exp(np.clip(-slope / (2 * curvature), x[0], x[-1])))


def smoothed_curve(lrs: ArrayLike, values: ArrayLike, window: float = 0.1) -> tuple[Array, Array]:
    """The curve the rule reads: up to the first NaN/inf, centred moving average over ``window`` of it.

    Raises:
        ValueError: fewer than 2 finite values before the first NaN/inf.
    """
    x, y = finite_prefix(lrs, values)
    if len(y) < 2:
        raise ValueError(
            f"values has {len(y)} finite point(s) before the first NaN/inf; at least 2 are needed: "
            "start the range test at a lower min_lr or run more steps"
        )
    return x, smooth(y, round(window * len(y)))


def suggest_step_size(
    steps_per_epoch: int,
    total_steps: int | None = None,
    *,
    cycles: float = 4.0,
    min_epochs: float = 2.0,
    max_epochs: float = 10.0,
    default_epochs: float = 4.0,
) -> int:
    """Optimizer steps in half a cycle: the run split into ``cycles`` cycles, clipped to 2-10 epochs.

    Smith: a step size of 2-10 epochs; at least 3, better 4 or more cycles; stop at the end of a cycle. So
    ``step_size = total_steps / (2 * cycles)``, clipped to ``[min_epochs, max_epochs]`` epochs of
    ``steps_per_epoch``; without a known run length, ``default_epochs`` (Smith's CIFAR-10 runs: 2000
    iterations, 4 epochs of 500).

    Example::

        >>> suggest_step_size(100, total_steps=4000)  # 40 epochs: 4 cycles of 2 x 5 epochs
        500
        >>> suggest_step_size(100, total_steps=800)  # 1 epoch per half cycle is below Smith's 2
        200
        >>> suggest_step_size(100)
        400
    """
    steps_per_epoch = integer("steps_per_epoch", steps_per_epoch)
    if total_steps is not None and not total_steps > 0:
        fail("total_steps", total_steps, "must be positive or None")
    if not 0 < min_epochs <= max_epochs:
        fail("min_epochs", min_epochs, f"must be positive and <= max_epochs={max_epochs!r}")
    if not cycles > 0:
        fail("cycles", cycles, "must be positive")
    if total_steps is None or math.isinf(total_steps):
        epochs = default_epochs
    else:
        epochs = min(max(total_steps / (2 * cycles) / steps_per_epoch, min_epochs), max_epochs)
    return max(1, round(epochs * steps_per_epoch))

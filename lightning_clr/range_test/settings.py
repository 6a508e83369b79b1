"""How to run an LR range test: its settings, validated, and their defaults, declared once (for
``LRRangeTest``, ``CLRTuner.range_test`` and the ``range_test`` config group; no torch imported).

Example::

    >>> RangeTestConfig(mode="cubic")
    Traceback (most recent call last):
    ...
    lightning_clr.validation.InvalidArgument: mode='cubic' must be one of ('linear', 'exponential')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from lightning_clr.validation import fail, finite, integer, positive

#: Policy arguments the test can supply (``auto`` in the ``policy`` config group).
UPDATABLE = ("base_lr", "max_lr", "step_size")
MODES = ("linear", "exponential")
DEFAULT_MIN_LR = 1e-4
#: ``max_lr=None``: the test spans up to this multiple of the optimizer's LR (of its param group with the
#: largest LR; the others keep their ratio to it).
MAX_LR_FACTOR = 100
DEFAULT_EPOCHS = 4
#: Passes from the same weights on other batches; the bounds come from their median curve (how far max_lr
#: moves between seeds: docs/benchmarks/range-test-stability.md).
DEFAULT_PASSES = 5
#: With ``max_passes`` above ``passes``: more passes until resampled ones move ``max_lr`` by at most this
#: factor (chosen on MNIST-1D's 25-pass curves of 16 seeds: 1.28x, SGD and Adam; docs/benchmarks/panel.md).
DEFAULT_STABLE_WITHIN = 1.1
#: At least this many steps per pass when the length is given in epochs.
DEFAULT_MIN_STEPS = 150
#: While the curve's best point is at the top of the span, test again over a 3x wider one, this often.
DEFAULT_WIDEN = 2
WIDEN_FACTOR = 3.0


@dataclass(frozen=True)
class RangeTestConfig:
    """How to run a range test; the arguments are those of :class:`~lightning_clr.range_test.LRRangeTest`.

    Raises:
        InvalidArgument: naming the argument, its value and the rule.
    """

    min_lr: float = DEFAULT_MIN_LR
    max_lr: float | None = None
    num_steps: int | None = None
    num_epochs: float | None = None
    mode: str = "linear"
    monitor: str = "loss"
    monitor_mode: str | None = None
    val_check_interval: int | None = None
    num_val_batches: int = 4
    divergence_threshold: float | None = 4.0
    beta: float | None = None
    passes: int = DEFAULT_PASSES
    max_passes: int | None = None
    stable_within: float = DEFAULT_STABLE_WITHIN
    min_steps: int = DEFAULT_MIN_STEPS
    widen: int = DEFAULT_WIDEN

    def __post_init__(self) -> None:
        positive("min_lr", self.min_lr)
        if self.max_lr is not None:
            positive("max_lr", self.max_lr)
            if not self.max_lr > self.min_lr:
                fail("max_lr", self.max_lr, f"must be greater than min_lr={self.min_lr!r}")
        if self.num_steps is not None and self.num_epochs is not None:
            fail("num_steps", self.num_steps, f"and num_epochs={self.num_epochs!r}: give one, not both")
        if self.num_steps is not None:
            object.__setattr__(self, "num_steps", integer("num_steps", self.num_steps, 2))
        elif self.num_epochs is None:
            object.__setattr__(self, "num_epochs", DEFAULT_EPOCHS)
        else:
            positive("num_epochs", self.num_epochs)
        if self.mode not in MODES:
            fail("mode", self.mode, f"must be one of {MODES}")
        if not isinstance(self.monitor, str) or not self.monitor:
            fail("monitor", self.monitor, "must be 'loss' or the name of a validation metric")
        if self.monitor_mode is None:
            object.__setattr__(self, "monitor_mode", "min" if "loss" in self.monitor else "max")
        if self.monitor_mode not in ("min", "max"):
            fail("monitor_mode", self.monitor_mode, "must be 'min', 'max' or None")
        if self.monitor == "loss" and self.monitor_mode != "min":
            fail("monitor_mode", self.monitor_mode, "must be 'min' when monitor='loss'")
        counts = {
            "val_check_interval": 1,
            "num_val_batches": 1,
            "passes": 1,
            "max_passes": 1,
            "min_steps": 2,
            "widen": 0,
        }
        for name, minimum in counts.items():
            if getattr(self, name) is not None:
                object.__setattr__(self, name, integer(name, getattr(self, name), minimum))
        if self.max_passes is not None and self.max_passes < self.passes:
            fail(
                "max_passes",
                self.max_passes,
                f"must be >= passes={self.passes!r}, or None for exactly passes",
            )
        if not (finite(self.stable_within) or 0) > 1:
            fail("stable_within", self.stable_within, "must be a number > 1")
        threshold = self.divergence_threshold
        if threshold is not None and not ((finite(threshold) or 0) > 1):
            fail("divergence_threshold", threshold, "must be a number > 1 or None")
        if self.beta is not None and not 0 <= (finite(self.beta) or -1) < 1:
            fail("beta", self.beta, "must be a number in [0, 1) or None")


def default(name: str) -> Any:
    """The default of a :class:`RangeTestConfig` setting, for signatures that take the same settings.

    Example::

        >>> default("passes"), default("mode")
        (5, 'linear')
    """
    return RangeTestConfig.__dataclass_fields__[name].default


def span_end(config: RangeTestConfig, optimizer_lr: float) -> float:
    """The test's last LR: ``config.max_lr``, or :data:`MAX_LR_FACTOR` times the optimizer's LR when None.

    Raises:
        ValueError: when ``max_lr=None`` and that multiple is not above ``min_lr``.

    Example::

        >>> span_end(RangeTestConfig(), optimizer_lr=0.01)
        1.0
        >>> span_end(RangeTestConfig(max_lr=0.5), optimizer_lr=0.01)
        0.5
    """
    if config.max_lr is not None:
        return config.max_lr
    max_lr = MAX_LR_FACTOR * optimizer_lr
    if not max_lr > config.min_lr:
        fail(
            "max_lr",
            None,
            f"spans up to {MAX_LR_FACTOR} x the optimizer's lr ({optimizer_lr!r}) = {max_lr!r}, not above "
            f"min_lr={config.min_lr!r}: give max_lr",
        )
    return max_lr


def widened(config: RangeTestConfig, top: float, num_steps: int) -> RangeTestConfig:
    """The test of ``num_steps`` steps up to ``top``, over a :data:`WIDEN_FACTOR` times wider span at the
    same LR per step: the wider test goes through the first one's LRs as fast, and only goes on (why:
    docs/guide/range-test.md).

    Example::

        >>> wider = widened(RangeTestConfig(min_lr=0.0001), top=0.1, num_steps=160)
        >>> wider.max_lr, wider.num_steps, wider.num_epochs
        (0.30000000000000004, 478, None)
    """
    wider = WIDEN_FACTOR * top
    if config.mode == "linear":
        ratio = (wider - config.min_lr) / (top - config.min_lr)
    else:
        ratio = math.log(wider / config.min_lr) / math.log(top / config.min_lr)
    return replace(config, max_lr=wider, num_steps=1 + round((num_steps - 1) * ratio), num_epochs=None)

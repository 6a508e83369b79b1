"""How many optimizer steps a run takes: the one count behind the callback, the range test and the preview.

Under manual optimization ``trainer.global_step`` (which ``max_steps`` bounds) counts the steps of every
optimizer; a :class:`SteppingPattern` (how often each steps per batch) gives each optimizer's own count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SteppingPattern", "manual_run_steps", "optimizer_steps_per_epoch", "run_steps"]


def optimizer_steps_per_epoch(batches: int, accumulate_grad_batches: int = 1) -> int:
    """Optimizer steps in an epoch of ``batches`` batches: Lightning steps on a last partial accumulation too.

    Example::

        >>> optimizer_steps_per_epoch(10, accumulate_grad_batches=3)  # 3 + 3 + 3 + 1 batches
        4
    """
    return max(1, math.ceil(batches / accumulate_grad_batches))


def _limit(value: int | float | None) -> int | None:
    """A positive epoch or step limit as an int; None for no limit (None, -1, inf)."""
    if value is None or value < 0 or math.isinf(value):
        return None
    return int(value)


def run_steps(
    batches_per_epoch: int | None,
    max_epochs: int | float | None,
    max_steps: int | float | None,
    accumulate_grad_batches: int = 1,
    *,
    step: int = 0,
    epoch: int = 0,
    steps_in_epoch: int | None = None,
) -> int | None:
    """Optimizer steps of a run under automatic optimization (as ``trainer.estimated_stepping_batches``);
    None when nothing bounds it.

    A run resumed at global step ``step`` in epoch ``epoch``, of which it took ``steps_in_epoch`` steps, is
    those steps and the rest of its epochs at today's length: the epochs before may have been longer or
    shorter (another batch size, data set, accumulation or number of devices). ``steps_in_epoch=None``:
    every epoch so far had today's length.

    Example::

        >>> run_steps(batches_per_epoch=10, max_epochs=3, max_steps=-1, accumulate_grad_batches=3)
        12
        >>> run_steps(batches_per_epoch=None, max_epochs=-1, max_steps=24)  # an iterable dataset
        24
        >>> run_steps(5, max_epochs=4, max_steps=-1, step=20, epoch=2, steps_in_epoch=0)  # 2 x 10, then 2 x 5
        30
    """
    epochs, steps = _limit(max_epochs), _limit(max_steps)
    if epochs is None or batches_per_epoch is None:
        return steps
    per_epoch = optimizer_steps_per_epoch(batches_per_epoch, accumulate_grad_batches)
    if steps_in_epoch is None:
        steps_in_epoch = max(0, step - epoch * per_epoch)
    rest_of_epoch = max(0, per_epoch - steps_in_epoch)
    by_epochs = step if epoch >= epochs else step + rest_of_epoch + (epochs - epoch - 1) * per_epoch
    return by_epochs if steps is None else min(by_epochs, steps)


@dataclass(frozen=True)
class SteppingPattern:
    """How many times each optimizer steps in each batch, repeating every ``len(counts)`` batches.

    ``counts[b][j]``: the steps optimizer ``j`` takes in batch ``b`` (modulo the period) of every epoch.

    Example::

        >>> SteppingPattern.observed([(1, 1), (1, 0), (1, 1), (1, 0), (1, 1)])  # every other batch
        SteppingPattern(counts=((1, 1), (1, 0)))
    """

    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def every_batch(cls, optimizers: int) -> SteppingPattern:
        """Every optimizer steps once per batch: what a plan assumes before it has seen an epoch."""
        return cls(((1,) * optimizers,))

    @classmethod
    def observed(cls, batches: Sequence[Sequence[int]]) -> SteppingPattern:
        """The shortest pattern that repeats into ``batches`` (Knuth-Morris-Pratt's failure function)."""
        rows = [tuple(int(n) for n in row) for row in batches]
        if not rows:
            raise ValueError("a stepping pattern needs at least one batch")
        border = [0] * len(rows)
        for i in range(1, len(rows)):
            k = border[i - 1]
            while k and rows[i] != rows[k]:
                k = border[k - 1]
            border[i] = k + (rows[i] == rows[k])
        return cls(tuple(rows[: len(rows) - border[-1]]))

    def steps_in(self, batches: int) -> list[int]:
        """Each optimizer's steps in the first ``batches`` batches of an epoch."""
        period = len(self.counts)
        whole, rest = divmod(batches, period)
        return [
            whole * sum(row[j] for row in self.counts) + sum(row[j] for row in self.counts[:rest])
            for j in range(len(self.counts[0]))
        ]


def manual_run_steps(
    batches_per_epoch: int | None,
    max_epochs: int | float | None,
    max_steps: int | float | None,
    pattern: SteppingPattern,
) -> list[int] | None:
    """Each optimizer's steps in a run under manual optimization (``max_steps`` bounds their sum); None when
    nothing bounds the run.

    Example::

        >>> gan = SteppingPattern.every_batch(2)  # generator and discriminator, once per batch each
        >>> manual_run_steps(batches_per_epoch=10, max_epochs=4, max_steps=40, pattern=gan)
        [20, 20]
        >>> critic = SteppingPattern(((1, 1), (1, 0)))  # the generator steps every other batch
        >>> manual_run_steps(batches_per_epoch=10, max_epochs=2, max_steps=-1, pattern=critic)
        [20, 10]
    """
    epochs, limit = _limit(max_epochs), _limit(max_steps)
    if limit is None:
        if epochs is None or batches_per_epoch is None:
            return None
        return [epochs * n for n in pattern.steps_in(batches_per_epoch)]
    if not any(map(any, pattern.counts)):  # nothing steps: only the epochs end the run
        return None if epochs is None else [0] * len(pattern.counts[0])
    steps = [0] * len(pattern.counts[0])
    epoch_length = batches_per_epoch or math.inf
    epochs_left = math.inf if epochs is None else epochs
    while sum(steps) < limit and epochs_left > 0:
        in_epoch = min(epoch_length, _batches_to_reach(pattern, limit - sum(steps)))
        if in_epoch == epoch_length:
            epochs_left -= 1
        steps = [a + b for a, b in zip(steps, pattern.steps_in(int(in_epoch)), strict=True)]
    return steps


def _batches_to_reach(pattern: SteppingPattern, target: int) -> int:
    """Batches from an epoch's start until the optimizers' steps together reach ``target`` (>= 1)."""
    per_period = sum(map(sum, pattern.counts))
    whole = max(0, (target - 1) // per_period)  # periods that cannot reach it yet
    total, batches = whole * per_period, whole * len(pattern.counts)
    while total < target:
        total += sum(pattern.counts[batches % len(pattern.counts)])
        batches += 1
    return batches

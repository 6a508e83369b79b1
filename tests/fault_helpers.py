"""Test-only components that configs can name (``+callbacks.x._target_=tests.fault_helpers.SignalAt``).

A subprocess of ``scripts/train.py`` picks them up through Hydra, so a test can kill or preempt a real run
at an exact step without polling files on a busy machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

HOOKS = ("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end")


class SignalAt(L.Callback):
    """Send ``signum`` to this process in ``hook`` of optimizer step ``step`` (e.g. SIGKILL mid-step).

    With ``rank``, only the process of that global rank gets it (a DDP rank that dies).

    Example::

        >>> SignalAt(step=5, signum=9, hook="on_before_optimizer_step").step
        5
    """

    def __init__(
        self, step: int, signum: int, hook: str = "on_train_batch_start", rank: int | None = None
    ) -> None:
        if hook not in HOOKS:
            raise ValueError(f"hook={hook!r} must be one of {HOOKS}")
        self.step, self.signum, self.hook, self.rank = step, signum, hook, rank
        self.sent = False

    def _maybe_send(self, trainer: L.Trainer, hook: str) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if hook == self.hook and trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe_send(trainer, "on_train_batch_start")

    def on_before_optimizer_step(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe_send(trainer, "on_before_optimizer_step")

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe_send(trainer, "on_train_batch_end")


class _Stream(IterableDataset):
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(200):
            yield torch.randn(1, 40, generator=generator), torch.randint(0, 10, (), generator=generator)


class StreamDataModule(L.LightningDataModule):
    """MNIST-1D-shaped random samples from an ``IterableDataset``: a train loader of unknown length."""

    input_shape = (1, 40)
    num_classes = 10

    def __init__(self, batch_size: int = 100, seed: int = 0, **ignored: Any) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self.seed), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self.seed + 1), batch_size=self.batch_size)


class SlowSteps(L.Callback):
    """Sleep ``seconds`` after every training batch: a tiny run that lasts long enough to be interrupted."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(self.seconds)

"""Callbacks that keep a run from losing work or going silently wrong: NaN/inf losses
(:class:`NonFiniteGuard`) and preemption (:class:`LastCheckpoint`); docs/guide/resuming.md tells how.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.optim import Optimizer

from lightning_clr.callback import CyclicLR
from lightning_clr.validation import fail, integer

__all__ = ["ACTIONS", "LastCheckpoint", "NonFiniteGuard", "NonFiniteLossError"]

ACTIONS = ("stop", "skip")


class NonFiniteLossError(ArithmeticError):
    """The training loss became NaN or infinite; the message names the step, the LR and the policy."""


class NonFiniteGuard(Callback):
    """Stop at the first NaN/inf training loss, or skip that optimizer step, with a message saying where.

    Every micro-batch's loss is checked before ``backward`` (all ranks agree). ``"stop"`` raises
    :class:`NonFiniteLossError` before the bad gradients reach the weights; ``"skip"`` drops that step's
    gradients, warns, and stops once ``patience`` steps in a row were skipped.

    Args:
        action: ``"stop"`` or ``"skip"``.
        patience: consecutive skipped steps after which ``"skip"`` stops too, >= 1.

    Raises:
        ValueError: ``action`` or ``patience`` out of range.
        NonFiniteLossError: during training, as above.

    Example::

        >>> import lightning as L
        >>> guard = NonFiniteGuard(action="skip", patience=5)
        >>> trainer = L.Trainer(callbacks=[guard], max_epochs=1, logger=False, enable_checkpointing=False)
    """

    def __init__(self, action: str = "stop", patience: int = 10) -> None:
        if action not in ACTIONS:
            fail("action", action, f"must be one of {ACTIONS}")
        self.action = action
        self.patience = integer("patience", patience)
        self.skipped = 0
        self._in_a_row = 0
        self._bad: str | None = None

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(not finite, all=False) or self._bad is not None:
            return
        self._bad = describe(trainer, float(loss.detach().float().mean()))
        if self.action == "stop":
            raise NonFiniteLossError(f"{self._bad}; lower max_lr, or skip such steps with action='skip'")

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if self._bad is None:
            self._in_a_row = 0
            return
        optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        self._in_a_row += 1
        message, self._bad = self._bad, None
        if self._in_a_row >= self.patience:
            raise NonFiniteLossError(f"{message}; {self.patience} steps in a row skipped, stopping")
        rank_zero_warn(f"{message}; step skipped")

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))


def describe(trainer: pl.Trainer, loss: float) -> str:
    """Where a non-finite loss happened: step, epoch, batch, the LRs used and the CLR policy with its bounds.

    Example::

        >>> from types import SimpleNamespace
        >>> trainer = SimpleNamespace(global_step=7, current_epoch=1, optimizers=[], callbacks=[],
        ...                           fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_idx=3)))
        >>> describe(trainer, float("nan"))
        'training loss nan at step 7 (epoch 1, batch 3)'
    """
    batch = trainer.fit_loop.epoch_loop.batch_idx
    where = (
        f"training loss {loss} at step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch})"
    )
    lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
    if lrs:
        where += ": lr=" + ", ".join(f"{lr:.4g}" for lr in lrs)
    policies = [cb.policy for cb in trainer.callbacks if isinstance(cb, CyclicLR)]  # type: ignore[attr-defined]
    for policy in policies:
        bounds = ", ".join(f"{k}={v!r}" for k, v in policy.params().items() if v is not None)
        where += f" from policy {policy.name} ({bounds})"
    return where


class LastCheckpoint(Callback):
    """Keep ``<dirpath>/last.ckpt`` current: every epoch end, every n optimizer steps, and on preemption.

    On SIGTERM Lightning finishes the batch and raises ``SIGTERMException``, where this callback saves;
    ``requeue_signal`` (submitit's ``SIGUSR2``) is handled the same way, then the handler installed before it
    (submitit's requeue) runs. A symlinked ``last.ckpt`` is replaced by a file, never written through.

    Args:
        dirpath: the folder, e.g. ``ModelCheckpoint``'s ``dirpath``.
        filename: the file name without ``.ckpt``; ``"last"`` lets ``ckpt_path=last`` find it.
        every_n_train_steps: also save every this many optimizer steps (``None``: only at epoch ends).
        requeue_signal: the scheduler's "time is up / preempted" signal by name, or ``None`` to leave it.

    Raises:
        ValueError: an argument is out of range.

    Example::

        >>> import lightning as L
        >>> callback = LastCheckpoint("outputs/run/checkpoints", every_n_train_steps=500)
        >>> callback.path.name
        'last.ckpt'
        >>> trainer = L.Trainer(callbacks=[callback], logger=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        dirpath: str | Path,
        filename: str = "last",
        every_n_train_steps: int | None = None,
        requeue_signal: str | None = "SIGUSR2",
    ) -> None:
        if not str(filename) or "/" in str(filename):
            fail("filename", filename, "must be a non-empty file name without a folder")
        if every_n_train_steps is not None:
            every_n_train_steps = integer("every_n_train_steps", every_n_train_steps, purpose=", or null")
        if requeue_signal is not None and requeue_signal not in signal.Signals.__members__:
            fail("requeue_signal", requeue_signal, "must be null or a signal name, e.g. SIGUSR2")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_n_train_steps = every_n_train_steps
        self.requeue_signal = signal.Signals[requeue_signal] if requeue_signal else None
        self._saved_step: int | None = None
        self._previous_handler: Any = None
        self._requeue_requested = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        main_thread = threading.current_thread() is threading.main_thread()
        if stage == "fit" and self.requeue_signal is not None and main_thread:
            self._previous_handler = signal.signal(self.requeue_signal, self._on_requeue_signal)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous_handler is not None and self.requeue_signal is not None:
            signal.signal(self.requeue_signal, self._previous_handler)
            self._previous_handler = None

    def _on_requeue_signal(self, signum: int, frame: FrameType | None) -> None:
        # Lightning's SIGTERM handling stops at the end of the batch, on every rank
        self._requeue_requested = True
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step, every = trainer.global_step, self.every_n_train_steps
        if every and step and step % every == 0 and step != self._saved_step:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self._save(trainer)
        cause = self.requeue_signal.name if self._requeue_requested and self.requeue_signal else "SIGTERM"
        rank_zero_info(
            f"{cause} at step {trainer.global_step} (epoch {trainer.current_epoch}): saved {self.path}; "
            "resume with ckpt_path=last (same run dir)"
        )
        handler = self._previous_handler
        if self._requeue_requested and callable(handler):
            for logger in trainer.loggers:
                logger.finalize("interrupted")
            handler(self.requeue_signal, None)  # submitit: requeue, then exit

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:  # type: ignore[attr-defined]
            return
        if trainer.is_global_zero and self.path.is_symlink():
            self.path.unlink()
        trainer.save_checkpoint(self.path, weights_only=False)  # all of it, said so (no log line)
        self._saved_step = trainer.global_step

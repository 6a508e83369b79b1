"""Callbacks that keep a run from losing work or going silently wrong: NaN/inf losses and preemption.

:class:`NonFiniteGuard` stops (or skips the optimizer step) at the first NaN/inf training loss and says
where it happened: the step, the LR it ran at and the CLR policy with its bounds.

:class:`PreemptionCheckpoint` saves a checkpoint when the process gets SIGTERM. Lightning (2.x) already
catches SIGTERM: it finishes the current batch, then raises ``SIGTERMException`` (a ``SystemExit`` with
status 0) and calls the callbacks' ``on_exception``; it saves nothing. This callback saves there, as
``last.ckpt`` beside ``ModelCheckpoint``'s, so ``ckpt_path=last`` continues the cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.optim import Optimizer

from lightning_clr.callback import CyclicLR

__all__ = ["ACTIONS", "NonFiniteGuard", "NonFiniteLossError", "PreemptionCheckpoint"]

ACTIONS = ("stop", "skip")


class NonFiniteLossError(ArithmeticError):
    """The training loss became NaN or infinite; the message names the step, the LR and the policy."""


class NonFiniteGuard(Callback):
    """Stop at the first NaN/inf training loss, or skip that optimizer step, with a message saying where.

    The loss of every micro-batch is checked before ``backward`` (one ``isfinite`` of a scalar; all ranks
    agree on the decision). ``"stop"`` raises :class:`NonFiniteLossError` before the bad gradients reach
    the weights. ``"skip"`` drops the gradients of that optimizer step (so the optimizer leaves every
    parameter, and its momentum, untouched), warns, and stops once ``patience`` steps in a row were
    skipped: a run that has diverged for good does not go on silently.

    Args:
        action: ``"stop"`` or ``"skip"``.
        patience: consecutive skipped steps after which ``"skip"`` stops too, >= 1.

    Raises:
        ValueError: ``action`` or ``patience`` out of range.
        NonFiniteLossError: during training, as above.

    Example::

        >>> import lightning as L
        >>> guard = NonFiniteGuard(action="skip", patience=5)
        >>> trainer = L.Trainer(callbacks=[guard], max_epochs=1, logger=False)  # doctest: +SKIP
    """

    def __init__(self, action: str = "stop", patience: int = 10) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action={action!r} must be one of {ACTIONS}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience={patience!r} must be an integer >= 1")
        self.action = action
        self.patience = patience
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
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
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


class PreemptionCheckpoint(Callback):
    """On SIGTERM, save ``<dirpath>/<filename>.ckpt`` before Lightning ends the run (with status 0).

    Lightning stops at the end of the batch during which SIGTERM arrived (or of the validation batch);
    the checkpoint saved then resumes exactly like one ``ModelCheckpoint`` saves mid-epoch. A symlinked
    ``last.ckpt`` (``save_last="link"``) is replaced by a file, never written through.

    Args:
        dirpath: the folder, e.g. ``ModelCheckpoint``'s ``dirpath``.
        filename: the file name without ``.ckpt``; ``"last"`` lets ``ckpt_path=last`` find it.

    Example::

        >>> import lightning as L
        >>> callback = PreemptionCheckpoint("outputs/run/checkpoints")
        >>> callback.path.name
        'last.ckpt'
        >>> trainer = L.Trainer(callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        if not str(filename) or "/" in str(filename):
            raise ValueError(f"filename={filename!r} must be a non-empty file name without a folder")
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.is_global_zero and self.path.is_symlink():
            self.path.unlink()
        trainer.save_checkpoint(self.path)
        rank_zero_info(
            f"SIGTERM at step {trainer.global_step} (epoch {trainer.current_epoch}): saved {self.path}; "
            "resume with ckpt_path=last (same run dir)"
        )

"""A rich progress bar that shows the current learning rate beside the loss."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar

from lightning_clr.callback import CyclicLR

__all__ = ["CLRProgressBar"]


class CLRProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` that adds ``lr``: the LR of the latest step.

    With a :class:`~lightning_clr.CyclicLR` that is the LR of the step whose loss is shown, else the
    optimizer's; several param groups' LRs comma-separated, each to 3 significant digits.

    Example::

        >>> import lightning as L
        >>> from lightning_clr import CyclicLR
        >>> from lightning_clr.policies import Triangular
        >>> callbacks = [CyclicLR(Triangular(0.001, 0.006, step_size=200)), CLRProgressBar()]
        >>> trainer = L.Trainer(callbacks=callbacks, logger=False, enable_checkpointing=False)
        >>> trainer.progress_bar_callback is callbacks[1]
        True
    """

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning, not declared
        cyclic = next((cb for cb in callbacks if isinstance(cb, CyclicLR) and cb.last_step), None)
        if cyclic is not None:
            lrs = [value for name, value in cyclic.last_step.items() if name.split("/")[0] == "lr"]
        else:
            lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        if lrs:
            metrics["lr"] = ", ".join(f"{float(lr):.3g}" for lr in lrs)
        return metrics

"""The CLR dashboard: a TensorBoard custom-scalars layout written with every run (LR beside the training
loss, the validation curves, the range test's curve); each chart matches tags by regex, so a sweep's runs
share it.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_clr.callback import CyclicLR
from lightning_clr.range_test import LRRangeTest

__all__ = ["CLRDashboard", "clr_layout"]

#: Section titles of the layout, in the order TensorBoard shows them.
STEP_SECTION = "CLR: learning rate and training loss (every step)"
EPOCH_SECTION = "Validation (every epoch)"
RANGE_TEST_SECTION = "LR range test"

Layout = dict[str, dict[str, list[str | list[str]]]]


def clr_layout(
    *,
    lr: bool = True,
    momentum: bool = False,
    cycle: bool = True,
    range_test_metrics: Sequence[str] = (),
) -> Layout:
    """The custom-scalars layout, as ``SummaryWriter.add_custom_scalars`` takes it.

    Args:
        lr: draw the LR (``lr`` or ``lr/group{i}``), logged by :class:`~lightning_clr.CyclicLR`.
        momentum: draw the momentum (``momentum`` or ``momentum/group{i}``), logged when it is cycled.
        cycle: draw the 1-based cycle index (``cycle``), whose steps mark the cycle boundaries.
        range_test_metrics: add the LR range test's section: its LR, and loss and smoothed loss when
            ``"loss"`` is listed, against the test's step; any other name ``m`` draws ``range_test/m``.

    Returns:
        ``{section title: {chart title: ["Multiline", [tag regex, ...]]}}``.

    Example::

        >>> layout = clr_layout(momentum=True)
        >>> list(layout[STEP_SECTION])
        ['learning rate', 'training loss', 'momentum', 'cycle index']
        >>> layout[STEP_SECTION]["learning rate"]
        ['Multiline', ['^lr(/.*)?$']]
    """
    step: dict[str, list[str | list[str]]] = {}
    if lr:
        step["learning rate"] = _multiline(r"^lr(/.*)?$")
    step["training loss"] = _multiline("^train_loss$")
    if momentum:
        step["momentum"] = _multiline(r"^momentum(/.*)?$")
    if cycle:
        step["cycle index"] = _multiline("^cycle$")
    layout: Layout = {
        STEP_SECTION: step,
        EPOCH_SECTION: {
            "validation loss": _multiline("^val_loss$"),
            "validation accuracy": _multiline("^val_acc$", "^val_acc_best$"),
        },
    }
    if range_test_metrics:
        section = {"range test: learning rate": _multiline("^range_test/lr$")}
        for metric in range_test_metrics:
            tags = (metric, "smoothed_loss") if metric == "loss" else (metric,)
            section[f"range test: {metric}"] = _multiline(*(f"^range_test/{tag}$" for tag in tags))
        layout[RANGE_TEST_SECTION] = section
    return layout


class CLRDashboard(Callback):
    """Write :func:`clr_layout` into every :class:`~lightning.pytorch.loggers.TensorBoardLogger` at fit start
    (on rank zero), with the charts the trainer's callbacks log.

    Example::

        >>> import lightning as L
        >>> from lightning.pytorch.loggers import TensorBoardLogger
        >>> from lightning_clr import CyclicLR
        >>> from lightning_clr.policies import Triangular
        >>> callbacks = [CyclicLR(Triangular(0.001, 0.006, step_size=200)), CLRDashboard()]
        >>> import tempfile
        >>> logger = TensorBoardLogger(tempfile.mkdtemp())  # "logs" in a real run
        >>> trainer = L.Trainer(callbacks=callbacks, logger=logger, enable_checkpointing=False)
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        schedules = [callback for callback in trainer.callbacks if isinstance(callback, CyclicLR)]  # type: ignore[attr-defined]
        tests = [callback for callback in trainer.callbacks if isinstance(callback, LRRangeTest)]  # type: ignore[attr-defined]
        layout = clr_layout(
            lr=bool(schedules),
            momentum=any(schedule.cycle_momentum for schedule in schedules),
            cycle=any(hasattr(schedule.policy, "cycle") for schedule in schedules),
            range_test_metrics=sorted({"loss"} | {test.config.monitor for test in tests}) if tests else (),
        )
        for logger in loggers:
            logger.experiment.add_custom_scalars(layout)
            logger.experiment.flush()


def _multiline(*tags: str) -> list[str | list[str]]:
    return ["Multiline", list(tags)]

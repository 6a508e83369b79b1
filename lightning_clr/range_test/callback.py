"""The range test as a callback (:class:`LRRangeTest`) and on its own (:class:`CLRTuner`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_clr import compat
from lightning_clr.param_groups import ratios_to_largest
from lightning_clr.range_test.loop import run_range_test
from lightning_clr.range_test.result import RangeTestResult
from lightning_clr.range_test.settings import UPDATABLE, RangeTestConfig, default, span_end, widened
from lightning_clr.suggest import Bounds
from lightning_clr.validation import fail

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class LRRangeTest(Callback):
    """Run an LR range test when fitting starts and hand the bounds to every ``CyclicLR`` callback.

    Everything the test touched is put back afterwards; the bounds (scaled per param group by its LR over
    the largest) go to every callback with an ``update_policy`` method and into the checkpoint, so a
    resumed run applies them instead of testing again. How to read the curve: docs/guide/range-test.md.

    Args:
        min_lr: the LR of the first step, > 0.
        max_lr: the LR of the last step, > ``min_lr``; None: 100 times the optimizer's LR (of its param
            group with the largest LR) when the test starts.
        num_steps: optimizer steps of the test, >= 2; or
        num_epochs: its length in epochs of the train loader (default 4 when neither is given).
        mode: ``"linear"`` (Smith's test) or ``"exponential"`` (for a first wide scan).
        monitor: ``"loss"`` (the training loss) or a metric the model logs in ``validation_step``
            (e.g. ``"val_acc"``), evaluated on the first ``num_val_batches`` validation batches.
        monitor_mode: ``"min"`` or ``"max"``; default ``"min"`` when ``monitor`` contains ``"loss"``.
        val_check_interval: steps between two evaluations of ``monitor``; default ``num_steps // 30``.
        num_val_batches: validation batches per evaluation, >= 1.
        divergence_threshold: stop when the smoothed loss exceeds this multiple of its best, > 1;
            None to stop only on NaN/inf.
        beta: the EMA factor of the smoothed loss, in [0, 1); default ``1 - 1 / max(10, num_steps / 20)``.
        passes: run the test this many times from the same weights, each on other batches, and read the
            bounds off the median curve; ``bounds.spread`` gives the range of what single passes suggest.
        max_passes: with a value above ``passes``, add passes one at a time, up to this many, while
            resampling them moves ``max_lr`` by more than ``stable_within``
            (:meth:`~lightning_clr.range_test.RangeTestResult.resampled_spread`); None: exactly ``passes``.
        stable_within: the factor, > 1, that resampled passes may move ``max_lr`` by (10th to 90th
            percentile) before ``max_passes`` stops adding passes.
        min_steps: a test given in ``num_epochs`` runs at least this many optimizer steps.
        widen: while the curve's best point is at the top of the span, test again up to 3x ``max_lr``, at
            most this many times; then warn. 0 only warns.
        update: the bounds handed to ``update_policy``: any of ``"base_lr"``, ``"max_lr"``,
            ``"step_size"``, or ``"pending"`` for the names each target lists in its ``pending``.
        output_dir: if given, rank zero writes ``range_test.png``, ``range_test.csv`` and
            ``range_test_bounds.yaml`` there.
        progress_bar: show a progress bar on rank zero; default: when the trainer shows one.

    Raises:
        ValueError: on an invalid argument (named, with its value and the rule). At fit start: manual
            optimization, several optimizers, a monitored metric without validation data or not logged.

    Example (``Regression``, ``loader`` and ``quiet`` are the tiny model, data and trainer flags of the
    :mod:`lightning_clr.range_test` example)::

        >>> import lightning as L
        >>> from lightning_clr.callback import CyclicLR
        >>> from lightning_clr.policies import Triangular
        >>> from lightning_clr.range_test import LRRangeTest
        >>> pending = ("base_lr", "max_lr", "step_size")  # placeholders below, found at fit start
        >>> clr = CyclicLR(Triangular(1e-3, 1e-2, step_size=1), pending=pending)
        >>> range_test = LRRangeTest(num_epochs=4, update="pending")  # 1e-4 to 100x the optimizer's LR
        >>> trainer = L.Trainer(callbacks=[range_test, clr], max_epochs=8, **quiet)
        >>> trainer.fit(Regression(), loader)
        >>> print(range_test.bounds)
        base_lr=0.06... max_lr=0.18... step_size=32 (curve best at 0.46...; max_lr of single passes ...)
        >>> clr.policy == Triangular(range_test.bounds.base_lr, range_test.bounds.max_lr, step_size=32)
        True
    """

    def __init__(
        self,
        min_lr: float = default("min_lr"),
        max_lr: float | None = default("max_lr"),
        num_steps: int | None = default("num_steps"),
        num_epochs: float | None = default("num_epochs"),
        mode: str = default("mode"),
        monitor: str = default("monitor"),
        monitor_mode: str | None = default("monitor_mode"),
        val_check_interval: int | None = default("val_check_interval"),
        num_val_batches: int = default("num_val_batches"),
        divergence_threshold: float | None = default("divergence_threshold"),
        beta: float | None = default("beta"),
        passes: int = default("passes"),
        max_passes: int | None = default("max_passes"),
        stable_within: float = default("stable_within"),
        min_steps: int = default("min_steps"),
        widen: int = default("widen"),
        update: str | Collection[str] = ("base_lr", "max_lr"),
        output_dir: str | Path | None = None,
        progress_bar: bool | None = None,
    ) -> None:
        arguments = locals()  # the settings, passed on by name
        self.config = RangeTestConfig(**{n: arguments[n] for n in RangeTestConfig.__dataclass_fields__})
        if update != "pending":
            update = tuple([update] if isinstance(update, str) else update)
            if not set(update) <= set(UPDATABLE):
                fail("update", update, f"must be 'pending' or a selection of {UPDATABLE}")
        if progress_bar is not None and not isinstance(progress_bar, bool):
            fail("progress_bar", progress_bar, "must be true, false or None")
        self.update = update
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.progress_bar = progress_bar
        self.stop_after_test = False  # stop fitting once the test is done (CLRTuner)
        self.result: RangeTestResult | None = None
        self.bounds: Bounds | None = None
        self.applied: dict[str, Any] = {}  # what was handed to update_policy, per param group
        self._rich: bool | None = None  # the bar rich's (True) or tqdm's; None: like the trainer's

    @property
    def state_key(self) -> str:
        return compat.state_key(self, monitor=self.config.monitor, mode=self.config.mode)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Every fit tests its own model and data (or takes the bounds of the checkpoint it resumes)."""
        if stage == "fit":
            self.result, self.bounds, self.applied = None, None, {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bounds is None:  # else known from the checkpoint being resumed: apply, do not test again
            progress = _shows_progress(trainer) if self.progress_bar is None else self.progress_bar
            # CLRTuner says which: its fit runs this callback alone
            rich = (
                isinstance(trainer.progress_bar_callback, RichProgressBar)
                if self._rich is None
                else self._rich
            )
            self.result = self._test(trainer, pl_module, progress and trainer.is_global_zero, rich)
            # every rank saw the same (reduced) curve; the broadcast rules out float noise
            self.bounds = trainer.strategy.broadcast(self.result.suggest(), src=0)
            self.applied = self._per_group(self.bounds, self.result.group_lrs)
            if trainer.is_global_zero:
                self._report(trainer)
        self._apply(trainer)
        if self.stop_after_test:
            raise compat.TunerExit()

    def _test(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, progress: bool, rich: bool
    ) -> RangeTestResult:
        """The test, run again over a 3x wider span (``widen`` times at most) while its best is at the top."""
        config = self.config
        result = run_range_test(trainer, pl_module, config, progress, rich)
        for _ in range(config.widen):
            if not result.best_at_top():
                break
            top = span_end(config, max(result.group_lrs))
            wider = widened(config, top, len(result.lrs))
            rank_zero_info(
                f"LR range test: the loss was still falling at max_lr={top:.4g}, the top of the span; "
                f"testing again up to {wider.max_lr:.4g} ({wider.num_steps} steps, the same LR per step)"
            )
            config, result = wider, run_range_test(trainer, pl_module, wider, progress, rich)
        if result.best_at_top():
            rank_zero_warn(
                f"LR range test: the curve's best point is at the top of its span (max_lr="
                f"{span_end(config, max(result.group_lrs)):.4g}), so the bounds may be too low: raise "
                "range_test.max_lr"
            )
        return result

    @staticmethod
    def _per_group(bounds: Bounds, group_lrs: list[float]) -> dict[str, Any]:
        """The bounds, as lists scaled by each group's LR over the largest when there are several groups."""
        ratios = ratios_to_largest(group_lrs)
        changes: dict[str, Any] = {"step_size": bounds.step_size}
        for name, lr in (("base_lr", bounds.base_lr), ("max_lr", bounds.max_lr)):
            changes[name] = lr if len(ratios) == 1 else [lr * ratio for ratio in ratios]
        return changes

    def _apply(self, trainer: pl.Trainer) -> None:
        callbacks = trainer.callbacks  # type: ignore[attr-defined]
        targets = [cb for cb in callbacks if cb is not self and callable(getattr(cb, "update_policy", None))]
        for target in targets:
            names = set(getattr(target, "pending", ())) if self.update == "pending" else set(self.update)
            changes = {k: v for k, v in self.applied.items() if k in names}
            if "step_size" in changes and changes["step_size"] is None:
                rank_zero_warn("The range test found no step size (the train loader has no length).")
                del changes["step_size"]
            if changes:
                target.update_policy(**changes)
        if not targets and self.update and not self.stop_after_test:
            rank_zero_warn("LRRangeTest found no CyclicLR callback to hand its bounds to; see `.bounds`.")

    def _report(self, trainer: pl.Trainer) -> None:
        assert self.result is not None and self.bounds is not None
        rank_zero_info(f"LR range test: {self.bounds}")
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if self.output_dir is None and not loggers:
            return
        fig = self.result.plot(self.bounds)
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(self.output_dir / "range_test.png", dpi=120)
            self.result.to_csv(self.output_dir / "range_test.csv")
            with open(self.output_dir / "range_test_bounds.yaml", "w") as file:
                bounds = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.bounds).items()}
                yaml.safe_dump({**bounds, "applied": self.applied}, file, sort_keys=False)
        for logger in loggers:
            _log_to_tensorboard(logger.experiment, self.result, self.bounds, fig)

    def state_dict(self) -> dict[str, Any]:
        return {
            "bounds": None if self.bounds is None else asdict(self.bounds),
            "applied": dict(self.applied),
            "result": None if self.result is None else self.result.state_dict(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if state_dict.get("bounds") is not None:
            saved = dict(state_dict["bounds"])
            if saved.get("spread") is not None:
                saved["spread"] = tuple(saved["spread"])
            self.bounds = Bounds(**saved)
            self.applied = dict(state_dict.get("applied", {}))
        if state_dict.get("result") is not None:
            self.result = RangeTestResult.from_state_dict(state_dict["result"])


class CLRTuner:
    """Run an LR range test on its own, like ``lightning.pytorch.tuner.Tuner(trainer).lr_find``.

    The trainer's callbacks and loggers are set aside while it runs; the model, optimizer, RNG and counters
    are left as they were.

    Example (``Regression``, ``loader`` and ``quiet`` as in the :mod:`lightning_clr.range_test` example)::

        >>> import lightning as L
        >>> import torch
        >>> model = Regression()
        >>> before = model.layer.weight.clone()
        >>> tuner = CLRTuner(L.Trainer(max_epochs=4, **quiet))
        >>> result = tuner.range_test(model, train_dataloaders=loader, min_lr=1e-4, max_lr=1.0)
        >>> bounds = result.suggest()
        >>> fig = result.plot(bounds)  # then fig.savefig("range_test.png")
        >>> bounds.base_lr < bounds.max_lr < bounds.peak_lr
        True
        >>> torch.equal(model.layer.weight, before)  # the test left the model as it was
        True
    """

    def __init__(self, trainer: pl.Trainer) -> None:
        self._trainer = trainer

    def range_test(
        self,
        model: pl.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: pl.LightningDataModule | None = None,
        **settings: Any,
    ) -> RangeTestResult:
        """Run the test and return its curve; ``settings`` are :class:`LRRangeTest`'s arguments and defaults.

        Raises:
            ValueError: as :class:`LRRangeTest`.
        """
        trainer = self._trainer
        settings.setdefault("progress_bar", _shows_progress(trainer))
        settings.setdefault("update", ())
        callback = LRRangeTest(**settings)
        callback.stop_after_test = True
        callback._rich = isinstance(
            trainer.progress_bar_callback, RichProgressBar
        )  # a bar like the trainer's
        callbacks, loggers = trainer.callbacks, trainer.loggers  # type: ignore[attr-defined]
        trainer.callbacks, trainer.loggers = [callback], []  # type: ignore[attr-defined]
        try:
            trainer.fit(model, train_dataloaders, val_dataloaders, datamodule)
        finally:
            trainer.callbacks, trainer.loggers = callbacks, loggers  # type: ignore[attr-defined]
        assert callback.result is not None
        return callback.result


def _shows_progress(trainer: pl.Trainer) -> bool:
    bar = trainer.progress_bar_callback
    return bar is not None and bool(getattr(bar, "is_enabled", True))


def _log_to_tensorboard(writer: Any, result: RangeTestResult, bounds: Bounds, fig: Figure) -> None:
    """The curve against the test's step (with the LR beside it), the bounds and the figure."""
    for step, (lr, loss, smoothed) in enumerate(zip(result.lrs, result.losses, result.smoothed, strict=True)):
        writer.add_scalar("range_test/lr", lr, step)
        if math.isfinite(loss):
            writer.add_scalar("range_test/loss", loss, step)
            writer.add_scalar("range_test/smoothed_loss", smoothed, step)
    for step, value in zip(result.metric_steps, result.metric_values, strict=True):
        writer.add_scalar(f"range_test/{result.monitor}", value, step)
    for name, value in asdict(bounds).items():
        if isinstance(value, tuple):  # the spread of the passes
            for end, number in zip(("low", "high"), value, strict=True):
                writer.add_scalar(f"range_test/{name}_{end}", number, 0)
        elif value is not None:
            writer.add_scalar(f"range_test/{name}", value, 0)
    writer.add_figure("range_test/curve", fig, 0, close=False)
    writer.flush()

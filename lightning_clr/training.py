"""The task behind ``scripts/train.py``: composed config -> validated components -> ``Trainer.fit``.

Importable and testable without Hydra's command line: ``build_run(cfg)`` does every check and every
instantiation (so a bad config fails before any training), ``train(cfg)`` fits and returns the final
metrics, ``main(cfg)`` is what the script calls and turns a :class:`ConfigError` into one line on stderr
and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from lightning_clr.callback import CyclicLR, SetupError
from lightning_clr.compat import fit_resume_options
from lightning_clr.config import ConfigError, build, build_cyclic_lr, build_optimizer, build_range_test, keyed
from lightning_clr.data import DatasetMissingError
from lightning_clr.distributed import distributed_job
from lightning_clr.guards import NonFiniteLossError
from lightning_clr.hparams import hparams, log_hparams
from lightning_clr.models import ClassificationModule
from lightning_clr.suggest import Bounds
from lightning_clr.sweep import in_multirun

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything ``Trainer.fit`` needs, built and checked."""

    trainer: pl.Trainer
    module: ClassificationModule
    datamodule: pl.LightningDataModule
    cyclic_lr: CyclicLR | None
    ckpt_path: str | None


def build_run(cfg: DictConfig, with_policy: bool = True) -> Run:
    """Instantiate every component of ``cfg``, raising :class:`ConfigError` on the first bad value.

    ``with_policy=False`` leaves the ``policy`` group out (no CyclicLR callback): the range test script.
    """
    pl.seed_everything(_seed(cfg), workers=True, verbose=False)
    cyclic_lr = build_cyclic_lr(cfg.policy) if with_policy and cfg.get("policy") is not None else None
    datamodule = build("dataset", cfg.dataset)
    net = build("model", cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes)
    module = ClassificationModule(
        net=net, optimizer=build_optimizer(cfg.optimizer), num_classes=datamodule.num_classes
    )
    callbacks = [build(f"callbacks.{name}", node) for name, node in (cfg.get("callbacks") or {}).items()]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [callback for callback in callbacks if not isinstance(callback, ProgressBar)]
    tester = build_range_test(cfg.range_test, output_dir=cfg.paths.output_dir)  # checked even if unused
    if cyclic_lr is not None:
        if cyclic_lr.pending:  # `auto` bounds: the range test at fit start supplies them
            callbacks.append(tester)
        callbacks.append(cyclic_lr)
    loggers = [build(f"logger.{name}", node) for name, node in (cfg.get("logger") or {}).items()]
    trainer = build("trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Run(trainer, module, datamodule, cyclic_lr, _checkpoint(cfg))


def range_test(cfg: DictConfig) -> Bounds:
    """Run the ``range_test`` group's LR range test on the configured model and data; write its files.

    Writes ``range_test.png``, ``range_test.csv`` and ``range_test_bounds.yaml`` into the run dir, logs the
    curve and figure to TensorBoard, prints the overrides that hand the bounds to ``train.py``, and returns
    the bounds. Nothing is trained for real: the model is restored after the test.
    """
    run = build_run(cfg, with_policy=False)
    tester = build_range_test(cfg.range_test, output_dir=cfg.paths.output_dir, update=())
    run.trainer.callbacks = [tester, *run.trainer.callbacks]  # type: ignore[attr-defined]
    tester.stop_after_test = True
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert tester.bounds is not None
    bounds = tester.bounds
    overrides = f"policy.base_lr={bounds.base_lr:.4g} policy.max_lr={bounds.max_lr:.4g}"
    if bounds.step_size is not None:
        overrides += f" policy.step_size={bounds.step_size}"
    print(f"files in {cfg.paths.output_dir}: range_test.png, range_test.csv, range_test_bounds.yaml")
    print(f"train with:  python scripts/train.py {overrides}")
    return bounds


def train(cfg: DictConfig) -> dict[str, float]:
    """Build and fit; return the final metrics (``trainer.callback_metrics`` as floats)."""
    with distributed_job():
        run = build_run(cfg)
        fit = {"datamodule": run.datamodule, "ckpt_path": run.ckpt_path, **fit_resume_options()}
        run.trainer.fit(run.module, **fit)
        metrics = {name: float(value) for name, value in run.trainer.callback_metrics.items()}
        log_hparams(run.trainer, hparams(cfg, run.cyclic_lr), metrics)
    return metrics


def main(cfg: DictConfig) -> float | None:
    """What ``scripts/train.py`` runs: train, print a bad config as one line, return the optimized metric."""
    with one_line_errors():
        metrics = train(cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def range_test_main(cfg: DictConfig) -> None:
    """What ``scripts/range_test.py`` runs."""
    with one_line_errors():
        range_test(cfg)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Report a bad configuration as ``error: <message>`` on stderr and exit with status 2.

    Besides :class:`ConfigError`, the settings only training can reject (CyclicLR's :class:`SetupError`, a
    data set that is missing and cannot be downloaded) are bad configurations too. A NaN/inf loss stopped
    by :class:`~lightning_clr.guards.NonFiniteGuard` is reported the same way, with status 1.
    """
    try:
        yield
    except (ConfigError, SetupError, DatasetMissingError, NonFiniteLossError) as error:
        if in_multirun():  # one job of a sweep: let the sweep record it and run the others
            raise
        if isinstance(error, SetupError):
            error = keyed("policy", error)
        elif isinstance(error, DatasetMissingError):
            error = keyed("dataset", error)
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1 if isinstance(error, NonFiniteLossError) else 2) from None


def _seed(cfg: DictConfig) -> int:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r} must be an integer")
    return seed


def _checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a file, or ``last`` for ``<run dir>/checkpoints/last.ckpt`` (fresh start if absent)."""
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    if path == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.warning("ckpt_path=last: no %s yet, starting from scratch", last)
            return None
        _check_checkpoint(last)
        return str(last)
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={path!r} is not a file (give a checkpoint file, or `last`)")
    _check_checkpoint(path)
    return str(path)


def _check_checkpoint(path: str | Path) -> None:
    """Load ``path`` as fit will (``weights_only=True``), so a corrupt file fails now, in one line."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"ckpt_path={str(path)!r} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path={str(path)!r} is not a Lightning checkpoint (no state_dict)")

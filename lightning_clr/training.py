"""The task behind ``scripts/train.py``: composed config -> validated components -> ``Trainer.fit``.

Importable and testable without Hydra's command line: ``build_run(cfg)`` does every check and every
instantiation (so a bad config fails before any training), ``train(cfg)`` fits and returns the final
metrics, ``main(cfg)`` is what the script calls and turns a :class:`ConfigError` into one line on stderr
and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from lightning_clr.callback import CyclicLR
from lightning_clr.config import ConfigError, build, build_cyclic_lr, build_optimizer
from lightning_clr.models import ClassificationModule

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything ``Trainer.fit`` needs, built and checked."""

    trainer: pl.Trainer
    module: ClassificationModule
    datamodule: pl.LightningDataModule
    cyclic_lr: CyclicLR | None
    ckpt_path: str | None


def build_run(cfg: DictConfig) -> Run:
    """Instantiate every component of ``cfg``, raising :class:`ConfigError` on the first bad value."""
    pl.seed_everything(_seed(cfg), workers=True, verbose=False)
    cyclic_lr = build_cyclic_lr(cfg.policy) if "policy" in cfg and cfg.policy is not None else None
    datamodule = build("dataset", cfg.dataset)
    net = build("model", cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes)
    module = ClassificationModule(
        net=net, optimizer=build_optimizer(cfg.optimizer), num_classes=datamodule.num_classes
    )
    callbacks = [build(f"callbacks.{name}", node) for name, node in (cfg.get("callbacks") or {}).items()]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [callback for callback in callbacks if not isinstance(callback, ProgressBar)]
    if cyclic_lr is not None:
        callbacks.append(cyclic_lr)
    loggers = [build(f"logger.{name}", node) for name, node in (cfg.get("logger") or {}).items()]
    trainer = build("trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Run(trainer, module, datamodule, cyclic_lr, _checkpoint(cfg))


def train(cfg: DictConfig) -> dict[str, float]:
    """Build and fit; return the final metrics (``trainer.callback_metrics`` as floats)."""
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    return {name: float(value) for name, value in run.trainer.callback_metrics.items()}


def main(cfg: DictConfig) -> float | None:
    """What ``scripts/train.py`` runs: train, print a bad config as one line, return the optimized metric."""
    try:
        metrics = train(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def _seed(cfg: DictConfig) -> int:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r} must be an integer")
    return seed


def _checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a file, or ``last`` for the run dir's ``checkpoints/last.ckpt`` (a fresh start if absent)."""
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    if path == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.warning("ckpt_path=last: no %s yet, starting from scratch", last)
            return None
        return str(last)
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={path!r} is not a file (give a checkpoint file, or `last`)")
    return str(path)

"""The task behind ``scripts/train.py``: composed config -> validated components -> ``Trainer.fit``.

``build_run(cfg)`` instantiates and checks, ``train(cfg)`` fits and returns the final metrics, ``main(cfg)``
is what the script calls (a :class:`ConfigError` becomes one line on stderr and exit status 2).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from lightning_clr.app.checks import first_line
from lightning_clr.app.cli import fail, in_multirun, override_key
from lightning_clr.app.config import (
    ConfigError,
    build,
    build_cyclic_lr,
    build_optimizer,
    build_range_test,
    keyed,
)
from lightning_clr.app.data import DataFileError, DatasetMissingError
from lightning_clr.app.distributed import distributed_job
from lightning_clr.app.hparams import hparams, log_hparams
from lightning_clr.app.models import ClassificationModule
from lightning_clr.callback import CyclicLR
from lightning_clr.compat import fit_resume_options
from lightning_clr.guards import NonFiniteLossError
from lightning_clr.param_groups import SetupError
from lightning_clr.range_test import LRRangeTest
from lightning_clr.suggest import Bounds

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
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    cyclic_lr = build_cyclic_lr(cfg.policy) if with_policy and cfg.get("policy") is not None else None
    datamodule = build("dataset", cfg.dataset)
    net = build("model", cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes)
    module = ClassificationModule(net, build_optimizer(cfg.optimizer), datamodule.num_classes)
    named = {name: build(f"callbacks.{name}", node) for name, node in (cfg.get("callbacks") or {}).items()}
    tester = build_range_test(cfg.range_test, output_dir=cfg.paths.output_dir)  # checked even if unused
    _check_monitors(cfg, named, tester)
    bar = cfg.trainer.get("enable_progress_bar", True)
    callbacks = [callback for callback in named.values() if bar or not isinstance(callback, ProgressBar)]
    if cyclic_lr is not None:  # with `auto` bounds, the range test at fit start supplies them
        callbacks += [tester, cyclic_lr] if cyclic_lr.pending else [cyclic_lr]
    loggers = [build(f"logger.{name}", node) for name, node in (cfg.get("logger") or {}).items()]
    trainer = build("trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Run(trainer, module, datamodule, cyclic_lr, _checkpoint(cfg, module))


def range_test(cfg: DictConfig) -> Bounds:
    """Run the ``range_test`` group's LR range test on the configured model and data, write its files into
    the run dir, print the command that trains with its bounds, and return them.
    """
    run = build_run(cfg, with_policy=False)
    tester = build_range_test(cfg.range_test, output_dir=cfg.paths.output_dir, update=())
    run.trainer.callbacks = [tester, *run.trainer.callbacks]  # type: ignore[attr-defined]
    tester.stop_after_test = True
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert tester.bounds is not None
    print(f"files in {cfg.paths.output_dir}: range_test.png, range_test.csv, range_test_bounds.yaml")
    print(f"train with:  {train_command(tester.bounds)}")
    return tester.bounds


def train_command(bounds: Bounds) -> str:
    """The command that trains what the range test just tested, with its bounds (and this run's overrides
    but the range test's, Hydra's and the bounds')."""
    found = {"policy.base_lr": f"{bounds.base_lr:.4g}", "policy.max_lr": f"{bounds.max_lr:.4g}"}
    if bounds.step_size is not None:
        found["policy.step_size"] = str(bounds.step_size)
    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    kept = [o for o in given if override_key(o).split(".")[0] not in ("range_test", "hydra")]
    kept = [o for o in kept if override_key(o) not in found]
    program = "clr-train" if Path(sys.argv[0]).name == "clr-range-test" else "python scripts/train.py"
    return " ".join([program, *(shlex.quote(o) for o in kept), *(f"{k}={v}" for k, v in found.items())])


def train(cfg: DictConfig) -> dict[str, float]:
    """Build and fit; return the final metrics (``trainer.callback_metrics`` as floats)."""
    with distributed_job():
        run = build_run(cfg)
        fit = {"datamodule": run.datamodule, "ckpt_path": run.ckpt_path, **fit_resume_options()}
        run.trainer.fit(run.module, **fit)
        metrics = {name: float(value) for name, value in run.trainer.callback_metrics.items()}
        if run.trainer.is_global_zero:  # each rank holds its own train_loss: the log has rank 0's
            log.info("final metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
        log_hparams(run.trainer, hparams(cfg, run.cyclic_lr), metrics)
    return metrics


def main(cfg: DictConfig) -> float | None:
    """What ``scripts/train.py`` runs: train, print a bad config as one line, return the optimized metric."""
    with run_logging(), one_line_errors():
        metrics = train(cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def range_test_main(cfg: DictConfig) -> None:
    """What ``scripts/range_test.py`` runs."""
    with run_logging(), one_line_errors():
        range_test(cfg)


@contextmanager
def run_logging() -> Iterator[None]:
    """Every message once, in its place: on the console and in ``<run dir>/training.log``, as Hydra sets them
    (Lightning's stream handlers set aside and warnings logged for the length of the job).
    """
    if not any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        yield  # not a Hydra job: leave logging as it is
        return
    saved = []
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers = [h for h in logger.handlers if type(h) is not logging.StreamHandler]
        logger.propagate = True
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Report a bad configuration (also one only training rejects) as ``error: <message>`` on stderr and
    exit with status 2; a NaN/inf loss stopped by the guard likewise, with status 1.
    """
    try:
        yield
    except (ConfigError, SetupError, DatasetMissingError, DataFileError, NonFiniteLossError) as error:
        if in_multirun():  # one job of a sweep: let the sweep record it and run the others
            raise
        if isinstance(error, SetupError):
            error = keyed("policy", error)
        elif isinstance(error, DatasetMissingError | DataFileError):
            error = keyed("dataset", error)
        fail(str(error), 1 if isinstance(error, NonFiniteLossError) else 2)


def _check_monitors(cfg: DictConfig, callbacks: dict[str, Any], tester: LRRangeTest) -> None:
    """Every metric a callback, the range test or the sweeper watches is one the model logs."""
    logged, testable = ClassificationModule.FIT_METRICS, ("loss", *ClassificationModule.VALIDATION_METRICS)
    watched = [(f"callbacks.{name}.monitor", getattr(c, "monitor", None)) for name, c in callbacks.items()]
    for key, metric, allowed, what in [
        *((key, metric, logged, "the model logs") for key, metric in watched),
        ("optimized_metric", cfg.get("optimized_metric"), logged, "the model logs"),
        ("range_test.monitor", tester.config.monitor, testable, "the test can watch"),
    ]:
        if metric is not None and metric not in allowed:
            raise ConfigError(f"{key}={metric!r} is not a metric {what}; choose one of: {', '.join(allowed)}")


def checkpoint_file(cfg: DictConfig) -> Path | None:
    """The file ``ckpt_path`` names; None without one.

    ``last`` is ``<run dir>/checkpoints/last.ckpt``, or in a new single run the latest ``last.ckpt`` of an
    earlier run of the same data set and model beside it (docs/guide/resuming.md).

    Raises:
        ConfigError: ``last`` in a new single run with no earlier run to resume.
    """
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    if path != "last":
        return Path(path)
    run_dir = Path(cfg.paths.output_dir)
    own = run_dir / "checkpoints" / "last.ckpt"
    if own.is_file() or in_multirun():
        return own
    earlier = _latest_run_like(cfg, run_dir)
    if earlier is None:
        raise ConfigError(
            f"ckpt_path=last: no checkpoints/last.ckpt in this run's folder {run_dir}, nor in an earlier run "
            f"of this data set and model in {run_dir.parent}: give the run's folder (hydra.run.dir=<folder>) "
            "or its checkpoint (ckpt_path=<folder>/checkpoints/last.ckpt)"
        )
    log.info("ckpt_path=last: resuming %s, the latest run of this data set and model", earlier)
    return earlier


def _latest_run_like(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The newest ``last.ckpt`` of a run beside ``run_dir`` that trained the same data set and model (with
    the same kind of optimizer, whose state it holds)."""
    lasts = sorted(run_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda path: -path.stat().st_mtime)
    trained = _trained(cfg)
    for last in lasts:
        saved = last.parent.parent / ".hydra" / "config.yaml"
        if last.parent.parent != run_dir and saved.is_file() and _trained(OmegaConf.load(saved)) == trained:
            return last
    return None


def _trained(cfg: Any) -> list[Any]:
    """The optimizer's kind, the data set and the model a config trains, resolved, less the data's folder."""
    nodes = [OmegaConf.select(cfg, key) for key in ("optimizer._target_", "dataset", "model")]
    values = [OmegaConf.to_container(n, resolve=True) if isinstance(n, DictConfig) else n for n in nodes]
    return [{k: v for k, v in x.items() if k != "data_dir"} if isinstance(x, dict) else x for x in values]


def _checkpoint(cfg: DictConfig, module: pl.LightningModule) -> str | None:
    """The checkpoint ``ckpt_path`` names (:func:`checkpoint_file`), checked; None to start afresh."""
    path = checkpoint_file(cfg)
    if path is None:
        return None
    if not path.is_file():
        if cfg.ckpt_path == "last":  # one job of a sweep, before it has saved one
            return None
        raise ConfigError(f"ckpt_path={str(path)!r} is not a file (give a checkpoint file, or `last`)")
    _check_checkpoint(path, module)
    return str(path)


def _check_checkpoint(path: str | Path, module: pl.LightningModule) -> None:
    """Load ``path`` as fit will (``weights_only=True``), so a bad file or another model's fails now."""
    key = f"ckpt_path={str(path)!r}"
    with open(path, "rb") as file:
        magic = file.read(2)
    if magic not in (b"PK", b"\x80\x02"):  # torch.save's zip archive, or its legacy pickle
        raise ConfigError(
            f"{key} is not a checkpoint: not a file written by torch.save (give a .ckpt file that Lightning "
            "saved, or `last`)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"{key} is not a readable checkpoint ({first_line(error)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{key} is not a Lightning checkpoint (no state_dict)")
    mismatch = _weights_mismatch(checkpoint["state_dict"], module.state_dict())
    if mismatch:
        raise ConfigError(
            f"{key} holds the weights of another model ({mismatch}): resume with the model, dataset and "
            "config it was trained with"
        )


def _weights_mismatch(saved: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """How ``saved`` weights differ from the model's, in a few words, or None when they fit."""
    for words, keys in (
        ("no", [k for k in expected if k not in saved]),
        ("an unknown", [k for k in saved if k not in expected]),
    ):
        if keys:
            return f"{words} {keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
    for key, value in expected.items():
        if tuple(saved[key].shape) != tuple(value.shape):
            return f"{key!r} has shape {tuple(saved[key].shape)}, the model's {tuple(value.shape)}"
    return None

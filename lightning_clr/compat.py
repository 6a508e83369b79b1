"""Every private (leading-underscore) Lightning and torchmetrics name lightning-clr uses, and what for;
and the one difference between the Lightning releases we support (:func:`fit_resume_options`).

Nothing else in the package touches such a name (``tests/test_packaging.py`` greps for them), so a release
that moves one breaks this module alone, and CI (the newest versions in ``.ci/run``, the floors in
``.ci/min_versions.sh``) says so. Checked with lightning 2.4.0, 2.5.0, 2.5.6, 2.6.0 and 2.6.6, and
torchmetrics 1.4.0 to 1.9.0: every name below has the same signature and meaning in all of them.

The range test (:mod:`lightning_clr.range_test.loop`) runs its own loop on the loaders ``fit`` would use,
so it needs the data connector's helpers; :class:`~lightning_clr.range_test.LRRangeTest` ends a tuning-only
fit as ``Tuner.lr_find`` does; :mod:`lightning_clr.app.distributed` replaces the command that re-launches DDP
ranks under Hydra.
"""

from __future__ import annotations

import inspect
from typing import Any

from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
from lightning.fabric.utilities.data import _set_sampler_epoch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher
from lightning.pytorch.trainer.connectors.data_connector import (
    _parse_num_batches,
    _process_dataloader,
    _request_dataloader,
)
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from lightning.pytorch.utilities.exceptions import _TunerExitException
from torchmetrics import Metric

__all__ = [
    "HYDRA_COMMAND_HOOK",
    "HYDRA_LAUNCHER_MODULES",
    "PROCESS_OBSERVER_HOOK",
    "TunerExit",
    "fit_resume_options",
    "limit_batches",
    "metric_state_names",
    "prepare_for_fit",
    "set_sampler_epoch",
    "state_key",
    "train_dataloaders",
    "val_dataloaders",
]

TunerExit = _TunerExitException
"""Raised from ``on_fit_start`` to end a fit that only tuned: Lightning tears the run down quietly."""


def fit_resume_options() -> dict[str, Any]:
    """``Trainer.fit`` arguments that resume from a checkpoint with ``torch.load(weights_only=True)``.

    Lightning 2.6 added ``fit(weights_only=...)``; 2.4 and 2.5 take no such argument and load with
    ``weights_only=False``, so there the caller must load the file with ``weights_only=True`` itself first
    (the app does, before training) to keep a checkpoint from running code. Use it as
    ``trainer.fit(model, ckpt_path=path, **fit_resume_options())``.
    """
    return {"weights_only": True} if "weights_only" in inspect.signature(Trainer.fit).parameters else {}


def train_dataloaders(trainer: Trainer) -> Any:
    """The train loader(s) ``fit`` requests from the model or data module (``fit_loop._data_source``)."""
    return _request_dataloader(trainer.fit_loop._data_source)


def val_dataloaders(trainer: Trainer) -> Any:
    """The validation loader(s) of the fit, or None when neither the model nor the data module has any."""
    source = trainer.fit_loop.epoch_loop.val_loop._data_source
    return _request_dataloader(source) if source.is_defined() else None


def prepare_for_fit(trainer: Trainer, stage: RunningStage, dataloader: object) -> Any:
    """``dataloader`` as ``fit`` uses it for ``stage``: distributed sampler injected, loader checks run."""
    return _process_dataloader(trainer, TrainerFn.FITTING, stage, dataloader)


def limit_batches(stage: RunningStage, length: int | float, limit: int | float) -> int | float:
    """Batches of an epoch of ``length`` under ``limit_train_batches`` (an int count or a float fraction)."""
    return _parse_num_batches(stage, length, limit)


def set_sampler_epoch(dataloader: object, epoch: int) -> None:
    """Tell the loader's (distributed) sampler the epoch, so each epoch shuffles as the fit loop's would."""
    _set_sampler_epoch(dataloader, epoch)


def state_key(callback: Callback, **identity: Any) -> str:
    """The checkpoint key of ``callback`` from its identifying arguments, as Lightning forms its own.

    ``Callback._generate_state_key`` is the helper Lightning's docs point subclasses to.
    """
    return callback._generate_state_key(**identity)


def metric_state_names(metric: Metric) -> list[str]:
    """The attributes holding a torchmetrics ``Metric``'s accumulated state (the range test restores them).

    ``add_state`` registers them in ``_defaults``; ``update`` also counts in ``_update_count`` and caches
    ``_computed`` and ``_forward_cache``.
    """
    names = [*metric._defaults, "_update_count", "_computed", "_forward_cache"]
    return [name for name in names if hasattr(metric, name)]


#: The launcher modules whose ``_hydra_subprocess_cmd`` builds the command of DDP ranks 1.. under Hydra
#: (:func:`lightning_clr.app.distributed.hydra_subprocess_command` replaces it).
HYDRA_LAUNCHER_MODULES = (fabric_launcher, pytorch_launcher)
HYDRA_COMMAND_HOOK = "_hydra_subprocess_cmd"
#: The function Lightning's DDP launcher calls to watch the ranks it started.
PROCESS_OBSERVER_HOOK = "_launch_process_observer"

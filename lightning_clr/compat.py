"""Every private (leading-underscore) Lightning and torchmetrics name lightning-clr uses, and what for;
and the one difference between the Lightning releases we support (:func:`fit_resume_options`).

Nothing else in the package touches such a name (``tests/test_packaging.py`` greps for them). Checked with
lightning 2.4.0, 2.5.0, 2.5.6, 2.6.0 and 2.6.6, and torchmetrics 1.4.0 to 1.9.0.
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
    """``Trainer.fit`` arguments that resume with ``torch.load(weights_only=True)`` (Lightning >= 2.6; before
    it, the caller checks the file with ``weights_only=True`` first, as the app does)."""
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
    """The checkpoint key of ``callback`` from its identifying arguments, as Lightning forms its own."""
    return callback._generate_state_key(**identity)


def metric_state_names(metric: Metric) -> list[str]:
    """The attributes holding a torchmetrics ``Metric``'s accumulated state (the range test restores them)."""
    names = [*metric._defaults, "_update_count", "_computed", "_forward_cache"]
    return [name for name in names if hasattr(metric, name)]


#: The launcher modules whose ``_hydra_subprocess_cmd`` builds the command of DDP ranks 1.. under Hydra
#: (:func:`lightning_clr.app.distributed.hydra_subprocess_command` replaces it).
HYDRA_LAUNCHER_MODULES = (fabric_launcher, pytorch_launcher)
HYDRA_COMMAND_HOOK = "_hydra_subprocess_cmd"
#: The function Lightning's DDP launcher calls to watch the ranks it started.
PROCESS_OBSERVER_HOOK = "_launch_process_observer"

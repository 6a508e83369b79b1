"""A run's hyper-parameters and final metrics (as ``hp/<metric>``, apart from the metric's own curve), for
TensorBoard's HParams dashboard: one row per run of a sweep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from lightning_clr.callback import CyclicLR

#: Policy arguments shown in the HParams table (those the policy has).
POLICY_KEYS = (
    "base_lr",
    "max_lr",
    "step_size",
    "step_size_epochs",
    "gamma",
    "lr",
    "total_steps",
    "final_anneal",
)


def hparams(cfg: DictConfig, cyclic_lr: CyclicLR | None) -> dict[str, Any]:
    """The hyper-parameters of a run: the policy (as trained, step size resolved) and the main settings.

    Example::

        >>> from omegaconf import OmegaConf
        >>> from lightning_clr.policies import Triangular
        >>> cfg = OmegaConf.create({"seed": 1, "optimizer": {"_target_": "torch.optim.SGD"},
        ...                         "dataset": {"batch_size": 100}})
        >>> hparams(cfg, CyclicLR(Triangular(0.01, 0.1, step_size=8)))
        {'policy': 'triangular', 'base_lr': 0.01, 'max_lr': 0.1, 'step_size': 8, 'step_size_epochs': None, \
'total_steps': None, 'final_anneal': 0.0, 'cycle_momentum': False, 'optimizer': 'SGD', 'batch_size': 100, \
'seed': 1}
    """
    values: dict[str, Any] = {"policy": "none"}
    if cyclic_lr is not None:
        params = cyclic_lr.policy.params()
        values = {"policy": cyclic_lr.policy.name, **{k: params[k] for k in POLICY_KEYS if k in params}}
        values["cycle_momentum"] = cyclic_lr.cycle_momentum
    values["optimizer"] = str(cfg.optimizer.get("_target_", "")).rsplit(".", 1)[-1]
    values["batch_size"] = cfg.dataset.get("batch_size")
    values["seed"] = cfg.get("seed")
    return values


@rank_zero_only
def log_hparams(trainer: pl.Trainer, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Log ``params`` with the final ``metrics`` (as ``hp/<name>``) to every logger, on rank zero.

    Example::

        >>> import tempfile
        >>> import lightning as L
        >>> from lightning.pytorch.loggers import TensorBoardLogger
        >>> logger = TensorBoardLogger(tempfile.mkdtemp())
        >>> trainer = L.Trainer(logger=logger, enable_checkpointing=False)
        >>> log_hparams(trainer, {"policy": "triangular", "base_lr": 0.01}, {"val_acc_best": 0.81})
        >>> logger.hparams
        {'policy': 'triangular', 'base_lr': 0.01}
    """
    final = {f"hp/{name}": value for name, value in metrics.items()}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(dict(params), metrics=final, step=trainer.global_step)
            # fit's finalize wrote an empty hparams.yaml; the finalize below writes it again with these
            Path(logger.log_dir, logger.NAME_HPARAMS_FILE).unlink(missing_ok=True)
        else:
            logger.log_hyperparams(dict(params))
            logger.log_metrics(final, step=trainer.global_step)
        logger.finalize("success")

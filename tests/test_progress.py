"""The progress bar shows the LR the optimizer uses now, to 3 significant digits, beside the loss."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from omegaconf import DictConfig

from lightning_clr.app.training import build_run
from lightning_clr.policies import Triangular
from lightning_clr.progress import CLRProgressBar


def test_bar_shows_the_lr_of_the_current_step_and_the_loss(compose_cfg: Callable[..., DictConfig]) -> None:
    run = build_run(compose_cfg("policy.step_size=5", "trainer.enable_progress_bar=true"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    bar = run.trainer.progress_bar_callback
    assert isinstance(bar, CLRProgressBar)
    metrics = bar.get_metrics(run.trainer, run.module)
    assert run.cyclic_lr is not None
    last = run.cyclic_lr.policy(11)  # the last of 12 steps, in the conf's final anneal
    assert metrics["lr"] == f"{last:.3g}" != f"{Triangular(0.065, 0.2, 5)(11):.3g}"
    assert "train_loss" in metrics


def test_bar_lists_every_param_group() -> None:
    trainer = L.Trainer(callbacks=[CLRProgressBar()], logger=False)
    weights, bias = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    trainer.strategy.optimizers = [
        torch.optim.SGD([{"params": [weights], "lr": 4e-4}, {"params": [bias]}], lr=0.1)
    ]
    assert trainer.progress_bar_callback.get_metrics(trainer, L.LightningModule())["lr"] == "0.0004, 0.1"

"""The paper's experiments, the real data sets' and networks' configs, and the 1cycle policy config.

Experiments are checked by composing them and building what they describe, and by a two-step run on a
tiny CIFAR-10 written in the real pickle format, never by training 25,000 iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lightning_clr.app.config import build, build_cyclic_lr
from lightning_clr.app.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetMissingError,
    FashionMNISTDataModule,
    MNISTDataModule,
)
from lightning_clr.app.models import CifarFull, ResNet20
from lightning_clr.app.training import build_run
from lightning_clr.policies import ExpRange, Fixed, OneCycle, Triangular2
from tests.conftest import CONF
from tests.test_data import write_cifar
from tests.test_train import scalars

# Smith (WACV 2017), Table 1, CIFAR-10 rows: the policy and the number of iterations.
PAPER_ROWS = {
    "paper_cifar10_fixed": (Fixed(0.001, milestones=[60000, 65000], gamma=0.1), 70000),
    "paper_cifar10_triangular2": (Triangular2(0.001, 0.006, step_size=2000), 25000),
    "paper_cifar10_exp_range": (ExpRange(0.001, 0.006, 2000, gamma=0.99994), 42000),
}


@pytest.mark.parametrize("experiment", sorted(PAPER_ROWS))
def test_paper_experiments_pin_table_1(compose_cfg: Callable[..., DictConfig], experiment: str) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    policy, iterations = PAPER_ROWS[experiment]
    assert build_cyclic_lr(cfg.policy).policy == policy
    assert cfg.trainer.max_steps == iterations
    assert cfg.task_name == experiment
    # Caffe's cifar10_full_solver: SGD, momentum 0.9, weight decay 0.004, batch 100
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.9, 0.004)
    assert cfg.dataset._target_ == "lightning_clr.app.data.CIFAR10DataModule"
    assert (cfg.dataset.batch_size, cfg.dataset.augment) == (100, False)
    assert cfg.model._target_ == "lightning_clr.app.models.CifarFull"


def test_fixed_baseline_is_caffes_multistep_schedule(compose_cfg: Callable[..., DictConfig]) -> None:
    policy = build_cyclic_lr(compose_cfg("experiment=paper_cifar10_fixed").policy).policy
    lrs = [policy(k) for k in (0, 59999, 60000, 64999, 65000, 69999)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rel=1e-12)


def test_every_experiment_file_is_global_and_composes(compose_cfg: Callable[..., DictConfig]) -> None:
    files = sorted((CONF / "experiment").glob("*.yaml"))
    assert {f.stem for f in files} >= set(PAPER_ROWS)
    for file in files:
        assert file.read_text().splitlines()[0] == "# @package _global_", file.name
        cfg = compose_cfg(f"experiment={file.stem}")
        build_cyclic_lr(cfg.policy)


@pytest.mark.slow
def test_paper_experiment_trains_on_cifar10_pickles(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_cifar(tmp_path / "data", CIFAR10DataModule)  # 20 training and 4 test images, real format
    cfg = compose_cfg("experiment=paper_cifar10_triangular2")
    cfg.paths.data_dir = str(tmp_path / "data")
    run = build_run(cfg)
    assert isinstance(run.module.net, CifarFull)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.datamodule.num_train_samples == 20 and run.datamodule.num_val_samples == 4
    assert run.trainer.global_step == 2  # FAST: 2 epochs of one batch of 100 (all 20 images)
    lrs = [value for _, value in scalars(tmp_path)["lr"]]
    assert lrs == pytest.approx([0.001, 0.001 + 0.005 / 2000], rel=1e-6)


@pytest.mark.parametrize(
    ("dataset", "cls", "shape", "classes"),
    [
        ("mnist", MNISTDataModule, (1, 28, 28), 10),
        ("fashion_mnist", FashionMNISTDataModule, (1, 28, 28), 10),
        ("cifar10", CIFAR10DataModule, (3, 32, 32), 10),
        ("cifar100", CIFAR100DataModule, (3, 32, 32), 100),
    ],
)
def test_real_dataset_configs(
    compose_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    dataset: str,
    cls: type,
    shape: tuple,
    classes: int,
) -> None:
    cfg = compose_cfg(f"dataset={dataset}", "dataset.download=false", "dataset.batch_size=32", "seed=7")
    cfg.paths.data_dir = str(tmp_path)
    datamodule = build("dataset", cfg.dataset)
    assert type(datamodule) is cls
    assert (datamodule.input_shape, datamodule.num_classes) == (shape, classes)
    assert (datamodule.batch_size, datamodule.seed, datamodule.data_dir) == (32, 7, tmp_path)
    with pytest.raises(DatasetMissingError, match=str(tmp_path)):
        datamodule.prepare_data()


@pytest.mark.parametrize(("model", "cls"), [("cifar_full", CifarFull), ("resnet20", ResNet20)])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_model_configs(
    compose_cfg: Callable[..., DictConfig], model: str, cls: type, dataset: str
) -> None:
    cfg = compose_cfg(f"model={model}", f"dataset={dataset}")
    datamodule = build("dataset", cfg.dataset)
    net = build("model", cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes)
    assert type(net) is cls
    assert net(torch.zeros(2, *datamodule.input_shape)).shape == (2, datamodule.num_classes)


@pytest.mark.slow
def test_one_cycle_config_takes_total_steps_from_the_trainer(compose_cfg: Callable[..., DictConfig]) -> None:
    run = build_run(compose_cfg("policy=one_cycle"))
    assert run.cyclic_lr is not None and run.cyclic_lr.policy.total_steps is None
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.cyclic_lr.policy == OneCycle(0.2, total_steps=12)  # FAST: 2 epochs of 6 batches

"""scripts/train.py end to end: composed configs, real files, sweeps, and bad configurations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_clr.app.checks import check_run
from lightning_clr.app.config import ConfigError
from lightning_clr.app.training import build_run, train
from lightning_clr.policies import ExpRange, Triangular
from tests.conftest import FAST, run_script, run_sweep


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_train_writes_lr_and_loss_series(compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = compose_cfg("policy=exp_range", "policy.step_size=3", "policy.gamma=0.9")
    metrics = train(cfg)
    assert {"train_loss", "val_loss", "val_acc", "val_acc_best"} <= set(metrics)
    series = scalars(tmp_path)
    policy = ExpRange(0.065, 0.2, 3, 0.9, final_anneal=0.2, total_steps=12)  # conf: anneal the last 20%
    assert [step for step, _ in series["lr"]] == list(range(12))
    assert [value for _, value in series["lr"]] == pytest.approx([policy(k) for k in range(12)], rel=1e-6)
    assert len(series["train_loss"]) == 12
    assert len(series["val_acc"]) == 2 and len(series["val_loss"]) == 2
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_step_size_in_epochs_resolves_from_the_loader(compose_cfg: Callable[..., DictConfig]) -> None:
    run = build_run(compose_cfg("policy.step_size_epochs=2", "trainer.max_epochs=1"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.cyclic_lr is not None
    assert run.cyclic_lr.policy.params()["step_size"] == 12  # 2 epochs of 6 batches


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["policy.base_lr=0.5", "policy.max_lr=0.01"], "policy.base_lr=0.5 must be less than max_lr=0.01"),
        (["policy.step_size=0"], "policy.step_size=0"),
        (["policy=exp_range", "policy.gamma=1.5"], "policy.gamma=1.5"),
        (["policy.base_lr=abc"], "policy.base_lr='abc'"),
        (["dataset.batch_size=0"], "dataset.batch_size=0"),
        (["optimizer.lr=-1"], "optimizer"),
        (["policy.base_momentum=0.99", "policy.max_momentum=0.9"], "policy.base_momentum=0.99"),
        (["seed=abc"], "seed='abc'"),
        (["ckpt_path=/nonexistent.ckpt"], "ckpt_path='/nonexistent.ckpt' is not a file"),
    ],
)
def test_bad_values_fail_before_training(
    compose_cfg: Callable[..., DictConfig], overrides: list[str], message: str
) -> None:
    cfg = compose_cfg(*overrides)
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        check_run(OmegaConf.to_container(cfg, resolve=True))  # as the app does when it starts
        build_run(cfg)


@pytest.mark.slow
def test_script_run_writes_everything_in_the_run_dir(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        "policy=triangular2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert {"lr", "train_loss", "val_acc", "val_loss", "cycle"} <= set(scalars(run_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run dir


@pytest.mark.slow
def test_script_sweep_one_folder_per_job(tmp_path: Path, data_dir: Path) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, "policy.step_size=2,4")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert jobs[0].startswith("0_") and "policy.step_size=2" in jobs[0]
    assert jobs[1].startswith("1_") and "policy.step_size=4" in jobs[1]
    for job in jobs:
        assert "lr" in scalars(sweep_dir / job)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["policy=nope"], "policy=nope is not a config of group 'policy'; choose one of: cosine, exp_range"),
        (["dataset=imagenet"], "dataset=imagenet is not a config of group 'dataset'; choose one of:"),
        (
            ["policy.step_sise=4"],
            "policy.step_sise: policy has no key 'step_sise'; did you mean policy.step_size?",
        ),
        (["policy.base_lr=0.5", "policy.max_lr=0.01"], "policy.base_lr=0.5 must be less than max_lr=0.01"),
    ],
)
def test_script_bad_config_is_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    result = run_script("train.py", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(("first", "resumed"), [(1, 2), (3, 2)], ids=["extend", "shorten"])
def test_resuming_with_another_max_epochs_replans_the_schedule(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path, first: int, resumed: int
) -> None:
    """``ckpt_path=last trainer.max_epochs=N``: every resumed step's LR is that of a plan for N epochs."""
    common = ("dataset=digits", "model=mlp", "policy.step_size=5")
    stop = (
        []
        if first <= resumed
        else ["+callbacks.stop._target_=tests.test_callback.StopAfter", "+callbacks.stop.epochs=1"]
    )
    train(compose_cfg(*common, f"trainer.max_epochs={first}", *stop))
    train(compose_cfg(*common, f"trainer.max_epochs={resumed}", "ckpt_path=last"))
    lrs = dict(scalars(tmp_path)["lr"])
    done = 6  # one epoch of FAST's 6 batches
    assert sorted(lrs) == list(range(6 * resumed))
    planned = Triangular(0.065, 0.2, 5, final_anneal=0.2, total_steps=6 * resumed)  # conf/policy/triangular
    assert [lrs[k] for k in range(done, 6 * resumed)] == pytest.approx(
        [planned(k) for k in range(done, 6 * resumed)], rel=1e-6
    )
    assert lrs[6 * resumed - 1] == pytest.approx(0.00065, rel=1e-6)  # the end phase reaches its floor

"""DDP: the same LR on every rank, one run dir, and sweeps whose ranks re-launch as their own job."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch.distributed
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from lightning_clr import CyclicLR
from lightning_clr.app.distributed import LAUNCH_ENV, distributed_job, hydra_child_command
from lightning_clr.compat import HYDRA_COMMAND_HOOK as HOOK
from lightning_clr.compat import HYDRA_LAUNCHER_MODULES as LAUNCHER_MODULES
from lightning_clr.policies import Triangular
from tests.conftest import FAST, ROOT, run_script, run_sweep


class LRRecorder(L.Callback):
    """Test-only: write ``lr_rank<r>.json``: every optimizer step's LR and the resolved step size."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self.lrs.append([trainer.global_step, optimizer.param_groups[0]["lr"]])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        clr = next(c for c in trainer.callbacks if isinstance(c, CyclicLR))
        record = {
            "world_size": trainer.world_size,
            "step_size": clr.policy.params()["step_size"],
            "lrs": self.lrs,
        }
        Path(trainer.default_root_dir, f"lr_rank{trainer.global_rank}.json").write_text(json.dumps(record))


RECORD = ["+callbacks.lr_recorder._target_=tests.test_distributed.LRRecorder"]


def read_ranks(run_dir: Path) -> list[dict]:
    return [json.loads((run_dir / f"lr_rank{rank}.json").read_text()) for rank in (0, 1)]


def test_lightning_still_has_the_hook_we_replace() -> None:
    for module in LAUNCHER_MODULES:
        assert callable(getattr(module, HOOK)), (
            f"{module.__name__}.{HOOK} is gone: see lightning_clr/compat.py"
        )


def test_distributed_job_restores_env_hooks_and_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    originals = [getattr(module, HOOK) for module in LAUNCHER_MODULES]
    with distributed_job():
        assert all(getattr(module, HOOK) is hydra_child_command for module in LAUNCHER_MODULES)
        os.environ.update(MASTER_PORT="29999", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="10.0.0.1")
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
        )
    assert not torch.distributed.is_initialized()
    assert [getattr(module, HOOK) for module in LAUNCHER_MODULES] == originals
    assert os.environ["MASTER_ADDR"] == "127.0.0.1"
    assert not {"MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK"} & set(os.environ)


@pytest.fixture
def sweep_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Pose as job 1 of ``scripts/train.py -m policy.step_size=2,4 strategy=ddp_cpu``; yield its folder."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["strategy=ddp_cpu"], return_hydra_config=True)
    job_dir = tmp_path / "1_policy.step_size=4,strategy=ddp_cpu"
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.overrides.task = ["policy.step_size=4", "strategy=ddp_cpu"]
        cfg.hydra.overrides.hydra = [
            "hydra.sweep.dir=/sweep",
            "hydra/launcher=basic",
            "hydra.job.chdir=false",
        ]
    monkeypatch.setattr(sys, "argv", ["scripts/train.py", "-m", "policy.step_size=2,4", "strategy=ddp_cpu"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None)  # run as a script, not `python -m pytest`
    HydraConfig.instance().set_config(cfg)
    yield job_dir
    HydraConfig.instance().cfg = None


def test_child_command_is_this_job_not_the_sweep(sweep_job: Path) -> None:
    job_dir = sweep_job

    command, cwd = hydra_child_command(1)
    assert cwd == str(ROOT)
    assert command[:2] == [sys.executable, str(ROOT / "scripts" / "train.py")]
    args = command[2:]
    assert "-m" not in args and "policy.step_size=2,4" not in args
    assert args[:1] == ["hydra.job.chdir=false"]  # the user's own Hydra overrides, minus the sweep's
    assert args[1:3] == ["policy.step_size=4", "strategy=ddp_cpu"]  # no saved config: the job's overrides
    assert args[3:] == [
        "hydra.mode=RUN",
        f'hydra.run.dir="{job_dir}"',
        "hydra.job.name=train_ddp_process_1",
        "hydra.output_subdir=null",
    ]

    (job_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"seed": 1}), job_dir / ".hydra" / "config.yaml")
    args = hydra_child_command(1)[0][2:]
    assert args[1:3] == [f"--config-path={job_dir / '.hydra'}", "--config-name=config"]  # rank 0's own config


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_ddp_ranks_get_the_policy_lr_and_one_run_dir(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        *[o for o in FAST if "limit_train_batches" not in o],
        *RECORD,
        "strategy=ddp_cpu",
        "dataset.batch_size=250",  # 16 batches of MNIST-1D's 4,000: 8 per rank
        "policy.step_size_epochs=1",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = read_ranks(run_dir)
    # one epoch of this rank's 8 optimizer steps; the conf's final anneal over the last 20% of the 16
    policy = Triangular(0.065, 0.2, step_size=8, final_anneal=0.2, total_steps=16)
    for record in ranks:
        assert record["world_size"] == 2
        assert record["step_size"] == 8
        assert [step for step, _ in record["lrs"]] == list(range(16))
        assert [lr for _, lr in record["lrs"]] == pytest.approx([policy(k) for k in range(16)], rel=1e-12)
    assert ranks[0]["lrs"] == ranks[1]["lrs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in run_dir.rglob("config.yaml")] == ["config.yaml"]  # one .hydra/config.yaml
    assert len({p.parent for p in run_dir.rglob("events.out.tfevents.*")}) == 1  # one TensorBoard run
    assert (run_dir / "training.log").read_text().count("final metrics:") == 1  # rank 0's, not one per rank


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_ddp_sweep_runs_each_job_once_on_both_ranks(tmp_path: Path, data_dir: Path) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, *RECORD, "policy.step_size=2,4", "strategy=ddp_cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no stray run folders
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1"]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_file()) == ["multirun.yaml", "summary.csv"]
    for job, step_size in zip(jobs, (2, 4), strict=True):
        assert f"policy.step_size={step_size}" in job.name
        assert OmegaConf.load(job / ".hydra" / "config.yaml").policy.step_size == step_size
        policy = Triangular(0.065, 0.2, step_size=step_size, final_anneal=0.2, total_steps=6)
        for record in read_ranks(job):  # both ranks trained this job's config, once
            assert record["world_size"] == 2
            assert [lr for _, lr in record["lrs"]] == pytest.approx([policy(k) for k in range(6)], rel=1e-12)
        assert json.loads((job / "sweep_job.json").read_text())["status"] == "completed"
    assert result.stdout.count("Launching 2 jobs locally") == 1


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_a_rank_that_dies_fails_its_job_and_the_sweep_goes_on(tmp_path: Path, data_dir: Path) -> None:
    kill_rank_1 = [
        "+callbacks.signal_at._target_=tests.fault_helpers.SignalAt",
        "+callbacks.signal_at.signum=9",
        "+callbacks.signal_at.rank=1",
        "+callbacks.signal_at.step=3,1000",  # job 1 never gets that far
    ]
    result, sweep_dir = run_sweep(tmp_path, data_dir, "strategy=ddp_cpu", *kill_rank_1)
    assert result.returncode == 1
    assert "1 of 2 jobs failed" in result.stderr.strip().splitlines()[-1]
    killed, survived = (json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/sweep_job.json")))
    assert killed["status"] == "failed"
    assert killed["error"].startswith("RankDiedError: rank 1 ended with SIGKILL")
    assert survived["status"] == "completed"

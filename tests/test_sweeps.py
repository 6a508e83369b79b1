"""Sweeps users can read: HParams, a summary that survives failed jobs, Optuna, and the SLURM config."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_clr.app.cli import in_multirun
from lightning_clr.app.sweep import COLUMNS, SUMMARY_FILE, SweepSummary, report
from lightning_clr.app.training import train
from tests.conftest import CONF, run_sweep


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / SUMMARY_FILE).open() as file:
        return list(csv.DictReader(file))


def test_hparams_and_final_metrics_reach_tensorboard(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    metrics = train(compose_cfg("policy=exp_range", "policy.step_size_epochs=1", "policy.gamma=0.99"))
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(
        accumulator.PluginTagToContent("hparams")
    )
    hparams = OmegaConf.load(tmp_path / "tensorboard" / "hparams.yaml")
    assert OmegaConf.to_container(hparams) == {
        "policy": "exp_range",
        "base_lr": 0.065,
        "max_lr": 0.2,
        "step_size": 6,  # as trained: one epoch of 6 optimizer steps
        "step_size_epochs": None,
        "gamma": 0.99,
        "total_steps": 12,  # as trained: the run's 12 optimizer steps, for the final anneal
        "final_anneal": 0.2,
        "cycle_momentum": False,
        "optimizer": "SGD",
        "batch_size": 100,
        "seed": 42,
    }
    final = accumulator.Scalars("hp/val_acc_best")
    assert [(event.step, event.value) for event in final] == [(12, pytest.approx(metrics["val_acc_best"]))]
    assert len(accumulator.Scalars("val_acc_best")) == 2  # the metric's own curve keeps only its epochs


def _job_config(sweep_dir: Path, num: int, overrides: str) -> DictConfig:
    return OmegaConf.create(
        {
            "hydra": {
                "mode": RunMode.MULTIRUN,
                "sweep": {"dir": str(sweep_dir)},
                "job": {"num": num, "override_dirname": overrides},
                "runtime": {"output_dir": str(sweep_dir / f"{num}_{overrides}")},
            }
        }
    )


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    summary = SweepSummary()
    returns = [JobReturn(status=JobStatus.COMPLETED), JobReturn(status=JobStatus.FAILED)]
    returns[0].return_value = 0.5
    returns[1].return_value = ValueError("policy.step_size=0 must be an integer >= 1\nmore detail")
    for num, job_return in enumerate(returns):
        config = _job_config(tmp_path, num, f"policy.step_size={num * 2}")
        Path(config.hydra.runtime.output_dir).mkdir(parents=True)
        summary.on_job_start(config=config)
        summary.on_job_end(config=config, job_return=job_return)
    assert returns[1].status == JobStatus.COMPLETED and math.isnan(
        returns[1].return_value
    )  # the sweep goes on
    record = json.loads((tmp_path / "1_policy.step_size=2" / "sweep_job.json").read_text())
    assert record["status"] == "failed"
    assert record["error"] == "ValueError: policy.step_size=0 must be an integer >= 1"

    with pytest.raises(SystemExit, match=r"^error: 1 of 2 jobs failed: 1 \(policy.step_size=2\): ValueError"):
        summary.on_multirun_end(config=_job_config(tmp_path, 0, ""))
    rows = read_summary(tmp_path)
    assert [(row["job"], row["overrides"], row["status"]) for row in rows] == [
        ("0", "policy.step_size=0", "completed"),
        ("1", "policy.step_size=2", "failed"),
    ]


def test_outside_a_multirun_nothing_is_recorded(tmp_path: Path) -> None:
    config = _job_config(tmp_path, 0, "x=1")
    config.hydra.mode = RunMode.RUN
    job_return = JobReturn(status=JobStatus.FAILED)
    job_return.return_value = ValueError("boom")
    SweepSummary().on_job_end(config=config, job_return=job_return)
    assert job_return.status == JobStatus.FAILED
    assert not any(tmp_path.rglob("*.json"))
    assert not in_multirun()


def test_slurm_strategy_lets_slurm_start_the_processes() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["strategy=slurm", "trainer.devices=8", "trainer.num_nodes=3"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (
        launcher.tasks_per_node == cfg.trainer.devices == 8
    )  # one SLURM task per GPU: no Lightning re-launch
    assert launcher.nodes == cfg.trainer.num_nodes == 3
    assert launcher.gpus_per_node == 8
    assert cfg.ckpt_path == "last"  # a job submitit requeues resumes
    (environment,) = instantiate(cfg.trainer.plugins)
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
    slurm_launcher = instantiate(launcher)
    assert type(slurm_launcher).__name__ == "SlurmSweepLauncher"
    assert slurm_launcher.params["nodes"] == 3 and slurm_launcher.params["tasks_per_node"] == 8


def test_slurm_strategy_on_cpus_asks_for_no_gpu_and_modest_resources() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = ["strategy=slurm", "trainer.accelerator=cpu"]
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, None)
    assert (launcher.cpus_per_task, launcher.mem_gb) == (1, 4)


@pytest.mark.slow
def test_script_sweep_with_a_failed_job_reports_it(tmp_path: Path, data_dir: Path) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, "policy.step_size=0,2")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: 1 of 2 jobs failed: 0 (") and "policy.step_size=0" in last_line
    assert "ConfigError: policy.step_size=0 must be an integer >= 1" in result.stderr
    (job_log,) = sweep_dir.glob("0_*/training.log")  # a bad value is one line there too, no traceback
    assert job_log.read_text().endswith(
        "job 0 failed: ConfigError: policy.step_size=0 must be an integer >= 1\n"
    )
    rows = read_summary(sweep_dir)
    assert [row["status"] for row in rows] == ["failed", "completed"]  # the job after the failure still ran
    assert "policy.step_size=2" in rows[1]["overrides"]
    assert 0 < float(rows[1]["best_val_acc"]) <= 1 and rows[1]["best_epoch"] == "0"
    assert float(rows[1]["wall_s"]) > 0
    assert [p.name.split("_", 1)[0] for p in sorted(sweep_dir.iterdir()) if p.is_dir()] == ["0", "1"]


@pytest.mark.slow
def test_optuna_search_over_step_size_and_bounds(tmp_path: Path, data_dir: Path) -> None:
    overrides = ("hparams_search=optuna_clr", "hydra.sweeper.n_trials=2")
    result, sweep_dir = run_sweep(tmp_path, data_dir, *overrides, multirun=False)  # the search sets MULTIRUN
    assert result.returncode == 0, result.stderr[-3000:]
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert set(results.best_params) == {"policy.step_size", "policy.base_lr", "policy.max_lr"}
    assert 0 < results.best_value <= 1
    rows = read_summary(sweep_dir)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert max(float(row["best_val_acc"]) for row in rows) == pytest.approx(results.best_value, abs=1e-6)


@pytest.mark.slow
def test_a_sweep_over_policies_prints_and_writes_a_row_per_policy(tmp_path: Path, data_dir: Path) -> None:
    """``clr-train -m policy=triangular,cosine,wsd,fixed seed=0,1``: mean and sd per policy, and how soon each
    reached the fixed LR's best accuracy of its own seed."""
    result, sweep_dir = run_sweep(
        tmp_path,
        data_dir,
        "dataset=digits",
        "model=mlp",
        "trainer.max_epochs=3",
        "policy=triangular,cosine,wsd,fixed",
        "seed=0,1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (sweep_dir / "summary_by_policy.csv").open() as file:
        rows = {row["policy"]: row for row in csv.DictReader(file)}
    assert list(rows) == ["triangular", "cosine", "wsd", "fixed"]
    records = [json.loads(path.read_text()) for path in sweep_dir.glob("*/sweep_job.json")]
    for policy, row in rows.items():
        runs = [r for r in records if r["policy"] == policy]
        finals = [r["curve"][-1] for r in runs]
        assert row["runs"] == "2" and len(runs[0]["curve"]) == 3
        assert row["final_val_acc"] == f"{statistics.fmean(finals):.4f} ({statistics.stdev(finals):.4f})"
        assert row["reached_fixed_best"].endswith("/2")
    assert rows["fixed"]["reached_fixed_best"] == "2/2"  # each fixed run reaches its own best
    assert "by policy:" in result.stdout


def test_the_table_keeps_its_headers_whole_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = dict.fromkeys(COLUMNS, "")
    overrides = "policy=triangular,seed=0,trainer.max_epochs=20,dataset=digits,model=mlp,optimizer=adam"
    row.update(job=0, overrides=overrides, status="failed", error="ConfigError: " + "x" * 60)
    report([row], tmp_path / "summary.csv")
    printed = capsys.readouterr().out  # not a terminal: rich would draw 80 columns
    header = next(line for line in printed.splitlines() if "job" in line)
    assert all(column in header for column in COLUMNS)

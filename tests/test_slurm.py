"""Sweeps on a real SLURM cluster (`.ci/slurm_up.sh` starts a one-node one): submit, DDP, requeue, cancel.

Every test runs ``scripts/train.py -m strategy=slurm trainer.accelerator=cpu`` as a user would, with no
resource overrides, and skips with the reason when no SLURM controller answers.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lightning_clr.app.training import train
from tests.conftest import FAST, ROOT, run_sweep
from tests.test_faults import _events


def _slurm_down_reason() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM commands (run .ci/slurm_up.sh)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"no SLURM controller answers `scontrol ping` ({(ping.stdout + ping.stderr).strip()})"
    return None


pytestmark = [
    pytest.mark.usefixtures("helpers_on_path"),  # SLURM jobs import tests.fault_helpers
    pytest.mark.slow,
    pytest.mark.skipif(_slurm_down_reason() is not None, reason=str(_slurm_down_reason())),
]


ON_SLURM = ["strategy=slurm", "trainer.accelerator=cpu"]
#: 2 epochs of 6 steps, one second each: long enough to requeue or cancel a job while it trains.
SLOW = [
    "trainer.max_epochs=2",
    "callbacks.periodic_checkpoint.every_n_train_steps=2",
    "+callbacks.slow._target_=tests.fault_helpers.SlowSteps",
    "+callbacks.slow.seconds=1",
]


def _start_sweep(tmp_path: Path, data_dir: Path, *overrides: str) -> tuple[subprocess.Popen[str], Path]:
    """Start ``train.py -m`` on SLURM in the background; return the process and its sweep folder."""
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "-m",
        *ON_SLURM,
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, sweep_dir


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 240) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _job_ids(sweep_dir: Path, count: int) -> list[str]:
    """The SLURM ids of the sweep's ``count`` jobs once submitted (else ``[]``); more than one: an array."""
    arrays = [path.name for path in (sweep_dir / ".submitit").glob("*") if re.fullmatch(r"\d+", path.name)]
    if not arrays:
        return []
    return [arrays[0]] if count == 1 else [f"{arrays[0]}_{index}" for index in range(count)]


def _running(job_ids: list[str]) -> bool:
    listing = subprocess.run(
        ["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()
    return bool(job_ids) and all(job in listing for job in job_ids)


def _summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as file:
        return list(csv.DictReader(file))


def test_two_job_cpu_sweep_completes_with_a_summary(tmp_path: Path, data_dir: Path) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, *ON_SLURM, "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _summary(sweep_dir)
    assert [(row["job"], row["status"]) for row in rows] == [("0", "completed"), ("1", "completed")]
    assert all(float(row["best_val_acc"]) > 0 for row in rows)


def test_ddp_job_with_two_tasks_writes_one_run_dir(tmp_path: Path, data_dir: Path) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, *ON_SLURM, "trainer.devices=2")
    assert result.returncode == 0, result.stderr[-3000:]
    job_dirs = [path for path in sweep_dir.iterdir() if path.is_dir() and not path.name.startswith(".")]
    assert len(job_dirs) == 1
    assert (job_dirs[0] / "checkpoints" / "last.ckpt").is_file()
    event_files = list((job_dirs[0] / "tensorboard").glob("events.out.tfevents.*"))
    assert len({path.name.split(".")[-2] for path in event_files}) == 1  # one process (rank 0) logs
    assert _summary(sweep_dir)[0]["status"] == "completed"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # SLURM queues the job, pending forever (PartitionNodeLimit): the launcher sees it and stops
        ("trainer.num_nodes=2", "error: SLURM can never start job"),
        # sbatch refuses it at once
        ("hydra.launcher.mem_gb=100000", "error: sbatch refused the jobs"),
    ],
)
def test_a_request_slurm_can_never_run_fails_the_sweep_in_one_line(
    override: str, message: str, tmp_path: Path, data_dir: Path
) -> None:
    result, sweep_dir = run_sweep(tmp_path, data_dir, *ON_SLURM, override, "seed=1,2")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(message)
    setting = {"trainer.num_nodes=2": "hydra.launcher.nodes=2"}.get(override, override)
    assert last_line.endswith(setting) or f"{setting} asks for more" in last_line
    # none of this sweep's jobs is left in the queue (an earlier test's job may still be finishing)
    arrays = _job_ids(sweep_dir, 1)
    queued = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert [job for job in queued if job.split("_")[0] in arrays] == []


#: Two ways a running job is stopped and requeued: by SLURM (SIGTERM), and by submitit after its
#: timeout/preemption signal (what SLURM sends signal_delay_s before the time limit).
REQUEUES = {
    "scontrol_requeue": ["scontrol", "requeue"],
    "timeout_signal": ["scancel", "--signal=USR2"],
}


@pytest.mark.parametrize("requeue", list(REQUEUES))
def test_requeued_job_resumes_from_last_ckpt_with_an_exact_lr_trace(
    requeue: str, tmp_path: Path, data_dir: Path, compose_cfg: Callable[..., DictConfig]
) -> None:
    sweep, sweep_dir = _start_sweep(tmp_path, data_dir, *SLOW)
    job_ids = _wait_for(lambda: _job_ids(sweep_dir, 1), "the job to be submitted")
    last = _wait_for(lambda: next(sweep_dir.glob("0_*/checkpoints/last.ckpt"), None), "a first last.ckpt")
    requeued_at = time.time()
    subprocess.run([*REQUEUES[requeue], job_ids[0]], check=True)
    _, stderr = sweep.communicate(timeout=400)
    assert sweep.returncode == 0, stderr[-3000:]
    (row,) = _summary(sweep_dir)
    assert row["status"] == "completed"
    ended_at = (last.parent.parent / "sweep_job.json").stat().st_mtime
    assert float(row["wall_s"]) >= ended_at - requeued_at  # counted from the first segment's start

    segments: dict[str, dict[int, float]] = {}  # the LR logged by each process, in the order they ran
    files = sorted((last.parent.parent / "tensorboard").glob("events.*"), key=lambda p: p.stat().st_mtime)
    for path in files:
        segments.setdefault(path.name.split(".")[-2], {}).update(_events(path).get("lr", {}))
    assert len(segments) == 2  # the job before and after its requeue
    before, after = segments.values()
    assert min(after) == max(before) + 1  # resumed right after the batch it was running: nothing redone
    assert torch.load(last, weights_only=True)["global_step"] == 12
    reference = _events(_reference_run(compose_cfg))["lr"]
    assert sorted({**before, **after}) == sorted(reference)
    for step, lr in {**before, **after}.items():
        assert lr == pytest.approx(reference[step], rel=1e-6)


def _reference_run(compose_cfg: Callable[..., DictConfig]) -> Path:
    """An uninterrupted run in-process with the same schedule; returns its TensorBoard folder."""
    cfg = compose_cfg("trainer.max_epochs=2")
    train(cfg)
    return Path(cfg.paths.output_dir) / "tensorboard"


def test_cancelled_job_is_marked_failed_and_the_other_completes(tmp_path: Path, data_dir: Path) -> None:
    sweep, sweep_dir = _start_sweep(tmp_path, data_dir, *SLOW, "seed=1,2")
    job_ids = _wait_for(lambda: _job_ids(sweep_dir, 2), "two jobs to be submitted")
    _wait_for(lambda: _running(job_ids), "both jobs to run")
    subprocess.run(["scancel", job_ids[0]], check=True)
    _, stderr = sweep.communicate(timeout=400)
    assert sweep.returncode == 1
    assert "1 of 2 jobs failed" in stderr.strip().splitlines()[-1]
    first, second = _summary(sweep_dir)
    assert first["status"] == "failed" and "CANCELLED" in first["error"]
    assert second["status"] == "completed"

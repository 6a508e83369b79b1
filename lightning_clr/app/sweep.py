"""A Hydra callback that keeps a multirun going past failed jobs and ends it with a summary table.

Hydra's sweepers stop at the first failed job. :class:`SweepSummary` records every job in its folder
(``sweep_job.json``), logs a failed job's traceback and hands the sweeper NaN instead, so the other jobs run;
at the end it writes and prints ``summary.csv`` (and ``summary_by_policy.csv``) and exits with status 1 naming
the failed jobs. Switched on in ``conf/hydra/default.yaml``; outside multirun it does nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lightning_clr.app.checks import ConfigError

log = logging.getLogger(__name__)

JOB_FILE = "sweep_job.json"
#: When the job's first segment started (a requeued job runs in several), in the job's folder.
STARTED_FILE = ".sweep_job_started"
SUMMARY_FILE = "summary.csv"
POLICY_SUMMARY_FILE = "summary_by_policy.csv"
#: Longest job folder name (bytes) before :func:`short_dirname` shortens it; file systems allow 255.
MAX_DIRNAME = 200
COLUMNS = ("job", "overrides", "status", "best_val_acc", "best_epoch", "wall_s", "error")


class SweepSummary(Callback):
    """Record each job of a multirun, survive failures, and summarise the sweep at its end.

    Args:
        metric: the validation metric whose best value (and its epoch) the table reports.

    Example (``conf/hydra/default.yaml``)::

        callbacks:
          sweep_summary:
            _target_: lightning_clr.app.sweep.SweepSummary
            metric: val_acc
    """

    def __init__(self, metric: str = "val_acc") -> None:
        self.metric = metric

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN and _rank_zero():
            mark_started(Path(config.hydra.runtime.output_dir))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or not _rank_zero():
            return
        error = ""
        try:
            _ = job_return.return_value  # re-raises the job's exception
        except Exception as exception:
            error = f"{type(exception).__name__}: {(str(exception).strip().splitlines() or [''])[0]}"
            # a bad value is its one line (checks.py wrote it to name the key); anything else, its traceback
            trace = None if isinstance(exception, ConfigError) else exception
            log.error("job %s failed: %s", config.hydra.job.num, error, exc_info=trace)
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = math.nan
        write_record(
            Path(config.hydra.runtime.output_dir),
            int(config.hydra.job.num),
            config.hydra.job.override_dirname,
            self.metric,
            error,
            policy=OmegaConf.select(config, "hydra.runtime.choices.policy"),
            seed=config.get("seed"),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = read_records(sweep_dir)
        report(records, sweep_dir / SUMMARY_FILE)
        policies = by_policy(records, self.metric)
        if len(policies) > 1:
            report(policies, sweep_dir / POLICY_SUMMARY_FILE, "by policy: ")
        failed = [record for record in records if record["status"] != "completed"]
        if failed:
            names = ", ".join(f"{r['job']} ({r['overrides']}): {r['error']}" for r in failed)
            raise SystemExit(f"error: {len(failed)} of {len(records)} jobs failed: {names}")


def short_dirname(name: str, limit: int = MAX_DIRNAME) -> str:
    """``name`` if it is at most ``limit`` bytes, else its start and a hash of the whole (the
    ``short_dirname`` resolver of ``hydra.sweep.subdir``: Optuna's floats make too long folder names).

    Example::

        >>> short_dirname("policy.step_size=2")
        'policy.step_size=2'
        >>> len(short_dirname("policy.base_lr=0.011401031390814081," * 10))
        200
    """
    encoded = name.encode()
    if len(encoded) <= limit:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return f"{encoded[: limit - 9].decode(errors='ignore')}~{digest}"


OmegaConf.register_new_resolver("short_dirname", short_dirname, replace=True)


def best_of(curve: list[float], metric: str) -> dict[str, Any]:
    """The best (highest) value of a ``metric`` curve and the 0-based epoch it came at.

    Example::

        >>> best_of([], "val_acc"), best_of([0.5, 0.7, 0.6], "val_acc")
        ({'best_val_acc': None, 'best_epoch': None}, {'best_val_acc': 0.7, 'best_epoch': 1})
    """
    if not curve:
        return {f"best_{metric}": None, "best_epoch": None}
    epoch = max(range(len(curve)), key=lambda index: curve[index])
    return {f"best_{metric}": curve[epoch], "best_epoch": epoch}


def curve_of(run_dir: Path, metric: str) -> list[float]:
    """``metric`` at the end of each epoch (0, 1, ...) of a run, from its TensorBoard logs (the last value
    logged in each epoch; a resumed run's files continue the first's)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_epoch: dict[int, float] = {}
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # not one line per event file read
    for event_dir in sorted({path.parent for path in run_dir.glob("**/events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        if metric not in tags:
            continue
        epochs = {e.step: int(e.value) for e in accumulator.Scalars("epoch")} if "epoch" in tags else {}
        for index, event in enumerate(accumulator.Scalars(metric)):
            by_epoch[epochs.get(event.step, index)] = round(float(event.value), 6)
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def mark_started(job_dir: Path) -> None:
    """Note when the job started, unless an earlier segment of it (before a requeue) already did."""
    path = job_dir / STARTED_FILE
    if not path.is_file():
        job_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{time.time():.3f}")


def write_record(
    job_dir: Path,
    job: int,
    overrides: str,
    metric: str,
    error: str = "",
    policy: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Write the job's ``sweep_job.json``: ``failed`` with ``error`` if one is given, else ``completed``.

    Beside the table's columns it keeps the policy, seed and ``metric`` curve for :func:`by_policy`;
    ``wall_s`` covers every segment of a requeued job.

    Example::

        >>> import tempfile
        >>> write_record(Path(tempfile.mkdtemp()), 3, "seed=1", "val_acc", "SLURM CANCELLED by 0")["status"]
        'failed'
    """
    started = job_dir / STARTED_FILE
    curve = curve_of(job_dir, metric)
    record: dict[str, Any] = {
        "job": job,
        "overrides": overrides,
        "status": "failed" if error else "completed",
        **best_of(curve, metric),
        "wall_s": round(time.time() - float(started.read_text()), 1) if started.is_file() else None,
        "error": error,
        "policy": policy,
        "seed": seed,
        "curve": curve,
    }
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / JOB_FILE).write_text(json.dumps(record, indent=2))
    return record


def read_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job record under ``sweep_dir``, in job order."""
    records = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{JOB_FILE}")]
    return sorted(records, key=lambda record: record["job"])


def report(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Write the rows (one per job or per policy) as a CSV table, the metric columns named as recorded, and
    print them as a table titled ``<title><path>``; a job's policy, seed and curve are left out (its
    overrides say them)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    first = rows[0] if rows else dict.fromkeys(COLUMNS)
    columns = [c for c in first if not ("job" in first and c in ("policy", "seed", "curve"))]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title=f"{title}{path}")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row[c] is None else escape(str(row[c])) for c in columns))
    console = Console()
    # piped or logged, rich draws 80 columns: a sweep's overrides would fold every header
    (console if console.is_terminal else Console(width=160)).print(table)


def by_policy(records: list[dict[str, Any]], metric: str = "val_acc") -> list[dict[str, Any]]:
    """One row per policy of a sweep: its runs' final and best ``metric`` (mean and sd), and, when ``fixed``
    ran in the sweep, how many runs reached the fixed LR's best and the median epoch they first did.

    A run is held against the ``fixed`` run of its own seed, or the fixed runs' mean best without one.

    Example::

        >>> runs = [{"policy": "fixed", "seed": 0, "curve": [0.5, 0.8, 0.9]},
        ...         {"policy": "triangular", "seed": 0, "curve": [0.6, 0.92, 0.91]},
        ...         {"policy": "triangular", "seed": 1, "curve": [0.5, 0.7, 0.95]}]
        >>> [(row["policy"], row["reached_fixed_best"], row["median_epoch"]) for row in by_policy(runs)]
        [('fixed', '1/1', 2), ('triangular', '2/2', 1.5)]
    """
    completed = [r for r in records if r.get("curve") and r.get("policy")]
    fixed = {r["seed"]: max(r["curve"]) for r in completed if r["policy"] == "fixed"}
    fallback = statistics.fmean(fixed.values()) if fixed else None
    rows = []
    for policy in dict.fromkeys(r["policy"] for r in completed):
        runs = [r for r in completed if r["policy"] == policy]
        finals, bests = [r["curve"][-1] for r in runs], [max(r["curve"]) for r in runs]
        row: dict[str, Any] = {
            "policy": policy,
            "runs": len(runs),
            f"final_{metric}": _mean_sd(finals),
            f"best_{metric}": _mean_sd(bests),
        }
        if fallback is not None:
            reached = [_first_at(r["curve"], fixed.get(r["seed"], fallback)) for r in runs]
            epochs = [epoch for epoch in reached if epoch is not None]
            row["reached_fixed_best"] = f"{len(epochs)}/{len(runs)}"
            row["median_epoch"] = statistics.median(epochs) if epochs else None
        rows.append(row)
    return rows


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ({sd:.4f})"


def _first_at(curve: list[float], target: float) -> int | None:
    """The first epoch at which ``curve`` reaches ``target``."""
    return next((epoch for epoch, value in enumerate(curve) if value >= target), None)


def _rank_zero() -> bool:
    """Whether this process is rank zero of its job (Lightning imported late: bad configs are told first)."""
    from lightning.pytorch.utilities import rank_zero_only

    return bool(rank_zero_only.rank == 0)  # type: ignore[attr-defined]

"""What our SLURM launcher knows about SLURM: requests it can never run, and GPUs only for GPU trainers.

The launcher (``hydra_plugins/lightning_clr_slurm``) ends the sweep in one line naming the setting at fault
when SLURM can never start a job or ``sbatch`` refuses it, and records a job that ends without a result as
``failed``; the other jobs run on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

#: Pending reasons after which SLURM never starts the job, and the launcher settings each points to.
NEVER_STARTS = {
    "PartitionConfig": ("nodes", "tasks_per_node", "cpus_per_task", "mem_gb", "gpus_per_node", "partition"),
    "PartitionNodeLimit": ("nodes",),
    "PartitionTimeLimit": ("timeout_min",),
    "ReqNodeNotAvail": ("nodes", "partition", "constraint"),
    "BadConstraints": ("constraint", "gpus_per_node"),
    "InvalidAccount": ("account",),
    "InvalidQOS": ("qos",),
}
#: The launcher settings that size a job's request.
REQUEST = ("partition", "nodes", "tasks_per_node", "cpus_per_task", "mem_gb", "gpus_per_node", "timeout_min")
#: Seconds between two looks at the jobs' states.
POLL_S = 2.0


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """The ``gpus_per_node`` to request: ``devices`` on ``gpu``/``cuda``, else none.

    Example::

        >>> gpus_per_node("gpu", 4), gpus_per_node("cpu", 2)
        (4, None)
    """
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def at_fault(params: dict[str, Any], reason: str) -> tuple[str, ...]:
    """The launcher settings behind ``reason``: those that exceed what ``sinfo`` says the partition has
    (every setting the reason can stand for when ``sinfo`` cannot tell).

    Example::

        >>> at_fault({"timeout_min": 60}, "PartitionTimeLimit")
        ('timeout_min',)
    """
    candidates = NEVER_STARTS.get(reason, REQUEST)
    partition = ["-p", str(params["partition"])] if params.get("partition") else []
    try:
        listing = subprocess.run(
            ["sinfo", "-h", *partition, "-o", "%D %c %m %G"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        nodes, cpus, memory_mb, gres = int(listing[0]), int(listing[1]), int(listing[2]), listing[3]
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return candidates
    gpus = int(gres.rsplit(":", 1)[-1]) if gres.startswith("gpu") and gres[-1].isdigit() else 0
    tasks = int(params.get("tasks_per_node") or 1)
    too_big = {
        "nodes": int(params.get("nodes") or 1) > nodes,
        "tasks_per_node": tasks > cpus,
        "cpus_per_task": tasks * int(params.get("cpus_per_task") or 1) > cpus,
        "mem_gb": int(params.get("mem_gb") or 0) * 1024 > memory_mb,
        "gpus_per_node": int(params.get("gpus_per_node") or 0) > gpus,
    }
    return tuple(key for key in candidates if too_big.get(key)) or candidates


def settings(params: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"hydra.launcher.{key}={params.get(key)}" for key in keys)


def pending_reasons(job_ids: Sequence[str]) -> dict[str, str]:
    """``{job id: reason}`` of the given jobs that SLURM holds PENDING (``squeue``); empty if it cannot say.

    Example::

        >>> pending_reasons([])
        {}
    """
    if not job_ids:
        return {}
    try:
        listing = subprocess.run(
            ["squeue", "-h", "-r", "-t", "PENDING", "-o", "%i %r", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(line.split(maxsplit=1) for line in listing.splitlines() if len(line.split()) == 2)

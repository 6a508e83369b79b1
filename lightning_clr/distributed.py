"""DDP inside Hydra multirun: re-launch each job's ranks as that one job, and tear it down after.

Lightning starts the other ranks of a DDP run by running the script again
(``_SubprocessScriptLauncher``). Under Hydra it builds that command with
``lightning.fabric.strategies.launchers.subprocess_script._hydra_subprocess_cmd``: the script's original
``sys.argv`` plus ``hydra.run.dir=<hydra.run.dir>``. Under ``-m`` that is wrong twice over (Lightning issue
11300, Hydra issue 2070): the command line still holds ``-m`` and the sweep, so every child runs the whole
sweep itself, and ``hydra.run.dir`` is not the job's folder, so the children write stray folders. With a
sampling sweeper (Optuna) the ranks would even train different hyper-parameters.

:func:`hydra_child_command` builds the command from the job's own config instead (the values this job
got, never the sweep), in run mode, into the job's output folder. :func:`distributed_job` installs it for
the length of one job and afterwards destroys the process group and restores the launch environment
(``MASTER_PORT``, ``LOCAL_RANK``, ...) that Lightning set: otherwise the next job of the sweep finds the
old group already initialised, talks to ranks that have exited, and dies with gloo's "Connection closed by
peer" (or, with ``LOCAL_RANK`` left set, waits for ranks nobody starts).

``tests/test_distributed.py`` runs a real two-process sweep, so a Lightning upgrade that moves or changes
this hook fails CI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch.distributed

from lightning_clr.compat import hydra_subprocess_command

#: What Lightning's launcher writes into ``os.environ`` for the ranks of one run.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
#: Hydra overrides that drive the sweep (or that the child gets anew); the child's command drops them.
_SWEEP_KEYS = (
    "hydra.mode",
    "hydra.run",
    "hydra.sweep",
    "hydra.sweeper",
    "hydra/sweeper",
    "hydra.launcher",
    "hydra/launcher",
    "hydra.job.name",
    "hydra.output_subdir",
)


def hydra_child_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working directory that start rank ``local_rank`` of the current Hydra job.

    The child composes the very config rank 0 saved in ``<job dir>/.hydra/config.yaml`` (so a config file
    edited while a long sweep runs cannot make the ranks disagree), or, when Hydra saves none
    (``hydra.output_subdir=null``), the job's own task overrides (its values under a sweep). Then the
    user's Hydra overrides minus those of the sweep, run mode (``hydra.mode=RUN`` also beats a config that
    sets ``MULTIRUN``), the job's output folder, and no second ``.hydra/`` copy of the config.

    Example::

        >>> hydra_child_command(1)  # doctest: +SKIP
        (['/usr/bin/python', '/repo/scripts/train.py', '--config-path=/repo/multirun/0_step_size=2/.hydra',
          '--config-name=config', 'hydra.mode=RUN', 'hydra.run.dir="/repo/multirun/0_step_size=2"',
          'hydra.job.name=train_ddp_process_1', 'hydra.output_subdir=null'], '/repo')
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += [str(override) for override in hydra.overrides.hydra if not _drives_sweep(str(override))]
    saved = Path(hydra.runtime.output_dir, hydra.output_subdir or "", "config.yaml")
    if hydra.output_subdir is not None and saved.is_file():
        command += [f"--config-path={saved.parent}", "--config-name=config"]
    else:
        command += [str(override) for override in hydra.overrides.task]
    command += [
        "hydra.mode=RUN",
        f'hydra.run.dir="{hydra.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


@contextmanager
def distributed_job() -> Iterator[None]:
    """Run one training job so that DDP ranks re-launch as this job and leave nothing behind for the next.

    Example::

        >>> with distributed_job():
        ...     pass  # build the Trainer and fit here
    """
    saved_env = {name: os.environ.get(name) for name in LAUNCH_ENV}
    try:
        with hydra_subprocess_command(hydra_child_command):
            yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _drives_sweep(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return any(key == sweep_key or key.startswith(sweep_key + ".") for sweep_key in _SWEEP_KEYS)

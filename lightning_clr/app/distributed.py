"""DDP inside Hydra multirun: re-launch each job's ranks as that one job, and tear it down after.

Lightning re-runs the script for the other ranks with the original ``sys.argv`` plus ``hydra.run.dir``
(``_hydra_subprocess_cmd``). Under ``-m`` (Lightning issue 11300, Hydra issue 2070) every child would then
run the whole sweep (with Optuna, other hyper-parameters) into stray folders. :func:`hydra_child_command`
builds the command from the job's own config, in run mode, into the job's folder; :func:`distributed_job`
installs it for one job, then destroys the process group and restores the launch environment (else the next
job dies with gloo's "Connection closed by peer"). Lightning's own observer SIGKILLs everything when a rank
dies, ending the sweep; :class:`RankObserver` stops only the job's ranks and the job fails with
:class:`RankDiedError`. ``tests/test_distributed.py`` runs a real two-process sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed

from lightning_clr.app.cli import in_multirun, override_key
from lightning_clr.compat import HYDRA_COMMAND_HOOK, HYDRA_LAUNCHER_MODULES, PROCESS_OBSERVER_HOOK

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

    The child composes the config rank 0 saved in ``<job dir>/.hydra/config.yaml`` (else the job's task
    overrides), with the user's non-sweep Hydra overrides, in run mode, into the job's output folder.

    Example::

        >>> from hydra.conf import HydraConf
        >>> from hydra.core.hydra_config import HydraConfig
        >>> from omegaconf import OmegaConf
        >>> hydra = OmegaConf.structured(HydraConf)  # as Hydra fills it in job 0 of a sweep
        >>> hydra.runtime.output_dir, hydra.runtime.cwd = "/runs/0_policy.step_size=2", "/repo"
        >>> hydra.output_subdir = None
        >>> hydra.overrides.hydra = ["hydra.sweep.dir=/runs"]
        >>> hydra.overrides.task = ["policy.step_size=2", "strategy=ddp"]
        >>> HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
        >>> command, cwd = hydra_child_command(1)  # first python and the script (or -m and the module)
        >>> cwd
        '/repo'
        >>> command[-6:]  # doctest: +NORMALIZE_WHITESPACE
        ['policy.step_size=2', 'strategy=ddp', 'hydra.mode=RUN', 'hydra.run.dir="/runs/0_policy.step_size=2"',
         'hydra.job.name=train_ddp_process_1', 'hydra.output_subdir=null']
        >>> HydraConfig.instance().cfg = None
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
    saved_env = {name: os.environ[name] for name in LAUNCH_ENV if name in os.environ}
    observer = RankObserver()
    try:
        with hydra_subprocess_command(hydra_child_command, observer.start if in_multirun() else None):
            yield
    except Exception as error:
        if observer.wait_for_a_death(timeout_s=5.0):  # a rank that died makes this one fail soon after
            failed = type(error).__name__
            raise RankDiedError(f"{observer.died}; this rank then failed with {failed}") from error
        raise
    finally:
        observer.stop()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name in LAUNCH_ENV:
            os.environ.pop(name, None)
        os.environ.update(saved_env)


def _drives_sweep(override: str) -> bool:
    key = override_key(override)
    return any(key == sweep_key or key.startswith(sweep_key + ".") for sweep_key in _SWEEP_KEYS)


class RankDiedError(RuntimeError):
    """Another rank of this DDP job died; the message names the rank and how it ended."""


class RankObserver:
    """Watch the rank processes Lightning started; when one dies, stop the others (not this process).

    ``died`` then says which rank ended how; :func:`distributed_job` raises :class:`RankDiedError` with it.

    Example::

        >>> observer = RankObserver()
        >>> observer.start([subprocess.Popen([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])])
        >>> import time
        >>> while not observer.died:
        ...     time.sleep(0.1)
        >>> observer.died
        'rank 1 ended with SIGKILL'
    """

    def __init__(self, period_s: float = 0.5) -> None:
        self.period_s = period_s
        self.died = ""
        self._stopped = threading.Event()
        self._done = threading.Event()  # set while nothing is watched: no rank left to die
        self._done.set()

    def start(self, child_processes: list[subprocess.Popen]) -> None:
        """Start watching ``child_processes`` (ranks 1, 2, ...) in a daemon thread."""
        self._done.clear()
        threading.Thread(target=self._watch, args=(child_processes,), daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def wait_for_a_death(self, timeout_s: float) -> str:
        """``died``, once the watched ranks have been looked at after this call (up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while not self.died and not self._done.is_set() and time.monotonic() < deadline:
            time.sleep(self.period_s / 5)
        return self.died

    def _watch(self, children: list[subprocess.Popen]) -> None:
        """Poll ``children`` until all succeed or one fails (then name it in ``died`` and kill the rest)."""
        try:
            while not self._stopped.wait(self.period_s):
                codes = [child.poll() for child in children]
                if all(code == 0 for code in codes):
                    return
                dead = next(((rank, code) for rank, code in enumerate(codes, start=1) if code), None)
                if dead is not None:
                    rank, code = dead
                    how = signal.Signals(-code).name if code < 0 else f"exit status {code}"
                    self.died = f"rank {rank} ended with {how}"
                    for child in children:
                        if child.poll() is None:
                            child.kill()
                    return
        finally:
            self._done.set()


@contextmanager
def hydra_subprocess_command(
    build: Callable[[int], tuple[Sequence[str], str]], observe: Callable[..., Any] | None = None
) -> Iterator[None]:
    """Let Lightning start the other DDP ranks of a Hydra job with ``build(local_rank) -> (command, cwd)``,
    and watch them with ``observe`` instead of its own observer; the originals are put back on exit.
    """
    hooks: dict[str, Callable[..., Any]] = {HYDRA_COMMAND_HOOK: build}
    if observe is not None:
        hooks[PROCESS_OBSERVER_HOOK] = observe
    saved = {
        (module, name): getattr(module, name)
        for module in HYDRA_LAUNCHER_MODULES
        for name in hooks
        if hasattr(module, name)
    }
    for module, name in saved:
        setattr(module, name, hooks[name])
    try:
        yield
    finally:
        for (module, name), original in saved.items():
            setattr(module, name, original)

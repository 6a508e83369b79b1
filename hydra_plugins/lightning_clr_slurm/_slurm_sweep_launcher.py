"""``SlurmSweepLauncher``: the submitit SLURM launcher that collects every job, whatever became of it.

Hydra only instantiates launchers defined under ``hydra_plugins``; what it does is described in
:mod:`lightning_clr.app.slurm`, whose helpers it uses. The leading underscore keeps Hydra's plugin scan,
which imports every other module under ``hydra_plugins`` in every Hydra app, out of this one: without the
``[sweeps]`` extra its imports fail, and every command would warn. The app registers it itself
(:func:`lightning_clr.app.schemas.register`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from submitit.core.utils import FailedJobError, FailedSubmissionError, UncompletedJobError

from lightning_clr.app.slurm import NEVER_STARTS, POLL_S, at_fault, pending_reasons, settings
from lightning_clr.app.sweep import write_record

log = logging.getLogger(__name__)


class SlurmSweepLauncher(SlurmLauncher):
    """hydra-submitit-launcher's ``SlurmLauncher`` that collects every job whatever became of it.

    Takes the same settings (``hydra.launcher.*``). Example (``conf/strategy/slurm.yaml``)::

        hydra:
          launcher:
            _target_: hydra_plugins.lightning_clr_slurm._slurm_sweep_launcher.SlurmSweepLauncher
    """

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        params = dict(self.params)
        folder, timeouts = params.pop("submitit_folder"), params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder, slurm_max_num_timeout=timeouts)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        arguments = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            arguments.append((list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}"))
        state = Singleton.get_state()
        try:
            jobs = executor.map_array(self, *zip(*[(*a, state) for a in arguments], strict=True))
        except (FailedJobError, FailedSubmissionError) as error:  # sbatch refused the request
            reason = next((line for line in str(error).splitlines() if "error:" in line), str(error))
            request = settings(self.params, at_fault(self.params, "PartitionConfig"))
            raise SystemExit(f"error: sbatch refused the jobs ({reason.strip()}): {request}") from None
        return self._collect(jobs, arguments)

    def _collect(self, jobs: list[Any], arguments: list[tuple[Any, ...]]) -> list[JobReturn]:
        results: dict[int, JobReturn] = {}
        while len(results) < len(jobs):
            reasons = pending_reasons([job.job_id for job in jobs])
            for index, job in enumerate(jobs):
                if index in results:
                    continue
                reason = reasons.get(job.job_id)
                if reason in NEVER_STARTS:
                    for other in jobs:
                        other.cancel(check=False)
                    at_issue = settings(self.params, at_fault(self.params, reason))
                    raise SystemExit(
                        f"error: SLURM can never start job {job.job_id} (pending, reason {reason}): "
                        f"{at_issue} asks for more than the partition has"
                    )
                if job.done(force_check=True):
                    results[index] = self._result(job, arguments[index])
            if len(results) < len(jobs):
                time.sleep(POLL_S)
        return [results[index] for index in range(len(jobs))]

    def _result(self, job: Any, arguments: tuple[Any, ...]) -> JobReturn:
        try:
            return job.results()[0]
        except Exception as error:
            state = job.state
            overrides, _, number, _ = arguments
            log.error("job %s (SLURM job %s) failed: %s", number, job.job_id, state)
            # no result at all (cancelled, killed, a rank died): the state says it; else the job's own error
            error_text = f"SLURM {state}"
            if not isinstance(error, UncompletedJobError):
                error_text += ": " + (str(error).strip().splitlines() or [""])[-1]
            config = self._job_config(overrides, number)
            job_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
            metric = OmegaConf.select(config, "hydra.callbacks.sweep_summary.metric", default="val_acc")
            write_record(job_dir, number, config.hydra.job.override_dirname, metric, error_text)
            return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=math.nan)

    def _job_config(self, overrides: list[str], number: int) -> DictConfig:
        """The job's config as the job composes it (its output folder, its override dirname)."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with read_write(config.hydra.job), open_dict(config.hydra.job):
            config.hydra.job.num = number
        return config

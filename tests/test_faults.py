"""Faults: SIGKILL and SIGTERM mid-run then resume, an interrupted range test, NaN/inf losses."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr import CyclicLR
from lightning_clr.app.cli import hydra_app
from lightning_clr.app.training import main, train
from lightning_clr.guards import LastCheckpoint, NonFiniteGuard, NonFiniteLossError
from lightning_clr.policies import Triangular
from tests.conftest import FAST, ROOT
from tests.fault_helpers import SignalAt

POLICIES = ["triangular", "triangular2", "exp_range", "fixed", "one_cycle"]
#: With FAST: 12 optimizer steps in 2 epochs of 6; last.ckpt every 2 steps and at every epoch end.
RESUMABLE = ["callbacks.periodic_checkpoint.every_n_train_steps=2"]


def _overrides(policy: str) -> list[str]:
    extra = {"fixed": ["policy.milestones=[5]"], "one_cycle": []}.get(policy, ["policy.step_size=3"])
    return [f"policy={policy}", *RESUMABLE, *extra]


def _train_py(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _events(path: Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of one event file (or a folder's files read in order)."""
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {t: {e.step: e.value for e in accumulator.Scalars(t)} for t in accumulator.Tags()["scalars"]}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model weights of a run's final ``last.ckpt``."""
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


_REFERENCE: dict[str, tuple[dict[str, dict[int, float]], dict[str, torch.Tensor]]] = {}


def _reference(
    policy: str, compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> tuple[dict[str, dict[int, float]], dict[str, torch.Tensor]]:
    """The uninterrupted run's series and final weights (in-process, once per policy)."""
    if policy not in _REFERENCE:
        train(compose_cfg(*_overrides(policy)))
        _REFERENCE[policy] = _events(tmp_path / "tensorboard"), _weights(tmp_path)
    return _REFERENCE[policy]


def _assert_same_weights(run_dir: Path, reference: dict[str, torch.Tensor]) -> None:
    """Every tensor of the resumed run's final weights equals the uninterrupted run's, bit for bit."""
    weights = _weights(run_dir)
    assert sorted(weights) == sorted(reference)
    different = [name for name in reference if not torch.equal(weights[name], reference[name])]
    assert different == []


def _kill_then_resume(
    policy: str,
    tmp_path: Path,
    data_dir: Path,
    step: int,
    signum: int,
    hook: str,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``scripts/train.py`` until ``signum`` at ``step``, then resume it with ``ckpt_path=last``.

    The resumed run goes through the same entry point in-process (``sys.argv`` patched): one interpreter
    start-up less per trial. Returns the first run and the global step of the ``last.ckpt`` it left.
    """
    tmp_path.mkdir(exist_ok=True)
    run_dir = tmp_path / "run"
    common = [*FAST, *_overrides(policy), f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    signal_at = [
        "+callbacks.signal_at._target_=tests.fault_helpers.SignalAt",
        f"+callbacks.signal_at.step={step}",
        f"+callbacks.signal_at.signum={signum}",
        f"+callbacks.signal_at.hook={hook}",
    ]
    first = _train_py(*common, *signal_at, cwd=tmp_path)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", *common, "ckpt_path=last"])
    hydra_app(main)
    return first, checkpoint["global_step"]


def _assert_continues(run_dir: Path, saved_step: int, reference: dict[str, dict[int, float]]) -> None:
    """The resumed run's own event file: every step from the checkpoint on, each once, as uninterrupted."""
    files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    pids = [path.name.split(".")[-2] for path in files]
    assert len(set(pids)) == 2  # the first run's files and the resumed run's, in the same folder
    resumed: dict[str, dict[int, float]] = {}
    for path in (path for path, pid in zip(files, pids, strict=True) if pid == pids[-1]):
        for tag, values in _events(path).items():
            resumed.setdefault(tag, {}).update(values)
    total = len(reference["lr"])
    assert sorted(resumed["lr"]) == list(range(saved_step, total))
    for step in range(saved_step, total):
        assert resumed["lr"][step] == pytest.approx(reference["lr"][step], rel=1e-6)
        assert resumed["epoch"][step] == reference["epoch"][step]  # no epoch repeated or skipped
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("trial", [0, 1])
def test_sigkill_at_a_random_step_then_resume(
    policy: str,
    trial: int,
    compose_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(f"{policy}-{trial}")
    step, hook = rng.randrange(2, 12), rng.choice(["on_train_batch_start", "on_before_optimizer_step"])
    reference, weights = _reference(policy, compose_cfg, tmp_path)
    killed, saved_step = _kill_then_resume(
        policy, tmp_path / "faulty", data_dir, step, int(signal.SIGKILL), hook, monkeypatch
    )
    assert killed.returncode == -signal.SIGKILL
    assert 2 <= saved_step <= step
    _assert_continues(tmp_path / "faulty" / "run", saved_step, reference)
    _assert_same_weights(tmp_path / "faulty" / "run", weights)


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_cleanly_and_resumes(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, weights = _reference("triangular", compose_cfg, tmp_path)
    # step 3 is not a periodic checkpoint step: only the SIGTERM checkpoint can hold step 4
    stopped, saved_step = _kill_then_resume(
        "triangular",
        tmp_path / "preempted",
        data_dir,
        3,
        int(signal.SIGTERM),
        "on_train_batch_start",
        monkeypatch,
    )
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert saved_step == 4  # the batch that was running when SIGTERM came is finished, then saved
    assert "SIGTERM at step 4" in stopped.stdout + stopped.stderr
    _assert_continues(tmp_path / "preempted" / "run", saved_step, reference)
    _assert_same_weights(tmp_path / "preempted" / "run", weights)


def test_last_ckpt_follows_every_epoch_when_the_metric_stalls(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg("policy=fixed", "policy.lr=1e-12", "trainer.max_epochs=3")  # val_acc never improves
    train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 18)


def test_timeout_signal_saves_last_ckpt_then_hands_over_to_the_previous_handler(tmp_path: Path) -> None:
    handed_over_at: list[int] = []

    def submitit_like(signum: int, frame: object) -> None:  # requeues, then exits
        handed_over_at.append(torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"])
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        trainer = L.Trainer(
            max_steps=8,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[LastCheckpoint(tmp_path), SignalAt(step=3, signum=int(signal.SIGUSR2))],
        )
        with pytest.raises(SystemExit) as exited:
            trainer.fit(Fragile(), train_dataloaders=_loader())
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert exited.value.code == -1
    assert handed_over_at == [4]  # the batch running when the signal came is finished, then saved


# --- the range test interrupted -------------------------------------------------------------------------


class Fragile(L.LightningModule):
    """A tiny classifier whose ``training_step`` raises (or kills the process) at call ``fail_at``."""

    def __init__(self, fail_at: int | None = None, kill: bool = False) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)
        self.fail_at, self.kill, self.calls = fail_at, kill, 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("boom")
        x, y = batch
        return F.cross_entropy(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(64, 8, generator=generator), torch.randint(0, 3, (64,), generator=generator)
    )
    return DataLoader(data, batch_size=8)


def test_range_test_exception_restores_the_model_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_clr.range_test import CLRTuner

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = Fragile(fail_at=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
    )
    with pytest.raises(RuntimeError, match="boom"):
        CLRTuner(trainer).range_test(model, train_dataloaders=_loader(), num_steps=20)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(tmp_path.iterdir()) == []


RANGE_TEST_KILLED = """
import lightning as L
from lightning_clr.range_test import CLRTuner
from tests.test_faults import Fragile, _loader
trainer = L.Trainer(max_epochs=1, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
CLRTuner(trainer).range_test(Fragile(fail_at=5, kill=True), train_dataloaders=_loader(), num_steps=20)
"""


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_range_test_sigkill_leaves_no_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RANGE_TEST_KILLED], cwd=tmp_path, capture_output=True, timeout=300
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


# --- NaN/inf losses -------------------------------------------------------------------------------------


class Poisoned(L.LightningModule):
    """Linear regression whose loss is NaN at the optimizer steps in ``bad_steps``."""

    def __init__(self, bad_steps: set[int]) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)
        self.bad_steps = bad_steps
        self.weights: dict[int, torch.Tensor] = {}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.weights[self.trainer.global_step] = self.layer.weight.detach().clone()
        x, y = batch
        loss = F.cross_entropy(self.layer(x), y)
        return loss * float("nan") if self.trainer.global_step in self.bad_steps else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9, weight_decay=0.1)


def _fit(model: L.LightningModule, guard: NonFiniteGuard, max_steps: int = 8) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[CyclicLR(Triangular(0.01, 0.1, step_size=4)), guard],
    )
    trainer.fit(model, train_dataloaders=_loader())
    return trainer


def test_nan_loss_stops_with_the_step_lr_and_policy() -> None:
    model = Poisoned(bad_steps={5})
    with pytest.raises(NonFiniteLossError) as error:
        _fit(model, NonFiniteGuard())
    message = str(error.value)
    assert message.startswith(
        "training loss nan at step 5 (epoch 0, batch 5): lr=0.0775 from policy triangular"
    )
    assert "base_lr=0.01, max_lr=0.1, step_size=4" in message
    assert torch.isfinite(model.layer.weight).all()


def test_nan_loss_skip_leaves_the_weights_untouched_and_goes_on() -> None:
    model = Poisoned(bad_steps={2, 3})
    guard = NonFiniteGuard(action="skip")
    with pytest.warns(UserWarning, match="training loss nan at step 2"):
        trainer = _fit(model, guard)
    assert trainer.global_step == 8 and guard.skipped == 2
    assert torch.equal(model.weights[2], model.weights[4])  # steps 2 and 3 changed nothing, momentum included
    assert not torch.equal(model.weights[4], model.weights[5])
    assert torch.isfinite(model.layer.weight).all()


def test_nan_loss_skip_stops_after_patience_steps_in_a_row() -> None:
    with pytest.raises(NonFiniteLossError, match="3 steps in a row skipped"):
        _fit(Poisoned(bad_steps=set(range(2, 8))), NonFiniteGuard(action="skip", patience=3))


@pytest.mark.parametrize(
    ("args", "message"), [({"action": "ignore"}, "action='ignore'"), ({"patience": 0}, "patience=0")]
)
def test_guard_arguments(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NonFiniteGuard(**args)


def test_diverging_clr_run_stops_with_one_line(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg("policy.base_lr=1.0", "policy.max_lr=1e12", "policy.step_size=2")
    with pytest.raises(
        NonFiniteLossError, match=r"^training loss (nan|inf) at step \d+ .* from policy triangular"
    ):
        train(cfg)

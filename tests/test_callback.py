"""CyclicLR in a real Trainer: the LR each optimizer step used, momentum, accumulation, logging, resume."""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr import CyclicLR
from lightning_clr.policies import ExpRange, OneCycle, Triangular, Triangular2


class Tiny(L.LightningModule):
    def __init__(self, optimizer: str = "sgd", momentum: float = 0.9, two_groups: bool = False) -> None:
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)
        self.optimizer, self.momentum, self.two_groups = optimizer, momentum, two_groups
        self.micro_batch_lrs: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.micro_batch_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        loss = F.cross_entropy(self.head(torch.relu(self.body(x))), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params: Any = (
            [{"params": self.body.parameters()}, {"params": self.head.parameters()}]
            if self.two_groups
            else self.parameters()
        )
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=0.01)
        if self.optimizer == "adagrad":
            return torch.optim.Adagrad(params, lr=0.01)
        return torch.optim.SGD(params, lr=0.01, momentum=self.momentum)


class Recorder(L.Callback):
    """What each optimizer step actually used: the LR and momentum of every param group."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.momenta: list[float] = []
        self.steps: list[int] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.steps.append(trainer.global_step)
        self.lrs.append([group["lr"] for group in optimizer.param_groups])
        group = optimizer.param_groups[0]
        self.momenta.append(group["betas"][0] if "betas" in group else group["momentum"])


class MemoryLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append((step, dict(metrics)))


def loader(batches: int = 10, batch_size: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batches * batch_size, 8, generator=generator)
    y = torch.randint(0, 3, (batches * batch_size,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def fit(
    callbacks: list[Any], module: Tiny | None = None, ckpt_path: Any = None, **trainer_args: Any
) -> tuple[L.Trainer, Tiny]:
    module = module or Tiny()
    args: dict[str, Any] = dict(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    args.update(trainer_args)
    trainer = L.Trainer(callbacks=callbacks, **args)
    trainer.fit(module, train_dataloaders=loader(), ckpt_path=ckpt_path)
    return trainer, module


@pytest.mark.parametrize(
    "policy",
    [
        Triangular(0.001, 0.006, step_size=4),
        Triangular2(0.001, 0.006, step_size=3, step_size_down=5),
        ExpRange(0.001, 0.006, 4, 0.97),
        OneCycle(0.1, total_steps=30),
    ],
    ids=["triangular", "triangular2-asymmetric", "exp_range", "one_cycle"],
)
def test_step_k_uses_policy_of_k(policy: Any) -> None:
    recorder = Recorder()
    trainer, _ = fit([CyclicLR(policy), recorder])
    assert trainer.global_step == 30
    assert recorder.steps == list(range(30))
    assert [lrs[0] for lrs in recorder.lrs] == [policy(k) for k in range(30)]


def test_accumulated_micro_batches_share_one_lr() -> None:
    policy = Triangular(0.001, 0.006, step_size=2)
    recorder = Recorder()
    trainer, module = fit([CyclicLR(policy), recorder], accumulate_grad_batches=3, max_epochs=2)
    # 10 batches per epoch, 3 per step: steps of 3, 3, 3 and 1 (the epoch's last partial accumulation)
    assert trainer.global_step == 8
    assert [lrs[0] for lrs in recorder.lrs] == [policy(k) for k in range(8)]
    per_epoch = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    expected = [policy(k) for k in per_epoch] + [policy(k + 4) for k in per_epoch]
    assert module.micro_batch_lrs == expected


def test_step_size_in_epochs_counts_optimizer_steps() -> None:
    clr = CyclicLR(Triangular(0.001, 0.006, step_size_epochs=2))
    fit([clr], accumulate_grad_batches=3, max_epochs=1)
    assert clr.policy.params()["step_size"] == 8  # 2 epochs x ceil(10 / 3) optimizer steps
    assert clr.resolved == {"step_size": 8, "step_size_epochs": None}


def test_per_group_bounds() -> None:
    policy = Triangular([0.001, 0.01], [0.006, 0.06], step_size=4)
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=Tiny(two_groups=True), max_epochs=1)
    assert recorder.lrs == [[policy(k, 0), policy(k, 1)] for k in range(10)]


def test_per_group_bounds_must_match_param_groups() -> None:
    policy = Triangular([0.001, 0.01, 0.1], [0.006, 0.06, 0.6], step_size=4)
    with pytest.raises(ValueError, match="3 param groups, but SGD has 2"):
        fit([CyclicLR(policy)], module=Tiny(two_groups=True), max_epochs=1)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cyclic_momentum_moves_inversely(optimizer: str) -> None:
    policy = Triangular(0.001, 0.006, step_size=5)
    recorder = Recorder()
    fit([CyclicLR(policy, cycle_momentum=True), recorder], module=Tiny(optimizer=optimizer), max_epochs=2)
    expected = [0.95 - 0.1 * policy.momentum_scale(k) for k in range(20)]
    assert recorder.momenta == pytest.approx(expected, rel=1e-12)
    assert recorder.momenta[0] == pytest.approx(0.95) and recorder.momenta[5] == pytest.approx(0.85)


@pytest.mark.parametrize(
    ("module", "message"),
    [(Tiny(optimizer="adagrad"), "but Adagrad has none"), (Tiny(momentum=0.0), "momentum=0")],
)
def test_cyclic_momentum_without_momentum_is_an_error(module: Tiny, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit([CyclicLR(Triangular(0.001, 0.006, step_size=5), cycle_momentum=True)], module=module)


def test_invalid_momentum_bounds() -> None:
    with pytest.raises(ValueError, match=r"^base_momentum=0.99 and max_momentum=0.9"):
        CyclicLR(Triangular(0.001, 0.006, step_size=5), base_momentum=0.99, max_momentum=0.9)


def test_pending_bounds_never_supplied() -> None:
    clr = CyclicLR(Triangular(0.001, 0.006, step_size=5), pending=("base_lr",))
    with pytest.raises(ValueError, match="nothing supplied them"):
        fit([clr])


def test_lr_logged_every_step_despite_log_every_n_steps() -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    logger = MemoryLogger()
    fit([CyclicLR(policy, cycle_momentum=True)], logger=logger, log_every_n_steps=50)
    lr_rows = [(step, row) for step, row in logger.rows if "lr" in row]
    assert [step for step, _ in lr_rows] == list(range(30))
    assert [row["lr"] for _, row in lr_rows] == [policy(k) for k in range(30)]
    assert [row["cycle"] for _, row in lr_rows] == [math.floor(1 + k / 8) for k in range(30)]
    assert all("momentum" in row for _, row in lr_rows)


def _resume_run(tmp_path: Any, policy: Any, stop_after: int, resume_policy: Any = None) -> list[float]:
    """Train ``stop_after`` epochs, checkpoint, resume to 6 epochs; return the LR of every step."""
    first = Recorder()
    trainer, _ = fit([CyclicLR(policy), first], max_epochs=stop_after)
    path = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(path)
    second = Recorder()
    fit([CyclicLR(resume_policy or policy), second], ckpt_path=path, max_epochs=6)
    assert second.steps[0] == stop_after * 10
    return [lrs[0] for lrs in first.lrs + second.lrs]


def test_resume_continues_the_same_cycle(tmp_path: Any) -> None:
    policy = Triangular2(0.001, 0.006, step_size=7)
    uninterrupted = Recorder()
    fit([CyclicLR(policy), uninterrupted], max_epochs=6)
    resumed = _resume_run(tmp_path, policy, stop_after=2)
    assert resumed == [lrs[0] for lrs in uninterrupted.lrs]


def test_resume_keeps_step_size_resolved_at_start(tmp_path: Any) -> None:
    policy = Triangular(0.001, 0.006, step_size_epochs=1.5)  # 15 steps with 10 batches per epoch
    resumed = _resume_run(tmp_path, policy, stop_after=3)
    assert resumed == [Triangular(0.001, 0.006, step_size=15)(k) for k in range(60)]


def test_resume_with_a_changed_configuration_warns_and_uses_it(tmp_path: Any) -> None:
    old, new = Triangular(0.001, 0.006, step_size=5), Triangular(0.001, 0.006, step_size=9)
    warning = "trained with step_size=5; continuing with the configured step_size=9"
    with pytest.warns(UserWarning, match=warning):
        resumed = _resume_run(tmp_path, old, stop_after=2, resume_policy=new)
    assert resumed[20:] == [new(k) for k in range(20, 60)]


def test_resume_with_another_policy_warns_and_uses_it(tmp_path: Any) -> None:
    old, new = Triangular(0.001, 0.006, step_size=5), ExpRange(0.001, 0.006, 5, 0.9)
    with pytest.warns(
        UserWarning, match="trained with policy 'triangular'; continuing with the configured 'exp_range'"
    ):
        resumed = _resume_run(tmp_path, old, stop_after=2, resume_policy=new)
    assert resumed[20:] == [new(k) for k in range(20, 60)]


class StopAfter(L.Callback):
    """Stop the fit after ``epochs`` epochs, as a preempted job would, whatever ``max_epochs`` says."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_final_anneal_and_cycles_resume_exactly(tmp_path: Any) -> None:
    policy = Triangular2(0.001, 0.006, cycles=2, final_anneal=0.2, final_div_factor=10.0)
    uninterrupted = Recorder()
    fit([CyclicLR(policy), uninterrupted], max_epochs=6)
    expected = Triangular2(0.001, 0.006, 15, final_anneal=0.2, final_div_factor=10.0, total_steps=60)
    assert [lrs[0] for lrs in uninterrupted.lrs] == [expected(k) for k in range(60)]
    assert uninterrupted.lrs[-1][0] == pytest.approx(0.0001)
    first, second = Recorder(), Recorder()
    trainer, _ = fit([CyclicLR(policy), first, StopAfter(2)], max_epochs=6)
    trainer.save_checkpoint(tmp_path / "preempted.ckpt")
    fit([CyclicLR(policy), second], ckpt_path=tmp_path / "preempted.ckpt", max_epochs=6)
    assert len(first.lrs) == 20
    assert first.lrs + second.lrs == uninterrupted.lrs


def test_a_run_that_ends_mid_cycle_is_warned_about() -> None:
    with pytest.warns(UserWarning, match=r"30 optimizer steps \(3 epochs\) but a cycle is 8 \(0.8 epochs\)"):
        fit([CyclicLR(Triangular(0.001, 0.006, step_size=4))])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*cycle boundary")
        fit([CyclicLR(Triangular(0.001, 0.006, step_size=5))])  # 30 steps: 3 cycles of 10
        fit([CyclicLR(Triangular(0.001, 0.006, cycles=3))])
        fit([CyclicLR(Triangular(0.001, 0.006, step_size=4, final_anneal=0.1))])

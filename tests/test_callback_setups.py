"""CyclicLR in the Lightning setups users bring: a reused callback, several optimizers under manual
optimization, discriminative param groups, LearningRateMonitor beside it, pickling, runs too short."""

from __future__ import annotations

import pickle
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import BackboneFinetuning, LearningRateMonitor, ModelCheckpoint
from torch import nn
from torch.nn import functional as F

from lightning_clr import CyclicLR, LRRangeTest
from lightning_clr.policies import WSD, OneCycle, Policy, Triangular, Triangular2
from tests.test_callback import MemoryLogger, Recorder, Tiny, fit


class FineTune(Tiny):
    """A backbone at a tenth of the head's LR, as in fine-tuning."""

    def __init__(self, backbone_lr: float = 0.001, head_lr: float = 0.01) -> None:
        super().__init__()
        self.backbone_lr, self.head_lr = backbone_lr, head_lr

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [
                {"params": self.body.parameters(), "lr": self.backbone_lr},
                {"params": self.head.parameters(), "lr": self.head_lr},
            ],
            momentum=0.9,
        )


class TwoOptimizers(L.LightningModule):
    """A GAN-like loop: the 'discriminator' steps every batch, the 'generator' every other batch."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Linear(8, 8)
        self.discriminator = nn.Linear(8, 3)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        x, y = batch
        loss_d = F.cross_entropy(self.discriminator(self.generator(x).detach()), y)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        if batch_idx % 2 == 0:
            loss_g = -F.cross_entropy(self.discriminator(self.generator(x)), y)
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.generator.parameters(), lr=1e-3),
            torch.optim.SGD(self.discriminator.parameters(), lr=1e-2),
        ]


class PerOptimizer(L.Callback):
    """The LR each step of each optimizer used, in order, keyed by the optimizer's position."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {0: [], 1: []}

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        index = next(j for j, o in enumerate(trainer.optimizers) if o is optimizer)
        self.lrs[index].append(optimizer.param_groups[0]["lr"])


# --- a callback reused across fits ----------------------------------------------------------------------


def test_reused_callback_resolves_the_run_length_of_each_fit() -> None:
    clr = CyclicLR(OneCycle(0.1))
    fit([clr], max_epochs=1)  # 10 steps
    recorder = Recorder()
    fit([clr, recorder], max_epochs=3)  # 30 steps: the length of this fit, not the first one's
    assert [lrs[0] for lrs in recorder.lrs] == [OneCycle(0.1, total_steps=30)(k) for k in range(30)]
    assert clr.policy.total_steps == 30


def test_reused_callback_resolves_step_size_epochs_for_each_fit() -> None:
    clr = CyclicLR(Triangular(0.001, 0.006, step_size_epochs=1))
    fit([clr], max_epochs=1)
    recorder = Recorder()
    fit([clr, recorder], max_epochs=2, accumulate_grad_batches=2)  # 5 optimizer steps per epoch
    assert clr.policy.step_size == 5
    assert [lrs[0] for lrs in recorder.lrs] == [Triangular(0.001, 0.006, step_size=5)(k) for k in range(10)]


def test_reused_range_test_tests_each_fit_again() -> None:
    range_test = LRRangeTest(min_lr=1e-4, max_lr=0.5, num_steps=10, progress_bar=False)
    clr = CyclicLR(Triangular(1e-3, 6e-3, step_size=5), pending=("base_lr", "max_lr"))
    fit([range_test, clr], max_epochs=1)
    first = range_test.result
    fit([range_test, clr], module=Tiny(optimizer="adam"), max_epochs=1)
    assert range_test.result is not None and range_test.result is not first
    assert range_test.result.lrs == first.lrs  # the same span, tested again on the new model
    assert clr.policy.base_lr == range_test.bounds.base_lr


def test_update_policy_outside_a_fit_is_configuration() -> None:
    clr = CyclicLR(Triangular(1e-3, 6e-3, step_size=5), pending=("base_lr", "max_lr"))
    clr.update_policy(base_lr=0.002, max_lr=0.008)
    recorder = Recorder()
    fit([clr, recorder], max_epochs=1)
    fit([clr, recorder], max_epochs=1)
    expected = [Triangular(0.002, 0.008, step_size=5)(k) for k in range(10)]
    assert [lrs[0] for lrs in recorder.lrs] == expected * 2


class RaisesAtStep(Tiny):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.trainer.global_step == 2:
            raise RuntimeError("stopped at step 2")
        return super().training_step(batch, batch_idx)


def test_update_policy_after_a_fit_that_raised_is_configuration() -> None:
    """Lightning skips teardown when a fit raises: the next fit must still take what was updated since."""
    clr = CyclicLR(Triangular(0.01, 0.1, step_size=5))
    with pytest.raises(RuntimeError, match="stopped at step 2"):
        fit([clr], module=RaisesAtStep(), max_epochs=1)
    clr.update_policy(max_lr=0.03)
    recorder = Recorder()
    fit([clr, recorder], max_epochs=1)
    assert [lrs[0] for lrs in recorder.lrs] == [Triangular(0.01, 0.03, step_size=5)(k) for k in range(10)]


# --- several optimizers under manual optimization -------------------------------------------------------


def test_each_optimizer_follows_its_own_policy_on_its_own_steps() -> None:
    policies = [Triangular(1e-4, 1e-3, step_size=3), Triangular2(1e-3, 1e-2, step_size=4)]
    clr, recorder = CyclicLR(policies), PerOptimizer()
    fit([clr, recorder], module=TwoOptimizers(), max_epochs=2)  # 20 batches: 10 G steps, 20 D steps
    assert recorder.lrs[0] == [policies[0](n) for n in range(10)]
    assert recorder.lrs[1] == [policies[1](n) for n in range(20)]


def test_one_policy_drives_each_optimizer_on_its_own_count() -> None:
    policy = Triangular(1e-3, 1e-2, step_size=3)
    recorder = PerOptimizer()
    fit([CyclicLR(policy), recorder], module=TwoOptimizers(), max_epochs=1)
    assert recorder.lrs[0] == [policy(n) for n in range(5)]
    assert recorder.lrs[1] == [policy(n) for n in range(10)]


def test_manual_optimization_resumes_each_count(tmp_path: Any) -> None:
    policies = [Triangular(1e-4, 1e-3, step_size=3), Triangular2(1e-3, 1e-2, step_size=4)]
    first = PerOptimizer()
    trainer, _ = fit([CyclicLR(policies), first], module=TwoOptimizers(), max_epochs=1)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    second = PerOptimizer()
    fit([CyclicLR(policies), second], module=TwoOptimizers(), max_epochs=2, ckpt_path=tmp_path / "mid.ckpt")
    assert first.lrs[0] + second.lrs[0] == [policies[0](n) for n in range(10)]
    assert first.lrs[1] + second.lrs[1] == [policies[1](n) for n in range(20)]


class StopAfterFirstEpoch(L.Callback):
    """Interrupts the run after its first epoch, as a preemption would."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        trainer.should_stop = True


@pytest.mark.parametrize(
    "policies",
    [
        [Triangular(1e-4, 1e-3, step_size=3), Triangular2(1e-3, 1e-2, step_size_epochs=1)],
        [Triangular(1e-4, 1e-3, step_size_epochs=1), OneCycle(1e-2)],
    ],
    ids=["step-size-in-epochs", "one-cycle"],
)
def test_each_policy_resumes_with_its_own_start_up_values(tmp_path: Any, policies: list[Policy]) -> None:
    """Each policy resolves its own values at start-up (a step size, total_steps) and gets them back on a
    resume: the resumed run is the uninterrupted one, optimizer by optimizer."""
    whole = PerOptimizer()
    fit([CyclicLR(policies), whole], module=TwoOptimizers(), max_epochs=2)
    first, then = PerOptimizer(), PerOptimizer()
    trainer, _ = fit([CyclicLR(policies), first, StopAfterFirstEpoch()], module=TwoOptimizers(), max_epochs=2)
    trainer.save_checkpoint(tmp_path / "epoch.ckpt")
    fit([CyclicLR(policies), then], module=TwoOptimizers(), max_epochs=2, ckpt_path=tmp_path / "epoch.ckpt")
    assert first.lrs[0] + then.lrs[0] == whole.lrs[0]
    assert first.lrs[1] + then.lrs[1] == whole.lrs[1]
    assert len(whole.lrs[0]) == 10 and len(whole.lrs[1]) == 20


def test_policies_must_match_the_optimizers() -> None:
    policies = [Triangular(1e-4, 1e-3, step_size=3)] * 3
    with pytest.raises(ValueError, match="given 3 policies for 2 optimizers"):
        fit([CyclicLR(policies)], module=TwoOptimizers(), max_epochs=1)


def test_two_optimizers_log_their_own_names() -> None:
    logger = MemoryLogger()
    fit([CyclicLR(Triangular(1e-3, 1e-2, step_size=3))], module=TwoOptimizers(), max_epochs=1, logger=logger)
    keys = set().union(*(row.keys() for _, row in logger.rows))
    assert {"lr/opt0-group0", "lr/opt1-group0", "cycle/opt0", "cycle/opt1"} <= keys


# --- discriminative param groups ------------------------------------------------------------------------


def test_scalar_bounds_keep_the_ratio_between_param_groups() -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=FineTune(backbone_lr=0.001, head_lr=0.01), max_epochs=1)
    assert recorder.lrs == [[policy(k) * 0.1, policy(k)] for k in range(10)]


def test_param_group_ratio_survives_resume(tmp_path: Any) -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    trainer, _ = fit([CyclicLR(policy)], module=FineTune(), max_epochs=1)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=FineTune(), max_epochs=2, ckpt_path=tmp_path / "mid.ckpt")
    assert recorder.lrs == [[policy(k) * 0.1, policy(k)] for k in range(10, 20)]


def test_resumed_param_groups_keep_their_exact_ratio(tmp_path: Any) -> None:
    """The ratio is kept in the checkpoint, not derived again from the LRs restored (off by an ulp)."""
    policy = Triangular(0.002, 0.01, step_size=4, final_anneal=0.2)
    whole = Recorder()
    fit([CyclicLR(policy), whole], module=FineTune(), max_epochs=2)
    checkpoints = ModelCheckpoint(tmp_path, filename="{step}", every_n_train_steps=16, save_top_k=-1)
    fit([CyclicLR(policy), checkpoints], module=FineTune(), max_epochs=2, enable_checkpointing=True)
    then = Recorder()
    fit([CyclicLR(policy), then], module=FineTune(), max_epochs=2, ckpt_path=tmp_path / "step=16.ckpt")
    assert then.lrs == whole.lrs[16:]


def test_extending_a_run_that_ended_at_lr_zero(tmp_path: Any) -> None:
    policy = WSD(0.01)  # final_lr_ratio 0: the checkpoint's optimizer holds LR 0 in every group
    trainer, _ = fit([CyclicLR(policy)], module=FineTune(), max_epochs=2)
    trainer.save_checkpoint(tmp_path / "done.ckpt")
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=FineTune(), max_epochs=4, ckpt_path=tmp_path / "done.ckpt")
    planned = policy.replace(total_steps=40)
    assert recorder.lrs == [[planned(k) * 0.1, planned(k)] for k in range(20, 40)]


class Unfreezes(FineTune):
    """Trains its head first; Lightning's BackboneFinetuning adds the backbone's param group at epoch 1."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = self.body

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.head.parameters() if p.requires_grad], lr=0.01, momentum=0.9)


def test_a_param_group_added_during_the_run_keeps_its_ratio() -> None:
    policy = Triangular(0.001, 0.01, step_size=5)
    recorder, logger = Recorder(), MemoryLogger()
    unfreeze = BackboneFinetuning(unfreeze_backbone_at_epoch=1, lambda_func=lambda epoch: 1.0)
    fit([CyclicLR(policy), unfreeze, recorder], module=Unfreezes(), max_epochs=2, logger=logger)
    assert recorder.lrs[:10] == [[policy(k)] for k in range(10)]
    # added at step 10 with a tenth of the head's LR then (BackboneFinetuning's initial_denom_lr): that ratio
    ratio = policy(10) / 10 / policy(10)
    assert recorder.lrs[10:] == [[policy(k), policy(k) * ratio] for k in range(10, 20)]
    assert any("lr/group1" in row for _, row in logger.rows)


@pytest.mark.parametrize(
    "every_n_train_steps", [None, 13, 15], ids=["epoch-end", "mid-epoch", "past-new-end"]
)
def test_a_resume_with_shorter_epochs_plans_the_steps_it_takes(
    tmp_path: Any, every_n_train_steps: int | None
) -> None:
    """Epochs of 10 steps, then of 5 (another batch size, data set or number of devices): the plan is the
    steps taken plus the epochs left at their new length, so the end phase is where the run ends. A
    checkpoint 5 steps into an epoch that now has 5 makes Lightning run that epoch again: the epoch after
    it re-plans."""
    policy = OneCycle(0.1)
    checkpoints = ModelCheckpoint(tmp_path, filename="{step}", every_n_train_steps=every_n_train_steps)
    fit([CyclicLR(policy), checkpoints], max_epochs=2, enable_checkpointing=True)
    clr, recorder = CyclicLR(policy), Recorder()
    path = tmp_path / f"step={every_n_train_steps or 20}.ckpt"
    trainer, _ = fit([clr, recorder], max_epochs=4, limit_train_batches=5, ckpt_path=path)
    taken = {None: 30, 13: 25, 15: 30}[every_n_train_steps]
    assert trainer.global_step == taken
    assert clr.state_dict()["run_steps"] == [taken]
    planned = policy.replace(total_steps=taken)
    exact_from = 20 if every_n_train_steps == 15 else (every_n_train_steps or 20)
    assert [lrs[0] for lrs in recorder.lrs[exact_from - taken :]] == [
        planned(k) for k in range(exact_from, taken)
    ]
    assert recorder.lrs[-1][0] == pytest.approx(0.1 / 25 / 1e4)


def test_equal_param_groups_get_the_bounds() -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=FineTune(backbone_lr=0.01, head_lr=0.01), max_epochs=1)
    assert recorder.lrs == [[policy(k), policy(k)] for k in range(10)]


def test_range_test_bounds_keep_the_ratio_between_param_groups() -> None:
    range_test = LRRangeTest(min_lr=1e-4, max_lr=0.5, num_steps=10, progress_bar=False)
    clr = CyclicLR(Triangular(1e-3, 6e-3, step_size=5), pending=("base_lr", "max_lr"))
    recorder = Recorder()
    fit([range_test, clr, recorder], module=FineTune(), max_epochs=1)
    assert all(low / high == pytest.approx(0.1) for low, high in recorder.lrs)


# --- LearningRateMonitor beside CyclicLR ----------------------------------------------------------------


@pytest.mark.parametrize("monitor_first", [True, False], ids=["monitor-before", "monitor-after"])
def test_learning_rate_monitor_logs_the_lr_each_step_used(monitor_first: bool) -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    monitor, clr, logger = LearningRateMonitor(logging_interval="step"), CyclicLR(policy), MemoryLogger()
    callbacks = [monitor, clr] if monitor_first else [clr, monitor]
    fit(callbacks, logger=logger, log_every_n_steps=1, accumulate_grad_batches=2)
    logged = [(step, row["lr-SGD"]) for step, row in logger.rows if "lr-SGD" in row]
    assert len(logged) == 30  # every micro-batch of the 15 accumulated steps
    assert logged == [(step, policy(step)) for step, _ in logged]
    assert sorted({step for step, _ in logged}) == list(range(15))


# --- mixed precision -------------------------------------------------------------------------------------


def test_mixed_precision_steps_use_the_policy() -> None:
    policy = Triangular(0.001, 0.006, step_size=4)
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], precision="bf16-mixed", accumulate_grad_batches=2)
    assert [lrs[0] for lrs in recorder.lrs] == [policy(k) for k in range(15)]


def test_steps_the_grad_scaler_skips_still_advance_the_schedule() -> None:
    """fp16 with a GradScaler that overflows at first: the skipped steps count, as ``global_step`` and torch's
    own schedulers count them, so batch k still uses policy(k) and the run ends where it was planned."""
    from lightning.pytorch.plugins import MixedPrecision

    policy = Triangular(0.001, 0.006, step_size=4)
    recorder = Recorder()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    trainer, _ = fit([CyclicLR(policy), recorder], plugins=[MixedPrecision("16-mixed", "cpu", scaler)])
    assert scaler.get_scale() < 2.0**30  # it halved on each of many overflowing (skipped) steps
    assert trainer.global_step == 30
    assert [lrs[0] for lrs in recorder.lrs] == [policy(k) for k in range(30)]


# --- pickling and runs of the wrong length --------------------------------------------------------------


def test_a_fitted_callback_pickles_small() -> None:
    clr = CyclicLR(Triangular(0.001, 0.006, step_size=4))
    fit([clr], module=Tiny(), max_epochs=1)
    assert len(pickle.dumps(clr)) < 2048  # no optimizer, and not the model the Trainer bound as clr.log
    assert pickle.loads(pickle.dumps(clr)).policy == clr.policy


def test_a_step_size_longer_than_the_run_warns() -> None:
    with pytest.warns(UserWarning, match=r"step_size=50 is longer than the run \(30 optimizer steps\)"):
        fit([CyclicLR(Triangular(0.001, 0.006, step_size=50))])


def test_total_steps_longer_than_the_run_warns() -> None:
    with pytest.warns(UserWarning, match=r"total_steps=100 is longer than the run \(30 optimizer steps\)"):
        fit([CyclicLR(OneCycle(0.1, total_steps=100))])


def test_one_cycle_without_a_run_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="total_steps"):
        fit([CyclicLR(OneCycle(0.1))], max_epochs=-1, max_steps=-1, limit_train_batches=2)

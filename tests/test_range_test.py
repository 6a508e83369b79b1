"""The LR range test: its LR schedule, the suggestion rule, and that it leaves no trace."""

from __future__ import annotations

import copy
import csv
import logging
import math
import random
from functools import partial
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr.app.models import ClassificationModule
from lightning_clr.callback import CyclicLR
from lightning_clr.compat import fit_resume_options
from lightning_clr.policies import Triangular
from lightning_clr.range_test import CLRTuner, LRRangeTest, RangeTestResult, lr_schedule
from lightning_clr.suggest import Bounds, smooth, suggest_bounds, suggest_step_size

# --- a tiny model on synthetic data ----------------------------------------------------------------------


class TinyNet(nn.Module):
    """Linear -> BatchNorm (buffers) -> ReLU -> Dropout (draws from the RNG) -> Linear."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Model(ClassificationModule):
    """ClassificationModule that counts its steps, records the LRs it trains with and can fail on demand."""

    def __init__(self, group_lrs: tuple[float, ...] = (0.05,)) -> None:
        super().__init__(TinyNet(), optimizer=partial(torch.optim.SGD, momentum=0.9))
        self.group_lrs = group_lrs
        self.train_calls = 0
        self.val_calls = 0
        self.seen_lrs: list[list[float]] = []
        self.fail_at: int | None = None

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and self.train_calls == self.fail_at:
            raise RuntimeError("boom")
        self.train_calls += 1
        self.seen_lrs.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.val_calls += 1
        return super().validation_step(batch, batch_idx)

    def configure_optimizers(self):
        first, second = self.net.layers[1], self.net.layers[5]
        params = [list(first.parameters()) + list(self.net.layers[2].parameters()), list(second.parameters())]
        if len(self.group_lrs) == 1:
            return torch.optim.SGD(self.parameters(), lr=self.group_lrs[0], momentum=0.9)
        groups = [{"params": p, "lr": lr} for p, lr in zip(params, self.group_lrs, strict=True)]
        return torch.optim.SGD(groups, momentum=0.9)


def loaders(n: int = 256, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, generator=generator)
    y = (x.flatten(1) @ torch.randn(8, 3, generator=generator)).argmax(1)
    train = DataLoader(TensorDataset(x[: n * 3 // 4], y[: n * 3 // 4]), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[n * 3 // 4 :], y[n * 3 // 4 :]), batch_size=batch_size)
    return train, val


def make_trainer(**kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=2,
    )
    return L.Trainer(**{**options, **kwargs})


class FakeCLR(Callback):
    """Anything with ``update_policy`` is a target, like CyclicLR."""

    def __init__(self, pending=("base_lr", "max_lr")) -> None:
        self.updates: list[dict] = []
        self.pending = set(pending)
        self.policy = SimpleNamespace(step_size_epochs=None)

    def update_policy(self, **changes) -> None:
        self.updates.append(changes)


# --- what must come back bit for bit ---------------------------------------------------------------------


def snapshot(trainer: L.Trainer, model: L.LightningModule) -> dict:
    optimizer = trainer.optimizers[0]
    return {
        "tensors": {k: v.clone() for k, v in [*model.named_parameters(), *model.named_buffers()]},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "group_lrs": [g["lr"] for g in optimizer.param_groups],
        "metrics": {
            name: (copy.deepcopy(m.metric_state), m._update_count)
            for name, m in model.named_modules()
            if hasattr(m, "metric_state")
        },
        "modes": {name: m.training for name, m in model.named_modules()},
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "global_step": trainer.global_step,
        "current_epoch": trainer.current_epoch,
        "loop": copy.deepcopy(trainer.fit_loop.state_dict()),
        "callbacks": list(trainer.callbacks),
        "loggers": list(trainer.loggers),
    }


def assert_same(a: dict, b: dict) -> None:
    assert a["tensors"].keys() == b["tensors"].keys()
    for name, tensor in a["tensors"].items():
        assert torch.equal(tensor, b["tensors"][name]), name
    for name, grad in a["grads"].items():
        other = b["grads"][name]
        assert (grad is None and other is None) or torch.equal(grad, other), name
    assert a["group_lrs"] == b["group_lrs"]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][key][name]))
    for name, (state, count) in a["metrics"].items():
        assert count == b["metrics"][name][1], name
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["metrics"][name][0][key])), name
    assert a["modes"] == b["modes"]
    assert a["python"] == b["python"]
    assert all(np.array_equal(x, y) for x, y in zip(a["numpy"], b["numpy"], strict=True))
    assert torch.equal(a["torch"], b["torch"])
    assert (a["global_step"], a["current_epoch"]) == (b["global_step"], b["current_epoch"])
    assert a["loop"] == b["loop"]
    assert a["callbacks"] == b["callbacks"] and a["loggers"] == b["loggers"]


class Before(Callback):
    """Gives the optimizer momentum buffers, the metrics some state and a frozen submodule; then snapshots."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def on_fit_start(self, trainer, pl_module) -> None:
        x, y = next(iter(trainer.train_dataloader or loaders()[0]))
        loss = nn.functional.cross_entropy(pl_module(x), y)
        loss.backward()
        trainer.optimizers[0].step()  # momentum buffers; the gradients stay too
        pl_module.train_acc.update(pl_module(x), y)
        pl_module.net.layers[4].eval()  # a submodule left in eval mode must stay so
        pl_module.fail_at = None if self.fail_at is None else pl_module.train_calls + self.fail_at
        self.state = snapshot(trainer, pl_module)


class After(Callback):
    def on_fit_start(self, trainer, pl_module) -> None:
        self.state = snapshot(trainer, pl_module)


def fit_between_probes(range_test: LRRangeTest, fail_at: int | None = None) -> tuple[Before, After, Model]:
    L.seed_everything(1)
    model, (train, val) = Model(group_lrs=(0.05, 0.02)), loaders()
    trainer = make_trainer(max_steps=3)
    trainer.fit(model, train, val)  # the counters are not at zero when the test runs
    # fitting again at max_steps: fit-start hooks (and the test) run, then the loop has nothing to do
    before, after = Before(fail_at), After()
    trainer.callbacks = [before, range_test, after, *trainer.callbacks]
    if fail_at is None:
        trainer.fit(model, train, val)
    else:
        with pytest.raises(RuntimeError, match="boom"):
            trainer.fit(model, train, val)
        after.state = snapshot(trainer, model)
    return before, after, model


# --- the LR schedule -------------------------------------------------------------------------------------


#: One pass of the test, its length as given: what the tests below count steps and calls of.
ONE_PASS = {"passes": 1, "min_steps": 2}


def test_linear_lrs_match_the_formula_and_are_the_ones_trained_with():
    model, (train, _) = Model(), loaders()
    result = CLRTuner(make_trainer()).range_test(
        model, train, min_lr=1e-3, max_lr=0.5, num_steps=7, widen=0, **ONE_PASS
    )
    n = 7
    assert result.lrs == [1e-3 + (0.5 - 1e-3) * i / (n - 1) for i in range(n)]
    assert [lrs[0] for lrs in model.seen_lrs] == result.lrs
    assert result.lrs == lr_schedule(1e-3, 0.5, n, "linear")
    assert len(result.losses) == len(result.smoothed) == n and result.stop_reason is None


def test_exponential_mode_and_accumulation():
    model, (train, _) = Model(), loaders()
    trainer = make_trainer(accumulate_grad_batches=2)
    result = CLRTuner(trainer).range_test(
        model,
        train,
        min_lr=1e-4,
        max_lr=1e-1,
        num_steps=5,
        mode="exponential",
        divergence_threshold=None,
        widen=0,
        **ONE_PASS,
    )
    assert result.lrs == [1e-4 * (1e-1 / 1e-4) ** (i / 4) for i in range(5)]
    assert result.lrs[-1] == pytest.approx(0.1)
    assert model.train_calls == 10  # two micro-batches per optimizer step


def test_num_epochs_counts_optimizer_steps_of_the_train_loader():
    train, _ = loaders()  # 192 samples / 32 = 6 batches per epoch
    result = CLRTuner(make_trainer()).range_test(Model(), train, num_epochs=1.5, **ONE_PASS)
    assert len(result.lrs) == 9 and result.steps_per_epoch == 6
    result = CLRTuner(make_trainer(limit_train_batches=4)).range_test(Model(), train, max_lr=1.0, **ONE_PASS)
    assert len(result.lrs) == 16  # the default, 4 epochs, of the limited epoch


def test_per_group_lrs_keep_their_ratio_during_the_test():
    model, (train, _) = Model(group_lrs=(0.1, 0.01)), loaders()
    CLRTuner(make_trainer()).range_test(model, train, min_lr=0.01, max_lr=0.2, num_steps=4)
    for lr0, lr1 in model.seen_lrs:
        assert lr1 == pytest.approx(lr0 * 0.1)


@pytest.mark.parametrize("group_lrs", [(0.01, 0.1), (0.0, 0.1)], ids=["backbone-first", "frozen-first"])
def test_the_span_and_bounds_are_the_largest_groups_and_the_others_keep_their_ratio(group_lrs):
    """As CyclicLR's scalar bounds: the test's LR is the largest group's; a group at LR 0 stays at 0."""
    model, (train, _) = Model(group_lrs=group_lrs), loaders()
    target = FakeCLR()
    range_test = LRRangeTest(num_steps=8, passes=1, widen=0, update=("base_lr", "max_lr"))
    make_trainer(max_steps=1, callbacks=[range_test, target]).fit(model, train)
    assert range_test.result.lrs[-1] == pytest.approx(100 * 0.1)  # 100 x the largest LR
    ratio = group_lrs[0] / 0.1
    assert [lr0 for lr0, _ in model.seen_lrs[:8]] == pytest.approx(
        [lr1 * ratio for _, lr1 in model.seen_lrs[:8]]
    )
    (update,) = target.updates
    bounds = range_test.bounds
    assert update["max_lr"] == pytest.approx([bounds.max_lr * ratio, bounds.max_lr])


def test_a_negative_loss_that_falls_is_not_divergence():
    """A loss with an offset (an NLL can be negative) gives the curve of the loss without it."""
    curves = []
    for offset in (0.0, -100.0):
        torch.manual_seed(0)  # the same weights, batches and dropout for both
        model = Model()
        model.training_step = lambda batch, batch_idx, m=model, o=offset: (
            Model.training_step(m, batch, batch_idx) + o
        )
        tuner = CLRTuner(make_trainer())
        curves.append(tuner.range_test(model, loaders()[0], max_lr=0.3, num_steps=30, passes=1, widen=0))
    plain, shifted = curves
    assert plain.stop_reason is None and shifted.stop_reason is None  # it stopped at step 1
    assert shifted.smoothed == pytest.approx([value - 100 for value in plain.smoothed], abs=1e-4)
    assert shifted.suggest().max_lr == pytest.approx(plain.suggest().max_lr, rel=1e-3)


def test_divergence_of_a_negative_loss_still_stops_the_test():
    from lightning_clr.range_test.loop import diverged

    assert diverged(-80.0, best=-100.0, first=-90.0, threshold=4.0) is None  # 20 above: within 3 x 100
    assert diverged(250.0, best=-100.0, first=-90.0, threshold=4.0).startswith("smoothed loss 250 rose")
    assert diverged(8.1, best=2.0, first=2.5, threshold=4.0) == "smoothed loss 8.1 > 4.0 x best 2"


def test_the_optimizer_keeps_its_param_group_objects():
    """A model holding its param group (for a warm-up of its own) still holds the live one after the test."""
    model, (train, _) = Model(), loaders()
    held = {}

    class Holds(Callback):
        def on_fit_start(self, trainer, pl_module):
            held["group"] = trainer.optimizers[0].param_groups[0]

    range_test = LRRangeTest(num_steps=6, passes=2, widen=0)
    trainer = make_trainer(max_steps=2, callbacks=[Holds(), range_test])
    trainer.fit(model, train)
    assert trainer.optimizers[0].param_groups[0] is held["group"]
    assert held["group"]["lr"] == 0.05


# --- the suggestion rule (pure) --------------------------------------------------------------------------


def test_suggestion_on_a_noisy_u_shaped_loss():
    rng = np.random.default_rng(0)
    lrs = np.linspace(1e-4, 1.0, 300)
    losses = 0.3 + np.minimum(0.5 * np.log(lrs / 0.6) ** 2, 1.0) + rng.normal(0, 0.03, lrs.size)  # log-LR U
    bounds = suggest_bounds(lrs, losses)
    assert bounds.peak_lr == pytest.approx(0.6, abs=0.05)
    assert bounds.max_lr == pytest.approx(0.4 * bounds.peak_lr)
    assert bounds.base_lr == pytest.approx(bounds.max_lr / 3)
    # the single noisiest point does not decide: the parabola through the bottom is nearer the true best
    assert abs(bounds.peak_lr - 0.6) < 0.02 < abs(lrs[np.argmin(losses)] - 0.6)


def test_suggestion_on_an_accuracy_curve():
    rng = np.random.default_rng(1)
    lrs = np.linspace(0.0, 0.8, 40)
    accuracy = np.clip(0.95 - 8 * (lrs - 0.3) ** 2, 0.1, None) + rng.normal(0, 0.01, lrs.size)
    bounds = suggest_bounds(lrs, accuracy, mode="max", max_fraction=0.5, base_divisor=4)
    assert bounds.peak_lr == pytest.approx(0.3, abs=0.05)
    assert bounds.max_lr / bounds.base_lr == pytest.approx(4)


def test_suggestion_ignores_everything_from_the_first_nan():
    lrs = np.linspace(0.01, 1.0, 100)
    losses = 2.0 - lrs  # still falling when it blows up at lr 0.5
    losses[lrs > 0.5] = np.nan
    losses[lrs > 0.7] = 0.0  # garbage after the NaN must not count
    bounds = suggest_bounds(lrs, losses)
    assert bounds.peak_lr <= 0.5
    assert bounds.peak_lr == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="finite point"):
        suggest_bounds([0.1, 0.2, 0.3], [1.0, math.inf, 0.5])


def test_smoothing_is_centred():
    bump = np.exp(-(((np.arange(101) - 60) / 8.0) ** 2))
    assert np.argmax(smooth(bump, 21)) == 60  # an EMA would move it to the right
    assert smooth([2.0] * 5, 3).tolist() == [2.0] * 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up"}, "mode='up'"),
        ({"max_fraction": 0.0}, "max_fraction=0.0"),
        ({"base_divisor": 1.0}, "base_divisor=1.0"),
        ({"window": 1.0}, "window=1.0"),
    ],
)
def test_suggestion_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        suggest_bounds([0.1, 0.2, 0.3], [3.0, 2.0, 1.0], **kwargs)


def test_step_size_rule():
    assert suggest_step_size(100, total_steps=4000) == 500  # 4 cycles of 2 x 5 epochs
    assert suggest_step_size(100, total_steps=800) == 200  # clipped up to 2 epochs
    assert suggest_step_size(100, total_steps=100_000) == 1000  # clipped down to 10 epochs
    assert suggest_step_size(100) == 400  # unknown run length: 4 epochs
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        suggest_step_size(0)


# --- it changes nothing it should not --------------------------------------------------------------------


def test_everything_is_restored_after_a_normal_test():
    range_test = LRRangeTest(
        min_lr=1e-3, max_lr=0.3, num_steps=10, monitor="val_acc", val_check_interval=3, widen=0, **ONE_PASS
    )
    before, after, model = fit_between_probes(range_test)
    assert range_test.result is not None and len(range_test.result.lrs) == 10
    assert range_test.result.stop_reason is None
    assert model.train_calls == 3 + 10
    assert_same(before.state, after.state)


def test_everything_is_restored_after_divergence():
    range_test = LRRangeTest(min_lr=1e-3, max_lr=1e4, num_steps=40)
    before, after, _ = fit_between_probes(range_test)
    result = range_test.result
    assert result.stop_reason is not None and len(result.lrs) < 40
    assert range_test.bounds.max_lr < result.lrs[-1]  # read from the finite part before it diverged
    assert_same(before.state, after.state)


def test_everything_is_restored_after_an_exception_in_training_step():
    range_test = LRRangeTest(min_lr=1e-3, max_lr=0.3, num_steps=10)
    before, after, model = fit_between_probes(range_test, fail_at=4)
    assert model.train_calls == 3 + 4 and range_test.result is None
    assert_same(before.state, after.state)


def test_passes_start_from_the_same_weights_and_read_the_median_curve():
    model, (train, _) = Model(), loaders()
    result = CLRTuner(make_trainer()).range_test(
        model, train, min_lr=1e-3, max_lr=0.3, num_steps=6, passes=3, widen=0
    )
    assert [lrs[0] for lrs in model.seen_lrs] == result.lrs * 3  # three passes over the same LRs
    assert len(result.pass_losses) == 3 and len({tuple(p) for p in result.pass_losses}) == 3  # other batches
    assert result.losses == [float(np.median(step)) for step in zip(*result.pass_losses, strict=True)]
    bounds = result.suggest()
    alone = [suggest_bounds(result.lrs, losses).max_lr for losses in result.pass_losses]
    assert bounds.spread == (min(alone), max(alone))
    assert "max_lr of single passes" in str(bounds)


def test_everything_is_restored_after_several_passes():
    range_test = LRRangeTest(min_lr=1e-3, max_lr=0.3, num_steps=5, passes=3, widen=0)
    before, after, model = fit_between_probes(range_test)
    assert model.train_calls == 3 + 15
    assert_same(before.state, after.state)


def test_max_passes_adds_passes_until_resampling_them_holds_max_lr_within_stable_within(monkeypatch, caplog):
    spreads = iter([1.5, 1.3, 1.05])  # what resampling the passes gives after 3, 4 and 5 passes
    monkeypatch.setattr(RangeTestResult, "resampled_spread", lambda self: next(spreads))
    settings = {"min_lr": 1e-3, "max_lr": 0.3, "num_steps": 6, "passes": 3, "widen": 0, "stable_within": 1.1}
    L.seed_everything(0)
    model, (train, _) = Model(), loaders()
    with caplog.at_level(logging.INFO):
        result = CLRTuner(make_trainer()).range_test(model, train, max_passes=8, **settings)
    assert len(result.pass_losses) == 5 and len(model.seen_lrs) == 5 * 6  # 3, then one at a time
    assert "5 passes; resampling them moves max_lr by 1.05x (within stable_within=1.1)" in caplog.text
    # the passes are those a test of exactly 5 runs, in its order: adding one never redraws the others
    L.seed_everything(0)
    model, (train, _) = Model(), loaders()
    fixed = CLRTuner(make_trainer()).range_test(model, train, **{**settings, "passes": 5})
    assert result.pass_losses == fixed.pass_losses
    monkeypatch.setattr(RangeTestResult, "resampled_spread", lambda self: 1.0)
    single = CLRTuner(make_trainer()).range_test(Model(), train, max_passes=3, **{**settings, "passes": 1})
    assert len(single.pass_losses) == 2  # one pass cannot disagree with itself: a second one to judge by
    monkeypatch.setattr(RangeTestResult, "resampled_spread", lambda self: 2.0)
    capped = CLRTuner(make_trainer()).range_test(Model(), train, max_passes=4, **settings)
    assert len(capped.pass_losses) == 4 and "(still above stable_within=1.1)" in caplog.text


def test_resampled_spread_is_how_far_the_median_curve_moves_with_other_passes():
    lrs = np.linspace(0.01, 1.0, 100).tolist()
    noise = np.random.default_rng(0).normal(0, 0.002, (6, 100))
    dips = [0.3, 0.31, 0.32, 0.7, 0.71, 0.72]  # half the passes lowest near 0.3, half near 0.7
    split = [((np.log(lrs) - np.log(at)) ** 2 + e).tolist() for at, e in zip(dips, noise, strict=True)]
    agreeing = [((np.log(lrs) - np.log(0.3)) ** 2 + e).tolist() for e in noise]
    split_result = RangeTestResult(lrs, [], [], pass_losses=split)
    assert RangeTestResult(lrs, [], [], pass_losses=agreeing).resampled_spread() < 1.05
    assert split_result.resampled_spread() > 2.0  # the median follows one dip or the other
    state = np.random.get_state()[1].copy()
    assert split_result.resampled_spread() == split_result.resampled_spread()  # its own seeded generator
    assert (np.random.get_state()[1] == state).all()  # ... and not the global one
    assert RangeTestResult(lrs, [], [], pass_losses=agreeing[:1]).resampled_spread() == 1.0  # one pass
    nan = [math.nan] * 100
    early = RangeTestResult(lrs, [], [], pass_losses=[*agreeing[:3], nan, nan])  # two diverged at once
    assert 1.0 <= early.resampled_spread() < math.inf  # draws of mostly diverged passes are left out
    assert RangeTestResult(lrs, [], [], pass_losses=[nan, nan]).resampled_spread() == math.inf
    stopped = RangeTestResult(lrs, agreeing[0], [], pass_losses=[agreeing[0], [0.5, math.nan], agreeing[1]])
    assert stopped.suggest().spread is not None  # a pass that diverged at its second step reads as none


def test_max_passes_with_a_monitored_metric_and_passes_that_diverge_at_other_steps():
    model, (train, val) = Model(), loaders()
    settings = {"monitor": "val_acc", "val_check_interval": 4, "num_val_batches": 1, "widen": 0}
    result = CLRTuner(make_trainer()).range_test(
        model, train, val, max_lr=20.0, num_steps=40, passes=3, max_passes=6, **settings
    )
    assert 3 <= len(result.pass_losses) <= 6 and result.stop_reason  # some passes diverged
    assert len(result.suggest().spread) == 2
    curves = result.pass_curves()
    assert all(len(lrs) == len(values) <= len(result.metric_steps) for lrs, values, _ in curves)


def test_max_passes_equal_to_passes_adds_none(caplog):
    with caplog.at_level(logging.INFO):
        result = CLRTuner(make_trainer()).range_test(
            Model(), loaders()[0], min_lr=1e-3, max_lr=0.3, num_steps=6, passes=3, max_passes=3, widen=0
        )
    assert len(result.pass_losses) == 3 and "resampling them" not in caplog.text


def test_a_curve_still_falling_at_the_top_widens_the_span_then_warns(monkeypatch):
    train, _ = loaders()
    falling = RangeTestResult(lrs=[0.1, 0.2, 0.3, 0.4], losses=[3.0, 2.0, 1.5, 1.0], smoothed=[0.0] * 4)
    turned = RangeTestResult(lrs=[0.1, 0.2, 0.3, 0.4], losses=[3.0, 1.0, 2.0, 4.0], smoothed=[0.0] * 4)
    assert falling.best_at_top() and not turned.best_at_top()
    monkeypatch.setattr(RangeTestResult, "best_at_top", lambda self, bounds=None: self.lrs[-1] < 5e-4)
    widened = CLRTuner(make_trainer()).range_test(Model(), train, min_lr=1e-5, max_lr=1e-4, num_steps=4)
    assert widened.lrs[-1] == pytest.approx(9e-4)  # tested again up to 3x, twice: then it turned
    # at the first test's LR per step (3e-5), so the LR rises as fast: 4 steps, then 11, then 32
    assert len(widened.lrs) == 32
    assert np.diff(widened.lrs) == pytest.approx(np.full(31, (1e-4 - 1e-5) / 3), rel=0.05)
    monkeypatch.setattr(RangeTestResult, "best_at_top", lambda self, bounds=None: True)
    with pytest.warns(UserWarning, match=r"top of its span \(max_lr=0.0003\).*raise range_test.max_lr"):
        CLRTuner(make_trainer()).range_test(Model(), train, min_lr=1e-5, max_lr=1e-4, num_steps=4, widen=1)


def test_other_callbacks_do_not_see_the_test():
    class Counter(Callback):
        calls = 0

        def on_train_batch_start(self, *args) -> None:
            self.calls += 1

        def on_before_backward(self, *args) -> None:
            self.calls += 1

        def on_before_optimizer_step(self, *args) -> None:
            self.calls += 1

        def on_fit_start(self, *args) -> None:  # runs after the test, before any training
            self.calls_at_fit_start = self.calls

    model, (train, _) = Model(), loaders()
    counter = Counter()
    make_trainer(max_steps=1, callbacks=[LRRangeTest(num_steps=5, widen=0, **ONE_PASS), counter]).fit(
        model, train
    )
    assert model.train_calls == 5 + 1
    assert counter.calls_at_fit_start == 0 and counter.calls == 3


def test_tuner_writes_nothing_and_runs_no_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, (train, val) = Model(), loaders()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, enable_progress_bar=False, enable_model_summary=False
    )
    callbacks, loggers = list(trainer.callbacks), list(trainer.loggers)
    result = CLRTuner(trainer).range_test(model, train, val, num_steps=6)
    assert len(result.lrs) == 6
    assert model.val_calls == 0
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no lightning_logs/
    assert trainer.callbacks == callbacks and trainer.loggers == loggers
    assert trainer.global_step == 0 and trainer.current_epoch == 0
    trainer.fit(model, train)  # the trainer is fit for the real run afterwards
    assert trainer.global_step == 6 and (tmp_path / "lightning_logs").is_dir()


def test_monitoring_a_validation_metric_is_bounded():
    model, (train, val) = Model(), loaders()
    result = CLRTuner(make_trainer()).range_test(
        model,
        train,
        val,
        max_lr=0.5,  # low enough that no pass diverges before its last evaluation
        num_steps=12,
        monitor="val_acc",
        val_check_interval=4,
        num_val_batches=1,
        widen=0,
        **ONE_PASS,
    )
    assert result.metric_steps == [3, 7, 11] and model.val_calls == 3
    assert result.monitor_mode == "max" and all(0 <= v <= 1 for v in result.metric_values)
    lrs, _, mode = result.curve()
    assert lrs == [result.lrs[i] for i in (3, 7, 11)] and mode == "max"
    assert result.suggest().max_lr <= max(lrs)


def test_manual_optimization_is_refused():
    model, (train, _) = Model(), loaders()
    model.automatic_optimization = False
    with pytest.raises(ValueError, match="automatic optimization"):
        CLRTuner(make_trainer()).range_test(model, train, num_steps=4)


def test_a_monitor_that_is_not_logged_is_reported():
    model, (train, val) = Model(), loaders()
    with pytest.raises(ValueError, match="monitor='val_f1' was not logged"):
        CLRTuner(make_trainer()).range_test(model, train, val, num_steps=4, monitor="val_f1")
    with pytest.raises(ValueError, match="val_dataloaders"):
        CLRTuner(make_trainer()).range_test(model, train, num_steps=4, monitor="val_acc")


# --- it feeds CLR ----------------------------------------------------------------------------------------


def test_callback_hands_per_group_bounds_to_clr_targets():
    model, (train, _) = Model(group_lrs=(0.1, 0.025)), loaders()
    target, both = FakeCLR(), FakeCLR()
    range_test = LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=12, update=("base_lr", "max_lr"))
    steps_target = LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=12, update=("max_lr", "step_size"))
    make_trainer(max_steps=1, callbacks=[range_test, target]).fit(model, train)
    bounds = range_test.bounds
    assert isinstance(bounds, Bounds) and 0 < bounds.base_lr < bounds.max_lr
    (update,) = target.updates
    assert update == {
        "base_lr": pytest.approx([bounds.base_lr, bounds.base_lr / 4]),
        "max_lr": pytest.approx([bounds.max_lr, bounds.max_lr / 4]),
    }
    make_trainer(max_steps=1, callbacks=[steps_target, both]).fit(Model(), train)
    assert both.updates[0]["step_size"] == steps_target.bounds.step_size == 12  # 6 steps/epoch, clipped to 2


def test_callback_feeds_a_real_cyclic_lr_with_pending_bounds():
    model, (train, _) = Model(), loaders()
    clr = CyclicLR(
        Triangular(base_lr=1e-3, max_lr=1e-2, step_size_epochs=2), pending=("base_lr", "max_lr", "step_size")
    )
    range_test = LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=12, update="pending")
    make_trainer(max_steps=2, callbacks=[range_test, clr]).fit(model, train)
    bounds = range_test.bounds
    assert (clr.policy.base_lr, clr.policy.max_lr, clr.policy.step_size) == (
        bounds.base_lr,
        bounds.max_lr,
        bounds.step_size,
    )
    assert model.seen_lrs[-2][0] == pytest.approx(bounds.base_lr)  # the first real step trains at base_lr


def test_state_dict_round_trip_skips_the_rerun(tmp_path):
    train, _ = loaders()
    first, target = LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=8), FakeCLR()
    trainer = make_trainer(max_steps=2, callbacks=[first, target])
    trainer.fit(Model(), train)
    trainer.save_checkpoint(tmp_path / "run.ckpt")

    model, second, again = Model(), LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=8), FakeCLR()
    trainer = make_trainer(max_steps=4, callbacks=[second, again])
    torch.load(tmp_path / "run.ckpt", weights_only=True)  # plain values only
    trainer.fit(model, train, ckpt_path=tmp_path / "run.ckpt", **fit_resume_options())
    assert model.train_calls == 2  # steps 3 and 4 of training, no range test
    assert second.bounds == first.bounds and second.result == first.result
    assert again.updates == target.updates


def test_fast_dev_run_runs_a_token_test():
    model, (train, _) = Model(), loaders()
    range_test, target = LRRangeTest(), FakeCLR()
    with pytest.warns(UserWarning, match="fast_dev_run"):
        make_trainer(fast_dev_run=True, callbacks=[range_test, target]).fit(model, train)
    assert len(range_test.result.lrs) == 2 and len(target.updates) == 1


@pytest.mark.parametrize("bar", ["tqdm", "rich"])
def test_one_progress_bar_like_the_trainers(bar, capsys):
    model, (train, _) = Model(), loaders()
    callbacks = [RichProgressBar()] if bar == "rich" else [TQDMProgressBar()]
    trainer = make_trainer(enable_progress_bar=True, callbacks=callbacks)
    CLRTuner(trainer).range_test(model, train, num_steps=3)
    captured = capsys.readouterr()
    assert "LR range test" in captured.out + captured.err
    assert ("━" if bar == "rich" else "█") in captured.out + captured.err  # rich's bar, or tqdm's


@pytest.mark.parametrize("bar", ["tqdm", "rich"])
def test_the_progress_bar_grows_by_a_pass_for_each_pass_added(bar, capsys, monkeypatch):
    monkeypatch.setattr(RangeTestResult, "resampled_spread", lambda self: 2.0)  # never stable: up to max
    callbacks = [RichProgressBar()] if bar == "rich" else []
    trainer = make_trainer(enable_progress_bar=True, callbacks=callbacks)
    CLRTuner(trainer).range_test(Model(), loaders()[0], num_steps=3, passes=2, max_passes=4, widen=0)
    captured = capsys.readouterr()
    assert "12/12" in captured.out + captured.err  # 2 passes planned, then 2 more: 4 x 3 steps


def test_output_dir_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, (train, val) = Model(), loaders()
    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    range_test = LRRangeTest(
        min_lr=1e-3,
        max_lr=0.5,
        num_steps=8,
        monitor="val_acc",
        val_check_interval=2,
        output_dir=tmp_path / "out",
        widen=0,  # 8 rows: a val_acc still rising at the top would test again over more steps
    )
    make_trainer(max_steps=1, logger=logger, callbacks=[range_test]).fit(model, train, val)
    out = tmp_path / "out"
    assert (out / "range_test.png").stat().st_size > 0
    with open(out / "range_test.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["lr", "loss", "smoothed", "val_acc"] and len(rows) == 8
    assert [float(r["lr"]) for r in rows] == range_test.result.lrs
    assert [i for i, r in enumerate(rows) if r["val_acc"]] == [1, 3, 5, 7]
    saved = yaml.safe_load((out / "range_test_bounds.yaml").read_text())
    assert saved["base_lr"] == range_test.bounds.base_lr and saved["max_lr"] == range_test.bounds.max_lr

    events = EventAccumulator(str(tmp_path / "tb" / "version_0")).Reload()
    assert {"range_test/loss", "range_test/lr", "range_test/val_acc", "range_test/max_lr"} <= set(
        events.Tags()["scalars"]
    )
    assert "range_test/curve" in events.Tags()["images"]
    assert [e.value for e in events.Scalars("range_test/lr")] == pytest.approx(range_test.result.lrs)


def test_plot_shows_the_band():
    lrs = list(np.linspace(0.01, 1.0, 50))
    losses = [2 * (lr - 0.6) ** 2 + 0.2 for lr in lrs]
    result = RangeTestResult(lrs=lrs, losses=losses, smoothed=losses)
    bounds = result.suggest()
    fig = result.plot()
    assert isinstance(fig, Figure)
    (band,) = [p for p in fig.axes[0].patches if p.get_label().startswith("CLR bounds")]
    xs = band.get_x(), band.get_x() + band.get_width()
    assert xs == pytest.approx((bounds.base_lr, bounds.max_lr))


# --- arguments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_lr": 0.0}, "min_lr=0.0 must be a finite number > 0"),
        ({"min_lr": 0.5, "max_lr": 0.1}, "max_lr=0.1 must be greater than min_lr=0.5"),
        ({"num_steps": 1}, "num_steps=1 must be an integer >= 2"),
        ({"num_steps": 10, "num_epochs": 2}, "num_steps=10 and num_epochs=2: give one"),
        ({"num_epochs": -1}, "num_epochs=-1 must be a finite number > 0"),
        ({"mode": "cosine"}, "mode='cosine' must be one of"),
        ({"monitor": "val_acc", "monitor_mode": "up"}, "monitor_mode='up'"),
        ({"divergence_threshold": 0.5}, "divergence_threshold=0.5 must be a number > 1"),
        ({"beta": 1.0}, r"beta=1.0 must be a number in \[0, 1\)"),
        ({"num_val_batches": 0}, "num_val_batches=0 must be an integer >= 1"),
        ({"update": ("lr",)}, "update=\\('lr',\\) must be 'pending' or a selection of"),
        ({"passes": 5, "max_passes": 3}, "max_passes=3 must be >= passes=5, or None"),
        ({"stable_within": 1.0}, "stable_within=1.0 must be a number > 1"),
    ],
)
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRRangeTest(**kwargs)

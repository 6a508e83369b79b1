"""A schedule that knows the run it is in: extended or shortened on resume, each manual optimizer's own
length, streams bounded by ``max_steps``, and a word when a run ends before its plan.

Every test trains a real ``Trainer`` and reads the LR each optimizer step used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset

from lightning_clr import CyclicLR, SetupError
from lightning_clr.policies import OneCycle, Policy, Triangular, Triangular2
from lightning_clr.run_length import SteppingPattern, manual_run_steps, run_steps
from tests.test_callback import Recorder, StopAfter, Tiny, fit
from tests.test_callback_setups import PerOptimizer, TwoOptimizers

END_PHASES = {
    "final_anneal": Triangular(0.01, 0.1, step_size=5, final_anneal=0.2),
    "cycles": Triangular2(0.01, 0.1, cycles=2),
    "one_cycle": OneCycle(0.1),
}


@pytest.fixture
def info_lines() -> Iterator[list[str]]:
    """The INFO lines Lightning's logger prints (where ``rank_zero_info`` goes), captured."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def _planned(policy: Policy, total: int) -> list[float]:
    """The LR of every step of a run planned for ``total`` steps from the start (10 steps per epoch)."""
    resolved = policy.resolve(steps_per_epoch=10, total_steps=total)
    return [resolved(k) for k in range(total)]


def _resume(tmp_path: Path, policy: Policy, planned_epochs: int, ran: int, resume_epochs: int) -> list[float]:
    """Plan ``planned_epochs``, stop after ``ran``, resume to ``max_epochs=resume_epochs``; each step's LR."""
    first, second = Recorder(), Recorder()
    trainer, _ = fit([CyclicLR(policy), first, StopAfter(ran)], max_epochs=planned_epochs)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    fit([CyclicLR(policy), second], ckpt_path=tmp_path / "run.ckpt", max_epochs=resume_epochs)
    assert len(first.lrs) == 10 * ran and second.steps[0] == 10 * ran
    return [lrs[0] for lrs in first.lrs + second.lrs]


# --- the one count ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trainer_args",
    [
        {"max_epochs": 3},
        {"max_epochs": 3, "accumulate_grad_batches": 3},
        {"max_epochs": 4, "max_steps": 17},
        {"max_epochs": 2, "limit_train_batches": 7, "accumulate_grad_batches": 2},
        {"max_epochs": -1, "max_steps": 23},
    ],
)
def test_run_steps_is_lightnings_estimate(trainer_args: dict[str, Any]) -> None:
    trainer, _ = fit([], **trainer_args)
    batches = int(trainer.num_training_batches)
    expected = trainer.estimated_stepping_batches
    assert (
        run_steps(batches, trainer.max_epochs, trainer.max_steps, trainer.accumulate_grad_batches) == expected
    )
    assert trainer.global_step == expected


def test_manual_run_steps_counts_what_lightning_runs() -> None:
    """``max_steps`` bounds both optimizers' steps together, checked before each batch."""
    for max_steps, max_epochs in [(40, 4), (7, 4), (-1, 2), (33, 3)]:
        recorder = PerOptimizer()
        fit([recorder], module=TwoOptimizers(), max_steps=max_steps, max_epochs=max_epochs)
        taken = [len(recorder.lrs[0]), len(recorder.lrs[1])]
        critic = SteppingPattern.observed([(1, 1), (0, 1)] * 5)  # the generator every other batch
        assert manual_run_steps(10, max_epochs, max_steps, critic) == taken


# --- a resumed run of another length is re-planned ------------------------------------------------------


@pytest.mark.parametrize("name", END_PHASES)
def test_extending_a_finished_run_replans_its_end_phase(
    name: str, tmp_path: Path, info_lines: list[str]
) -> None:
    policy = END_PHASES[name]
    lrs = _resume(tmp_path, policy, planned_epochs=2, ran=2, resume_epochs=4)
    assert lrs[:20] == _planned(policy, 20)  # as planned for 2 epochs
    assert lrs[20:] == _planned(policy, 40)[20:]  # every added step as a 4-epoch plan from the start
    replanned = [line for line in info_lines if "re-planned" in line]
    assert len(replanned) == 1
    assert "this run is 40 optimizer steps; its checkpoint was planned for 20" in replanned[0]
    end = policy.resolve(10, 40).end_phase_start()
    assert (end is None) == (name == "cycles")
    if end is not None:
        assert f"its end phase now starts at step {end}" in replanned[0]
    else:
        assert "step_size 5 -> 10" in replanned[0]


@pytest.mark.parametrize("name", END_PHASES)
def test_shortening_an_interrupted_run_replans_its_end_phase(name: str, tmp_path: Path) -> None:
    policy = END_PHASES[name]
    lrs = _resume(tmp_path, policy, planned_epochs=6, ran=2, resume_epochs=4)
    assert lrs[:20] == _planned(policy, 60)[:20]
    assert lrs[20:] == _planned(policy, 40)[20:]
    assert lrs[-1] == policy.resolve(10, 40)(39)  # the end phase happens, to its last step


def test_a_resume_of_the_same_length_is_bit_exact(tmp_path: Path, info_lines: list[str]) -> None:
    policy = END_PHASES["final_anneal"]
    assert _resume(tmp_path, policy, planned_epochs=4, ran=2, resume_epochs=4) == _planned(policy, 40)
    assert not [line for line in info_lines if "re-planned" in line]


def test_a_pinned_total_steps_is_kept_with_a_warning(tmp_path: Path) -> None:
    policy = Triangular(0.01, 0.1, step_size=5, final_anneal=0.2, total_steps=20)
    with pytest.warns(
        UserWarning, match=r"total_steps=20 is shorter than the run \(40 optimizer steps\): the last 20"
    ):
        lrs = _resume(tmp_path, policy, planned_epochs=2, ran=2, resume_epochs=4)
    assert lrs == [policy(k) for k in range(40)]
    assert lrs[20:] == [pytest.approx(1e-4)] * 20  # the user's decision: the end phase of 20 steps


# --- several optimizers under manual optimization -------------------------------------------------------


class EveryBatch(TwoOptimizers):
    """Both optimizers step once per batch (a GAN's usual loop)."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        x, y = batch
        for optimizer, net in ((opt_d, self.discriminator), (opt_g, self.generator)):
            loss = F.cross_entropy(self.discriminator(self.generator(x)), y) * (
                1 if net is self.generator else -1
            )
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()


@pytest.mark.parametrize("limit", [{"max_steps": 40, "max_epochs": 10}, {"max_epochs": 2}])
@pytest.mark.parametrize("name", ["final_anneal", "one_cycle"])
def test_each_manual_optimizer_is_planned_for_its_own_steps(name: str, limit: dict[str, int]) -> None:
    policy, recorder = END_PHASES[name], PerOptimizer()
    fit([CyclicLR(policy), recorder], module=EveryBatch(), **limit)
    assert len(recorder.lrs[0]) == len(recorder.lrs[1]) == 20  # global_step counts both: 40
    assert recorder.lrs[0] == recorder.lrs[1] == _planned(policy, 20)


def test_an_optimizer_stepping_every_other_batch_is_replanned(info_lines: list[str]) -> None:
    policy, recorder = END_PHASES["final_anneal"], PerOptimizer()
    fit([CyclicLR(policy), recorder], module=TwoOptimizers(), max_epochs=2)
    assert len(recorder.lrs[0]) == 10  # the generator: every other batch
    assert recorder.lrs[0] == _planned(policy, 10)  # its end phase, on its own 10 steps
    assert recorder.lrs[1] == _planned(policy, 20)
    assert any("optimizer 0: Adam stepped 5 times in the first 10 batches" in line for line in info_lines)


def test_an_optimizer_whose_plan_cannot_change_stops_with_the_fix() -> None:
    with pytest.raises(
        SetupError, match=r"optimizer 0: Adam stepped 5 times .* give its policy total_steps=10"
    ):
        fit([CyclicLR(OneCycle(0.1))], module=TwoOptimizers(), max_epochs=2)


def test_the_stepping_seen_in_the_first_epoch_survives_a_resume(tmp_path: Path) -> None:
    policy, first, second = END_PHASES["final_anneal"], PerOptimizer(), PerOptimizer()
    trainer, _ = fit([CyclicLR(policy), first, StopAfter(2)], module=TwoOptimizers(), max_epochs=4)
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    fit([CyclicLR(policy), second], module=TwoOptimizers(), max_epochs=4, ckpt_path=tmp_path / "gan.ckpt")
    assert first.lrs[0] + second.lrs[0] == _planned(policy, 20)


# --- streams --------------------------------------------------------------------------------------------


class Stream(IterableDataset):
    """Batches without end and without a length."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(0)
        while True:
            yield torch.randn(8, generator=generator), torch.randint(0, 3, (), generator=generator)


def _fit_stream(callbacks: list[Any], module: L.LightningModule, max_steps: int) -> None:
    """Fit ``module`` on the endless :class:`Stream` for ``max_steps`` steps."""
    trainer = L.Trainer(
        callbacks=callbacks,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, train_dataloaders=DataLoader(Stream(), batch_size=4))


@pytest.mark.parametrize(
    "policy",
    [OneCycle(0.1), Triangular(0.01, 0.1, step_size=4, final_anneal=0.25), Triangular(0.01, 0.1, cycles=2)],
    ids=["one_cycle", "final_anneal", "cycles"],
)
def test_a_stream_takes_its_length_from_max_steps(policy: Policy) -> None:
    recorder = Recorder()
    _fit_stream([CyclicLR(policy), recorder], Tiny(), max_steps=24)
    resolved = policy.resolve(None, 24)
    assert [lrs[0] for lrs in recorder.lrs] == [resolved(k) for k in range(24)]


def test_a_stream_cannot_count_epochs() -> None:
    with pytest.raises(
        SetupError, match=r"step_size_epochs=2.0 needs the optimizer steps per epoch.*give step_size"
    ):
        _fit_stream([CyclicLR(Triangular(0.01, 0.1, step_size_epochs=2))], Tiny(), max_steps=24)


def test_a_streams_first_batches_show_how_its_optimizers_step(info_lines: list[str]) -> None:
    policy, recorder = END_PHASES["final_anneal"], PerOptimizer()
    # max_steps counts both optimizers' steps: the generator steps every other batch, so 2000 batches
    _fit_stream([CyclicLR(policy), recorder], TwoOptimizers(), max_steps=3000)
    assert [len(recorder.lrs[0]), len(recorder.lrs[1])] == [1000, 2000]
    assert recorder.lrs[0] == _planned(policy, 1000)
    assert recorder.lrs[1] == _planned(policy, 2000)
    assert any("Adam stepped 500 times in the first 1000 batches" in line for line in info_lines)


# --- a run that stops before its plan -------------------------------------------------------------------


def test_early_stopping_is_told_about_the_end_phase_and_the_steps_it_ran(info_lines: list[str]) -> None:
    stop = EarlyStopping("train_loss", min_delta=100.0, patience=1, check_on_train_epoch_end=True)
    trainer, _ = fit([CyclicLR(END_PHASES["final_anneal"]), stop], max_epochs=6)
    assert trainer.global_step == 20  # no epoch improved by 100: stopped after the second
    assert (
        "CyclicLR: triangular's end phase is planned for steps 48-59 of a 60-step run; a run that "
        "EarlyStopping stops earlier will not reach it." in info_lines
    )
    assert (
        "CyclicLR: the run took 20 of the 60 optimizer steps triangular was planned for; its end phase "
        "(from step 48) was not reached. Resume it (ckpt_path) to finish the plan." in info_lines
    )


def test_a_run_that_ends_as_planned_says_nothing_more(info_lines: list[str]) -> None:
    fit([CyclicLR(END_PHASES["final_anneal"])], max_epochs=2)
    assert not [line for line in info_lines if line.startswith("CyclicLR")]


def test_stepping_pattern_of_one_epoch() -> None:
    assert SteppingPattern.observed([(1, 1)] * 7) == SteppingPattern.every_batch(2)
    assert SteppingPattern.observed([(5, 1), (5, 0), (5, 0)] * 3 + [(5, 1)]).counts == (
        (5, 1),
        (5, 0),
        (5, 0),
    )
    assert SteppingPattern(((1, 0), (1, 1))).steps_in(5) == [5, 2]
    assert manual_run_steps(None, -1, 30, SteppingPattern(((1, 1), (1, 0)))) == [20, 10]
    assert manual_run_steps(None, -1, -1, SteppingPattern.every_batch(2)) is None
    with pytest.raises(ValueError, match="at least one batch"):
        SteppingPattern.observed([])

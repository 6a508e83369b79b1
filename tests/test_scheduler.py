"""PolicyLR: the policies as a torch LR scheduler, the same LRs as the callback, in any loop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lightning_clr import CyclicLR, PolicyLR
from lightning_clr.policies import OneCycle, Policy, Triangular, Triangular2
from tests.conftest import ROOT
from tests.test_callback import Recorder, fit
from tests.test_callback_setups import FineTune


def _plain_loop(optimizer: torch.optim.Optimizer, scheduler: PolicyLR, steps: int) -> list[list[float]]:
    """The LR of every param group at each optimizer step of a plain loop."""
    lrs = []
    for _ in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "policy",
    [
        Triangular2(0.001, 0.01, step_size=4, final_anneal=0.2),
        OneCycle(0.01),
        Triangular([1e-4, 1e-3], [6e-4, 6e-3], step_size=5),
    ],
    ids=["triangular2-anneal", "one_cycle", "per-group"],
)
def test_a_plain_loop_follows_the_callbacks_lrs(policy: Policy) -> None:
    """Two param groups (a backbone at a tenth of the head's LR), 30 steps, against a real Trainer."""
    recorder = Recorder()
    fit([CyclicLR(policy), recorder], module=FineTune(), max_epochs=3)  # 3 epochs of 10 batches
    optimizer = FineTune().configure_optimizers()
    plain = _plain_loop(optimizer, PolicyLR(optimizer, policy, total_steps=30), 30)
    assert len(recorder.lrs) == 30
    for ours, callbacks in zip(plain, recorder.lrs, strict=True):
        assert ours == pytest.approx(callbacks, rel=1e-12, abs=0)


def test_resume_in_torchs_order_continues_exactly(tmp_path: Path) -> None:
    policy = Triangular(0.001, 0.01, step_size=3, final_anneal=0.25)

    def build() -> tuple[torch.optim.Optimizer, PolicyLR]:
        optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
        return optimizer, PolicyLR(optimizer, policy, total_steps=20, cycle_momentum=True)

    optimizer, scheduler = build()
    uninterrupted = _plain_loop(optimizer, scheduler, 20)
    optimizer, scheduler = build()
    first = _plain_loop(optimizer, scheduler, 7)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "s.pt")
    optimizer, scheduler = build()
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    assert first + _plain_loop(optimizer, scheduler, 13) == uninterrupted
    assert scheduler.last_epoch == 20 and scheduler.get_last_lr() == [policy.resolve(None, 20)(20)]


def test_momentum_cycles_inversely_in_adams_beta1() -> None:
    optimizer = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    policy = Triangular(0.001, 0.01, step_size=2)
    scheduler = PolicyLR(optimizer, policy, cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)
    betas = []
    for _ in range(5):
        betas.append(optimizer.param_groups[0]["betas"])
        optimizer.step()
        scheduler.step()
    assert [beta1 for beta1, _ in betas] == pytest.approx([0.9, 0.85, 0.8, 0.85, 0.9])
    assert {beta2 for _, beta2 in betas} == {0.999}


@pytest.mark.parametrize(
    ("policy", "kwargs", "message"),
    [
        (OneCycle(0.1), {}, r"OneCycle\(max_lr=0.1\) plans from the run's length: give .*total_steps="),
        (Triangular(0.01, 0.1, step_size=5, final_anneal=0.2), {}, r"give PolicyLR\(\.\.\., total_steps="),
        (
            Triangular(0.01, 0.1, step_size_epochs=2),
            {},
            r"step_size_epochs=2.0 needs the optimizer steps per",
        ),
        (Triangular([0.01] * 3, 0.1, step_size=5), {}, r"per-group bounds for 3 param groups, but SGD has 1"),
        (Triangular(0.01, 0.1, step_size=5), {"cycle_momentum": True}, "built with momentum=0"),
        ("triangular", {}, "must be a lightning_clr.policies.Policy"),
    ],
)
def test_bad_arguments_fail_at_construction(policy: object, kwargs: dict[str, object], message: str) -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        PolicyLR(optimizer, policy, **kwargs)  # type: ignore[arg-type]


def test_the_docs_fabric_example_runs() -> None:
    page = (ROOT / "docs" / "guide" / "without-the-trainer.md").read_text()
    section = page.split("## Lightning Fabric", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None and "fabric.setup" in code.group(1)
    exec(compile(code.group(1), "without-the-trainer.md", "exec"), {})


def test_the_docs_plain_loop_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = (ROOT / "docs" / "guide" / "without-the-trainer.md").read_text()
    section = page.split("## A plain PyTorch loop", 1)[1].split("## Lightning Fabric", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "without-the-trainer.md", "exec"), namespace)
    scheduler = namespace["scheduler"]
    assert isinstance(scheduler, PolicyLR) and scheduler.last_epoch == 400

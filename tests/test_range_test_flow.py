"""The LR range test end to end: scripts/range_test.py, ``policy.*=auto`` training, resume and DDP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from omegaconf import DictConfig

from lightning_clr import CyclicLR, LRRangeTest
from lightning_clr.app.training import train
from lightning_clr.policies import Triangular, Triangular2
from tests.conftest import FAST, run_script
from tests.test_train import scalars

AUTO = ["policy=triangular2", "policy.base_lr=auto", "policy.max_lr=auto", "policy.step_size=auto"]
# 2 x 12 steps; widen=0: a curve this short still falling at its top would be tested again over more steps
SHORT_TEST = [
    "range_test.num_epochs=2",
    "range_test.min_steps=12",
    "range_test.passes=2",
    "range_test.widen=0",
]
FILES = ["range_test.csv", "range_test.png", "range_test_bounds.yaml"]


class BoundsRecorder(L.Callback):
    """Test-only: write ``bounds_rank<r>.json``: the range test's bounds, the policy and every step's LR."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tester = next(c for c in trainer.callbacks if isinstance(c, LRRangeTest))
        clr = next(c for c in trainer.callbacks if isinstance(c, CyclicLR))
        record = {
            "world_size": trainer.world_size,
            "steps": len(tester.result.lrs),
            "passes": len(tester.result.pass_losses),
            "losses": tester.result.losses,
            "applied": tester.applied,
            "policy": clr.policy.params(),
            "lrs": self.lrs,
        }
        Path(trainer.default_root_dir, f"bounds_rank{trainer.global_rank}.json").write_text(
            json.dumps(record)
        )


def policy_bounds(clr: CyclicLR) -> dict[str, float]:
    params = clr.policy.params()
    return {key: params[key] for key in ("base_lr", "max_lr", "step_size")}


#: A setup other than the defaults, which the printed train command must carry.
SETUP = ["optimizer=adam", "dataset=digits", "model=mlp"]


@pytest.mark.slow
def test_script_writes_the_curve_and_prints_the_overrides(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "range_test.py",
        *FAST,
        *SHORT_TEST,
        *SETUP,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run dir
    assert {p.name for p in run_dir.iterdir()} >= set(FILES)
    assert not (run_dir / "checkpoints").exists()  # nothing was trained for real
    bounds = yaml.safe_load((run_dir / "range_test_bounds.yaml").read_text())
    assert bounds["step_size"] == 12  # 2 epochs of 6 steps: Smith's shortest step size
    assert 0 < bounds["base_lr"] < bounds["max_lr"] < bounds["peak_lr"]
    csv_lines = (run_dir / "range_test.csv").read_text().splitlines()
    assert csv_lines[0] == "lr,loss,smoothed" and len(csv_lines) == 1 + 12
    command = re.search(r"python scripts/train\.py (.+)", result.stdout)
    assert command is not None, result.stdout
    overrides = dict(item.split("=", 1) for item in command.group(1).split())
    assert all(overrides[key] == value for key, value in (o.split("=", 1) for o in [*FAST, *SETUP]))
    assert overrides["paths.data_dir"] == str(data_dir)  # the setup as given, so the command reproduces it
    assert not [key for key in overrides if key.startswith(("range_test.", "hydra."))]
    assert float(overrides["policy.base_lr"]) == pytest.approx(bounds["base_lr"], rel=1e-3)
    assert float(overrides["policy.max_lr"]) == pytest.approx(bounds["max_lr"], rel=1e-3)
    assert int(overrides["policy.step_size"]) == bounds["step_size"]


def test_auto_bounds_train_and_a_resume_keeps_them(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(compose_cfg(*AUTO, *SHORT_TEST))
    bounds = yaml.safe_load((tmp_path / "range_test_bounds.yaml").read_text())
    applied = bounds["applied"]
    assert applied == {key: bounds[key] for key in ("base_lr", "max_lr", "step_size")}
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    states = checkpoint["callbacks"]
    clr_state = next(state for key, state in states.items() if key.startswith("CyclicLR"))
    assert {key: clr_state["params"][0][key] for key in applied} == applied
    policy = Triangular2(
        applied["base_lr"],
        applied["max_lr"],
        step_size=applied["step_size"],
        final_anneal=0.2,
        total_steps=12,
    )
    lr = scalars(tmp_path)["lr"]
    assert [step for step, _ in lr] == list(range(12))  # the test's 12 steps are not training steps
    assert [value for _, value in lr] == pytest.approx([policy(k) for k in range(12)], rel=1e-6)
    assert lr[0][1] == pytest.approx(applied["base_lr"], rel=1e-6)
    curve = (tmp_path / "range_test.csv").read_bytes()

    def no_second_test(*args: object, **kwargs: object) -> None:
        raise AssertionError("the range test ran again on resume")

    monkeypatch.setattr("lightning_clr.range_test.callback.run_range_test", no_second_test)
    cfg = compose_cfg(
        *AUTO, *SHORT_TEST, "trainer.max_epochs=3", f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"
    )
    (tmp_path / "tensorboard").rename(tmp_path / "tensorboard_first")
    train(cfg)
    assert (tmp_path / "range_test.csv").read_bytes() == curve
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    clr_state = next(state for key, state in resumed.items() if key.startswith("CyclicLR"))
    assert {key: clr_state["params"][0][key] for key in applied} == applied
    lr = scalars(tmp_path)["lr"]
    assert [step for step, _ in lr] == list(range(12, 18))
    replanned = policy.replace(total_steps=18)  # 3 epochs now: the end phase planned again, the bounds kept
    assert [value for _, value in lr] == pytest.approx([replanned(k) for k in range(12, 18)], rel=1e-6)


@pytest.mark.usefixtures("helpers_on_path")  # its subprocesses import tests.*
@pytest.mark.slow
def test_ddp_ranks_share_the_bounds(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        *[o for o in FAST if "limit_train_batches" not in o],
        "+callbacks.bounds_recorder._target_=tests.test_range_test_flow.BoundsRecorder",
        "strategy=ddp_cpu",
        "trainer.max_epochs=1",
        "dataset.batch_size=250",  # 16 batches of MNIST-1D's 4,000: 8 per rank
        "policy=triangular",
        "policy.base_lr=auto",
        "policy.max_lr=auto",
        "policy.step_size=4",
        *SHORT_TEST,
        "range_test.max_passes=4",  # passes added while they disagree: every rank must add the same
        "range_test.stable_within=1.000001",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((run_dir / f"bounds_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["passes"] == ranks[1]["passes"] == 4  # rank 0 decides for both
    bounds = yaml.safe_load((run_dir / "range_test_bounds.yaml").read_text())
    applied = {key: bounds[key] for key in ("base_lr", "max_lr")}
    assert bounds["applied"]["step_size"] == 16  # 2 epochs of 8 steps per rank (not given to the policy)
    policy = Triangular(applied["base_lr"], applied["max_lr"], step_size=4, final_anneal=0.2, total_steps=8)
    for record in ranks:
        assert record["world_size"] == 2
        assert record["steps"] == 16  # the test ran on both ranks, 8 batches per rank and epoch
        assert {key: record["applied"][key] for key in applied} == applied
        assert {key: record["policy"][key] for key in applied} == applied
        assert record["lrs"] == pytest.approx([policy(k) for k in range(8)], rel=1e-12)
    assert ranks[0]["losses"] == ranks[1]["losses"]  # one curve, averaged over the ranks
    states = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    tester_state = next(state for key, state in states.items() if key.startswith("LRRangeTest"))
    assert tester_state["applied"] == bounds["applied"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

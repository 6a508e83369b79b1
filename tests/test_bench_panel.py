"""scripts/bench_panel.py: the final anneal's shapes, the headline verdicts, and the paired Trainer row."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_clr.policies import DECAY_SHAPES, Triangular
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))  # bench_panel imports its sibling scripts, as when run
_spec = importlib.util.spec_from_file_location("bench_panel", ROOT / "scripts" / "bench_panel.py")
assert _spec is not None and _spec.loader is not None
panel = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(panel)


def test_a_cosine_anneal_shape_is_the_policy_itself() -> None:
    policy = Triangular(0.02, 0.2, step_size=7, final_anneal=0.3, total_steps=61)
    shaped = panel.AnnealShape(policy, "cosine")
    assert [shaped.lr_at(k, 61) for k in range(61)] == pytest.approx(
        [policy(k) for k in range(61)], abs=1e-15
    )


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_other_anneal_shapes_change_only_the_anneal(shape: str) -> None:
    policy = Triangular(0.02, 0.2, step_size=7, final_anneal=0.3, total_steps=61)
    shaped = panel.AnnealShape(policy, shape)
    first = policy.anneal_start()
    assert first == 43
    assert [shaped.lr_at(k, 61) for k in range(first)] == [policy(k) for k in range(first)]
    start, end = policy(first - 1), 0.02 / 100
    for k in range(first, 61):
        pct = (k - (first - 1)) / (60 - (first - 1))
        assert shaped.lr_at(k, 61) == pytest.approx(end + (start - end) * DECAY_SHAPES[shape](pct), abs=1e-15)
    assert shaped.lr_at(60, 61) == pytest.approx(end)


def _result(*runs: object) -> object:
    return panel.TaskResult(panel.Task("t", "sgd", (), ""), panel.Bounds(0.1, 0.3), "", 0.1, 0.1, list(runs))


def test_the_headline_holds_ours_against_each_rival_at_its_best_peak() -> None:
    Runs = panel.Runs
    fixed = Runs("fixed (0.1)", [[0.5, 0.8, 0.9], [0.5, 0.8, 0.9], [0.5, 0.8, 0.9]])
    ours = Runs(panel.DEFAULT, [[0.9, 0.9, 0.93], [0.6, 0.9, 0.92], [0.6, 0.7, 0.91]])
    low = Runs("warmup-cosine, peak 0.1 (grid)", [[0.5, 0.5, 0.5]] * 3)
    cosine = Runs(
        "warmup-cosine, peak 0.3 (range test)", [[0.6, 0.95, 0.95], [0.6, 0.8, 0.94], [0.6, 0.8, 0.96]]
    )
    wsd = Runs("WSD linear, peak 0.3 (range test)", [[0.6, 0.8, 0.92], [0.6, 0.8, 0.92], [0.6, 0.8, 0.90]])
    row = panel.headline(_result(fixed, ours, low, cosine, wsd))
    # ours - warmup-cosine at 0.3 (its best peak): -0.02, -0.02, -0.05: mean -0.03, sd 0.017 -> a loss
    assert row["vs"]["warmup-cosine"]["label"] == cosine.label
    assert row["vs"]["warmup-cosine"]["diff"] == pytest.approx(-0.03)
    assert row["vs"]["warmup-cosine"]["verdict"] == "loss"
    # ours - WSD: +0.01, 0, +0.01: mean 0.0067 > sd 0.0058 -> a win
    assert row["vs"]["WSD"]["verdict"] == "win"
    # fixed's best 0.9: ours first reaches it at epochs 1, 2, 3; the best cosine at 2, 3, 3 and WSD at 3, 3, 3
    assert row["sooner"] == "2/3"
    assert row["final"] == pytest.approx(0.92)
    assert row["shapes"] == {}  # no final-anneal shape rows in this table


def test_the_trainer_path_equals_the_lean_loop_on_a_panel_task(data_dir: Path) -> None:
    """The residual net with BatchNorm and Adam, our default recipe: same batches, same accuracy per epoch."""
    task = next(task for task in panel.TASKS if task.name == "digits-resnet8-adam")
    cfg = panel.compose_config(task.optimizer, [*task.overrides, f"paths.data_dir={data_dir}"])
    data = panel.load_data(cfg)
    recipe = panel.default_recipe(panel.Bounds(0.006, 0.018, 10))
    lean = panel.train(cfg, data, recipe, seed=1, epochs=2)
    trainer = panel.train_with_trainer(cfg, data, recipe, seed=1, epochs=2)
    assert trainer == pytest.approx(lean, abs=1e-6)


def test_spread_settings_add_the_other_optimizer_family_on_the_same_data_and_network() -> None:
    settings = {name: value for task in panel.TASKS for name, value in panel.spread_settings(task).items()}
    assert sorted(settings) == [
        "digits-mlp-adamw",
        "digits-mlp-sgd",
        "digits-resnet8-adam",
        "digits-resnet8-sgd",
        "mnist1d-cnn-adam",
        "mnist1d-cnn-sgd",
    ]
    optimizer, overrides = settings["digits-resnet8-sgd"]
    assert optimizer == "sgd" and "+model.depth=8" in overrides
    assert not [o for o in overrides if o.startswith("optimizer.")]


@pytest.mark.slow
def test_the_spread_runs_the_seeds_it_is_given_and_rereads_them_from_its_cache(tmp_path: Path) -> None:
    task = next(task for task in panel.TASKS if task.name == "digits-mlp-adamw")
    cfg = panel.compose_config(task.optimizer, [*task.overrides, "range_test.passes=1", "range_test.widen=0"])
    row = panel.suggestion_spread(task.name, cfg, range(2, 4), str(tmp_path / "runs"), tmp_path / "cache")
    assert sorted(path.name.rsplit("-", 1)[1] for path in (tmp_path / "cache").iterdir()) == [
        "seed2.json",
        "seed3.json",
    ]
    assert len(row["max_lrs"]) == 2 and row["ratio"] == max(row["max_lrs"]) / min(row["max_lrs"])
    again = panel.suggestion_spread(task.name, cfg, range(2, 4), str(tmp_path / "runs"), tmp_path / "cache")
    assert again["max_lrs"] == row["max_lrs"] and again["seconds"] == row["seconds"]  # read, not rerun


@pytest.mark.slow
def test_the_spread_runs_only_the_settings_asked_for_with_their_range_test_settings(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "bench_panel.py"), "--spread", "--seeds", "2"]
    command += ["--tasks", "digits-mlp-adamw", "--settings", "digits-mlp-sgd", "--cache", str(tmp_path)]
    command += ["--range-test", "passes=2", "max_passes=3", "num_steps=30", "widen=0"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| digits-")]
    assert len(rows) == 1 and rows[0].startswith("| digits-mlp-sgd |")
    recorded = [json.loads(path.read_text()) for path in (tmp_path / "spread").iterdir()]
    assert len(recorded) == 2 and all(len(r["result"]["lrs"]) == 30 for r in recorded)
    assert all(2 <= len(r["result"]["pass_losses"]) <= 3 for r in recorded)
    refused = subprocess.run([*command[:2], "--range-test", "passes=2"], capture_output=True, text=True)
    assert refused.returncode == 2 and "give --spread too" in refused.stderr

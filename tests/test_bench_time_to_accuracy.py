"""scripts/bench_time_to_accuracy.py: the paired time-to-accuracy summary, and a tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_script

_spec = importlib.util.spec_from_file_location(
    "bench_time_to_accuracy", ROOT / "scripts" / "bench_time_to_accuracy.py"
)
assert _spec is not None and _spec.loader is not None
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_first_epoch_is_one_based_and_none_when_never_reached() -> None:
    assert bench.first_epoch([0.5, 0.8, 0.9], 0.8) == 2
    assert bench.first_epoch([0.5, 0.7], 0.8) is None


def test_summary_pairs_each_seed_with_the_fixed_run_of_that_seed() -> None:
    fixed = bench.Runs("fixed", [[0.5, 0.7, 0.8, 0.8], [0.6, 0.9, 0.9, 0.9]])
    clr = bench.Runs("triangular2", [[0.6, 0.8, 0.7, 0.85], [0.5, 0.85, 0.88, 0.89]])
    row = bench.summary_row(clr, fixed)
    # seed 0: fixed first reaches its best 0.8 at epoch 3, the policy at epoch 2 -> 1.5x; seed 1: never
    assert row["reached"] == "1/2"
    assert (row["epoch"], row["speedup"]) == (2, 1.5)
    assert row["best"] == pytest.approx((0.85 + 0.89) / 2)
    assert row["final"] == pytest.approx((0.85 + 0.89) / 2)
    assert bench.summary_row(fixed, fixed)["speedup"] == 1.0


@pytest.mark.slow
def test_tiny_run_prints_the_table_and_writes_the_figure(tmp_path: Path) -> None:
    figure = tmp_path / "tta.png"
    result = run_script(
        "bench_time_to_accuracy.py",
        "--seeds=2",
        "--epochs=2",
        "--optimizers",
        "sgd",
        f"--figure={figure}",
        f"paths.data_dir={tmp_path}",
        "dataset=digits",
        "model=mlp",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "range test" in result.stdout and "fixed-LR grid" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "/2 |" in line]
    labels = [row.split(" | ")[0].strip("| ") for row in rows]
    assert labels[0].startswith("fixed (") and "triangular2" in labels and "one_cycle" in labels
    assert sum(label.startswith("cosine, peak") for label in labels) == 2
    assert sum(label.startswith("warmup-cosine, peak") for label in labels) == 2
    assert any(label.startswith("schedule-free, lr") for label in labels)
    assert sum(label.startswith("WSD ") for label in labels) == 4
    assert "bounds used: --bounds sgd=" in result.stdout
    assert figure.stat().st_size > 10_000


CYCLE = {"base_lr": 0.02, "max_lr": 0.1, "step_size": 10}


@pytest.mark.parametrize(
    ("policy", "args"),
    [
        ("fixed", {"lr": 0.1}),
        ("triangular", CYCLE),
        ("triangular2", CYCLE),
        ("one_cycle", {"max_lr": 0.1}),
        ("cosine", {"max_lr": 0.1, "warmup": 0.05}),
        ("wsd", {"max_lr": 0.1, "cooldown_shape": "linear"}),
    ],
)
def test_the_trainer_path_equals_the_lean_loop_on_the_same_seed(
    policy: str, args: dict[str, float], data_dir: Path
) -> None:
    """The benchmark's Trainer rows are paired with its lean loop: same weights, batches, LRs, accuracy, for
    every policy the benchmarks train."""
    cfg = bench.compose_config("sgd", ["dataset=digits", "model=mlp", f"paths.data_dir={data_dir}"])
    data = bench.load_data(cfg)
    schedule = bench.policy_config(policy, **args)
    lean = bench.train(cfg, data, schedule, seed=1, epochs=2)
    trainer = bench.train_with_trainer(cfg, data, schedule, seed=1, epochs=2)
    assert trainer == pytest.approx(lean, abs=1e-6)


@pytest.mark.slow
def test_given_bounds_replace_the_range_test(tmp_path: Path) -> None:
    result = run_script(
        "bench_time_to_accuracy.py",
        "--seeds=1",
        "--epochs=1",
        "--optimizers",
        "sgd",
        "--bounds",
        "sgd=0.05,0.15,12",
        f"--figure={tmp_path / 'tta.png'}",
        f"paths.data_dir={tmp_path}",
        "dataset=digits",
        "model=mlp",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bounds given (--bounds), no range test: base_lr=0.05 max_lr=0.15 step_size=12" in result.stdout
    assert "bounds used: --bounds sgd=0.05,0.15,12" in result.stdout
    assert "range test {" not in result.stdout

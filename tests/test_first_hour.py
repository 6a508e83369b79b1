"""What a new user meets in the first hour, run as they run it: every line once, a resume that resumes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import FAST, run_script

QUICK = [*FAST, "trainer.max_epochs=1", "dataset=digits", "model=mlp", "trainer.enable_model_summary=false"]


def _lines(text: str) -> list[str]:
    """Log lines without their time stamp."""
    return [re.sub(r"^\[[^]]*\]", "", line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_every_line_is_printed_once_and_the_run_file_agrees(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        *QUICK,
        "policy.step_size=100",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = _lines(result.stdout)
    assert result.stderr.strip() == ""  # nothing a second time on stderr ("INFO: ...")
    assert len(console) == len(set(console))
    assert any("GPU available" in line for line in console)
    assert any("step_size=100 is longer than the run" in line for line in console)
    assert not any("weights_only" in line for line in console)  # our own last.ckpt saves say nothing
    assert _lines((run_dir / "training.log").read_text()) == console


@pytest.mark.slow
def test_each_sweep_job_logs_only_its_own_lines(tmp_path: Path, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        *QUICK,
        "policy.step_size=100,200,300",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    logs = sorted(sweep.glob("*/training.log"))
    assert len(logs) == 3
    for log, step_size in zip(logs, (100, 200, 300), strict=True):
        warned = re.findall(r"step_size=(\d+) is longer than the run", log.read_text())
        assert warned == [str(step_size)]


@pytest.mark.slow
def test_ckpt_path_last_in_a_new_folder_resumes_the_latest_run_or_says_where_it_looked(
    tmp_path: Path, data_dir: Path
) -> None:
    common = [*QUICK, "trainer.max_epochs=2", f"paths.data_dir={data_dir}"]
    nothing = run_script("train.py", *common, "ckpt_path=last", cwd=tmp_path)
    assert nothing.returncode == 2
    assert (
        nothing.stderr.strip()
        .splitlines()[-1]
        .startswith("error: ckpt_path=last: no checkpoints/last.ckpt in this run's folder")
    )
    assert "Traceback" not in nothing.stderr and not list(tmp_path.glob("outputs/train/*/checkpoints"))
    first = run_script("train.py", *common, "trainer.max_epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (earlier,) = tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")
    resumed = run_script("train.py", *common, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"ckpt_path=last: resuming {earlier}, the latest run of this data set and model" in resumed.stdout
    assert "re-planned as if total_steps=12" in resumed.stdout  # extended from 1 epoch to 2
    other_model = run_script(
        "train.py", *common, "model=cnn", "dataset=mnist1d", "ckpt_path=last", cwd=tmp_path
    )
    assert other_model.returncode == 2  # an earlier run of another model is not resumed


@pytest.mark.slow
def test_a_bound_left_to_the_range_test_cannot_be_drawn_and_says_which_command_finds_it(
    tmp_path: Path,
) -> None:
    result = run_script("plot_policy.py", "policy.step_size=auto", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.count("run clr-range-test") + result.stderr.count("run clr-range-test") == 1
    assert "scripts/range_test.py" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "lines"),
    [
        (
            ["policy.nosuch=1", "trainer.nokey=2"],
            [
                "policy.nosuch: policy has no key 'nosuch'; known keys: _target_,",
                "trainer.nokey: trainer has",
            ],
        ),
        (
            ["policy.nosuch=1", "trainer.max_epochs=abc"],
            ["policy.nosuch: policy has no key", "trainer.max_epochs=abc: Value 'abc' of type 'str'"],
        ),
        (
            ["policy=nosuch", "model=nosuch"],
            [
                "model=nosuch is not a config of group 'model'",
                "policy=nosuch is not a config of group 'policy'",
            ],
        ),
        (
            ["data.batch_size=0"],
            ["data.batch_size: the config has no 'data'; did you mean dataset.batch_size?"],
        ),
        (["trainer.max_epoch=3"], ["trainer.max_epoch: trainer has no key 'max_epoch'; did you mean"]),
    ],
)
def test_several_bad_overrides_are_all_named_one_line_each(overrides: list[str], lines: list[str]) -> None:
    from lightning_clr.app.cli import override_error

    message = override_error(overrides)
    assert message is not None
    got = message.splitlines()
    assert len(got) == len(lines)
    assert all(line.startswith(start) for line, start in zip(got, lines, strict=True))
    assert "+data" not in message  # never advice that trains something else


@pytest.mark.slow
def test_several_bad_overrides_exit_2_without_a_traceback(tmp_path: Path) -> None:
    result = run_script("train.py", "policy.nosuch=1", "trainer.max_epochs=abc", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line[:22] for line in result.stderr.strip().splitlines()] == [
        "error: policy.nosuch: ",
        "error: trainer.max_epo",
    ]


def test_a_missing_sweeper_names_the_extra_that_installs_it(tmp_path: Path) -> None:
    """A config asking for a sweeper that is not installed (as optuna is without the [sweeps] extra)."""
    from lightning_clr.app.cli import override_error

    (tmp_path / "hparams_search").mkdir()
    (tmp_path / "hparams_search" / "optuna_clr.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna_missing\n"
    )
    (tmp_path / "config.yaml").write_text("defaults:\n  - _self_\n  - hparams_search: null\nseed: 1\n")
    message = override_error(["hparams_search=optuna_clr"], config_dir=tmp_path, multirun=True)
    assert message == (
        "hparams_search=optuna_clr needs Hydra's sweeper 'optuna_missing', which is not installed: "
        "pip install \"lightning-clr[sweeps]\" (it brings the Hydra sweeper plugin 'optuna_missing')"
    )

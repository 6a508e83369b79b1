"""LightningCLI builds CyclicLR and its policy from class_path/init_args: the docs' example, run for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.cli import LightningCLI

from lightning_clr import CyclicLR, LRRangeTest
from lightning_clr.policies import Triangular, Triangular2
from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "examples" / "lightning_cli.yaml"
DEMO = "lightning.pytorch.demos.boring_classes"
QUIET = [
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


@pytest.fixture(autouse=True)
def no_pytest_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI(args=...) warns when sys.argv has arguments too: here they are pytest's."""
    monkeypatch.setattr(sys, "argv", ["main.py"])


def run_cli(args: list[str], tmp_path: Path) -> LightningCLI:
    """``python main.py fit <args>`` of the docs' ``main.py`` (a bare ``LightningCLI()``), in this process."""
    return LightningCLI(args=["fit", *args, *QUIET, f"--trainer.default_root_dir={tmp_path}"])


def the_callback(cli: LightningCLI, kind: type) -> object:
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, kind)]
    return callback


def test_the_docs_config_file_trains_with_triangular2(tmp_path: Path) -> None:
    cli = run_cli(["--config", str(EXAMPLE)], tmp_path)
    clr = the_callback(cli, CyclicLR)
    assert isinstance(clr.policy, Triangular2)
    assert clr.policy.step_size == 128  # step_size_epochs=2 of 64 batches
    assert cli.trainer.global_step == 256
    adam = cli.trainer.optimizers[0].param_groups[0]
    assert adam["lr"] == pytest.approx(Triangular2(0.001, 0.006, step_size=128)(256))  # the coming step's
    assert adam["betas"][0] == pytest.approx(0.95)  # momentum high where the LR is low


def test_the_command_line_appends_the_callback_and_sets_its_policy(tmp_path: Path) -> None:
    """The docs' command, as printed there."""
    page = (ROOT / "docs" / "guide" / "lightning-cli.md").read_text()
    command = page.split("## On the command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    args = command.replace("\\\n", " ").split()
    assert args[:3] == ["python", "main.py", "fit"] and "--trainer.max_epochs=4" in args
    cli = run_cli(args[3:], tmp_path)
    assert cli.trainer.global_step == 4 * 64  # 4 epochs of BoringDataModule's 64 batches
    clr = the_callback(cli, CyclicLR)
    assert clr.policy == Triangular(0.001, 0.006, step_size=32)
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(clr.policy(256))


def test_the_range_test_form_hands_its_bounds_to_the_policy(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "guide" / "lightning-cli.md").read_text()
    snippet = page.split("## With the range test")[1].split("```yaml\n")[1].split("```")[0]
    config = yaml.safe_load(EXAMPLE.read_text())
    config["trainer"].update(yaml.safe_load(snippet)["trainer"], max_epochs=1)
    path = tmp_path / "range_test.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = run_cli(["--config", str(path)], tmp_path)
    bounds = the_callback(cli, LRRangeTest).bounds
    clr = the_callback(cli, CyclicLR)
    assert not clr.pending
    assert (clr.policy.base_lr, clr.policy.max_lr, clr.policy.step_size) == (
        bounds.base_lr,
        bounds.max_lr,
        bounds.step_size,
    )

"""TensorBoard in a real browser: a short run's scalars and the CLR dashboard, as a user sees them.

Needs Debian's ``chromium`` and the ``playwright`` package (``.ci/run`` installs both). Screenshots are kept
in the run dir, ``outputs/browser_test/screenshots/``, as CI artifacts.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from lightning_clr.app.dashboard import EPOCH_SECTION, STEP_SECTION
from lightning_clr.app.training import train
from tests.browser import CHROMIUM, chromium_page, serve_tensorboard
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_DIR = ROOT / "outputs" / "browser_test"
TIMEOUT_MS = 90_000  # TensorBoard loads event files in the background; 2 shared cores are slow


def _require(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run the browser test (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> None:
    _require(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    _require(importlib.util.find_spec("playwright") is not None, "no playwright (pip install -e '.[dev]')")


@pytest.fixture
def short_run(browser: None, compose_cfg: Callable[..., DictConfig]) -> Path:
    """A triangular run with cycled momentum (2 epochs of 6 steps) in ``outputs/browser_test``."""
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    cfg = compose_cfg("policy.step_size=3", "policy.cycle_momentum=true")
    with open_dict(cfg):
        cfg.paths.output_dir = str(RUN_DIR)
    train(cfg)
    return RUN_DIR


def test_tensorboard_lists_the_series_and_renders_the_clr_dashboard(short_run: Path) -> None:
    from playwright.sync_api import expect

    shots = short_run / "screenshots"
    shots.mkdir()
    with serve_tensorboard(short_run) as url, chromium_page() as page:
        page.goto(url + "#scalars")
        page.locator("tf-tag-filterer input").fill("^(lr|momentum|cycle|train_loss|val_loss|val_acc)$")
        for tag in ("lr", "momentum", "cycle", "train_loss", "val_loss", "val_acc"):
            expect(page.get_by_text(f"tag: {tag}", exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "scalars.png", full_page=True)

        page.goto(url + "#custom_scalars")
        cards = page.locator("tf-custom-scalar-multi-line-chart-card")
        expect(cards.locator(".matches-text")).to_have_text(
            ["Matches (1)"] * 5 + ["Matches (2)"], timeout=TIMEOUT_MS
        )
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "custom_scalars.png", full_page=True)
        for section in (STEP_SECTION, EPOCH_SECTION):
            expect(page.get_by_text(section, exact=True)).to_be_visible()
        charts = {  # chart title: the series it matched, as "<tag> (<run>)" after a colour symbol
            cards.nth(i).locator("tf-card-heading .heading-label").inner_text(): sorted(
                " ".join(entry.split()[1:])
                for entry in cards.nth(i).locator(".match-list-entry").all_text_contents()
            )
            for i in range(cards.count())
        }
    series = "{} (tensorboard)"  # the run is named after its folder under the log dir
    assert charts == {
        "learning rate": [series.format("lr")],
        "training loss": [series.format("train_loss")],
        "momentum": [series.format("momentum")],
        "cycle index": [series.format("cycle")],
        "validation loss": [series.format("val_loss")],
        "validation accuracy": [series.format("val_acc"), series.format("val_acc_best")],
    }

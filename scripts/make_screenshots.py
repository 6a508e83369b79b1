"""Regenerate the README's pictures: a short run's CLR dashboard in TensorBoard and its range-test plot.

Usage: python scripts/make_screenshots.py [--run-dir outputs/screenshots] [--docs docs]

Trains MNIST-1D with scripts/train.py (bounds from the LR range test, `auto`; cycled momentum), copies the
run's range_test.png to docs/range_test.png, serves the run with TensorBoard, opens the Custom Scalars tab
in headless Chromium with smoothing off and writes docs/dashboard.png. Needs Debian's chromium and the
playwright package (the dev extra); takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tooling is the tests' (tests/browser.py), in a clone
from tests.browser import chromium_page, serve_tensorboard  # noqa: E402

TRAIN_OVERRIDES = [
    "policy=triangular",
    "policy.base_lr=auto",
    "policy.max_lr=auto",
    "policy.step_size_epochs=2",
    "policy.cycle_momentum=true",
    "trainer.max_epochs=12",
    "trainer.enable_progress_bar=false",
]
TIMEOUT_MS = 120_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "outputs" / "screenshots")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    shutil.rmtree(args.run_dir, ignore_errors=True)
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *TRAIN_OVERRIDES]
    subprocess.run([*command, f"hydra.run.dir={args.run_dir}"], cwd=ROOT, check=True)
    args.docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run_dir / "range_test.png", args.docs / "range_test.png")
    print(f"wrote {args.docs / 'range_test.png'}")

    with serve_tensorboard(args.run_dir) as url, chromium_page(width=1300, height=1650) as page:
        page.goto(url + "#custom_scalars")
        page.locator("tf-custom-scalar-multi-line-chart-card").first.wait_for(timeout=TIMEOUT_MS)
        page.locator("tf-smoothing-input input").fill("0")
        page.locator("paper-checkbox", has_text="Ignore outliers in chart scaling").click()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(2000)  # the charts' last redraw after the data arrived
        page.screenshot(path=args.docs / "dashboard.png", full_page=True)
    print(f"wrote {args.docs / 'dashboard.png'}")


if __name__ == "__main__":
    main()

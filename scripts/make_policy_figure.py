"""Draw Smith's three cyclic policies with the same bounds into docs/policies.png.

Usage: python scripts/make_policy_figure.py [--out docs/policies.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_clr.plotting import plot_schedule
from lightning_clr.policies import ExpRange, Triangular, Triangular2

# The paper's CIFAR-10 setting: 500 iterations per epoch (batch 100), a step size of 4 epochs.
BASE_LR, MAX_LR, STEP_SIZE, GAMMA = 0.001, 0.006, 2000, 0.99994
NUM_STEPS, STEPS_PER_EPOCH = 20000, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "policies.png"
    )
    args = parser.parse_args()

    policies = {
        "triangular": Triangular(BASE_LR, MAX_LR, STEP_SIZE),
        "triangular2": Triangular2(BASE_LR, MAX_LR, STEP_SIZE),
        f"exp_range (gamma={GAMMA})": ExpRange(BASE_LR, MAX_LR, STEP_SIZE, GAMMA),
    }
    fig = plot_schedule(
        policies,
        NUM_STEPS,
        steps_per_epoch=STEPS_PER_EPOCH,
        title="Cyclical learning rate policies (Smith, WACV 2017)\n"
        f"base_lr={BASE_LR}, max_lr={MAX_LR}, step_size={STEP_SIZE}",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

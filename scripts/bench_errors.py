"""Time from `python scripts/train.py <bad value>` to its one-line error, beside importing Lightning.

    python scripts/bench_errors.py            # 3 runs of each case, medians
    python scripts/bench_errors.py --runs 5

Each case runs as a user would run it (a fresh interpreter, in an empty folder); the reference rows time
`import torch` and `import lightning.pytorch` alone, the cost that the start-up checks avoid paying before
they report a bad policy, range-test, trainer, seed or path value.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "train.py"

CASES = {
    "policy.base_lr=-1": ["policy.base_lr=-1"],
    "policy=one_cycle trainer.max_epochs=-1": ["policy=one_cycle", "trainer.max_epochs=-1"],
    "range_test.mode=cubic": ["range_test.mode=cubic"],
    "trainer.accumulate_grad_batches=0": ["trainer.accumulate_grad_batches=0"],
    "seed=-1": ["seed=-1"],
    "policy.step_size=40,80 (no -m)": ["policy.step_size=40,80"],
    "hydra.run.dir=/proc/x": ["hydra.run.dir=/proc/clr-bench"],
}
REFERENCES = {"import torch": "import torch", "import lightning.pytorch": "import lightning.pytorch"}


def _time(command: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name, code in REFERENCES.items():
            seconds = [_time([sys.executable, "-c", code], folder)[0] for _ in range(args.runs)]
            rows.append((name, statistics.median(seconds), "(reference)"))
        for name, overrides in CASES.items():
            timings = [_time([sys.executable, str(SCRIPT), *overrides], folder) for _ in range(args.runs)]
            result = timings[-1][1]
            last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "(no stderr)"
            if result.returncode != 2 or not last.startswith("error: "):
                raise SystemExit(
                    f"{name}: expected a one-line error with status 2, got {result.returncode}: {last}"
                )
            rows.append((name, statistics.median(t for t, _ in timings), last[:70]))
    lightning = rows[1][1]
    print(f"{'case':42} {'median s':>9} {'/ import lightning':>19}  last stderr line")
    for name, seconds, last in rows:
        print(f"{name:42} {seconds:9.2f} {seconds / lightning:19.2f}  {last}")


if __name__ == "__main__":
    main()

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

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"

CASES = {
    "policy.base_lr=-1": ["policy.base_lr=-1"],
    "policy=one_cycle trainer.max_epochs=-1": ["policy=one_cycle", "trainer.max_epochs=-1"],
    "range_test.mode=cubic": ["range_test.mode=cubic"],
    "trainer.accumulate_grad_batches=0": ["trainer.accumulate_grad_batches=0"],
    "seed=-1": ["seed=-1"],
    "policy.step_size=40,80 (no -m)": ["policy.step_size=40,80"],
    "hydra.run.dir=/proc/x": ["hydra.run.dir=/proc/clr-bench"],
    "policy.nosuch=1 trainer.nokey=2": ["policy.nosuch=1", "trainer.nokey=2"],
    "policy.nosuch=1 trainer.max_epochs=abc": ["policy.nosuch=1", "trainer.max_epochs=abc"],
    "policy=nosuch model=nosuch": ["policy=nosuch", "model=nosuch"],
    "data.batch_size=0": ["data.batch_size=0"],
    "policy.max_lr=inf": ["policy.max_lr=inf"],
    "policy.base_lr=nan": ["policy.base_lr=nan"],
    "trainer.precision=17": ["trainer.precision=17"],
    "optimizer.lr=-1": ["optimizer.lr=-1"],
    "ckpt_path=last, a new folder, no run": ["dataset=digits", "model=mlp", "ckpt_path=last"],
    "CIFAR-10 batch cut in half": ["dataset=cifar10", "paths.data_dir=cifar_data", "dataset.download=false"],
    "MNIST header says 60, holds 10": [
        "dataset=mnist",
        "paths.data_dir=mnist_data",
        "dataset.download=false",
    ],
}
#: How many lines a case may print: one per bad override.
LINES = {
    "policy.nosuch=1 trainer.nokey=2": 2,
    "policy.nosuch=1 trainer.max_epochs=abc": 2,
    "policy=nosuch model=nosuch": 2,
}


def _broken_data_files(folder: Path) -> None:
    """In ``folder``: a CIFAR-10 whose first batch is cut in half, an MNIST whose images file lies."""
    sys.path.insert(0, str(ROOT))  # the writers of the real on-disk formats are the tests' (a clone's)
    from tests.test_bad_input import _broken_data_files as write

    write(folder)


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
        _broken_data_files(Path(folder))
        for name, code in REFERENCES.items():
            seconds = [_time([sys.executable, "-c", code], folder)[0] for _ in range(args.runs)]
            rows.append((name, statistics.median(seconds), "(reference)"))
        for name, overrides in CASES.items():
            timings = [_time([sys.executable, str(SCRIPT), *overrides], folder) for _ in range(args.runs)]
            result = timings[-1][1]
            lines = result.stderr.strip().splitlines()
            if result.returncode != 2 or len(lines) != LINES.get(name, 1) or "Traceback" in result.stderr:
                raise SystemExit(
                    f"{name}: expected {LINES.get(name, 1)} error line(s) and status 2, got "
                    f"{result.returncode} and:\n{result.stderr[-2000:]}"
                )
            seconds = statistics.median(t for t, _ in timings)
            rows.append((name, seconds, f"{result.returncode:>4} {len(lines):>5}  {lines[0][:60]}"))
    lightning = rows[1][1]
    print(f"{'case':42} {'median s':>9} {'/ import lightning':>19}  exit lines  first stderr line")
    for name, seconds, last in rows:
        print(f"{name:42} {seconds:9.2f} {seconds / lightning:19.2f}  {last}")


if __name__ == "__main__":
    main()

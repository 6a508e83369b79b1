"""What lightning-clr costs, measured side by side in one run: step rate, range-test time, peak memory.

    python scripts/bench_overhead.py                 # a few minutes on 2 busy cores
    python scripts/bench_overhead.py --reps 9 --steps 600

Variants are interleaved (ABC, BCA, CAB, ...) so a busy machine slows them alike; the table prints medians
over the repetitions and ratios to the first variant (a step rate is itself 1 / the median step time of its
run). Loggers, progress bars and checkpointing are off everywhere, so what differs
is the scheduling alone. Peak memory is each variant's peak RSS growth during ``fit`` in a fresh process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.tuner import Tuner
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr import CyclicLR
from lightning_clr.guards import NonFiniteGuard
from lightning_clr.policies import Triangular
from lightning_clr.range_test import CLRTuner

BASE_LR, MAX_LR, STEP_SIZE = 0.01, 0.1, 50


class Tiny(L.LightningModule):
    """A one-hidden-layer classifier: at width 32 a step is so cheap that any per-step overhead shows."""

    def __init__(self, width: int = 32, torch_clr: bool = False) -> None:
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
        self.torch_clr = torch_clr
        self.lr = BASE_LR  # the attribute Lightning's lr_find sets

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.layer(x), y)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if not self.torch_clr:
            return optimizer
        scheduler = torch.optim.lr_scheduler.CyclicLR(
            optimizer, BASE_LR, MAX_LR, step_size_up=STEP_SIZE, cycle_momentum=False
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class StepTimer(L.Callback):
    """The wall time of every step after ``warmup``: batch start to the next batch start."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.last = warmup, 0.0
        self.durations: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if trainer.global_step > self.warmup:
            self.durations.append(now - self.last)
        self.last = now


def loader(samples: int, width: int = 32) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(samples, width, generator=generator), torch.randint(0, 10, (samples,)))
    return DataLoader(data, batch_size=32, shuffle=True, generator=generator)


def trainer(steps: int, callbacks: list[L.Callback], root: str) -> L.Trainer:
    return L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=callbacks,
    )


def step_rate(variant: str, steps: int, root: str) -> float:
    """Optimizer steps per second after a warm-up of 20 steps: 1 / the median step time.

    The median of the steps of a run, not their mean, so that the moments another process takes the core
    do not decide the figure.
    """
    torch.manual_seed(0)
    timer = StepTimer(warmup=20)
    callbacks: list[L.Callback] = [timer]
    if variant.startswith("ours"):
        callbacks.append(CyclicLR(Triangular(BASE_LR, MAX_LR, step_size=STEP_SIZE)))
    if variant == "ours + NonFiniteGuard":
        callbacks.append(NonFiniteGuard())
    trainer(steps, callbacks, root).fit(Tiny(torch_clr=variant == "torch CyclicLR"), loader(steps * 32))
    return 1 / statistics.median(timer.durations)


def tuning_time(variant: str, steps: int, root: str) -> float:
    """Seconds for ``steps`` steps of plain training, our range test, or Lightning's ``lr_find``."""
    torch.manual_seed(0)
    model, data, run = Tiny(), loader(steps * 32), trainer(steps, [], root)
    start = time.perf_counter()
    if variant == "plain training":
        run.fit(model, data)
    elif variant == "CLRTuner.range_test":
        CLRTuner(run).range_test(
            model, data, min_lr=1e-4, max_lr=1.0, num_steps=steps, divergence_threshold=None
        )
    else:
        Tuner(run).lr_find(
            model, data, min_lr=1e-4, max_lr=1.0, num_training=steps, early_stop_threshold=None
        )
    return time.perf_counter() - start


def peak_rss_growth(variant: str, width: int, steps: int) -> float:
    """MiB: this process's peak RSS after ``fit`` minus before it (called in a fresh process)."""
    torch.manual_seed(0)
    model, data = Tiny(width), loader(steps * 32, width)
    with tempfile.TemporaryDirectory() as root:
        run = trainer(steps, [], root)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if variant == "plain training":
            run.fit(model, data)
        else:
            CLRTuner(run).range_test(model, data, num_steps=steps, divergence_threshold=None)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024


def interleaved(variants: list[str], reps: int, measure: Callable[[str], float]) -> dict[str, list[float]]:
    """``reps`` measurements of each variant, interleaved, the order rotated every round (ABC, BCA, CAB, ...).

    Example::

        >>> interleaved(["a", "b"], 2, len)
        {'a': [1, 1], 'b': [1, 1]}
    """
    results: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(reps):
        for variant in variants[rep % len(variants) :] + variants[: rep % len(variants)]:
            results[variant].append(measure(variant))
    return results


def table(title: str, unit: str, results: dict[str, list[float]]) -> None:
    baseline = statistics.median(next(iter(results.values())))
    print(
        f"\n{title}\n| variant | median {unit} | ratio to {next(iter(results))} | runs |\n|---|---|---|---|"
    )
    for variant, values in results.items():
        median = statistics.median(values)
        print(f"| {variant} | {median:.4g} | {median / baseline:.3f} | {len(values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument(
        "--width", type=int, default=2048, help="hidden width of the memory benchmark's model"
    )
    parser.add_argument("--memory", nargs=2, metavar=("VARIANT", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:  # the child process of the memory benchmark
        print(peak_rss_growth(args.memory[0], args.width, int(args.memory[1])))
        return
    with tempfile.TemporaryDirectory() as root:
        rates = ["no schedule", "torch CyclicLR", "ours", "ours + NonFiniteGuard"]
        table(
            "Training steps/s, tiny model",
            "steps/s",
            interleaved(rates, args.reps, lambda v: step_rate(v, args.steps, root)),
        )
        tuners = ["plain training", "CLRTuner.range_test", "Tuner.lr_find"]
        table(
            f"{args.steps} tuning steps",
            "s",
            interleaved(tuners, args.reps, lambda v: tuning_time(v, args.steps, root)),
        )

    def child(variant: str) -> float:
        command = [sys.executable, __file__, "--width", str(args.width), "--memory", variant, "50"]
        return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])

    weights_mib = sum(p.numel() * p.element_size() for p in Tiny(args.width).parameters()) / 2**20
    memory = interleaved(["plain training", "range test"], max(3, args.reps // 2), child)
    table(
        f"Peak RSS growth during fit, MiB (weights {weights_mib:.1f} MiB, + as much SGD momentum)",
        "MiB",
        memory,
    )


if __name__ == "__main__":
    main()

"""Time to accuracy: in how many epochs each LR policy reaches the best accuracy of a tuned fixed LR.

Smith (WACV 2017, Table 1): on CIFAR-10 ``triangular2`` reached the fixed LR's accuracy in 2.8x fewer
iterations. This benchmark checks that claim on any data set and model of ``conf/`` (MNIST-1D and its 1-D
CNN by default), for SGD and Adam, paired by seed: seed ``s`` gives every policy the same initial weights
and the same batch order, and each policy's run is compared with the fixed LR's run of the same seed.

For each optimizer:

1. the LR range test (``CLRTuner(trainer).range_test(...).suggest()``, settings of ``conf/range_test``) on
   seed 0 gives ``base_lr``, ``max_lr`` and ``step_size`` for every cyclic policy and 1cycle;
2. the fixed LR is the best (by best validation accuracy, seed 0) of a small grid, ``FIXED_GRIDS``;
3. every policy is trained on every seed: ``fixed``, ``step_decay`` (the fixed LR divided by 10 at 6/7 and
   13/14 of the run, the shape of the paper's Caffe baseline), ``triangular``, ``triangular2``,
   ``exp_range`` (gamma such that the amplitude decays over the run as the paper's 0.99994 over 42,000
   iterations) and ``one_cycle`` (peak ``max_lr``); each from its ``conf/policy`` file.

It prints one table per optimizer (best and final validation accuracy averaged over seeds, in how many seeds
the policy reached the fixed LR's best accuracy of that seed, the median first epoch it did, and the median
of the per-seed speed-ups ``fixed epochs / policy epochs``) and writes a figure of the mean validation
accuracy per epoch. Training is a plain loop on in-memory tensors (no Lightning, one CPU thread: the 1-D
CNN is too small for more), with the LR of step ``k`` set by :meth:`CyclicLR.apply` exactly as in training.

    python scripts/bench_time_to_accuracy.py                            # MNIST-1D, 5 seeds, 15 epochs
    python scripts/bench_time_to_accuracy.py --seeds 10 --epochs 60 --optimizers adam
    python scripts/bench_time_to_accuracy.py dataset=digits model=mlp   # Hydra overrides of conf/
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from lightning_clr.config import build_cyclic_lr
from lightning_clr.models import ClassificationModule
from lightning_clr.range_test import CLRTuner
from lightning_clr.schemas import register
from lightning_clr.suggest import Bounds

register()  # the config schemas, as the app registers them when it starts
ROOT = Path(__file__).resolve().parents[1]
register()  # the config schemas, as the app registers them when it starts
FIXED_GRIDS = {"sgd": (0.03, 0.1, 0.3), "adam": (0.003, 0.01, 0.03)}
#: The benchmark's policies and the ``conf/policy`` file each is built from.
POLICY_FILES = {
    "fixed": "fixed",
    "step_decay": "fixed",
    "triangular": "triangular",
    "triangular2": "triangular2",
    "exp_range": "exp_range",
    "one_cycle": "one_cycle",
}
PAPER_DECAY = 0.99994**42000  # exp_range's amplitude at the end of the paper's CIFAR-10 run
EVAL_CHUNK = 2000


@dataclass(frozen=True)
class Data:
    """Training and validation tensors, and what a network needs to know about them."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    batch_size: int
    input_shape: tuple[int, ...]
    num_classes: int

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_y) // self.batch_size)


@dataclass
class Runs:
    """Validation accuracy per epoch of one policy, one list per seed."""

    label: str
    curves: list[list[float]] = field(default_factory=list)


def compose_config(optimizer: str, overrides: Sequence[str]) -> DictConfig:
    """``conf/config.yaml`` with ``optimizer`` and the user's overrides, data under ``<repo>/data``."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "config", overrides=[f"paths.data_dir={ROOT / 'data'}", f"optimizer={optimizer}", *overrides]
        )


def policy_config(label: str, **args: Any) -> DictConfig:
    """The ``conf/policy`` file of the benchmark's policy ``label``, with ``args`` changed."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        policy = compose("config", overrides=[f"policy={POLICY_FILES[label]}"]).policy
    return OmegaConf.merge(policy, args)


def load_data(cfg: DictConfig) -> Data:
    """Instantiate the data module of ``cfg`` and take its tensors."""
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    train_x, train_y = datamodule.train_set.tensors
    val_x, val_y = datamodule.val_set.tensors
    return Data(
        train_x, train_y, val_x, val_y, datamodule.batch_size, datamodule.input_shape, datamodule.num_classes
    )


def make_net(cfg: DictConfig, data: Data, seed: int) -> nn.Module:
    """The network of ``cfg``, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return instantiate(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes)


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` that ``net`` classifies as ``y``."""
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(xs).argmax(dim=1) == ys).sum())
            for xs, ys in zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True)
        )
    return correct / len(y)


def train(cfg: DictConfig, data: Data, policy_cfg: DictConfig, seed: int, epochs: int) -> list[float]:
    """Train a fresh network of seed ``seed`` under ``policy_cfg``; validation accuracy after each epoch."""
    net = make_net(cfg, data, seed)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    clr = build_cyclic_lr(policy_cfg)
    order = torch.Generator().manual_seed(seed)
    step, curve = 0, []
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(data.train_y), generator=order).split(data.batch_size):
            clr.apply(step, [optimizer])
            loss = F.cross_entropy(net(data.train_x[batch]), data.train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        curve.append(accuracy(net, data.val_x, data.val_y))
    return curve


def range_test_bounds(cfg: DictConfig, data: Data, epochs: int) -> Bounds:
    """Our LR range test on seed 0, for a run of ``epochs`` epochs: CLR bounds and step size."""
    pl.seed_everything(0, verbose=False)
    module = ClassificationModule(make_net(cfg, data, 0), optimizer=instantiate(cfg.optimizer))
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    settings = OmegaConf.to_container(cfg.range_test, resolve=True)
    assert isinstance(settings, dict)
    result = CLRTuner(trainer).range_test(module, datamodule=instantiate(cfg.dataset), **settings)
    return result.suggest()


def first_epoch(curve: Sequence[float], target: float) -> int | None:
    """The 1-based epoch at which ``curve`` first reaches ``target``, or None.

    Example::

        >>> first_epoch([0.5, 0.8, 0.9], 0.8), first_epoch([0.5], 0.8)
        (2, None)
    """
    return next((epoch for epoch, value in enumerate(curve, 1) if value >= target), None)


def summary_row(runs: Runs, fixed: Runs) -> dict[str, Any]:
    """Accuracies and time to the fixed LR's best accuracy, paired seed by seed with ``fixed``."""
    epochs, speedups = [], []
    for curve, baseline in zip(runs.curves, fixed.curves, strict=True):
        target = max(baseline)
        reached = first_epoch(curve, target)
        if reached is not None:
            epochs.append(reached)
            speedups.append(first_epoch(baseline, target) / reached)  # type: ignore[operator]
    return {
        "policy": runs.label,
        "best": statistics.mean(max(curve) for curve in runs.curves),
        "final": statistics.mean(curve[-1] for curve in runs.curves),
        "reached": f"{len(epochs)}/{len(runs.curves)}",
        "epoch": statistics.median(epochs) if epochs else None,
        "speedup": statistics.median(speedups) if speedups else None,
    }


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a Markdown table."""

    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| policy | best val acc | final val acc | reached fixed best | median epoch | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['policy']} | {row['best']:.3f} | {row['final']:.3f} | {row['reached']} | "
            f"{cell(row['epoch'], 'g')} | {cell(row['speedup'], '.2f')} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, list[Runs]], title: str) -> Figure:
    """Mean validation accuracy per epoch of every policy, one panel per optimizer."""
    fig = Figure(figsize=(6 * len(results), 4.5), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (optimizer, all_runs) in zip(axes, results.items(), strict=True):
        fixed_best = statistics.mean(max(curve) for curve in all_runs[0].curves)
        for runs in all_runs:
            mean = [statistics.mean(values) for values in zip(*runs.curves, strict=True)]
            ax.plot(range(1, len(mean) + 1), mean, label=runs.label, linewidth=1.5)
        ax.axhline(fixed_best, color="gray", linestyle=":", linewidth=1, label="fixed LR's best")
        low = min(min(values) for runs in all_runs for values in zip(*runs.curves, strict=True))
        ax.set_ylim(max(low, fixed_best - 0.25), None)
        ax.set_title(optimizer)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    fig.suptitle(title)
    return fig


def bench_optimizer(
    optimizer: str, overrides: Sequence[str], seeds: int, epochs: int, say: Callable[[str], None]
) -> list[Runs]:
    """Range test, fixed-LR grid, then every policy on every seed, for one optimizer."""
    cfg = compose_config(optimizer, overrides)
    data = load_data(cfg)
    total_steps = epochs * data.steps_per_epoch
    bounds = range_test_bounds(cfg, data, epochs)
    say(
        f"\n## {optimizer}: range test {OmegaConf.to_container(cfg.range_test, resolve=True)}\n"
        f"-> base_lr={bounds.base_lr:.4g} max_lr={bounds.max_lr:.4g} step_size={bounds.step_size} "
        f"(peak_lr={bounds.peak_lr:.4g}; {data.steps_per_epoch} steps per epoch)"
    )
    grid = {}
    for lr in FIXED_GRIDS[optimizer]:
        grid[lr] = train(cfg, data, policy_config("fixed", lr=lr), 0, epochs)
    best_lr = max(grid, key=lambda lr: max(grid[lr]))
    say(
        "fixed-LR grid (seed 0, best val acc): "
        + ", ".join(f"{lr:g}: {max(curve):.3f}" for lr, curve in grid.items())
        + f" -> lr={best_lr:g}"
        + (" (at the edge of the grid)" if best_lr in (min(grid), max(grid)) else "")
    )
    cycle = {"base_lr": bounds.base_lr, "max_lr": bounds.max_lr, "step_size": bounds.step_size}
    gamma = PAPER_DECAY ** (1 / total_steps)
    milestones = [round(total_steps * 6 / 7), round(total_steps * 13 / 14)]
    configs = {
        "fixed": policy_config("fixed", lr=best_lr),
        "step_decay": policy_config("step_decay", lr=best_lr, milestones=milestones),
        "triangular": policy_config("triangular", **cycle),
        "triangular2": policy_config("triangular2", **cycle),
        "exp_range": policy_config("exp_range", **cycle, gamma=gamma),
        "one_cycle": policy_config("one_cycle", max_lr=bounds.max_lr, total_steps=total_steps),
    }
    say(
        f"step_decay milestones={milestones}, exp_range gamma={gamma:.6g}, "
        f"one_cycle max_lr={bounds.max_lr:.4g}"
    )
    results = []
    for name, policy_cfg in configs.items():
        runs = Runs(name)
        for seed in range(seeds):
            reuse = name == "fixed" and seed == 0
            runs.curves.append(grid[best_lr] if reuse else train(cfg, data, policy_cfg, seed, epochs))
        results.append(runs)
        say(f"{name}: mean best val acc {statistics.mean(max(curve) for curve in runs.curves):.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of conf/, e.g. dataset=digits model=mlp"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, paired across policies")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every run")
    parser.add_argument("--optimizers", nargs="+", choices=sorted(FIXED_GRIDS), default=["sgd", "adam"])
    parser.add_argument("--figure", type=Path, default=ROOT / "outputs" / "time_to_accuracy.png")
    args = parser.parse_args()
    if args.seeds < 1 or args.epochs < 1:
        parser.error(f"--seeds={args.seeds} and --epochs={args.epochs} must be at least 1")

    def say(line: str) -> None:
        print(line, flush=True)

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    start, cpu_start = time.perf_counter(), time.process_time()
    results = {}
    for optimizer in args.optimizers:
        results[optimizer] = bench_optimizer(optimizer, args.overrides, args.seeds, args.epochs, say)
        rows = [summary_row(runs, results[optimizer][0]) for runs in results[optimizer]]
        print(f"\n{optimizer}, {args.seeds} seeds, {args.epochs} epochs:\n{markdown_table(rows)}", flush=True)
    setting = " ".join(args.overrides) or "dataset=mnist1d model=cnn"
    fig = plot(results, f"{setting}: {args.seeds} seeds, {args.epochs} epochs")
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=120)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"\nwrote {args.figure}; {wall:.0f} s wall, {cpu:.0f} s CPU on 1 torch thread (shared cores)")


if __name__ == "__main__":
    main()

"""Time to accuracy: in how many epochs each LR policy reaches the best accuracy of a tuned fixed LR.

Smith (WACV 2017, Table 1): on CIFAR-10 ``triangular2`` reached the fixed LR's accuracy in 2.8x fewer
iterations. This benchmark checks that claim on any data set and model of ``conf/`` (MNIST-1D and its 1-D
CNN by default), for SGD and Adam, paired by seed: seed ``s`` gives every policy the same initial weights
and the same batch order, and each policy's run is compared with the fixed LR's run of the same seed.

For each optimizer:

1. the LR range test (``CLRTuner(trainer).range_test(...).suggest()``, settings of ``conf/range_test``) on
   seed 0 gives ``base_lr``, ``max_lr`` and ``step_size`` for the cyclic policies and 1cycle;
2. the fixed LR is the best (by best validation accuracy, seed 0) of a small grid, ``FIXED_GRIDS``;
3. every schedule is trained on every seed: ``fixed``; what users pick instead of CLR: cosine annealing to
   0 and cosine after a 5% linear warmup, each peaking at the grid's best fixed LR and at the range test's
   ``max_lr``, and schedule-free SGD / AdamW (``schedulefree``; its LR the best on seed 0 of
   ``SCHEDULE_FREE_FACTORS`` times the fixed LR by final accuracy, 5% warmup, evaluated after
   ``optimizer.eval()``); and
   ours, each from its ``conf/policy`` file with the range test's bounds: ``triangular2`` (Smith's, and
   with each ``final_anneal`` of ``FINAL_ANNEALS``), ``triangular`` with the last of them and ``one_cycle``
   (peak ``max_lr``).

It prints one table per optimizer (best and final validation accuracy averaged over seeds, in how many seeds
the schedule reached the fixed LR's best accuracy of that seed, the median first epoch it did, the median
of the per-seed speed-ups ``fixed epochs / policy epochs``, and the epochs of training the method cost in
all, its tuning included: a grid is 3 runs, our range test its passes) and writes a figure of the mean
validation accuracy per epoch. Training is a plain loop on in-memory tensors (no Lightning, one CPU thread:
the 1-D CNN is too small for more), with the LR of step ``k`` set by :meth:`CyclicLR.apply` exactly as in
training; ``--trainer-seeds N`` also trains ``triangular2`` with a real ``Trainer`` and the ``CyclicLR``
callback on seeds 0..N-1, on the same batches as the lean loop (paired run by run), beside the lean loop's
rows of the same seeds. ``--cache DIR`` keeps every run's curve, so a longer or wider rerun trains only what
is new. The bounds used are printed as a ``--bounds`` argument: ``--bounds sgd=BASE,MAX,STEP`` skips the
range test and takes them, so a table reproduces on any machine. WSD (5% warmup, 20% cooldown, linear and
``1-sqrt``) runs at the grid's best LR and at the range test's ``max_lr``.

    python scripts/bench_time_to_accuracy.py                            # MNIST-1D, 5 seeds, 15 epochs
    python scripts/bench_time_to_accuracy.py --seeds 10 --epochs 60 --trainer-seeds 3 --cache outputs/runs
    python scripts/bench_time_to_accuracy.py dataset=digits model=mlp   # Hydra overrides of conf/
    python scripts/bench_time_to_accuracy.py --optimizers sgd --bounds sgd=0.065,0.195,80
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr.app.config import build_cyclic_lr
from lightning_clr.app.models import ClassificationModule
from lightning_clr.app.schemas import register
from lightning_clr.range_test import CLRTuner
from lightning_clr.suggest import Bounds

register()  # the config schemas, as the app registers them when it starts
ROOT = Path(__file__).resolve().parents[1]
FIXED_GRIDS = {"sgd": (0.03, 0.1, 0.3), "adam": (0.003, 0.01, 0.03)}
#: The benchmark's policies and the ``conf/policy`` file each is built from.
POLICY_FILES = {
    "fixed": "fixed",
    "triangular": "triangular",
    "triangular2": "triangular2",
    "one_cycle": "one_cycle",
    "wsd": "wsd",
    "cosine": "cosine",
}
WARMUP = 0.05  # linear warmup of the warmup-cosine and schedule-free competitors, as a fraction of the run
#: Schedule-free LRs tried on seed 0, as multiples of the best fixed LR (its README: 10-50x for SGD, 1-10x
#: for AdamW; the fixed LRs here are already at the top of what the network tolerates).
SCHEDULE_FREE_FACTORS = {"sgd": (1, 3, 10, 30), "adam": (0.3, 1, 3, 10)}
FINAL_ANNEALS = (0.1, 0.2)  # the triangular2 end phases compared
EVAL_CHUNK = 2000
#: float32's rounding of an accuracy (the Trainer logs float32), far below one sample in 100,000
ACCURACY_ROUNDING = 1e-6


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
    tuning: str = ""
    """Epochs of training the method cost in all, tuning included (a grid, a range test)."""


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


@dataclass(frozen=True)
class Competitor:
    """A schedule users pick instead of CLR, applied by the lean loop.

    ``cosine``: cosine annealing from ``lr`` to 0 over the run (``CosineAnnealingLR``), after a linear warmup
    from 0 over the first ``warmup`` of the run when ``warmup > 0``. ``schedule_free``: the
    ``schedulefree`` package's SGD or AdamW (after the configured optimizer) at ``lr``, with
    ``warmup_steps`` the first ``warmup`` of the run, no schedule, and ``optimizer.eval()`` for evaluation.
    """

    kind: str
    lr: float
    warmup: float = 0.0

    def lr_at(self, step: int, total_steps: int) -> float | None:
        """The LR of optimizer step ``step`` of ``total_steps``; None for ``schedule_free`` (no schedule).

        Example::

            >>> [round(Competitor("cosine", 1.0, warmup=0.2).lr_at(k, 10), 3) for k in (0, 1, 2, 6, 9)]
            [0.5, 1.0, 1.0, 0.5, 0.038]
        """
        if self.kind == "schedule_free":
            return None
        warmup = round(self.warmup * total_steps)
        if step < warmup:
            return self.lr * (step + 1) / warmup
        return self.lr * (1 + math.cos(math.pi * (step - warmup) / (total_steps - warmup))) / 2

    def make_optimizer(self, cfg: DictConfig, params: Any, total_steps: int) -> torch.optim.Optimizer:
        if self.kind != "schedule_free":
            return instantiate(cfg.optimizer)(params, lr=self.lr)
        import schedulefree

        options = OmegaConf.to_container(cfg.optimizer, resolve=True)
        assert isinstance(options, dict)
        warmup_steps = round(self.warmup * total_steps)
        decay = options.get("weight_decay", 0.0)
        if options["_target_"].endswith("SGD"):
            return schedulefree.SGDScheduleFree(
                params,
                lr=self.lr,
                momentum=options["momentum"],
                weight_decay=decay,
                warmup_steps=warmup_steps,
            )
        betas = tuple(options["betas"])
        return schedulefree.AdamWScheduleFree(
            params, lr=self.lr, betas=betas, weight_decay=decay, warmup_steps=warmup_steps
        )


class LRSchedule(Protocol):
    """A schedule the lean loop applies itself: its optimizer, and the LR of each step (None: leave it)."""

    def make_optimizer(self, cfg: DictConfig, params: Any, total_steps: int) -> torch.optim.Optimizer: ...

    def lr_at(self, step: int, total_steps: int) -> float | None: ...


Schedule = DictConfig | LRSchedule
"""A ``conf/policy`` config (applied by :meth:`CyclicLR.apply`), a :class:`Competitor` or another
:class:`LRSchedule`."""


def train(cfg: DictConfig, data: Data, schedule: Schedule, seed: int, epochs: int) -> list[float]:
    """Train a fresh network of seed ``seed`` under ``schedule``; validation accuracy after each epoch."""
    net = make_net(cfg, data, seed)
    total_steps = epochs * data.steps_per_epoch
    if not isinstance(schedule, DictConfig):
        optimizer = schedule.make_optimizer(cfg, net.parameters(), total_steps)

        def set_lr(step: int) -> None:
            lr = schedule.lr_at(step, total_steps)
            if lr is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr

    else:
        optimizer = instantiate(cfg.optimizer)(net.parameters())
        clr = build_cyclic_lr(schedule)
        if clr.policy.needs_resolution:
            clr.update_policy(**clr.policy.resolve(data.steps_per_epoch, total_steps).params())

        def set_lr(step: int) -> None:
            clr.apply(step, [optimizer])

    schedule_free = hasattr(optimizer, "eval")
    order = torch.Generator().manual_seed(seed)
    step, curve = 0, []
    for _ in range(epochs):
        net.train()
        if schedule_free:
            optimizer.train()
        for batch in torch.randperm(len(data.train_y), generator=order).split(data.batch_size):
            set_lr(step)
            loss = F.cross_entropy(net(data.train_x[batch]), data.train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if schedule_free:
            optimizer.eval()  # evaluate at the averaged weights, as the schedulefree README says
        curve.append(accuracy(net, data.val_x, data.val_y))
    return curve


class RunCache:
    """Validation curves already trained, one JSON file per (setting, schedule, seed, epochs), or none.

    Example::

        >>> RunCache(None).get_or_train(("key",), lambda: [0.5])
        [0.5]
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get_or_train(self, key: Sequence[Any], run: Callable[[], list[float]]) -> list[float]:
        if self.folder is None:
            return run()
        digest = hashlib.sha1(json.dumps([str(part) for part in key]).encode()).hexdigest()[:16]
        path = self.folder / f"{digest}.json"
        if path.exists():
            return json.loads(path.read_text())["curve"]
        curve = run()
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": [str(part) for part in key], "curve": curve}))
        return curve


def range_test_bounds(cfg: DictConfig, data: Data, epochs: int) -> tuple[Bounds, float]:
    """Our LR range test on seed 0, for a run of ``epochs`` epochs: CLR bounds and step size, and the
    epochs of training the test took (all passes)."""
    pl.seed_everything(0, verbose=False)
    module = ClassificationModule(make_net(cfg, data, 0), optimizer=instantiate(cfg.optimizer))
    settings = OmegaConf.to_container(cfg.range_test, resolve=True)
    assert isinstance(settings, dict)
    result = CLRTuner(quiet_trainer(max_epochs=epochs)).range_test(
        module, datamodule=instantiate(cfg.dataset), **settings
    )
    passes = result.pass_losses or [result.losses]
    return result.suggest(), sum(len(losses) for losses in passes) / data.steps_per_epoch


def quiet_trainer(**kwargs: Any) -> pl.Trainer:
    """A CPU trainer that logs, checkpoints and prints nothing."""
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


class _ValAccuracy(pl.Callback):
    """Collects ``val_acc`` after every training epoch."""

    def __init__(self) -> None:
        self.curve: list[float] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.curve.append(float(trainer.callback_metrics["val_acc"]))


class SameBatches(torch.utils.data.Sampler[list[int]]):
    """The lean loop's batches of seed ``seed``: each epoch a new permutation from one seeded generator."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size = size, batch_size
        self.order = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in torch.randperm(self.size, generator=self.order).split(self.batch_size):
            yield batch.tolist()

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


def train_with_trainer(
    cfg: DictConfig, data: Data, policy_cfg: DictConfig, seed: int, epochs: int
) -> list[float]:
    """As :func:`train`, but through a real ``Trainer`` with the ``CyclicLR`` callback, on the same batches
    in the same order (:class:`SameBatches`): the two paths are paired run by run."""
    module = ClassificationModule(make_net(cfg, data, seed), optimizer=instantiate(cfg.optimizer))
    recorder = _ValAccuracy()
    trainer = quiet_trainer(
        max_epochs=epochs, callbacks=[build_cyclic_lr(policy_cfg), recorder], num_sanity_val_steps=0
    )
    own = torch.Generator()  # a loader's worker seed, drawn from it, leaves the global RNG (dropout) alone
    train = DataLoader(
        TensorDataset(data.train_x, data.train_y),
        batch_sampler=SameBatches(len(data.train_y), data.batch_size, seed),
        generator=own,
    )
    val = DataLoader(TensorDataset(data.val_x, data.val_y), batch_size=EVAL_CHUNK, generator=own)
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    return recorder.curve


def first_epoch(curve: Sequence[float], target: float) -> int | None:
    """The 1-based epoch at which ``curve`` first reaches ``target``, or None.

    A value within ``ACCURACY_ROUNDING`` below ``target`` reaches it: the Trainer logs accuracy in float32,
    the lean loop in float64, and the same count of correct answers must reach the same target.

    Example::

        >>> first_epoch([0.5, 0.8, 0.9], 0.8), first_epoch([0.5], 0.8), first_epoch([0.79999997], 0.8)
        (2, None, 1)
    """
    return next((epoch for epoch, value in enumerate(curve, 1) if value >= target - ACCURACY_ROUNDING), None)


def summary_row(runs: Runs, fixed: Runs) -> dict[str, Any]:
    """Accuracies and time to the fixed LR's best accuracy, paired seed by seed with ``fixed``."""
    epochs, speedups = [], []
    for curve, baseline in zip(runs.curves, fixed.curves, strict=False):  # a row may have fewer seeds
        target = max(baseline)
        reached = first_epoch(curve, target)
        if reached is not None:
            epochs.append(reached)
            speedups.append(first_epoch(baseline, target) / reached)  # type: ignore[operator]
    finals = [curve[-1] for curve in runs.curves]
    return {
        "policy": runs.label,
        "best": statistics.mean(max(curve) for curve in runs.curves),
        "final": statistics.mean(finals),
        "final_sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
        "reached": f"{len(epochs)}/{len(runs.curves)}",
        "epoch": statistics.median(epochs) if epochs else None,
        "speedup": statistics.median(speedups) if speedups else None,
        "tuning": runs.tuning,
    }


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a Markdown table."""

    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| policy | best val acc | final val acc (sd) | reached fixed best | median epoch | speed-up | "
        "epochs incl. tuning |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['policy']} | {row['best']:.3f} | {row['final']:.3f} ({row['final_sd']:.3f}) | "
            f"{row['reached']} | {cell(row['epoch'], 'g')} | {cell(row['speedup'], '.2f')} | "
            f"{row['tuning']} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, list[Runs]], title: str) -> Figure:
    """Mean validation accuracy per epoch of every policy, one panel per optimizer, one legend beside them."""
    import matplotlib

    colors = matplotlib.colormaps["tab20"]
    fig = Figure(figsize=(5.5 * len(results) + 4, 5), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False, sharey=False)[0]
    for ax, (optimizer, all_runs) in zip(axes, results.items(), strict=True):
        fixed_best = statistics.mean(max(curve) for curve in all_runs[0].curves)
        for index, runs in enumerate(all_runs):
            mean = [statistics.mean(values) for values in zip(*runs.curves, strict=True)]
            style = "--" if "Trainer" in runs.label or "lean loop" in runs.label else "-"
            ax.plot(
                range(1, len(mean) + 1), mean, label=runs.label, color=colors(index % 20), linestyle=style
            )
        ax.axhline(fixed_best, color="gray", linestyle=":", linewidth=1, label="fixed LR's best")
        ax.set_ylim(fixed_best - 0.1, None)  # the race near the end, where the schedules differ
        ax.set_title(optimizer)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (mean over seeds)")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    fig.suptitle(title)
    return fig


@dataclass(frozen=True)
class Tuned:
    """What the grids found on seed 0: the fixed LR's and schedule-free's curves per LR, and the best LRs."""

    grid: dict[float, list[float]]
    best_lr: float
    free_grid: dict[float, list[float]]
    free_lr: float


def tune(
    optimizer: str, epochs: int, run: Callable[[Schedule, int], list[float]], say: Callable[[str], None]
) -> Tuned:
    """The fixed-LR grid (by best validation accuracy) and schedule-free's LR (by final accuracy), seed 0."""
    grid = {lr: run(policy_config("fixed", lr=lr), 0) for lr in FIXED_GRIDS[optimizer]}
    best_lr = max(grid, key=lambda lr: max(grid[lr]))
    say(
        "fixed-LR grid (seed 0, best val acc): "
        + ", ".join(f"{lr:g}: {max(curve):.3f}" for lr, curve in grid.items())
        + f" -> lr={best_lr:g}"
        + (" (at the edge of the grid)" if best_lr in (min(grid), max(grid)) else "")
    )
    free_grid = {
        lr: run(Competitor("schedule_free", lr, warmup=WARMUP), 0)
        for lr in (best_lr * factor for factor in SCHEDULE_FREE_FACTORS[optimizer])
    }
    # by the final accuracy: schedule-free's promise is its last (averaged) iterate; the best epoch of a
    # large LR can come just before it diverges (SGD at 30x: best 0.931, final 0.100 on seed 0)
    free_lr = max(free_grid, key=lambda lr: free_grid[lr][-1])
    say(
        "schedule-free grid (seed 0, final val acc): "
        + ", ".join(f"{lr:g}: {curve[-1]:.3f}" for lr, curve in free_grid.items())
        + f" -> lr={free_lr:g}"
        + (" (at the edge of the grid)" if free_lr in (min(free_grid), max(free_grid)) else "")
    )
    return Tuned(grid, best_lr, free_grid, free_lr)


def competitors(
    tuned: Tuned,
    bounds: Bounds,
    total_steps: int,
    test_epochs: float,
    epochs: int,
    ours: dict[str, tuple[Schedule, float]],
) -> dict[str, tuple[Schedule, float]]:
    """Every schedule of a table and the epochs its tuning cost: the fixed LR, cosine and warmup-cosine and
    WSD (at the grid's best LR and at the range test's ``max_lr``), schedule-free, ``ours`` and one_cycle."""
    best_lr, free_lr = tuned.best_lr, tuned.free_lr
    grid_cost, test_cost = len(tuned.grid) * epochs, test_epochs
    schedules: dict[str, tuple[Schedule, float]] = {
        f"fixed ({best_lr:g})": (policy_config("fixed", lr=best_lr), grid_cost - epochs),
        f"cosine, peak {best_lr:g} (grid)": (Competitor("cosine", best_lr), grid_cost),
        f"warmup-cosine, peak {best_lr:g} (grid)": (Competitor("cosine", best_lr, WARMUP), grid_cost),
        f"schedule-free, lr {free_lr:g} (grid)": (
            Competitor("schedule_free", free_lr, WARMUP),
            len(tuned.free_grid) * epochs - epochs,
        ),
        f"cosine, peak {bounds.max_lr:.3g} (range test)": (Competitor("cosine", bounds.max_lr), test_cost),
        f"warmup-cosine, peak {bounds.max_lr:.3g} (range test)": (
            Competitor("cosine", bounds.max_lr, WARMUP),
            test_cost,
        ),
        **ours,
    }
    for shape in ("linear", "1-sqrt"):  # warmup-stable-decay: 5% warmup, 20% cooldown (Hägele et al. 2024)
        for peak, source, cost in ((best_lr, "grid", grid_cost), (bounds.max_lr, "range test", test_cost)):
            wsd = policy_config("wsd", max_lr=peak, warmup=WARMUP, cooldown=0.2, cooldown_shape=shape)
            schedules[f"WSD {shape}, peak {peak:.3g} ({source})"] = (wsd, cost)
    schedules["one_cycle"] = (
        policy_config("one_cycle", max_lr=bounds.max_lr, total_steps=total_steps),
        test_cost,
    )
    return schedules


def bench_optimizer(
    optimizer: str,
    overrides: Sequence[str],
    seeds: int,
    epochs: int,
    say: Callable[[str], None],
    cache: RunCache,
    trainer_seeds: int = 0,
    given: Bounds | None = None,
) -> list[Runs]:
    """Range test (or ``given`` bounds), fixed-LR grid, then every policy and competitor on every seed."""
    cfg = compose_config(optimizer, overrides)
    data = load_data(cfg)
    total_steps = epochs * data.steps_per_epoch
    if given is None:
        bounds, test_epochs = range_test_bounds(cfg, data, epochs)
        say(
            f"\n## {optimizer}: range test {OmegaConf.to_container(cfg.range_test, resolve=True)}\n"
            f"-> {bounds} ({data.steps_per_epoch} steps per epoch; the test trained {test_epochs:.3g} epochs)"
        )
    else:
        bounds, test_epochs = given, 0.0
        say(f"\n## {optimizer}: bounds given (--bounds), no range test: {bounds}")
    say(f"bounds used: --bounds {optimizer}={bounds.base_lr!r},{bounds.max_lr!r},{bounds.step_size}")

    def run(schedule: Schedule, seed: int) -> list[float]:
        key = (overrides, optimizer, _describe(schedule), seed, epochs)
        return cache.get_or_train(key, lambda: train(cfg, data, schedule, seed, epochs))

    tuned = tune(optimizer, epochs, run, say)
    cycle = {"base_lr": bounds.base_lr, "max_lr": bounds.max_lr, "step_size": bounds.step_size}
    ours: dict[str, tuple[Schedule, float]] = {
        "triangular2": (policy_config("triangular2", **cycle, final_anneal=0.0), test_epochs)
    }
    for fraction in FINAL_ANNEALS:
        label = f"triangular2, final_anneal {fraction:g}"
        ours[label] = (policy_config("triangular2", **cycle, final_anneal=fraction), test_epochs)
    label = f"triangular, final_anneal {FINAL_ANNEALS[-1]:g}"
    ours[label] = (policy_config("triangular", **cycle, final_anneal=FINAL_ANNEALS[-1]), test_epochs)
    schedules = competitors(tuned, bounds, total_steps, test_epochs, epochs, ours)
    say(f"one_cycle and cosine (range test) peak max_lr={bounds.max_lr:.4g}, warmup {WARMUP:.0%}")
    results = []
    for label, (schedule, tuning) in schedules.items():
        runs = Runs(label, tuning=f"{tuning + epochs:.0f}")
        for seed in range(seeds):
            reuse = label.startswith("fixed") and seed == 0
            runs.curves.append(tuned.grid[tuned.best_lr] if reuse else run(schedule, seed))
        results.append(runs)
        say(f"{label}: mean final val acc {statistics.mean(curve[-1] for curve in runs.curves):.3f}")
    if trainer_seeds:
        policy = policy_config("triangular2", **cycle, final_anneal=FINAL_ANNEALS[-1])
        label = f"triangular2, final_anneal {FINAL_ANNEALS[-1]:g}"
        key = (overrides, optimizer, "Trainer", _describe(policy), epochs)
        lightning = Runs(f"{label}, Lightning Trainer", tuning=f"{test_epochs + epochs:.0f}")
        for seed in range(trainer_seeds):
            lightning.curves.append(
                cache.get_or_train(
                    (*key, seed),
                    lambda: train_with_trainer(cfg, data, policy, seed, epochs),  # noqa: B023
                )
            )
        lean = next(r for r in results if r.label == label)
        lean_same_seeds = Runs(
            f"{label}, lean loop, seeds 0-{trainer_seeds - 1}", lean.curves[:trainer_seeds]
        )
        lean_same_seeds.tuning = lean.tuning
        results += [lightning, lean_same_seeds]
        say(f"{lightning.label}: mean final val acc {statistics.mean(c[-1] for c in lightning.curves):.3f}")
    return results


def _describe(schedule: Schedule) -> str:
    return OmegaConf.to_yaml(schedule) if isinstance(schedule, DictConfig) else repr(schedule)


def parse_bounds(parser: argparse.ArgumentParser, item: str) -> tuple[str, Bounds]:
    """``NAME=BASE_LR,MAX_LR,STEP_SIZE`` (an argument of ``--bounds``) as ``(NAME, Bounds)``.

    Example::

        >>> parse_bounds(argparse.ArgumentParser(), "sgd=0.05,0.15,12")
        ('sgd', Bounds(base_lr=0.05, max_lr=0.15, step_size=12, peak_lr=None, spread=None))
    """
    name, _, values = item.partition("=")
    try:
        base, peak, step = values.split(",")
        return name, Bounds(float(base), float(peak), int(step))
    except ValueError:
        parser.error(f"--bounds {item!r} must be NAME=BASE_LR,MAX_LR,STEP_SIZE, e.g. sgd=0.065,0.195,80")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of conf/, e.g. dataset=digits model=mlp"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, paired across policies")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every run")
    parser.add_argument("--optimizers", nargs="+", choices=sorted(FIXED_GRIDS), default=["sgd", "adam"])
    parser.add_argument("--figure", type=Path, default=ROOT / "outputs" / "time_to_accuracy.png")
    parser.add_argument(
        "--trainer-seeds", type=int, default=0, help="also train triangular2 with a real Trainer on N seeds"
    )
    parser.add_argument("--cache", type=Path, help="a folder that keeps every run's curve, to reuse it")
    parser.add_argument(
        "--bounds",
        nargs="+",
        default=[],
        metavar="OPTIMIZER=BASE,MAX,STEP",
        help="bounds instead of the range test, e.g. sgd=0.065,0.195,80 (the table then reproduces anywhere)",
    )
    args = parser.parse_args()
    given = dict(parse_bounds(parser, item) for item in args.bounds)
    if args.seeds < 1 or args.epochs < 1 or not 0 <= args.trainer_seeds <= args.seeds:
        parser.error(
            f"--seeds={args.seeds} and --epochs={args.epochs} must be at least 1, and --trainer-seeds="
            f"{args.trainer_seeds} between 0 and --seeds"
        )

    def say(line: str) -> None:
        print(line, flush=True)

    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    start, cpu_start = time.perf_counter(), time.process_time()
    cache = RunCache(args.cache)
    results = {}
    for optimizer in args.optimizers:
        results[optimizer] = bench_optimizer(
            optimizer,
            args.overrides,
            args.seeds,
            args.epochs,
            say,
            cache,
            args.trainer_seeds,
            given.get(optimizer),
        )
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

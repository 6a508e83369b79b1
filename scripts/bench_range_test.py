"""The LR range test's quality bar: do its bounds train as well as a tuned fixed LR, and sooner?

For every setting (data set x model x optimizer, MNIST-1D and digits, MLP and CNN, SGD and Adam) it
compares, after the same budget of epochs and paired by seed (seed ``s`` gives every run the same initial
weights and batch order):

(a) the best fixed LR of a grid (``GRIDS``; chosen by best validation accuracy on seed 0);
(b) Lightning's ``Tuner(trainer).lr_find`` suggestion (its defaults: 100 exponential steps from 1e-8 to
    1), trained as a fixed LR;
(c) ``triangular2`` with our range test's bounds and step size (``CLRTuner(trainer).range_test``, settings
    of ``conf/range_test``), on a budget of ``--epochs`` so the suggested step size splits it into cycles.

Both finders run once on seed 0. The table gives the final validation accuracy (mean over seeds), in how
many seeds (c) reached (a)'s best accuracy of that seed, the median epoch at which (a) reached its own best
and (c) reached it, and the finders' wall time: ours, ``lr_find``, and the same number of plain Lightning
training steps (``trainer.fit`` with ``max_steps``, no validation, logger or checkpoint), each the fastest of
``--repeats`` interleaved timings (the cores are shared). Training runs use the lean loop of
``bench_time_to_accuracy.py`` (in-memory tensors, one CPU thread, the LR set by ``CyclicLR.apply``).

    python scripts/bench_range_test.py                      # 8 settings, 3 seeds, 16 epochs
    python scripts/bench_range_test.py range_test.max_lr=0.1 --seeds 5 --settings digits/mlp/adam
    python scripts/bench_range_test.py --spread --seeds 8     # the range test alone: max_lr over 8 seeds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from bench_time_to_accuracy import (
    Data,
    compose_config,
    first_epoch,
    load_data,
    make_net,
    policy_config,
    train,
)
from hydra.utils import instantiate
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, OmegaConf

from lightning_clr.app.models import ClassificationModule
from lightning_clr.range_test import CLRTuner, RangeTestResult
from lightning_clr.suggest import Bounds

GRIDS = {"sgd": (0.01, 0.03, 0.1, 0.3), "adam": (0.001, 0.003, 0.01, 0.03)}
SETTINGS = tuple(
    f"{dataset}/{model}/{optimizer}"
    for dataset in ("mnist1d", "digits")
    for model in ("mlp", "cnn")
    for optimizer in ("sgd", "adam")
)


@dataclass
class Finders:
    """What the two LR finders suggested, and their fastest wall times."""

    bounds: Bounds
    ours_steps: int
    ours_s: float
    plain_s: float
    lr_find: float | None
    lr_find_steps: int
    lr_find_s: float


def make_trainer(root: str, **kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer that writes nothing (``lr_find``'s temporary checkpoint goes to ``root``)."""
    return pl.Trainer(
        accelerator="cpu",
        default_root_dir=root,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def fresh_module(cfg: DictConfig, data: Data) -> ClassificationModule:
    """Seed 0's network in a LightningModule, everything seeded as ``train.py`` does."""
    pl.seed_everything(0, verbose=False)
    return ClassificationModule(make_net(cfg, data, 0), optimizer=instantiate(cfg.optimizer))


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    """``run()``'s value and its wall time in seconds.

    Example::

        >>> timed(lambda: 6 * 7)[0]
        42
    """
    start = time.perf_counter()
    value = run()
    return value, time.perf_counter() - start


def run_finders(cfg: DictConfig, data: Data, epochs: int, repeats: int, root: str) -> Finders:
    """Our range test, as many plain Lightning steps, and ``lr_find``, interleaved ``repeats`` times."""
    settings = OmegaConf.to_container(cfg.range_test, resolve=True)
    assert isinstance(settings, dict)
    ours, plain, lr_find = [], [], []
    for _ in range(repeats):
        trainer = make_trainer(root, max_epochs=epochs)
        tuner = CLRTuner(trainer)
        module = fresh_module(cfg, data)
        result, seconds = timed(
            lambda: tuner.range_test(module, datamodule=instantiate(cfg.dataset), **settings)  # noqa: B023
        )
        ours.append(seconds)
        steps = len(result.lrs)
        trainer = make_trainer(root, max_epochs=-1, max_steps=steps, limit_val_batches=0)
        module = fresh_module(cfg, data)
        plain.append(timed(lambda: trainer.fit(module, datamodule=instantiate(cfg.dataset)))[1])  # noqa: B023
        finder_tuner = Tuner(make_trainer(root, max_epochs=epochs))
        module = fresh_module(cfg, data)
        finder, seconds = timed(
            lambda: finder_tuner.lr_find(module, datamodule=instantiate(cfg.dataset), update_attr=False)  # noqa: B023
        )
        lr_find.append(seconds)
    return Finders(
        bounds=result.suggest(),
        ours_steps=steps,
        ours_s=min(ours),
        plain_s=min(plain),
        lr_find=finder.suggestion(),
        lr_find_steps=len(finder.results["lr"]),
        lr_find_s=min(lr_find),
    )


def bench_setting(
    setting: str, overrides: Sequence[str], seeds: int, epochs: int, repeats: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Finders, the fixed-LR grid, then (a), (b) and (c) on every seed, for one setting."""
    optimizer = setting.split("/")[2]
    cfg = setting_config(setting, overrides)
    data = load_data(cfg)
    with tempfile.TemporaryDirectory() as root:
        finders = run_finders(cfg, data, epochs, repeats, root)
    bounds = finders.bounds
    say(
        f"\n## {setting}: {data.steps_per_epoch} steps per epoch\n"
        f"ours: base_lr={bounds.base_lr:.4g} max_lr={bounds.max_lr:.4g} step_size={bounds.step_size} "
        f"(peak {bounds.peak_lr:.4g}; {finders.ours_steps} steps, {finders.ours_s:.2f} s; "
        f"{finders.ours_steps} plain Lightning steps {finders.plain_s:.2f} s)\n"
        f"lr_find: {finders.lr_find} ({finders.lr_find_steps} steps, {finders.lr_find_s:.2f} s)"
    )
    grid = {lr: train(cfg, data, policy_config("fixed", lr=lr), 0, epochs) for lr in GRIDS[optimizer]}
    best_lr = max(grid, key=lambda lr: max(grid[lr]))
    edge = " (at the edge of the grid)" if best_lr in (min(grid), max(grid)) else ""
    say(
        "grid, seed 0: "
        + ", ".join(f"{lr:g}: {max(c):.3f}" for lr, c in grid.items())
        + f" -> {best_lr:g}{edge}"
    )
    fixed = [grid[best_lr]] + [
        train(cfg, data, policy_config("fixed", lr=best_lr), seed, epochs) for seed in range(1, seeds)
    ]
    found = None
    if finders.lr_find is not None:
        found = [
            train(cfg, data, policy_config("fixed", lr=finders.lr_find), s, epochs) for s in range(seeds)
        ]
    cycle = {"base_lr": bounds.base_lr, "max_lr": bounds.max_lr, "step_size": bounds.step_size}
    clr = [train(cfg, data, policy_config("triangular2", **cycle), seed, epochs) for seed in range(seeds)]
    targets = [max(curve) for curve in fixed]
    reached = [first_epoch(curve, target) for curve, target in zip(clr, targets, strict=True)]
    return {
        "setting": setting,
        "fixed_lr": best_lr,
        "fixed": statistics.mean(curve[-1] for curve in fixed),
        "lr_find_lr": finders.lr_find,
        "lr_find": None if found is None else statistics.mean(curve[-1] for curve in found),
        "bounds": bounds,
        "clr": statistics.mean(curve[-1] for curve in clr),
        "reached": f"{sum(r is not None for r in reached)}/{seeds}",
        "fixed_epoch": statistics.median(first_epoch(c, t) for c, t in zip(fixed, targets, strict=True)),
        "clr_epoch": statistics.median(r for r in reached if r is not None) if any(reached) else None,
        "vs_lr_find": finders.ours_s / finders.lr_find_s,
        "vs_plain": finders.ours_s / finders.plain_s,
        "finders": finders,
    }


def setting_config(setting: str, overrides: Sequence[str]) -> DictConfig:
    """The config of ``dataset/model/optimizer`` with the user's overrides."""
    dataset, model, optimizer = setting.split("/")
    return compose_config(optimizer, [f"dataset={dataset}", f"model={model}", *overrides])


def suggestion_spread(
    setting: str, cfg: DictConfig, seeds: range, root: str, cache: Path | None = None
) -> dict[str, Any]:
    """The range test alone on ``seeds`` (initial weights and batch order): how far its ``max_lr`` moves.

    ``edges`` counts the tests whose curve was still best at the top of the (possibly widened) span;
    ``outside`` the suggestions outside the range of ``max_lr`` the test's single passes gave
    (``Bounds.spread``), which the test prints beside it. With ``cache``, each test's recorded curves are
    kept there (one JSON file per setting, range-test settings and seed), so a rerun reads them again with
    the current rule (how many passes a test ran stays as recorded: a new ``max_passes`` rule needs a new
    cache).
    """
    data = load_data(cfg)
    settings = OmegaConf.to_container(cfg.range_test, resolve=True)
    assert isinstance(settings, dict)
    max_lrs, edges, outside, seconds, passes = [], 0, 0, [], []
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]  # settings -> file
    for seed in seeds:
        path = None if cache is None else cache / f"{setting.replace('/', '-')}-{digest}-seed{seed}.json"
        if path is not None and path.exists():
            recorded = json.loads(path.read_text())
            result, took = RangeTestResult.from_state_dict(recorded["result"]), recorded["seconds"]
        else:
            pl.seed_everything(seed, verbose=False)
            module = ClassificationModule(make_net(cfg, data, seed), optimizer=instantiate(cfg.optimizer))
            tuner = CLRTuner(make_trainer(root, max_epochs=48))
            result, took = timed(
                lambda: tuner.range_test(module, datamodule=instantiate(cfg.dataset), **settings)  # noqa: B023
            )
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"result": result.state_dict(), "seconds": took}))
        bounds = result.suggest()
        max_lrs.append(bounds.max_lr)
        edges += result.best_at_top(bounds)
        outside += bounds.spread is not None and not bounds.spread[0] <= bounds.max_lr <= bounds.spread[1]
        seconds.append(took)
        passes.append(max(1, len(result.pass_losses)))
    return {
        "setting": setting,
        "max_lrs": max_lrs,
        "ratio": max(max_lrs) / min(max_lrs),
        "edges": edges,
        "outside": outside,
        "seconds": statistics.median(seconds),
        "passes": statistics.mean(passes),
    }


def spread_table(rows: Sequence[dict[str, Any]]) -> str:
    """One row per setting: the suggested ``max_lr`` over seeds, its max/min ratio, tests at the edge."""
    lines = [
        "| setting | max_lr min | median | max | max / min | best at the span's top | "
        "outside its single passes' range | test s (median) | passes (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lrs = row["max_lrs"]
        lines.append(
            f"| {row['setting']} | {min(lrs):.3g} | {statistics.median(lrs):.3g} | {max(lrs):.3g} | "
            f"{row['ratio']:.2f}x | {row['edges']}/{len(lrs)} | {row['outside']}/{len(lrs)} | "
            f"{row['seconds']:.2f} | {row['passes']:.1f} |"
        )
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One row per setting: accuracies, epochs to (a)'s best, finder times."""

    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| setting | (a) best fixed LR | (b) lr_find LR | (c) triangular2 bounds, step | (a) acc | (b) acc | "
        "(c) acc | (c) reached (a)'s best | epoch (a) / (c) | ours s (steps) | lr_find s (steps) | "
        "ours / plain Lightning |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        bounds, finders = row["bounds"], row["finders"]
        lines.append(
            f"| {row['setting']} | {row['fixed_lr']:g} | {cell(row['lr_find_lr'], '.3g')} | "
            f"{bounds.base_lr:.3g}-{bounds.max_lr:.3g}, {bounds.step_size} | {row['fixed']:.3f} | "
            f"{cell(row['lr_find'], '.3f')} | {row['clr']:.3f} | {row['reached']} | "
            f"{row['fixed_epoch']:g} / {cell(row['clr_epoch'], 'g')} | "
            f"{finders.ours_s:.2f} ({finders.ours_steps}) | "
            f"{finders.lr_find_s:.2f} ({finders.lr_find_steps}) | "
            f"{row['vs_plain']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/, e.g. range_test.num_epochs=2")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, paired across (a), (b), (c)")
    parser.add_argument("--epochs", type=int, default=16, help="the budget of every training run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings of each finder")
    parser.add_argument(
        "--spread", action="store_true", help="only the range test, on --seeds seeds: how far max_lr moves"
    )
    args = parser.parse_args()
    if min(args.seeds, args.epochs, args.repeats) < 1:
        parser.error("--seeds, --epochs and --repeats must be at least 1")

    def say(line: str) -> None:
        print(line, flush=True)

    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.spread:
        with tempfile.TemporaryDirectory() as root:
            spreads = [
                suggestion_spread(name, setting_config(name, args.overrides), range(args.seeds), root)
                for name in args.settings
            ]
        print(f"\nsuggested max_lr over {args.seeds} seeds:\n{spread_table(spreads)}")
        print(f"\n{time.perf_counter() - start:.0f} s wall")
        return
    rows = [
        bench_setting(s, args.overrides, args.seeds, args.epochs, args.repeats, say) for s in args.settings
    ]
    print(f"\n{args.seeds} seeds, {args.epochs} epochs:\n{markdown_table(rows)}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"\n{wall:.0f} s wall, {cpu:.0f} s CPU on 1 torch thread (shared cores)")


if __name__ == "__main__":
    main()

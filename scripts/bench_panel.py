"""The panel: our default recipe against today's schedules on four small tasks, paired by seed.

Each task is a data set, a network and an optimizer of ``conf/`` (all offline: MNIST-1D is generated,
scikit-learn's digits are bundled), chosen to span what users train: a plain CNN, a residual net with
BatchNorm, an MLP on tabular features, and SGD, Adam and AdamW (``TASKS``). On every task, as in
``bench_time_to_accuracy.py`` (whose lean loop, grids and competitors this reuses):

1. one LR range test on seed 0 (``conf/range_test`` defaults) gives the bounds and step size, or
   ``--bounds TASK=BASE,MAX,STEP`` gives them (the bounds used are printed in that form, so a table
   reproduces on any machine);
2. the fixed LR is the best of a 3-point grid on seed 0; schedule-free's LR the best of its grid;
3. every schedule trains on seeds 0..N-1, paired: seed ``s`` gives every schedule the same initial weights
   and the same batches in the same order. The schedules: the fixed LR; cosine and warmup-cosine (5%) at
   the grid's best LR and at the range test's ``max_lr``; WSD (5% warmup, 20% cooldown, ``linear`` and
   ``1-sqrt``) at both peaks; schedule-free; ``one_cycle`` at ``max_lr``; and our default recipe, the
   ``conf/policy`` defaults (``triangular``, ``final_anneal`` 0.2) with the range test's bounds, with its
   final anneal's cosine replaced by ``linear`` and ``1-sqrt`` (:class:`AnnealShape`) to measure the shape.

Per task it prints the table of ``bench_time_to_accuracy.py`` and writes a figure
(``--figures``/panel_<task>.png); then one headline row per task: the default recipe's final accuracy
against warmup-cosine's and WSD's at their best peak (paired difference and its seed-to-seed sd: a loss
within one sd is a tie), and in how many seeds it reached the fixed LR's best sooner than both. Every run's
curve is cached (one JSON file per run key under ``--cache``), so a rerun trains only what is new.
``--spread`` runs the range test alone on ``--seeds`` seeds per task, with the task's optimizer and with the
other family (:func:`spread_settings`), and prints how far its ``max_lr`` moves and whether it lies in the
range its single passes gave (``bench_range_test.py --spread``; the recorded curves are cached too).
``--trainer-seeds N`` also trains the default recipe through a real ``Trainer`` with the ``CyclicLR``
callback on the lean loop's batches of seeds 0..N-1 (``--trainer-tasks``) and prints how far it is from the
lean loop.

    python scripts/bench_panel.py                                   # 4 tasks, 10 seeds, 20 epochs
    python scripts/bench_panel.py --tasks digits-mlp-adamw --seeds 3 --epochs 5    # a quick look
    python scripts/bench_panel.py --bounds mnist1d-cnn-sgd=0.042,0.126,150        # no range test there
    python scripts/bench_panel.py --spread --seeds 8                 # the range test's max_lr over 8 seeds
    python scripts/bench_panel.py --spread --seeds 8 --passes 9      # the same with 9 passes a test
    python scripts/bench_panel.py --spread --seeds 8 --first-seed 8  # on 8 other seeds (8..15)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from bench_range_test import spread_table, suggestion_spread
from bench_time_to_accuracy import (
    ROOT,
    WARMUP,
    RunCache,
    Runs,
    Schedule,
    _describe,
    competitors,
    compose_config,
    first_epoch,
    load_data,
    markdown_table,
    parse_bounds,
    plot,
    policy_config,
    range_test_bounds,
    summary_row,
    train,
    train_with_trainer,
    tune,
)
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from lightning_clr.app.config import build_cyclic_lr
from lightning_clr.policies import DECAY_SHAPES, Triangular
from lightning_clr.suggest import Bounds


@dataclass(frozen=True)
class Task:
    """One task of the panel: ``conf/`` overrides and the optimizer grid (``sgd`` or ``adam``) it uses."""

    name: str
    optimizer: str
    overrides: tuple[str, ...]
    what: str


TASKS = (
    Task(
        "mnist1d-cnn-sgd",
        "sgd",
        ("dataset=mnist1d", "model=cnn"),
        "MNIST-1D (generated; 4,000 train / 6,000 val), the paper's 1-D CNN (5,210 params), SGD momentum 0.9",
    ),
    Task(
        "mnist1d-cnn-adam",
        "adam",
        ("dataset=mnist1d", "model=cnn"),
        "MNIST-1D, the same 1-D CNN, Adam",
    ),
    Task(
        "digits-resnet8-adam",
        "adam",
        (
            "dataset=digits",
            "model=resnet20",
            "model._target_=lightning_clr.app.models.ResNet",
            "+model.depth=8",
        ),
        "digits (8x8, 1,437 train / 360 val), ResNet-8 (residual, BatchNorm; 75k params), Adam",
    ),
    Task(
        "digits-mlp-adamw",
        "adam",
        (
            "dataset=digits",
            "model=mlp",
            "optimizer._target_=torch.optim.AdamW",
            "optimizer.weight_decay=0.01",
        ),
        "digits as 64 tabular features, MLP 256-256, AdamW (weight decay 0.01)",
    ),
)
TASK_NAMES = tuple(task.name for task in TASKS)
DEFAULT = "default recipe"
"""The row of our default recipe: ``conf/policy`` defaults (``triangular``) with the range test's bounds."""
SHAPES = ("linear", "1-sqrt")  # the final anneal's shapes measured beside the default cosine


@dataclass(frozen=True)
class AnnealShape:
    """A cyclic policy whose final anneal falls along ``shape`` (``DECAY_SHAPES``) instead of the cosine.

    Every step before the anneal is the policy's own; in it the LR falls from the policy's LR at the step
    before it to ``base_lr / final_div_factor``, as the policy's cosine does.

    Example::

        >>> policy = Triangular(0.01, 0.1, step_size=5, final_anneal=0.5, total_steps=20)
        >>> shaped = AnnealShape(policy, "linear")
        >>> [round(shaped.lr_at(k, 20), 4) for k in (5, 9, 14, 19)]  # peak, anneal starts, halfway, end
        [0.1, 0.028, 0.014, 0.0001]
    """

    policy: Triangular
    shape: str

    def make_optimizer(self, cfg: DictConfig, params: Any, total_steps: int) -> torch.optim.Optimizer:
        return instantiate(cfg.optimizer)(params)

    def lr_at(self, step: int, total_steps: int) -> float:
        first = self.policy.anneal_start()
        if first is None or step < first:
            return self.policy(step)
        anchor, last = first - 1, self.policy.total_steps - 1  # type: ignore[operator]
        start, end = self.policy(anchor), float(self.policy.base_lr) / self.policy.final_div_factor  # type: ignore[arg-type]
        return end + (start - end) * DECAY_SHAPES[self.shape](min(1.0, (step - anchor) / (last - anchor)))


def spread_settings(task: Task) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The range-test settings ``--spread`` measures for ``task``: its own optimizer, and the other family
    (SGD for an Adam-like task, Adam for an SGD task) on the same data and network.

    Example::

        >>> spread_settings(TASKS[3])  # doctest: +NORMALIZE_WHITESPACE
        {'digits-mlp-adamw': ('adam', ('dataset=digits', 'model=mlp',
          'optimizer._target_=torch.optim.AdamW', 'optimizer.weight_decay=0.01')),
         'digits-mlp-sgd': ('sgd', ('dataset=digits', 'model=mlp'))}
    """
    other = "adam" if task.optimizer == "sgd" else "sgd"
    same_optimizer = tuple(o for o in task.overrides if not o.startswith("optimizer."))
    prefix = task.name.rpartition("-")[0]
    return {task.name: (task.optimizer, task.overrides), f"{prefix}-{other}": (other, same_optimizer)}


def default_recipe(bounds: Bounds) -> DictConfig:
    """The ``conf/policy`` defaults (``triangular``) with the range test's bounds and step size."""
    return policy_config(
        "triangular", base_lr=bounds.base_lr, max_lr=bounds.max_lr, step_size=bounds.step_size
    )


@dataclass
class TaskResult:
    """A task's bounds, the LRs its grids chose, its rows (one :class:`Runs` per schedule)."""

    task: Task
    bounds: Bounds
    bounds_source: str
    best_lr: float
    free_lr: float
    runs: list[Runs]
    trainer_gap: float | None = None
    """Largest |Trainer - lean loop| validation accuracy over the Trainer seeds' epochs, when run."""


def bench_task(
    task: Task,
    seeds: int,
    epochs: int,
    cache: RunCache,
    say: Callable[[str], None],
    given: Bounds | None = None,
    trainer_seeds: int = 0,
) -> TaskResult:
    """Range test (or ``given`` bounds), grids, then every schedule on every seed, for one task."""
    cfg = compose_config(task.optimizer, list(task.overrides))
    data = load_data(cfg)
    total_steps = epochs * data.steps_per_epoch
    say(f"\n## {task.name}: {task.what}; {data.steps_per_epoch} steps per epoch, {epochs} epochs")
    if given is None:
        bounds, test_epochs = range_test_bounds(cfg, data, epochs)
        source = f"range test on seed 0 ({test_epochs:.3g} epochs of training)"
    else:
        bounds, test_epochs, source = given, 0.0, "given (--bounds)"
    say(f"bounds: {bounds}, {source}")
    say(f"bounds used: --bounds {task.name}={bounds.base_lr!r},{bounds.max_lr!r},{bounds.step_size}")

    def run(schedule: Schedule, seed: int) -> list[float]:
        key = (task.overrides, task.optimizer, _describe(schedule), seed, epochs)
        return cache.get_or_train(key, lambda: train(cfg, data, schedule, seed, epochs))

    tuned = tune(task.optimizer, epochs, run, say)
    recipe = default_recipe(bounds)
    resolved = build_cyclic_lr(recipe).policy.resolve(data.steps_per_epoch, total_steps)
    assert isinstance(resolved, Triangular)
    ours: dict[str, tuple[Schedule, float]] = {DEFAULT: (recipe, test_epochs)}
    for shape in SHAPES:
        ours[f"{DEFAULT}, final anneal {shape}"] = (AnnealShape(resolved, shape), test_epochs)
    schedules = competitors(tuned, bounds, total_steps, test_epochs, epochs, ours)
    results = []
    with tqdm(total=len(schedules) * seeds, desc=task.name, unit="run", leave=False) as progress:
        for label, (schedule, tuning) in schedules.items():
            runs = Runs(label, tuning=f"{tuning + epochs:.0f}")
            for seed in range(seeds):
                runs.curves.append(run(schedule, seed))
                progress.update()
            results.append(runs)
    result = TaskResult(task, bounds, source, tuned.best_lr, tuned.free_lr, results)
    if trainer_seeds:
        key = (task.overrides, task.optimizer, "Trainer", _describe(recipe), epochs)
        lightning = Runs(f"{DEFAULT}, Lightning Trainer", tuning=f"{test_epochs + epochs:.0f}")
        for seed in tqdm(range(trainer_seeds), desc=f"{task.name}, Trainer", leave=False):
            lightning.curves.append(
                cache.get_or_train(
                    (*key, seed),
                    lambda: train_with_trainer(cfg, data, recipe, seed, epochs),  # noqa: B023
                )
            )
        lean = next(runs for runs in results if runs.label == DEFAULT)
        result.trainer_gap = max(
            abs(a - b)
            for curve, lean_curve in zip(lightning.curves, lean.curves, strict=False)
            for a, b in zip(curve, lean_curve, strict=True)
        )
        paired = Runs(f"{DEFAULT}, lean loop, seeds 0-{trainer_seeds - 1}", lean.curves[:trainer_seeds])
        paired.tuning = lean.tuning
        results += [lightning, paired]
        say(f"Trainer vs lean loop, seeds 0-{trainer_seeds - 1}: largest gap {result.trainer_gap:.2g}")
    return result


def best_row(runs: Sequence[Runs], prefix: str) -> Runs:
    """The row whose label starts with ``prefix`` with the highest mean final accuracy (its best peak)."""
    rows = [r for r in runs if r.label.startswith(prefix)]
    return max(rows, key=lambda r: statistics.mean(curve[-1] for curve in r.curves))


def headline(result: TaskResult) -> dict[str, Any]:
    """The default recipe against warmup-cosine and WSD at their best peak, paired seed by seed.

    ``vs`` holds, per rival, :func:`paired` of (ours - rival) final accuracy; ``sooner`` counts the seeds in
    which ours reached the fixed LR's best accuracy (of that seed) at an earlier epoch than both; ``shapes``
    holds :func:`paired` of each final-anneal shape against ours (the cosine).

    Example::

        >>> fixed = Runs("fixed (0.1)", [[0.5, 0.9], [0.5, 0.9]])
        >>> ours = Runs(DEFAULT, [[0.9, 0.95], [0.8, 0.93]])
        >>> cosine = Runs("warmup-cosine, peak 0.1 (grid)", [[0.6, 0.94], [0.6, 0.94]])
        >>> wsd = Runs("WSD linear, peak 0.1 (grid)", [[0.7, 0.9], [0.9, 0.92]])
        >>> row = headline(TaskResult(Task("t", "sgd", (), ""), Bounds(0.1, 0.3), "", 0.1, 0.1,
        ...                           [fixed, ours, cosine, wsd]))
        >>> row["vs"]["warmup-cosine"]["verdict"], row["vs"]["WSD"]["verdict"], row["sooner"]
        ('tie', 'win', '1/2')
    """
    runs = result.runs
    fixed = runs[0]
    ours = next(r for r in runs if r.label == DEFAULT)
    rivals = {"warmup-cosine": best_row(runs, "warmup-cosine"), "WSD": best_row(runs, "WSD")}
    targets = [max(curve) for curve in fixed.curves]

    def epochs(row: Runs) -> list[float]:
        reached = (first_epoch(curve, target) for curve, target in zip(row.curves, targets, strict=True))
        return [float("inf") if epoch is None else epoch for epoch in reached]

    vs = {name: {"label": rival.label, **paired(ours, rival)} for name, rival in rivals.items()}
    shapes = {
        row.label.rpartition(" ")[2]: paired(row, ours)
        for row in runs
        if row.label.startswith(f"{DEFAULT}, final anneal")
    }
    mine, *theirs = epochs(ours), *(epochs(rival) for rival in rivals.values())
    sooner = sum(m < min(other[seed] for other in theirs) for seed, m in enumerate(mine) if m != float("inf"))
    return {
        "task": result.task.name,
        "final": statistics.mean(curve[-1] for curve in ours.curves),
        "vs": vs,
        "sooner": f"{sooner}/{len(mine)}",
        "shapes": shapes,
    }


def paired(ours: Runs, rival: Runs) -> dict[str, Any]:
    """Mean and sd over seeds of ``ours - rival`` final accuracy, and the verdict: ``win`` above 0 by more
    than the sd, ``tie`` within it, ``loss`` below it by more."""
    diffs = [a[-1] - b[-1] for a, b in zip(ours.curves, rival.curves, strict=True)]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return {"diff": mean, "sd": sd, "verdict": "win" if mean > sd else "tie" if mean >= -sd else "loss"}


def headline_table(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown row per task: ours, the rivals at their best peak, the paired differences."""
    lines = [
        "| task | default recipe final | best warmup-cosine | ours - it (sd) | best WSD | ours - it (sd) | "
        "sooner than both |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{vs['label']} | {vs['diff']:+.4f} ({vs['sd']:.4f}) {vs['verdict']}" for vs in row["vs"].values()
        ]
        lines.append(f"| {row['task']} | {row['final']:.4f} | {' | '.join(cells)} | {row['sooner']} |")
    return "\n".join(lines)


def shapes_table(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown row per task: each final-anneal shape's final accuracy minus the cosine's (paired)."""
    lines = [f"| task | {' | '.join(f'{shape} - cosine (sd)' for shape in SHAPES)} |", "|---|---|---|"]
    for row in rows:
        cells = [
            f"{vs['diff']:+.4f} ({vs['sd']:.4f}) {vs['verdict']}"
            for vs in (row["shapes"][shape] for shape in SHAPES)
        ]
        lines.append(f"| {row['task']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASK_NAMES, default=list(TASK_NAMES))
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1, paired across schedules")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every run")
    parser.add_argument(
        "--bounds",
        nargs="+",
        default=[],
        metavar="TASK=BASE,MAX,STEP",
        help="bounds instead of the range test, e.g. mnist1d-cnn-sgd=0.042,0.126,150",
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "outputs" / "bench_panel")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--trainer-seeds", type=int, default=0, help="Trainer rows on seeds 0..N-1")
    parser.add_argument("--trainer-tasks", nargs="+", choices=TASK_NAMES, default=[TASK_NAMES[0]])
    parser.add_argument(
        "--spread", action="store_true", help="only the range test, on --seeds seeds: how far max_lr moves"
    )
    parser.add_argument("--passes", type=int, help="with --spread: range_test.passes (default: conf's)")
    parser.add_argument(
        "--max-passes", type=int, help="with --spread: range_test.max_passes (default: conf's, none)"
    )
    parser.add_argument("--first-seed", type=int, default=0, help="with --spread: seeds N..N+--seeds-1")
    parser.add_argument(
        "--range-test",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="with --spread: more conf/range_test settings, e.g. max_lr=4.0 num_steps=600",
    )
    parser.add_argument(
        "--settings", nargs="+", metavar="SETTING", help="with --spread: only these, e.g. digits-resnet8-sgd"
    )
    args = parser.parse_args()
    given = dict(parse_bounds(parser, item) for item in args.bounds)
    spread_only = args.passes, args.max_passes, args.first_seed, args.range_test, args.settings
    if not args.spread and any(option not in (None, 0, []) for option in spread_only):
        parser.error(
            "--passes, --max-passes, --first-seed, --range-test and --settings set the range tests of "
            "--spread: give --spread too"
        )
    if args.seeds < 2 or args.epochs < 1 or not 0 <= args.trainer_seeds <= args.seeds:
        parser.error(
            f"--seeds={args.seeds} must be at least 2 (paired sd), --epochs={args.epochs} at least 1, and "
            f"--trainer-seeds={args.trainer_seeds} between 0 and --seeds"
        )

    def say(line: str) -> None:
        tqdm.write(line)

    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    start = time.perf_counter()
    tasks = [task for task in TASKS if task.name in args.tasks]
    if args.spread:
        settings = {name: setting for task in tasks for name, setting in spread_settings(task).items()}
        unknown = set(args.settings or ()) - set(settings)
        if unknown:
            parser.error(f"--settings {' '.join(sorted(unknown))}: --tasks gives only {', '.join(settings)}")
        settings = {
            name: setting for name, setting in settings.items() if name in (args.settings or settings)
        }
        with tempfile.TemporaryDirectory() as root:
            spreads = []
            test_settings = [] if args.passes is None else [f"range_test.passes={args.passes}"]
            if args.max_passes is not None:
                test_settings.append(f"range_test.max_passes={args.max_passes}")
            test_settings += [f"range_test.{item}" for item in args.range_test]
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            for name, (optimizer, overrides) in tqdm(settings.items(), desc="range tests", leave=False):
                cfg = compose_config(optimizer, [*overrides, *test_settings])
                spreads.append(suggestion_spread(name, cfg, seeds, root, args.cache / "spread"))
        print(f"\nsuggested max_lr over seeds {seeds.start}-{seeds.stop - 1}:\n{spread_table(spreads)}")
        print(f"\n{time.perf_counter() - start:.0f} s wall on 1 torch thread")
        return
    cache = RunCache(args.cache)
    headlines, summary = [], []
    for task in tasks:
        result = bench_task(
            task,
            args.seeds,
            args.epochs,
            cache,
            say,
            given.get(task.name),
            args.trainer_seeds if task.name in args.trainer_tasks else 0,
        )
        rows = [summary_row(runs, result.runs[0]) for runs in result.runs]
        say(f"\n{task.name}, {args.seeds} seeds, {args.epochs} epochs:\n{markdown_table(rows)}")
        figure = args.figures / f"panel_{task.name}.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        title = f"{args.seeds} paired seeds, {args.epochs} epochs"
        plot({task.name: result.runs}, title).savefig(figure, dpi=80)
        say(f"wrote {figure}")
        headlines.append(headline(result))
        summary.append(
            {
                "task": asdict(task),
                "bounds": asdict(result.bounds),
                "bounds_source": result.bounds_source,
                "fixed_lr": result.best_lr,
                "schedule_free_lr": result.free_lr,
                "trainer_gap": result.trainer_gap,
                "rows": rows,
                "headline": headlines[-1],
            }
        )
    print(f"\nthe default recipe against warmup-cosine and WSD at their best peak (warmup {WARMUP:.0%}):")
    print(headline_table(headlines))
    print(
        f"\nthe default recipe's final anneal in other shapes, against its cosine:\n{shapes_table(headlines)}"
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(
        f"\nwrote {args.cache / 'summary.json'}; {time.perf_counter() - start:.0f} s wall on 1 torch thread"
    )


if __name__ == "__main__":
    main()

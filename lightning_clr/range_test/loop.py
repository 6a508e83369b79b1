"""The range test's own training loop, stepping through the trainer's strategy (device, precision, clipping
and DDP behave as in training), and the in-memory snapshot that undoes everything it changed.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Any, NamedTuple, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from lightning.pytorch.utilities.data import extract_batch_size
from torchmetrics import Metric

from lightning_clr import compat
from lightning_clr.param_groups import ratios_to_largest
from lightning_clr.range_test.result import RangeTestResult
from lightning_clr.range_test.settings import RangeTestConfig, span_end
from lightning_clr.resume import random_states, set_random_states
from lightning_clr.run_length import optimizer_steps_per_epoch, run_steps
from lightning_clr.validation import fail


def lr_schedule(min_lr: float, max_lr: float, num_steps: int, mode: str = "linear") -> list[float]:
    """The LR of every step of a range test: ``min_lr + (max_lr - min_lr) * i / (n - 1)`` when linear.

    Exponential: ``min_lr * (max_lr / min_lr) ** (i / (n - 1))``.

    Example::

        >>> lr_schedule(0.0, 1.0, 5)
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    last = num_steps - 1
    if mode == "linear":
        return [min_lr + (max_lr - min_lr) * i / last for i in range(num_steps)]
    return [min_lr * (max_lr / min_lr) ** (i / last) for i in range(num_steps)]


def run_range_test(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    config: RangeTestConfig,
    progress_bar: bool = False,
    rich: bool = False,
) -> RangeTestResult:
    """Run the test on the trainer's model, optimizer and train loader (set up by ``fit``), then undo it;
    ``rich``: the progress bar is rich's, else tqdm's.

    Call it from a fit-start hook (:class:`~lightning_clr.range_test.LRRangeTest` does). Every rank
    records the same curve: the loss and the monitored metric are averaged over DDP ranks.

    Raises:
        ValueError: manual optimization, several optimizers, an empty train loader, ``num_epochs`` with a
            loader of unknown length, a monitored metric without validation data or not logged.
    """
    if not pl_module.automatic_optimization:
        raise ValueError("the LR range test needs automatic optimization (automatic_optimization=True)")
    if len(trainer.optimizers) != 1:
        raise ValueError(f"the LR range test needs exactly one optimizer, got {len(trainer.optimizers)}")
    with _snapshot(trainer, pl_module) as keep_generators:  # even building a loader draws from the RNG
        loader, batches_per_epoch = _train_loader(trainer, keep_generators)
        accumulate = trainer.accumulate_grad_batches
        # an empty loader was rejected: no epoch length is 0
        steps_per_epoch = batches_per_epoch and optimizer_steps_per_epoch(batches_per_epoch, accumulate)
        num_steps = _num_steps(config, trainer, steps_per_epoch)
        val_batches = (
            [] if config.monitor == "loss" else _val_batches(trainer, config.num_val_batches, keep_generators)
        )
        group_lrs = [float(group["lr"]) for group in trainer.optimizers[0].param_groups]
        config = replace(config, max_lr=span_end(config, max(group_lrs)))  # the span, resolved
        stream = _batches(loader)
        passes: list[RangeTestResult] = []
        info = {
            "mode": config.mode,
            "monitor": config.monitor,
            "monitor_mode": cast(str, config.monitor_mode),
        }
        bar_steps = num_steps * config.passes
        with _isolated(trainer, pl_module) as capture, _progress_bar(bar_steps, progress_bar, rich) as bar:
            # rank 0 decides for all: a float apart near stable_within must not leave one rank a pass behind
            while len(passes) < config.passes or trainer.strategy.broadcast(
                _needs_another_pass(passes, config, info), src=0
            ):
                if len(passes) >= config.passes:
                    bar.grow(num_steps)
                with _snapshot(trainer, pl_module):  # every pass starts from the same weights and RNG state
                    if passes:  # ... and then draws other batches (the stream goes on) and dropout
                        _seed_everything(int(torch.randint(2**31 - 1, ())) + len(passes))
                    passes.append(
                        _one_pass(
                            trainer, pl_module, config, num_steps, stream, val_batches, capture, bar.step
                        )
                    )
        return RangeTestResult.from_passes(
            passes,
            **info,
            num_steps=num_steps,
            steps_per_epoch=steps_per_epoch,
            total_steps=run_steps(batches_per_epoch, trainer.max_epochs, trainer.max_steps, accumulate),
            group_lrs=group_lrs,
        )


def _needs_another_pass(passes: list[RangeTestResult], config: RangeTestConfig, info: dict[str, Any]) -> bool:
    """Whether ``passes`` (at least ``config.passes``) should get one more: ``max_passes`` allows it and
    resampling them moves the suggestion by more than ``stable_within``; says so when it stops adding."""
    if config.max_passes is None or config.max_passes == config.passes:
        return False
    if len(passes) == 1:  # one pass cannot disagree with itself
        return True
    spread = RangeTestResult.from_passes(passes, **info).resampled_spread()
    if spread > config.stable_within and len(passes) < config.max_passes:
        return True
    verdict = "within" if spread <= config.stable_within else "still above"
    rank_zero_info(
        f"LR range test: {len(passes)} passes; resampling them moves max_lr by {spread:.3g}x "
        f"({verdict} stable_within={config.stable_within})"
    )
    return False


def _one_pass(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    config: RangeTestConfig,
    num_steps: int,
    stream: Iterator[tuple[int, Any]],
    val_batches: list[Any],
    capture: _LogCapture,
    bar: Callable[[float, float], None],
) -> RangeTestResult:
    """One test: ``num_steps`` optimizer steps as the LR rises, until the loss diverges."""
    optimizer, strategy = trainer.optimizers[0], trainer.strategy
    accumulate = trainer.accumulate_grad_batches
    interval = config.val_check_interval or max(1, num_steps // 30)
    beta = config.beta if config.beta is not None else 1 - 1 / max(10, num_steps / 20)
    threshold = config.divergence_threshold
    ratios = ratios_to_largest([float(group["lr"]) for group in optimizer.param_groups])
    result = RangeTestResult(lrs=[], losses=[], smoothed=[])
    average, best = 0.0, math.inf
    max_lr = cast(float, config.max_lr)  # resolved by run_range_test
    for step, lr in enumerate(lr_schedule(config.min_lr, max_lr, num_steps, config.mode)):
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        loss = _optimizer_step(strategy, pl_module, optimizer, stream, accumulate, step)
        value = strategy.reduce(loss, reduce_op="mean").item()  # the one sync of a step
        average = beta * average + (1 - beta) * value
        smoothed = average / (1 - beta ** (step + 1)) if math.isfinite(value) else math.nan
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(smoothed)
        due = (step + 1) % interval == 0 or step == num_steps - 1
        if val_batches and due and math.isfinite(value):
            result.metric_steps.append(step)
            result.metric_values.append(_evaluate(trainer, pl_module, val_batches, config.monitor, capture))
        bar(lr, value)
        if not math.isfinite(value):
            result.stop_reason = f"loss {value} at step {step} (lr={lr:.4g})"
        elif threshold is not None and (why := diverged(smoothed, best, result.smoothed[0], threshold)):
            result.stop_reason = f"{why} at step {step} (lr={lr:.4g})"
        if result.stop_reason is not None:
            rank_zero_info(f"LR range test stopped early: {result.stop_reason}")
            break
        best = min(best, smoothed)
    return result


def diverged(smoothed: float, best: float, first: float, threshold: float) -> str | None:
    """Why the smoothed loss counts as diverged, or None: above ``threshold`` x its best for a positive best;
    for a best of 0 or below (a negative log-likelihood, a loss with an offset), where a ratio means nothing,
    risen above it by ``threshold - 1`` times the larger of its size and its fall from the first value.

    Example::

        >>> diverged(8.2, best=2.0, first=2.3, threshold=4.0)
        'smoothed loss 8.2 > 4.0 x best 2'
        >>> diverged(-92.3, best=-90.76, first=-90.0, threshold=4.0) is None  # still falling
        True
    """
    if best > 0:
        return (
            f"smoothed loss {smoothed:.4g} > {threshold} x best {best:.4g}"
            if smoothed > threshold * best
            else None
        )
    scale = (threshold - 1) * max(first - best, abs(best))
    if smoothed - best > scale > 0:
        return f"smoothed loss {smoothed:.4g} rose more than {scale:.4g} above its best {best:.4g}"
    return None


# --- one step, one evaluation ----------------------------------------------------------------------------


def _optimizer_step(
    strategy: Any,
    pl_module: pl.LightningModule,
    optimizer: torch.optim.Optimizer,
    stream: Iterator[tuple[int, Any]],
    accumulate: int,
    step: int,
) -> torch.Tensor:
    """One optimizer step over ``accumulate`` batches, through the strategy and its precision plugin."""
    losses = []

    def closure() -> torch.Tensor:
        for micro in range(accumulate):
            batch_idx, batch = next(stream)
            batch = strategy.batch_to_device(batch)
            no_sync = micro < accumulate - 1 and hasattr(strategy, "block_backward_sync")
            with strategy.block_backward_sync() if no_sync else nullcontext():
                output = strategy.training_step(batch, batch_idx)
                loss = output["loss"] if isinstance(output, Mapping) else output
                if not isinstance(loss, torch.Tensor):
                    raise ValueError(
                        f"training_step returned {output!r} at range-test step {step}: the test needs a loss"
                    )
                strategy.backward(loss / accumulate, optimizer)
            losses.append(loss.detach())
        return losses[-1]

    optimizer.zero_grad()
    strategy.optimizer_step(optimizer, closure, model=pl_module)
    return torch.stack(losses).float().mean()


def _evaluate(
    trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[Any], monitor: str, capture: _LogCapture
) -> float:
    """``monitor`` as ``validation_step`` logs it over ``batches``, averaged over DDP ranks."""
    metrics = [m for m in pl_module.modules() if isinstance(m, Metric)]
    for metric in metrics:
        metric.reset()
    modes = {module: module.training for module in pl_module.modules()}
    pl_module.eval()
    capture.logged = {}
    try:
        with torch.no_grad():
            for index, batch in enumerate(batches):
                capture.batch_size = extract_batch_size(batch)
                trainer.strategy.validation_step(batch, index)
    finally:
        logged, capture.logged = capture.logged, None
        for module, mode in modes.items():
            module.training = mode
    if monitor not in logged:
        fail("monitor", monitor, f"was not logged by validation_step; it logged {sorted(logged)}")
    pairs = logged[monitor]  # (value, batch size) of each call
    logged_metric = next((v for v, _ in reversed(pairs) if isinstance(v, Metric)), None)
    if logged_metric is not None:
        value = logged_metric.compute()  # torchmetrics synchronises it across ranks
    else:
        device = pl_module.device
        values = torch.stack([torch.as_tensor(v, dtype=torch.float, device=device) for v, _ in pairs])
        weights = torch.tensor([float(n) for _, n in pairs], device=device)
        value = trainer.strategy.reduce((values * weights).sum() / weights.sum(), reduce_op="mean")
    for metric in metrics:
        metric.reset()
    return float(value)


class _LogCapture:
    """Stands in for ``LightningModule.log`` during the test: it records only while evaluating."""

    def __init__(self) -> None:
        self.logged: dict[str, list[tuple[Any, int]]] | None = None
        self.batch_size = 1

    def __call__(
        self, name: str, value: Any, *args: Any, batch_size: int | None = None, **kwargs: Any
    ) -> None:
        if self.logged is not None:
            self.logged.setdefault(name, []).append((value, batch_size or self.batch_size))


# --- leaving no trace ------------------------------------------------------------------------------------


@contextmanager
def _snapshot(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Iterator[Callable[[Any], None]]:
    """Copy in memory everything the test can change (weights, buffers, grads, optimizer, schedulers, AMP
    scaler, metrics, modes, RNG); put it back on exit, also after an exception.

    Yields ``keep_generators(dataloader)``, which adds the generators a loader draws from.
    """
    with torch.no_grad():
        tensors = {name: t.detach().clone() for name, t in _tensors(pl_module)}
    grads = {n: None if p.grad is None else p.grad.detach().clone() for n, p in pl_module.named_parameters()}
    # kept as the optimizer's own objects: a restore in place leaves every param group the dict it was
    optimizers = [_optimizer_values(o) for o in trainer.optimizers]
    schedulers = [copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs]
    precision = copy.deepcopy(trainer.precision_plugin.state_dict())
    metrics = {m: _metric_state(m) for m in pl_module.modules() if isinstance(m, Metric)}
    modes = {module: module.training for module in pl_module.modules()}
    rng = random_states()
    generators: dict[torch.Generator, torch.Tensor] = {}

    def keep_generators(dataloader: Any) -> None:
        samplers = (getattr(dataloader, name, None) for name in ("sampler", "batch_sampler"))
        for owner in (dataloader, *samplers):
            for candidate in (owner, getattr(owner, "sampler", None)):
                generator = getattr(candidate, "generator", None)
                if isinstance(generator, torch.Generator) and generator not in generators:
                    generators[generator] = generator.get_state()

    try:
        yield keep_generators
    finally:
        with torch.no_grad():
            for name, tensor in _tensors(pl_module):
                tensor.copy_(tensors[name])
        for name, param in pl_module.named_parameters():
            param.grad = grads[name]
        for optimizer, (groups, kept) in zip(trainer.optimizers, optimizers, strict=True):
            for group, settings in zip(optimizer.param_groups, copy.deepcopy(groups), strict=True):
                group.update(settings)
            optimizer.state.clear()  # the dict the optimizer holds, keyed by the model's own parameters
            optimizer.state.update({param: copy.deepcopy(values) for param, values in kept.items()})
        for config, state in zip(trainer.lr_scheduler_configs, schedulers, strict=True):
            config.scheduler.load_state_dict(state)
        trainer.precision_plugin.load_state_dict(precision)
        for metric, state in metrics.items():
            for name, value in state.items():
                setattr(metric, name, value)
        for module, mode in modes.items():
            module.training = mode
        set_random_states(rng)
        for generator, generator_state in generators.items():
            generator.set_state(generator_state)


def _optimizer_values(optimizer: torch.optim.Optimizer) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
    """Copies of each param group's settings and of each parameter's state, to be put back in place: every
    group stays the dict it was (a model may hold it), every state stays keyed by its parameter."""
    groups = [
        {k: copy.deepcopy(v) for k, v in group.items() if k != "params"} for group in optimizer.param_groups
    ]
    return groups, {param: copy.deepcopy(values) for param, values in optimizer.state.items()}


@contextmanager
def _isolated(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Iterator[_LogCapture]:
    """Gradients on, ``self.log`` captured, no other callback running (CyclicLR, progress bars, ...)."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    capture = _LogCapture()
    trainer.callbacks = []  # type: ignore[attr-defined]
    pl_module.log = capture  # type: ignore[method-assign]
    try:
        with torch.enable_grad():
            yield capture
    finally:
        del pl_module.log
        trainer.callbacks = callbacks  # type: ignore[attr-defined]


def _tensors(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Parameters and all buffers, persistent or not (``state_dict`` leaves out the latter)."""
    yield from module.named_parameters()
    yield from module.named_buffers()


def _metric_state(metric: Metric) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(metric, name)) for name in compat.metric_state_names(metric)}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- data ------------------------------------------------------------------------------------------------


def _train_loader(
    trainer: pl.Trainer, keep_generators: Callable[[Any], None]
) -> tuple[CombinedLoader, int | None]:
    """The train loader(s) as the fit loop builds them (with a distributed sampler), and the epoch length."""
    loader = compat.train_dataloaders(trainer)
    trainer.strategy.barrier("range_test_train_dataloader")
    combined = loader if isinstance(loader, CombinedLoader) else CombinedLoader(loader, "max_size_cycle")
    stage = RunningStage.TRAINING
    combined.flattened = [compat.prepare_for_fit(trainer, stage, dl) for dl in combined.flattened]
    for dl in combined.flattened:
        keep_generators(dl)
    try:
        lengths = [len(dl) for dl in combined.flattened]
    except TypeError:
        return combined, None
    combined.limits = [compat.limit_batches(stage, n, trainer.limit_train_batches) for n in lengths]
    length = int(max(combined.limits))  # "max_size_cycle": the longest loader makes the epoch
    if length == 0:
        raise ValueError("the LR range test needs training batches, but the train dataloader is empty")
    return combined, length


def _batches(loader: CombinedLoader) -> Iterator[tuple[int, Any]]:
    """``(batch_idx, batch)`` forever, epoch after epoch."""
    epoch = 0
    while True:
        for dl in loader.flattened:
            compat.set_sampler_epoch(dl, epoch)
        batch_idx = None
        for batch, batch_idx, _ in iter(loader):
            yield batch_idx, batch
        if batch_idx is None:
            raise ValueError("the LR range test needs training batches, but the train dataloader is empty")
        epoch += 1


def _val_batches(trainer: pl.Trainer, num_batches: int, keep_generators: Callable[[Any], None]) -> list[Any]:
    """The first ``num_batches`` validation batches, on the device, reused by every evaluation."""
    loader = compat.val_dataloaders(trainer)
    if loader is None:
        raise ValueError(
            "monitoring a validation metric needs val_dataloaders or a datamodule's val_dataloader()"
        )
    if isinstance(loader, CombinedLoader):
        loader = loader.flattened[0]
    elif isinstance(loader, Sequence):
        loader = loader[0]
    loader = compat.prepare_for_fit(trainer, RunningStage.VALIDATING, loader)
    keep_generators(loader)
    batches = [trainer.strategy.batch_to_device(batch) for batch in itertools.islice(loader, num_batches)]
    if not batches:
        raise ValueError("monitoring a validation metric needs validation batches, but the loader is empty")
    return batches


def _num_steps(config: RangeTestConfig, trainer: pl.Trainer, steps_per_epoch: int | None) -> int:
    if trainer.fast_dev_run:  # type: ignore[attr-defined]
        rank_zero_warn("fast_dev_run: the LR range test runs 2 steps only; its suggestion means nothing.")
        return 2
    if config.num_steps is not None:
        return config.num_steps
    if steps_per_epoch is None:
        raise ValueError(
            f"num_epochs={config.num_epochs!r} needs a train loader with a length: give num_steps instead"
        )
    epochs = cast(float, config.num_epochs)  # RangeTestConfig gives it a default when num_steps is None
    return max(2, config.min_steps, round(epochs * steps_per_epoch))


@contextmanager
def _progress_bar(total: int, show: bool, rich: bool) -> Iterator[_Bar]:
    """One bar, rich's or tqdm's, or none."""
    if not show:
        yield _Bar(step=lambda lr, loss: None, grow=lambda steps: None)
    elif rich:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = TextColumn("LR range test"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        with Progress(*columns, TextColumn("{task.fields[info]}")) as bar:
            task = bar.add_task("", total=total, info="")

            def grow(steps: int) -> None:
                nonlocal total
                total += steps
                bar.update(task, total=total)

            yield _Bar(
                lambda lr, loss: bar.update(task, advance=1, info=f"lr={lr:.3g} loss={loss:.4g}"), grow
            )
    else:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="LR range test", dynamic_ncols=True) as tqdm_bar:

            def step(lr: float, loss: float) -> None:
                tqdm_bar.set_postfix(lr=f"{lr:.3g}", loss=f"{loss:.4g}", refresh=False)
                tqdm_bar.update()

            def grow(steps: int) -> None:
                nonlocal total
                total += steps
                tqdm_bar.total = total
                tqdm_bar.refresh()

            yield _Bar(step, grow)


class _Bar(NamedTuple):
    """A progress bar: ``step(lr, loss)`` after each step, ``grow(steps)`` when a pass is added."""

    step: Callable[[float, float], None]
    grow: Callable[[int], None]

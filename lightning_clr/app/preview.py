"""The task behind ``scripts/plot_policy.py``: draw the LR (and momentum) a config will train with.

The optimizer steps are counted as the trainer (of one process) will, so lengths resolve as in training;
with ``ckpt_path`` it draws the checkpoint's plan, the re-planned one and the step where the run resumes.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import fill

import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig

from lightning_clr.app.config import ConfigError, build, build_cyclic_lr
from lightning_clr.app.training import checkpoint_file, one_line_errors
from lightning_clr.callback import CyclicLR
from lightning_clr.plotting import plot_schedule
from lightning_clr.policies import Policy
from lightning_clr.run_length import optimizer_steps_per_epoch, run_steps

__all__ = ["main", "planned_steps", "preview"]


def planned_steps(cfg: DictConfig) -> tuple[int, int]:
    """``(optimizer steps per epoch, optimizer steps in the run)`` for a run of ``cfg`` (its data set set up).

    Raises:
        ConfigError: if the train loader has no length, or nothing bounds the run.

    Example::

        >>> from omegaconf import OmegaConf
        >>> cfg = OmegaConf.create({"dataset": {"_target_": "lightning_clr.app.data.digits.DigitsDataModule"},
        ...                         "trainer": {"max_epochs": 20}})
        >>> planned_steps(cfg)  # digits: 1,437 training images in batches of 100, 20 epochs
        (15, 300)
    """
    datamodule = build("dataset", cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    try:
        batches = len(datamodule.train_dataloader())
    except TypeError as error:
        raise ConfigError(
            "dataset: the train loader has no length (an iterable dataset): give policy.step_size in "
            "optimizer steps and trainer.max_steps to preview the schedule"
        ) from error
    limit = cfg.trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    accumulate = cfg.trainer.get("accumulate_grad_batches", 1)
    max_epochs, max_steps = cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps")
    total = run_steps(batches, max_epochs, max_steps, accumulate)
    if total is None:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs!r} and trainer.max_steps={max_steps!r}: give one of them to "
            "know how many steps to draw"
        )
    return optimizer_steps_per_epoch(batches, accumulate), total


def preview(cfg: DictConfig) -> Figure:
    """The schedule ``cfg`` trains with: LR of every param group, and momentum when cycled.

    Raises:
        ConfigError: a bad ``policy`` (as in training), or a bound left to the LR range test (``auto``).

    Example::

        >>> from omegaconf import OmegaConf
        >>> cfg = OmegaConf.create({
        ...     "policy": {"_target_": "lightning_clr.policies.Triangular2", "base_lr": 0.01, "max_lr": 0.1,
        ...                "step_size_epochs": 2.5},
        ...     "dataset": {"_target_": "lightning_clr.app.data.digits.DigitsDataModule"},
        ...     "trainer": {"max_epochs": 20},
        ... })
        >>> fig = preview(cfg)  # then fig.savefig("policy.png")
        >>> fig.get_suptitle().splitlines()
        ['triangular2: base_lr=0.01, max_lr=0.1, step_size=38, ...', '300 optimizer steps, 15 per epoch']
    """
    cyclic_lr = build_cyclic_lr(cfg.policy)
    if cyclic_lr.pending:
        names = ", ".join(f"policy.{name}=auto" for name in sorted(cyclic_lr.pending))
        raise ConfigError(
            f"{names}: found by the LR range test when training starts; run clr-range-test with the same "
            "overrides and give the values it prints to preview the schedule"
        )
    steps_per_epoch, total = planned_steps(cfg)
    resume = _resume_from(cfg, cyclic_lr)
    policy = cyclic_lr.policy.resolve(steps_per_epoch, total)
    plans: Policy | dict[str, Policy] = policy
    num_steps, marks = total, None
    arguments = ", ".join(f"{key}={value}" for key, value in policy.params().items() if value is not None)
    title = (
        f"{fill(f'{policy.name}: {arguments}', 100)}\n{total} optimizer steps, {steps_per_epoch} per epoch"
    )
    if resume is not None:
        then, then_steps, step = resume
        other = f"{then.name}, " if then.name != policy.name else ""  # the configured policy changed
        plans = {f"as planned ({other}{then_steps} steps)": then, f"resumed ({total} steps)": policy}
        num_steps, marks = max(total, then_steps), {f"resume at step {step}": step}
        title = (
            f"{policy.name} resumed at step {step} of a run planned for {then_steps} optimizer steps\n"
            f"re-planned for {total} steps ({steps_per_epoch} per epoch)"
        )
    cycled = cyclic_lr.cycle_momentum
    return plot_schedule(
        plans,
        num_steps,
        steps_per_epoch=steps_per_epoch,
        title=title,
        marks=marks,
        base_momentum=cyclic_lr.base_momentum if cycled else None,
        max_momentum=cyclic_lr.max_momentum if cycled else None,
    )


def _resume_from(cfg: DictConfig, cyclic_lr: CyclicLR) -> tuple[Policy, int, int] | None:
    """``(the checkpoint's plan, its run length, the step it resumes at)``, ``cyclic_lr`` loading its state
    as a resumed fit does; None without ``ckpt_path``."""
    path = checkpoint_file(cfg)
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path!r}: {path} is not a file (give a checkpoint, or `last`)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("callbacks", {}).get(cyclic_lr.state_key)
    if state is None or state.get("run_steps") is None:
        raise ConfigError(f"ckpt_path={cfg.ckpt_path!r}: {path} holds no CyclicLR plan to resume")
    cyclic_lr.load_state_dict(state)
    name = state["policies"][0]
    kind = type(cyclic_lr.policy) if cyclic_lr.policy.name == name else _policy_named(name, cfg.ckpt_path)
    then = kind(**state["params"][0])
    return then, int(state["run_steps"][0]), int(checkpoint["global_step"])


def _policy_named(name: str, ckpt_path: str) -> type[Policy]:
    """The class of ``lightning_clr.policies`` whose ``name`` is ``name`` (what a checkpoint records)."""
    from lightning_clr import policies

    for kind in vars(policies).values():
        if isinstance(kind, type) and issubclass(kind, Policy) and getattr(kind, "name", None) == name:
            return kind
    raise ConfigError(
        f"ckpt_path={ckpt_path!r} was trained with policy {name!r}, which lightning_clr.policies does not "
        "have: configure that policy to preview the resume"
    )


def main(cfg: DictConfig) -> Path:
    """What ``scripts/plot_policy.py`` runs: write ``policy.png`` into the run dir and print its path."""
    with one_line_errors():
        fig = preview(cfg)
    path = Path(cfg.paths.output_dir) / "policy.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
    return path

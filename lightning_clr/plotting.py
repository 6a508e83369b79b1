"""Plot LR policies against the optimizer step (matplotlib, imported only to draw; no pyplot global state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lightning_clr.policies import Policy
from lightning_clr.validation import integer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "plot_schedule"]

_LINESTYLES = ("-", "--", ":", "-.")  # one per param group of a policy; colour tells policies apart


def plot_schedule(
    policies: Policy | Mapping[str, Policy],
    num_steps: int,
    *,
    base_momentum: float | None = None,
    max_momentum: float | None = None,
    steps_per_epoch: int | None = None,
    title: str | None = None,
    marks: Mapping[str, int] | None = None,
) -> Figure:
    """Draw the LR of each policy (one line per param group) over the first ``num_steps`` optimizer steps,
    resolving the policies with ``steps_per_epoch`` and ``total_steps=num_steps``; returns the figure.

    Args:
        policies: one policy, or policies by label.
        num_steps: how many optimizer steps to draw.
        base_momentum, max_momentum: together, add a panel with the momentum each policy cycles.
        steps_per_epoch: marks epochs on a second x axis (and resolves ``step_size_epochs``).
        title: the figure's title.
        marks: optimizer steps to mark with a vertical line, by label (e.g. where a run resumes).

    Raises:
        ValueError: on a bad ``num_steps`` or ``steps_per_epoch``, one momentum bound alone, or a policy
            that cannot be resolved.

    Example::

        >>> from lightning_clr.policies import Triangular, Triangular2
        >>> fig = plot_schedule({"triangular": Triangular(0.001, 0.006, 200),
        ...                      "triangular2": Triangular2(0.001, 0.006, 200)}, num_steps=2000)
        >>> import tempfile
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp(), "schedule.png")
        >>> fig.savefig(path)
        >>> path.read_bytes()[:4]
        b'\x89PNG'
    """
    num_steps = integer("num_steps", num_steps)
    if steps_per_epoch is not None:
        steps_per_epoch = integer("steps_per_epoch", steps_per_epoch)
    if (base_momentum is None) != (max_momentum is None):
        raise ValueError(
            f"base_momentum={base_momentum!r} and max_momentum={max_momentum!r} must be given together"
        )
    labelled = {
        label: policy.resolve(steps_per_epoch, total_steps=num_steps)
        for label, policy in ({policies.name: policies} if isinstance(policies, Policy) else policies).items()
    }
    steps = range(num_steps)

    with_momentum = base_momentum is not None and max_momentum is not None
    fig = new_figure(figsize=(9, 6.5 if with_momentum else 4.5))
    axes = fig.subplots(2 if with_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
    lr_axis = axes[0]
    for index, (label, policy) in enumerate(labelled.items()):
        groups = range(policy.num_groups or 1)
        for group in groups:
            lr_axis.plot(
                steps,
                [policy(step, group) for step in steps],
                label=label if len(groups) == 1 else f"{label} (group {group})",
                color=f"C{index}",
                linestyle=_LINESTYLES[group % len(_LINESTYLES)],
                linewidth=1.2,
            )
    for index, (label, step) in enumerate((marks or {}).items()):
        style = {"color": "0.3", "linewidth": 1, "linestyle": _LINESTYLES[(index + 1) % len(_LINESTYLES)]}
        for axis in axes:
            axis.axvline(step, label=label if axis is lr_axis else None, **style)
    lr_axis.set_ylabel("learning rate")
    lr_axis.ticklabel_format(axis="y", style="plain")

    if base_momentum is not None and max_momentum is not None:
        momentum_axis = axes[1]
        amplitude = max_momentum - base_momentum
        for index, policy in enumerate(labelled.values()):
            momentum = [max_momentum - amplitude * policy.momentum_scale(step) for step in steps]
            momentum_axis.plot(steps, momentum, color=f"C{index}", linewidth=1.2)
        momentum_axis.set_ylabel("momentum")

    for axis in axes:
        axis.grid(True, alpha=0.3)
        axis.set_xlim(0, num_steps - 1)
    axes[-1].set_xlabel("iteration (optimizer step)")
    if steps_per_epoch is not None:
        epochs = lr_axis.secondary_xaxis(
            "top", functions=(lambda step: step / steps_per_epoch, lambda epoch: epoch * steps_per_epoch)
        )
        epochs.set_xlabel(f"epoch ({steps_per_epoch} steps each)")
    fig.legend(
        *lr_axis.get_legend_handles_labels(), loc="outside lower center", ncols=min(4, len(lr_axis.lines))
    )
    if title is not None:
        fig.suptitle(title)
    return fig


def new_figure(**kwargs: Any) -> Figure:
    """A constrained-layout :class:`matplotlib.figure.Figure`; a one-line hint if matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "plotting needs matplotlib: pip install matplotlib (or lightning-clr[app])", name="matplotlib"
        ) from error
    return Figure(layout="constrained", **kwargs)

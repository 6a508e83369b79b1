"""The console commands of the ``[app]`` extra: ``clr-train``, ``clr-range-test``, ``clr-plot-policy``.

Each is a Hydra app over the shipped configs, run from any directory (runs into ``./outputs/``, data into
``./data/``), as the ``scripts/`` of a source tree.

Example (a shell)::

    clr-train trainer.max_epochs=1
    clr-range-test dataset=digits model=mlp optimizer=adam
    clr-plot-policy policy=exp_range policy.step_size=200
"""

from __future__ import annotations

from lightning_clr.app.cli import hydra_app


def train() -> None:
    """``clr-train``: train a classifier with a cyclical learning rate (``training.main``)."""
    hydra_app("lightning_clr.app.training:main")


def range_test() -> None:
    """``clr-range-test``: find CLR bounds with an LR range test (``training.range_test_main``)."""
    hydra_app("lightning_clr.app.training:range_test_main", runs_range_test=True)


def plot_policy() -> None:
    """``clr-plot-policy``: draw the schedule a training config will use (``preview.main``)."""
    hydra_app("lightning_clr.app.preview:main", keeps_run_dir=True)

"""The CLR dashboard: the custom-scalars layout every run writes, and that every chart finds its series."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.util import tensor_util

from lightning_clr import CyclicLR
from lightning_clr.app.dashboard import (
    EPOCH_SECTION,
    RANGE_TEST_SECTION,
    STEP_SECTION,
    CLRDashboard,
    clr_layout,
)
from lightning_clr.app.training import train
from lightning_clr.policies import Fixed, Triangular
from lightning_clr.range_test import LRRangeTest


def written_layout(logdir: Path) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """The layout in ``logdir``'s event files as {section: {chart: tag regexes}}, and the scalar tags."""
    accumulator = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    [event] = accumulator.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(event.tensor_proto).item())
    sections = {
        category.title: {chart.title: list(chart.multiline.tag) for chart in category.chart}
        for category in layout.category
    }
    return sections, accumulator.Tags()["scalars"]


def test_layout_regexes_match_the_logged_names() -> None:
    step = clr_layout(momentum=True)[STEP_SECTION]
    [lr] = step["learning rate"][1]
    [momentum] = step["momentum"][1]
    assert all(re.match(lr, tag) for tag in ("lr", "lr/group0", "lr/opt1-group2"))
    assert not any(re.match(lr, tag) for tag in ("lr_find", "range_test/lr", "train_loss"))
    assert all(re.match(momentum, tag) for tag in ("momentum", "momentum/group1"))


def test_a_run_writes_the_layout_and_every_chart_finds_its_series(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    train(compose_cfg("policy.step_size=3", "policy.cycle_momentum=true"))
    sections, tags = written_layout(tmp_path / "tensorboard")
    assert sections == {
        STEP_SECTION: {
            "learning rate": [r"^lr(/.*)?$"],
            "training loss": ["^train_loss$"],
            "momentum": [r"^momentum(/.*)?$"],
            "cycle index": ["^cycle$"],
        },
        EPOCH_SECTION: {
            "validation loss": ["^val_loss$"],
            "validation accuracy": ["^val_acc$", "^val_acc_best$"],
        },
    }
    for charts in sections.values():
        for chart, regexes in charts.items():
            for regex in regexes:
                assert any(re.match(regex, tag) for tag in tags), (
                    f"{chart}: no series matches {regex} in {tags}"
                )


def test_charts_follow_the_callbacks(tmp_path: Path) -> None:
    dashboard = CLRDashboard()
    callbacks = [CyclicLR(Fixed(lr=0.1)), LRRangeTest(monitor="val_acc"), dashboard]
    trainer = L.Trainer(callbacks=callbacks, logger=TensorBoardLogger(tmp_path, name="tb", version=""))
    dashboard.on_fit_start(trainer, L.LightningModule())
    sections, _ = written_layout(tmp_path / "tb")
    assert list(sections[STEP_SECTION]) == [
        "learning rate",
        "training loss",
    ]  # no cycles, momentum not cycled
    assert sections[RANGE_TEST_SECTION] == {
        "range test: learning rate": ["^range_test/lr$"],
        "range test: loss": ["^range_test/loss$", "^range_test/smoothed_loss$"],
        "range test: val_acc": ["^range_test/val_acc$"],
    }


def test_without_tensorboard_nothing_is_written(tmp_path: Path) -> None:
    dashboard = CLRDashboard()
    callbacks = [CyclicLR(Triangular(0.001, 0.006, step_size=2)), dashboard]
    trainer = L.Trainer(callbacks=callbacks, logger=CSVLogger(tmp_path), default_root_dir=tmp_path)
    dashboard.on_fit_start(trainer, L.LightningModule())
    assert list(tmp_path.iterdir()) == []

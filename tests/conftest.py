"""Shared fixtures: the real Hydra configs, shrunk to a few CPU batches, writing under tmp_path."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from lightning_clr.app.schemas import register

register()  # the config schemas, as the app registers them when it starts

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

#: Overrides that make any run of scripts/*.py tiny: a few batches, CPU, no progress bar.
FAST = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
]


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    """Every test starts from the same random state, whatever ran before it (a model's initial weights
    decide, e.g., whether a range test's curve turns inside its span), and leaves no seed in the
    environment: Lightning's ``seed_everything`` in a test exports ``PL_GLOBAL_SEED`` and
    ``PL_SEED_WORKERS``, which every subprocess a later test starts would inherit, as no user's does."""
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def test_helpers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only a link to ``tests``, for a subprocess's ``PYTHONPATH``.

    The subprocess can then import the callbacks the tests add (``tests.fault_helpers``), while the package
    and its launcher plugin come from the install the README tells users to make, never from the checkout.
    """
    helpers = tmp_path_factory.mktemp("helpers")
    (helpers / "tests").symlink_to(ROOT / "tests")
    return helpers


@pytest.fixture
def helpers_on_path(test_helpers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses started by the test import ``tests.*`` (and nothing else from the checkout)."""
    monkeypatch.setenv("PYTHONPATH", str(test_helpers))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the whole session, so MNIST-1D is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def compose_cfg(tmp_path: Path, data_dir: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose conf/config.yaml with overrides, as Hydra would, outputs in tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[*FAST, *overrides], return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.root_dir = str(ROOT)
            cfg.paths.output_dir = str(tmp_path)
            cfg.paths.data_dir = str(data_dir)
            del cfg.hydra
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def run_script(script: str, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<script>`` in a subprocess as a user would, capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_sweep(
    tmp_path: Path, data_dir: Path, *overrides: str, multirun: bool = True
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run a tiny one-epoch ``scripts/train.py`` sweep into ``tmp_path/sweep``; return it and that folder."""
    sweep_dir = tmp_path / "sweep"
    mode = ["-m"] if multirun else []
    args = [
        *mode,
        *FAST,
        "trainer.max_epochs=1",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    return run_script("train.py", *args, *overrides, cwd=tmp_path), sweep_dir

"""The package as installed: a lean library, one source for each default, private names in one place."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import lightning as L
import pytest
import tomllib
import torch
import yaml
from lightning.pytorch import Callback, LightningDataModule, LightningModule
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric

from lightning_clr import CLRTuner, LRRangeTest
from lightning_clr.app.schemas import range_test_schema
from lightning_clr.range_test import RangeTestResult
from lightning_clr.range_test.settings import DEFAULT_MIN_LR, MAX_LR_FACTOR, RangeTestConfig
from lightning_clr.run_length import optimizer_steps_per_epoch
from tests.conftest import ROOT

PACKAGE = ROOT / "lightning_clr"
#: What the app extra brings; the library must not import any of it.
APP_ONLY = ("hydra", "omegaconf", "tensorboard", "tensorboardX", "mnist1d", "sklearn", "matplotlib")


def _imported_top_level(code: str) -> set[str]:
    """Top-level module names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, timeout=300
    )
    return set(done.stdout.split())


def test_import_lightning_clr_imports_no_app_dependency() -> None:
    # torchmetrics imports matplotlib when it is installed: compare with Lightning alone
    lightning_alone = _imported_top_level("import lightning.pytorch")
    ours = _imported_top_level("import lightning_clr")
    assert sorted((ours - lightning_alone) & set(APP_ONLY)) == []
    assert not {"hydra", "omegaconf", "tensorboard", "mnist1d", "sklearn"} & ours


def test_the_library_works_with_the_app_dependencies_missing() -> None:
    # None in sys.modules makes an import fail; torchmetrics needs matplotlib once installed, so it stays
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in APP_ONLY if name != "matplotlib")
    code = f"""import sys; {blocked}
import lightning_clr
from lightning_clr import CLRTuner, CyclicLR, LRRangeTest, Triangular"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_plot_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError, match=r"^plotting needs matplotlib: pip install matplotlib \(or"):
        RangeTestResult([1e-3, 1e-2], [1.0, 0.5], [1.0, 0.5]).plot()


def test_importing_the_library_registers_nothing_with_hydra() -> None:
    code = """import lightning_clr
from hydra.core.config_store import ConfigStore
print(*sorted(ConfigStore.instance().repo))
from lightning_clr.app.schemas import register
register()
print(*sorted(ConfigStore.instance().repo))"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    on_import, on_register = (set(line.split()) for line in done.stdout.splitlines())
    assert {"trainer", "range_test"} & on_import == set()
    assert {"trainer", "range_test"} <= on_register


def test_hydra_apps_scan_our_plugins_without_the_sweeps_extra_silently() -> None:
    """Hydra imports every module under ``hydra_plugins`` in every Hydra app: without the [sweeps] extra
    (submitit and its launcher blocked here), none of ours may fail to import and warn."""
    code = """import sys, warnings
sys.modules["submitit"] = sys.modules["hydra_plugins.hydra_submitit_launcher"] = None
warnings.simplefilter("error")
from hydra.core.plugins import Plugins
Plugins.instance()
from lightning_clr.app.schemas import register
register()"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_range_test_defaults_are_the_same_in_python_yaml_schema_and_docs() -> None:
    signature = inspect.signature(LRRangeTest.__init__).parameters
    config = {field.name: field.default for field in fields(RangeTestConfig)}
    for name, default in config.items():
        assert signature[name].default == default, name
    assert config["min_lr"] == DEFAULT_MIN_LR and config["max_lr"] is None
    group = yaml.safe_load((ROOT / "conf/range_test/default.yaml").read_text())
    group.pop("defaults")
    assert group and {name: config[name] for name in group} == group
    schema = OmegaConf.structured(range_test_schema())
    assert {name: schema[name] for name in config} == config
    guide = (ROOT / "docs/guide/range-test.md").read_text()
    assert f"(1e-4) to `range_test.max_lr`, by default {MAX_LR_FACTOR}x the optimizer's `lr`" in guide
    assert DEFAULT_MIN_LR == 1e-4


class _Regression(LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.lr = lr

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _loader(batches: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4 * batches, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def _trainer(**kwargs: object) -> L.Trainer:
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_steps_per_epoch_counts_the_last_partial_accumulation_as_lightning_steps() -> None:
    trainer = _trainer(max_epochs=1, accumulate_grad_batches=3)
    trainer.fit(_Regression(), _loader(10))
    assert trainer.global_step == 4 == optimizer_steps_per_epoch(10, 3) == math.ceil(10 / 3)
    result = CLRTuner(_trainer(accumulate_grad_batches=3)).range_test(_Regression(), _loader(10), num_steps=4)
    assert result.steps_per_epoch == 4


def test_python_default_span_follows_the_optimizer_lr_like_the_yaml() -> None:
    # widen=0: a curve still falling at the span's top (it depends on the random weights) would be tested
    # again over a 3x wider span, whose end is not the default one this test checks
    result = CLRTuner(_trainer()).range_test(_Regression(lr=0.002), _loader(10), num_steps=5, widen=0)
    assert result.lrs[0] == DEFAULT_MIN_LR
    assert result.lrs[-1] == MAX_LR_FACTOR * 0.002


def test_pyproject_ships_every_package_of_the_source_tree() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    sources = [*PACKAGE.rglob("__init__.py"), *(ROOT / "hydra_plugins").rglob("__init__.py")]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in sources}
    assert declared == found | {"lightning_clr.conf"}


def _lightning_private_uses(path: Path) -> list[str]:
    """``from lightning... import _x``, ``obj._x`` of a non-lightning_clr attribute, inherited ``self._x``."""
    inherited = {
        name
        for base in (Callback, LightningModule, LightningDataModule, Metric)
        for name in dir(base)
        if name.startswith("_") and not name.startswith("__")
    }
    tree = ast.parse(path.read_text())
    ours = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    ours |= {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
    }
    ours |= {node.target.id for node in ast.walk(tree) if isinstance(node, ast.AnnAssign | ast.Assign)
             and isinstance(getattr(node, "target", None), ast.Name)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "lightning",
            "torchmetrics",
        ):
            found += [f"import {alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if node.attr not in ours and (node.attr in inherited or not on_self):
                found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in inherited | {"_hydra_subprocess_cmd"}:
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_private_lightning_names_are_used_only_in_compat() -> None:
    uses = {
        str(path.relative_to(ROOT)): _lightning_private_uses(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "compat.py"
    }
    assert {path: found for path, found in uses.items() if found} == {}
    assert _lightning_private_uses(PACKAGE / "compat.py")  # the check sees them where they are


def test_console_commands_run_what_the_scripts_run() -> None:
    commands = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    scripts = {
        "clr-train": "train.py",
        "clr-range-test": "range_test.py",
        "clr-plot-policy": "plot_policy.py",
    }
    assert sorted(commands) == sorted(scripts)
    for command, target in commands.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
        script = (ROOT / "scripts" / scripts[command]).read_text()
        assert f"from {module} import {function}\n" in script and f"    {function}()\n" in script, command

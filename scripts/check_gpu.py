"""Check lightning-clr on your GPU: the schedule step by step, what the range test and a resume put back.

The test suite runs on CPU; this script checks what only a GPU exercises: CUDA's random state, fp16 with its
``GradScaler`` (whose first steps overflow and are skipped), bf16, and bit-exact resume on the device. It
prints one line per check and exits 1 if any fails.

1. ``CyclicLR`` under 32-bit, ``16-mixed`` (the scaler's skipped steps included), ``bf16-mixed`` and gradient
   accumulation: optimizer step ``k`` uses ``policy(k)`` exactly;
2. ``PolicyLR`` in a plain loop on the device: the same LRs as the policy;
3. the range test: weights, optimizer state and the CPU and CUDA random states are put back bit for bit,
   with dropout drawing from the CUDA generator during the test;
4. a run stopped after 2 epochs and resumed to 4 steps with the same LRs and ends with the same weights as 4
   epochs straight.

    python scripts/check_gpu.py                     # on the first CUDA device
    python scripts/check_gpu.py --accelerator cpu   # the same checks on CPU (what the test suite runs)
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr import CLRTuner, CyclicLR, PolicyLR
from lightning_clr.policies import Triangular

POLICY = Triangular(0.001, 0.006, step_size=4)
STEPS_PER_EPOCH = 8


class Net(L.LightningModule):
    """A small classifier; with dropout, training draws from the device's random generator."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 4))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


class StepLRs(L.Callback):
    """The LR each optimizer step used."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])


def loader(shuffle: bool = True) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS_PER_EPOCH * 16, 16, generator=generator)
    y = torch.randint(0, 4, (len(x),), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=shuffle, generator=generator)


def trainer(accelerator: str, root: str, **kwargs: Any) -> L.Trainer:
    args: dict[str, Any] = {
        "accelerator": accelerator,
        "devices": 1,
        "max_epochs": 3,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
    }
    return L.Trainer(**{**args, **kwargs})


def check_schedule(accelerator: str, root: str) -> list[str]:
    """``CyclicLR``: step ``k`` uses ``policy(k)`` at every precision, skipped fp16 steps included."""
    device = "cuda" if accelerator in ("gpu", "cuda") else "cpu"
    setups: dict[str, dict[str, Any]] = {
        "32-true": {},
        "16-mixed": {"precision": "16-mixed"},
        "16-mixed, overflowing scaler": {
            "plugins": [MixedPrecision("16-mixed", device, torch.amp.GradScaler(device, init_scale=2.0**40))]
        },
        "bf16-mixed": {"precision": "bf16-mixed"},
        "accumulate_grad_batches=2": {"accumulate_grad_batches": 2},
    }
    failures = []
    for name, kwargs in setups.items():
        L.seed_everything(0, verbose=False)
        recorded = StepLRs()
        fit = trainer(accelerator, root, callbacks=[CyclicLR(POLICY), recorded], **kwargs)
        fit.fit(Net(), loader())
        expected = [POLICY(k) for k in range(fit.global_step)]
        ok = recorded.lrs == expected and len(expected) > 0
        print(f"{'ok' if ok else 'FAIL'}  CyclicLR, {name}: {len(expected)} steps use policy(k)")
        failures += [] if ok else [f"CyclicLR, {name}: {recorded.lrs[:6]} vs {expected[:6]}"]
    return failures


def check_policy_lr(accelerator: str) -> list[str]:
    """``PolicyLR`` in a plain loop on the device."""
    device = torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")
    torch.manual_seed(0)
    model = nn.Linear(16, 4).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = PolicyLR(optimizer, POLICY)
    used = []
    for _ in range(20):
        used.append(optimizer.param_groups[0]["lr"])
        model(torch.randn(8, 16, device=device)).sum().backward()
        optimizer.step()
        scheduler.step()
    ok = used == [POLICY(k) for k in range(20)]
    print(f"{'ok' if ok else 'FAIL'}  PolicyLR on {device}: 20 steps use policy(k)")
    return [] if ok else [f"PolicyLR: {used[:6]}"]


def snapshot(model: Net) -> dict[str, Any]:
    state = {f"weight {k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state["cpu rng"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda rng"] = torch.cuda.get_rng_state()
    return state


def check_range_test_restores(accelerator: str, root: str) -> list[str]:
    """The range test puts back the weights and the random states it found (the optimizer it tests with is
    its own fit's, built by ``configure_optimizers``; the CPU tests check that one is put back too)."""
    L.seed_everything(0, verbose=False)
    model = Net()
    fit = trainer(accelerator, root, max_epochs=1)
    fit.fit(model, loader())  # trained weights, and a CUDA generator that dropout has moved
    before = snapshot(model)
    CLRTuner(fit).range_test(model, loader(), num_steps=24, passes=2, widen=0, progress_bar=False)
    after = snapshot(model)
    changed = [k for k in before if k not in after or not torch.equal(before[k], after[k])]
    print(f"{'ok' if not changed else 'FAIL'}  range test put back {len(before)} tensors bit for bit")
    return [f"range test changed {changed}"] if changed else []


def check_resume(accelerator: str, root: str) -> list[str]:
    """Stopped after 2 epochs and resumed to 4: the same LRs and weights as 4 epochs straight (no dropout and
    no shuffling: Lightning puts back neither the global random state nor a plain loader's order)."""

    def run(max_epochs: int, ckpt_path: str | None = None, save: str = "") -> tuple[Net, list[float]]:
        L.seed_everything(0, verbose=False)
        model, recorded = Net(dropout=0.0), StepLRs()
        fit = trainer(accelerator, root, max_epochs=max_epochs, callbacks=[CyclicLR(POLICY), recorded])
        fit.fit(model, loader(shuffle=False), ckpt_path=ckpt_path)
        if save:
            fit.save_checkpoint(save)
        return model, recorded.lrs

    straight, lrs = run(4)
    checkpoint = str(Path(root) / "half.ckpt")
    run(2, save=checkpoint)
    resumed, resumed_lrs = run(4, ckpt_path=checkpoint)
    if resumed_lrs != lrs[2 * STEPS_PER_EPOCH :]:
        print("FAIL  resumed after 2 of 4 epochs: the LRs differ")
        return [f"resume: LRs {resumed_lrs[:4]} vs {lrs[2 * STEPS_PER_EPOCH :][:4]}"]
    gaps = [
        (a - b).abs().max().item()
        for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True)
    ]
    ok = max(gaps) == 0.0
    print(f"{'ok' if ok else 'FAIL'}  resumed after 2 of 4 epochs: largest weight difference {max(gaps):.3g}")
    return [] if ok else [f"resume: weights differ by {max(gaps):.3g}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="gpu", help="gpu (the default) or cpu")
    args = parser.parse_args()
    if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --accelerator cpu")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    where = torch.cuda.get_device_name() if args.accelerator in ("gpu", "cuda") else "cpu"
    print(f"lightning-clr on {where}: torch {torch.__version__}, lightning {L.__version__}")
    checks: list[Callable[[], list[str]]]
    with tempfile.TemporaryDirectory() as root:
        checks = [
            lambda: check_schedule(args.accelerator, root),
            lambda: check_policy_lr(args.accelerator),
            lambda: check_range_test_restores(args.accelerator, root),
            lambda: check_resume(args.accelerator, root),
        ]
        failures = [failure for check in checks for failure in check()]
    for failure in failures:
        print(f"FAIL: {failure}")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

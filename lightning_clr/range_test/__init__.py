"""The LR range test (Smith, WACV 2017, Sec. 3.3): train while the LR rises, read CLR bounds off the curve.

:class:`LRRangeTest` runs it when fitting starts and hands the bounds to every
:class:`~lightning_clr.callback.CyclicLR`; :class:`CLRTuner` runs it on its own, like ``Tuner.lr_find``.

Example::

    >>> import lightning as L
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> class Regression(L.LightningModule):  # a tiny stand-in for your model: learn y = x.sum()
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.layer = torch.nn.Linear(8, 1)
    ...     def training_step(self, batch, batch_idx):
    ...         return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
    ...     def configure_optimizers(self):
    ...         return torch.optim.SGD(self.parameters(), lr=0.01)
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(512, 8)
    >>> loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32, shuffle=True)
    >>> quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
    ...              enable_model_summary=False)
    >>> from lightning_clr.range_test import CLRTuner
    >>> tuner = CLRTuner(L.Trainer(max_epochs=4, **quiet))
    >>> result = tuner.range_test(Regression(), loader, min_lr=1e-4, max_lr=1.0)
    >>> print(result.suggest())  # step_size: 4 cycles in 4 epochs of 16 steps, at least 2 epochs
    base_lr=0.06... max_lr=0.18... step_size=32 (curve best at 0.46...; max_lr of single passes ...)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_clr.range_test.callback import CLRTuner, LRRangeTest
    from lightning_clr.range_test.loop import lr_schedule, run_range_test
    from lightning_clr.range_test.result import RangeTestResult
    from lightning_clr.range_test.settings import RangeTestConfig
    from lightning_clr.suggest import Bounds

#: Each public name and its module, imported on first use: the settings need no torch or Lightning.
_EXPORTS = {
    "Bounds": "lightning_clr.suggest",
    "CLRTuner": "lightning_clr.range_test.callback",
    "LRRangeTest": "lightning_clr.range_test.callback",
    "RangeTestConfig": "lightning_clr.range_test.settings",
    "RangeTestResult": "lightning_clr.range_test.result",
    "lr_schedule": "lightning_clr.range_test.loop",
    "run_range_test": "lightning_clr.range_test.loop",
}

__all__ = [
    "Bounds",
    "CLRTuner",
    "LRRangeTest",
    "RangeTestConfig",
    "RangeTestResult",
    "lr_schedule",
    "run_range_test",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lightning_clr.range_test' has no attribute {name!r}")

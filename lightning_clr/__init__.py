"""lightning-clr: cyclical learning rates (Smith, WACV 2017) for PyTorch Lightning, configured with Hydra.

The library needs only torch, Lightning and numpy (the Hydra app is the ``[app]`` extra); its names are
imported on first use, so ``import lightning_clr`` costs no torch import.

>>> from lightning_clr import CyclicLR
>>> from lightning_clr.policies import Triangular
>>> callback = CyclicLR(Triangular(base_lr=0.001, max_lr=0.006, step_size=2000))
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_clr import policies
    from lightning_clr.callback import CyclicLR
    from lightning_clr.param_groups import SetupError
    from lightning_clr.policies import ExpRange, Fixed, OneCycle, Policy, Triangular, Triangular2
    from lightning_clr.range_test import CLRTuner, LRRangeTest, RangeTestResult
    from lightning_clr.scheduler import PolicyLR
    from lightning_clr.suggest import Bounds

#: Each public name and the module that defines it.
_EXPORTS = {
    "Bounds": "lightning_clr.suggest",
    "CLRTuner": "lightning_clr.range_test",
    "CyclicLR": "lightning_clr.callback",
    "ExpRange": "lightning_clr.policies",
    "Fixed": "lightning_clr.policies",
    "LRRangeTest": "lightning_clr.range_test",
    "OneCycle": "lightning_clr.policies",
    "Policy": "lightning_clr.policies",
    "PolicyLR": "lightning_clr.scheduler",
    "RangeTestResult": "lightning_clr.range_test",
    "SetupError": "lightning_clr.param_groups",
    "Triangular": "lightning_clr.policies",
    "Triangular2": "lightning_clr.policies",
}

__all__ = [
    "Bounds",
    "CLRTuner",
    "CyclicLR",
    "ExpRange",
    "Fixed",
    "LRRangeTest",
    "OneCycle",
    "Policy",
    "PolicyLR",
    "RangeTestResult",
    "SetupError",
    "Triangular",
    "Triangular2",
    "policies",
]

try:
    __version__ = version("lightning-clr")  # pyproject.toml's, the one place the version is written
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "policies":
        return importlib.import_module("lightning_clr.policies")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lightning_clr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""lightning-clr: cyclical learning rates (Smith, WACV 2017) for PyTorch Lightning, configured with Hydra.

The library (policies, the :class:`CyclicLR` callback, the LR range test) needs only torch, Lightning and
numpy; ``import lightning_clr`` registers nothing with Hydra. The Hydra app (``clr-train``,
``clr-range-test``, ``clr-plot-policy``, the data sets and models) is the ``lightning-clr[app]`` extra.

>>> from lightning_clr import CyclicLR
>>> from lightning_clr.policies import Triangular
>>> callback = CyclicLR(Triangular(base_lr=0.001, max_lr=0.006, step_size=2000))
"""

from importlib.metadata import PackageNotFoundError, version

from lightning_clr import policies
from lightning_clr.callback import CyclicLR
from lightning_clr.policies import ExpRange, Fixed, OneCycle, Policy, Triangular, Triangular2
from lightning_clr.range_test import CLRTuner, LRRangeTest, RangeTestResult
from lightning_clr.suggest import Bounds

__all__ = [
    "Bounds",
    "CLRTuner",
    "CyclicLR",
    "ExpRange",
    "Fixed",
    "LRRangeTest",
    "OneCycle",
    "Policy",
    "RangeTestResult",
    "Triangular",
    "Triangular2",
    "policies",
]

try:
    __version__ = version("lightning-clr")  # pyproject.toml's, the one place the version is written
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

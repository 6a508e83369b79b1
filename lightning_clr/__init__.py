"""lightning-clr: cyclical learning rates (Smith, WACV 2017) for PyTorch Lightning, configured with Hydra.

>>> from lightning_clr import CyclicLR
>>> from lightning_clr.policies import Triangular
>>> callback = CyclicLR(Triangular(base_lr=0.001, max_lr=0.006, step_size=2000))
"""

from lightning_clr import policies
from lightning_clr.callback import CyclicLR
from lightning_clr.policies import ExpRange, Fixed, OneCycle, Policy, Triangular, Triangular2
from lightning_clr.range_test import CLRTuner, LRRangeTest, RangeTestResult
from lightning_clr.schemas import register as _register_schemas
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
__version__ = "0.1.0"

_register_schemas()  # the `trainer` and `range_test` config groups' schemas, for Hydra

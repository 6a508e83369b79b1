"""The LR range test (Smith, WACV 2017, Sec. 3.3): train while the LR rises, read CLR bounds off the curve.

- :class:`LRRangeTest` (``callback.py``): a callback that runs the test when fitting starts and hands the
  bounds to every :class:`~lightning_clr.callback.CyclicLR`; :class:`CLRTuner` runs it on its own, like
  Lightning's ``Tuner.lr_find``.
- :class:`RangeTestResult` (``result.py``): the curve, :meth:`~RangeTestResult.suggest`,
  :meth:`~RangeTestResult.plot`, the CSV.
- ``loop.py``: the test's own training loop and the in-memory snapshot that undoes it.
- The suggestion rule is a pure function, :func:`lightning_clr.suggest.suggest_bounds`.

Example::

    >>> from lightning_clr.range_test import CLRTuner
    >>> result = CLRTuner(trainer).range_test(model, datamodule=dm, min_lr=1e-4, max_lr=1.0)  # doctest: +SKIP
    >>> result.suggest()  # doctest: +SKIP
    Bounds(base_lr=0.04, max_lr=0.12, step_size=100, peak_lr=0.3)
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

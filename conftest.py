"""Doctest set-up shared by the package's docstrings (``--doctest-modules`` collects ``lightning_clr/``)."""

from __future__ import annotations

import doctest
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _range_test_example(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    """``Regression``, ``loader`` and ``quiet`` of the :mod:`lightning_clr.range_test` example, set up afresh
    (seeded) for each doctest of ``lightning_clr/range_test/callback.py``, which refers to them."""
    if not request.node.nodeid.startswith("lightning_clr/range_test/callback.py"):
        return
    import lightning_clr.range_test

    namespace: dict[str, Any] = {}
    for example in doctest.DocTestParser().get_examples(lightning_clr.range_test.__doc__ or ""):
        if "CLRTuner" in example.source:
            break
        exec(compile(example.source, "lightning_clr.range_test", "exec"), namespace)
    doctest_namespace.update({name: namespace[name] for name in ("Regression", "loader", "quiet")})

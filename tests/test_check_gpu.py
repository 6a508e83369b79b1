"""scripts/check_gpu.py, run on CPU: every check it makes on a GPU passes here too."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_script


def test_the_gpu_check_passes_on_cpu(tmp_path: Path) -> None:
    result = run_script("check_gpu.py", "--accelerator", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("ok  ") for line in lines) == 8
    assert lines[-1] == "all checks passed"

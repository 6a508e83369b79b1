"""The wall between the two houses: the library (``lightning_clr/``) never reaches into the Hydra app
(``lightning_clr/app/``) nor into what only the app needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "lightning_clr"
LIBRARY = sorted(path for path in PACKAGE.rglob("*.py") if "app" not in path.relative_to(PACKAGE).parts)
#: Never imported by the library, wherever the import stands.
APP_ONLY = ("lightning_clr.app", "hydra", "omegaconf")
#: Imported by the library only inside a function, when that function needs it.
LAZY_ONLY = ("rich", "tensorboard", "matplotlib")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at import time)`` for every import in ``path``; imports in a function are not at import
    time, nor are those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, top))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), top)
            else:
                visit(child, top)

    visit(tree, True)
    return found


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_the_library_does_not_import_the_app(path: Path) -> None:
    imports = _imports(path)
    assert not [module for module, _ in imports if _under(module, APP_ONLY)]
    assert not [module for module, top in imports if top and _under(module, LAZY_ONLY)]


def test_the_wall_test_sees_imports() -> None:
    """The checker itself: it finds an app import anywhere and a lazy-only import at the top."""
    sample = ROOT / "lightning_clr" / "app" / "preview.py"
    imports = _imports(sample)
    assert ("omegaconf", True) in imports and ("matplotlib.figure", True) in imports
    assert ("lightning_clr.app.config", True) in imports


def test_importing_the_library_loads_no_app_module() -> None:
    """A process that imports every library module has no Hydra, OmegaConf, TensorBoard or app module.

    (rich and matplotlib are not checked here: ``import lightning.pytorch`` loads them when installed.)
    """
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for path in LIBRARY
    ]
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in modules)
        + "from lightning_clr import CyclicLR, CLRTuner, LRRangeTest, PolicyLR, SetupError\n"
        + "roots = {m.split('.')[0] for m in sys.modules} & {'hydra', 'omegaconf', 'tensorboard'}\n"
        + "print(sorted(roots | {m for m in sys.modules if m.startswith('lightning_clr.app')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"

"""The three rooms stay apart: the library (lsce_scratch) never imports the course tooling
(lsce_course) or the examples (lsce_examples), nor rich; ``import lsce_scratch`` loads
neither torch nor rich, and the torch subpackage loads no tooling."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "lsce_scratch"
FORBIDDEN_IN_LIBRARY = ("lsce_course", "lsce_examples", "rich")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from … import`` in the file names (lazy ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_the_library_imports_neither_the_tooling_nor_the_examples(path: Path) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN_IN_LIBRARY, (
            f"{path.relative_to(ROOT)} imports {name}"
        )


def test_the_scanner_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from lsce_course import report\n", encoding="utf-8"
    )
    assert "lsce_course" in imported_modules(module)


def loaded_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after ``statement``."""
    listing = "print(' '.join({m.split('.')[0] for m in sys.modules}))"
    code = f"{statement}; import sys; {listing}"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_import_lsce_scratch_loads_neither_torch_nor_rich() -> None:
    loaded = loaded_after("import lsce_scratch")
    assert not loaded & {"torch", "rich", "lsce_course", "lsce_examples"}, loaded


def test_the_torch_subpackage_loads_no_tooling() -> None:
    loaded = loaded_after("import lsce_scratch.nn")
    assert "torch" in loaded
    assert not loaded & {"rich", "lsce_course", "lsce_examples"}, loaded

"""The package's metadata: one version, written once; the type hints and the licence ship."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import lsce_scratch

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_installed_version_is_the_library_version() -> None:
    installed = importlib.metadata.version("lsce-scratch")
    assert installed == lsce_scratch.__version__, (
        f"installed metadata says {installed}, lsce_scratch.__version__ says "
        f"{lsce_scratch.__version__}: reinstall with `pip install -e . --no-deps`"
    )


def test_pyproject_reads_the_version_from_the_library() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project, (
        "pyproject.toml must not write the version a second time"
    )
    assert "version" in project.get("dynamic", [])
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "lsce_scratch.__version__"}
    # setuptools reads the attribute statically: it must be a plain string literal
    source = (ROOT / "lsce_scratch" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+[^"]*"', source, re.M)


def test_type_hints_and_licence_ship() -> None:
    assert (ROOT / "lsce_scratch" / "py.typed").is_file()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["lsce_scratch"]
    assert PYPROJECT["project"]["license"] == "MIT"
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "the lsce-scratch authors" in licence

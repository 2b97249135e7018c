"""The README's promises: its Python examples run, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lsce_course.course import load_lessons

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_python_examples_run(block: str) -> None:
    exec(compile(block, "README.md", "exec"), {})


def test_quick_start_is_two_make_targets() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick_start, re.M)
    assert commands == ["run", "test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("run", "test", "docs", "serve"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_lesson_table_is_the_course_manifest() -> None:
    rows = re.findall(r"^\| (\d\d) \| (.+?) \| `lsce run (\d+)` \|$", README, re.M)
    expected = [(l.label, l.summary, str(l.number)) for l in load_lessons(ROOT)]
    assert rows == expected, "the README's lesson table must be lessons/course.toml's rows"

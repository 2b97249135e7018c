"""Each lesson's notebook comes from its page and its script: the page's words in markdown
cells, every code cell of the script exactly once and in order, and it runs."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from lsce_course.course import Lesson, load_lessons
from tests.lessons import ROOT, run_python

spec = importlib.util.spec_from_file_location(
    "lsce_tools_notebooks", ROOT / "tools" / "notebooks.py"
)
assert spec is not None and spec.loader is not None
notebooks = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = notebooks
spec.loader.exec_module(notebooks)

LESSONS = load_lessons(ROOT)
by_label = pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.label)


def code_cells(notebook: dict) -> list[str]:
    return [cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "code"]


@by_label
def test_the_notebook_is_valid_and_holds_the_whole_script_in_order(
    lesson: Lesson,
) -> None:
    notebook = notebooks.lesson_notebook(lesson, ROOT)
    nbformat.validate(nbformat.from_dict(notebook))
    cells, _ = notebooks.script_cells(
        (ROOT / lesson.script).read_text(encoding="utf-8")
    )
    assert code_cells(notebook) == cells


@by_label
def test_the_notebook_carries_the_pages_narrative(lesson: Lesson) -> None:
    page = (ROOT / "docs" / lesson.page).read_text(encoding="utf-8")
    markdown = "\n".join(
        cell["source"] for cell in notebooks.lesson_notebook(lesson, ROOT)["cells"]
        if cell["cell_type"] == "markdown"
    )  # fmt: skip
    for heading in re.findall(r"^#+ .+$", page, re.M):
        assert heading in markdown
    assert "--8<--" not in markdown and "<!-- lsce:" not in markdown
    for exercise in lesson.exercises:
        assert f"lsce check {exercise.id}" in markdown


@by_label
def test_the_page_shows_its_script_in_script_order(lesson: Lesson) -> None:
    """The notebook puts each shown cell under the text that shows it only if the page
    includes the script's sections in the order the script has them."""
    script = (ROOT / lesson.script).read_text(encoding="utf-8")
    _, owner = notebooks.script_cells(script)
    page = (ROOT / "docs" / lesson.page).read_text(encoding="utf-8")
    shown = re.findall(rf'--8<-- "{re.escape(lesson.script)}:([\w-]+)"', page)
    cells = [owner[name] for name in shown]
    first_seen = [c for i, c in enumerate(cells) if c not in cells[:i]]
    assert first_seen == sorted(first_seen), (
        f"{lesson.page} shows {shown}: out of script order"
    )


def test_a_built_notebook_fills_in_the_runs_numbers_and_tables() -> None:
    lesson = next(
        lesson
        for lesson in LESSONS
        if "[[run:" in (ROOT / "docs" / lesson.page).read_text("utf-8")
    )
    runs = notebooks.RunOutputs(
        values=lambda text: text.replace("[[run:", "<value of "),
        fragment=lambda name: f"| table {name} |",
    )
    text = json.dumps(notebooks.lesson_notebook(lesson, ROOT, runs))
    assert "[[run:" not in text and "<value of " in text


def test_admonitions_and_tabs_become_titles_over_dedented_text() -> None:
    lines = [
        '??? question "Why?"',
        "",
        "    Because.",
        "",
        '=== "NumPy"',
        "    code",
        "after",
    ]
    assert notebooks._dedent_containers(lines) == [
        "**Why?**", "", "Because.", "", "**NumPy**", "code", "after"
    ]  # fmt: skip


@pytest.mark.slow
def test_the_first_lessons_notebook_runs(tmp_path: Path) -> None:
    """Its code cells, run in order in one interpreter, pass the lesson's checks."""
    lesson = LESSONS[0]
    program = tmp_path / "notebook.py"
    program.write_text("\n\n".join(code_cells(notebooks.lesson_notebook(lesson, ROOT))))
    result = run_python([str(program)], tmp_path / "figures")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "checks passed" in result.stdout

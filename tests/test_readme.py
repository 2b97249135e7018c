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
        assert re.search(rf"^{target}:", makefile, re.M), (
            f"Makefile has no {target} target"
        )


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_lesson_table_is_the_course_manifest() -> None:
    rows = re.findall(r"^\| (\d\d) \| (.+?) \| `lsce run (\d+)` \|$", README, re.M)
    expected = [(l.label, l.summary, str(l.number)) for l in load_lessons(ROOT)]
    assert rows == expected, (
        "the README's lesson table must be lessons/course.toml's rows"
    )


def test_the_layout_tree_names_what_is_there() -> None:
    layout = README.split("## Layout", 1)[1]
    tree = re.search(r"```text\n(.*?)```", layout, re.S)
    assert tree, "the README's Layout section shows the tree in a ```text block"
    parent = ROOT
    for line in tree.group(1).splitlines():
        path = line.split()[0]
        folder = (parent if line.startswith(" ") else ROOT) / path
        assert folder.is_dir(), (
            f"the README's layout names {path}, which is not a folder"
        )
        if not line.startswith(" "):
            parent = folder
    tops = [
        line.split()[0]
        for line in tree.group(1).splitlines()
        if not line.startswith(" ")
    ]
    for room in ("lsce_scratch/", "lsce_course/", "lsce_examples/"):
        assert room in tops, f"the layout must show {room}"


def test_home_page_lists_the_lessons_in_course_order() -> None:
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d\d) \| \[(.+?)\]\((.+?)\) \|", home, re.M)
    lessons = load_lessons(ROOT)
    assert rows == [(l.label, l.title, l.page) for l in lessons], (
        "docs/index.md's lesson table must be lessons/course.toml's lessons, titles and pages"
    )
    assert "final lesson" in home, "the home page says which lesson ends the course"
    # a lesson named in the prose is "Lesson NN · Title", as its page's own title
    for label, title in re.findall(r"\[Lesson (\d\d) · (.+?)\]", home):
        assert (label, title) in {(l.label, l.title) for l in lessons}, (label, title)


def test_no_page_cites_notes_that_are_not_in_the_repository() -> None:
    missing = "DESIGN" + ".md"
    for path in [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        *sorted(ROOT.glob("docs/*.md")),
    ]:
        text = path.read_text(encoding="utf-8")
        assert missing not in text and "DESIGN notes" not in text, (
            f"{path.name} cites {missing}"
        )

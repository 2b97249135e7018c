"""One notebook per lesson, generated from the lesson's two files: its page (the narrative)
and its script (the code).

The page's Markdown becomes markdown cells. Where the page includes a section of its own
script (``--8<-- "lessons/04_label_smoothing.py:name"``), the notebook gets, as code cells,
every script cell not yet emitted up to the one holding that section; the cells after the
last include come at the end. So the notebook runs the whole script, in order, with the
page's words between the cells. Includes of other files (the library) stay as read-only
code blocks with that section's text. Admonitions and tabs, which Jupyter does not render,
become bold titles over their (dedented) content; an exercise marker becomes a short note
with its ``lsce`` commands.

mkdocs-gen-files runs this during the build (``plugins: gen-files`` in mkdocs.yml), after
the lessons' runs, and writes ``notebooks/NN_name.ipynb`` into the site with the runs'
numbers filled in as on the page; the docs hook links each lesson page to its notebook.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsce_course.course import Lesson, load_lessons
from lsce_course.exercises import Exercise

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "zh")  # the site's editions (mkdocs.yml's i18n languages)
CELL = re.compile(r"^# %%(?!\s*\[markdown\])")
SECTION_MARK = re.compile(r"^\s*# --8<-- \[(start|end):([\w-]+)\]\s*$")
INCLUDE = re.compile(r'^\s*--8<-- "(?P<path>[^":]+)(?::(?P<name>[\w-]+))?"\s*$')
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
CONTAINER = re.compile(
    r'^(?P<indent>\s*)(?:\?\?\?\+?|!!!|===)\s*(?:[\w-]+\s*)?(?:"(?P<title>[^"]*)")?\s*$'
)
EXERCISE = re.compile(r"^\s*<!--\s*lsce:exercise\s+(?P<id>[\d.]+)\s*-->\s*$")
RUN_OUTPUT = re.compile(r"^\s*<!--\s*lsce:run-output\s+(?P<name>[\w.-]+)\s*-->\s*$")
OTHER_MARKER = re.compile(r"^\s*<!--\s*lsce:[\w-]+.*-->\s*$")


def _raw_cells(script: str) -> list[tuple[str, list[str]]]:
    """(code, the snippet sections it holds) for each ``# %%`` cell; the header before the
    first cell counts as a cell."""
    raw: list[tuple[list[str], list[str]]] = [([], [])]
    for line in script.splitlines():
        mark = SECTION_MARK.match(line)
        if CELL.match(line):
            raw.append(([], []))
        elif mark:
            if mark.group(1) == "start":
                raw[-1][1].append(mark.group(2))
        else:
            raw[-1][0].append(line)
    return [("\n".join(code).strip("\n"), names) for code, names in raw]


def _has_code(text: str) -> bool:
    """False for a cell of comments only, or of a module docstring only."""
    body = ast.parse(text).body
    docstring_only = (
        len(body) == 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    return bool(body) and not docstring_only


def script_cells(script: str) -> tuple[list[str], dict[str, int]]:
    """The code cells of a percent-format script, snippet marks removed, and for each
    snippet section the index of the cell that holds it."""
    cells: list[str] = []
    owner: dict[str, int] = {}
    for code, names in _raw_cells(script):
        if _has_code(code):
            cells.append(code)
        for name in names:
            owner[name] = max(len(cells) - 1, 0)
    return cells, owner


def section_text(path: Path, name: str) -> str:
    """A snippet section of a file, dedented, as pymdownx.snippets shows it."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        mark = SECTION_MARK.match(line)
        if mark and mark.group(2) == name:
            inside = mark.group(1) == "start"
            continue
        if inside and not SECTION_MARK.match(line):
            lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip("\n")


def _included(root: Path, include: re.Match[str]) -> str:
    """The text a ``--8<--`` line includes: a section, or the whole file."""
    path = root / include.group("path")
    if include.group("name"):
        return section_text(path, include.group("name"))
    return path.read_text(encoding="utf-8").rstrip("\n")


def exercise_note(exercise: Exercise) -> str:
    """What a notebook shows for an exercise box."""
    return (
        f"**Exercise {exercise.id} · {exercise.title}.** Implement `{exercise.function}` in "
        f"`lessons/exercises/{exercise.file}`, then run `lsce check {exercise.id}` in a "
        f"terminal (`lsce hint {exercise.id}` for a hint). Once you have started it, the "
        "cells below use your version."
    )


def _dedent_containers(lines: list[str]) -> list[str]:
    """Admonitions and tabs → a bold title and their content, four spaces to the left."""
    out, stack = [], []  # stack: the indent of each open container
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if line.strip():
            while stack and indent < stack[-1] + 4:
                stack.pop()
        shift = 4 * len(stack)
        line = line[shift:] if line[:shift].strip() == "" else line.lstrip()
        container = CONTAINER.match(line)
        if container:
            title = container.group("title")
            out.append(f"{container.group('indent')}**{title}**" if title else "")
            stack.append(indent)
            continue
        out.append(line)
    return out


@dataclass(frozen=True)
class RunOutputs:
    """What a built notebook fills in from the lesson's docs run: ``[[run:…]]`` values in
    the text, and the Markdown fragments of ``lsce:run-output`` lines."""

    values: Callable[[str], str]
    fragment: Callable[[str], str]


def lesson_notebook(
    lesson: Lesson, root: Path = ROOT, runs: RunOutputs | None = None, lang: str = "en"
) -> dict:
    """The notebook (nbformat 4) of one lesson, from its page in ``lang``; without ``runs``
    the run values stay as their ``[[run:…]]`` markers."""
    script_path = root / lesson.script
    script = script_path.read_text(encoding="utf-8")
    cells, owner = script_cells(script)
    page = page_path(lesson, lang, root).read_text(encoding="utf-8")
    notebook: list[dict] = []
    markdown: list[str] = []
    emitted = 0

    def flush_markdown() -> None:
        text = "\n".join(_dedent_containers(markdown)).strip("\n")
        if runs is not None:
            text = runs.values(text)
        if text:
            notebook.append({"cell_type": "markdown", "metadata": {}, "source": text})
        markdown.clear()

    def emit_code(upto: int) -> None:
        nonlocal emitted
        flush_markdown()
        for cell in cells[emitted : upto + 1]:
            notebook.append(
                {"cell_type": "code", "metadata": {}, "execution_count": None,
                 "outputs": [], "source": cell}
            )  # fmt: skip
        emitted = max(emitted, upto + 1)

    lines = page.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            end = next(
                j for j in range(i + 1, len(lines))
                if lines[j].strip().startswith(fence.group("fence"))
            )  # fmt: skip
            body = lines[i + 1 : end]
            includes = [INCLUDE.match(b) for b in body if b.strip()]
            if includes and all(includes):
                own = [m for m in includes if m and m.group("path") == lesson.script]
                if own:
                    for match in own:
                        emit_code(owner[match.group("name")])
                else:
                    shown = [_included(root, m) for m in includes if m]
                    indent = fence.group("indent")
                    markdown.append(
                        f"{indent}{fence.group('fence')}{fence.group('info')}"
                    )
                    markdown += [textwrap.indent(s, indent) for s in shown]
                    markdown.append(f"{indent}{fence.group('fence')}")
            else:
                markdown += lines[i : end + 1]
            i = end + 1
            continue
        include = INCLUDE.match(line)
        exercise = EXERCISE.match(line)
        run_output = RUN_OUTPUT.match(line)
        if run_output and runs is not None:
            markdown.append(runs.fragment(run_output.group("name")))
        elif include:  # a Markdown fragment (a results table) included as text
            markdown.append(_included(root, include))
        elif exercise:
            shown = [e for e in lesson.exercises if e.id == exercise.group("id")]
            markdown += [exercise_note(e) for e in shown]
        elif not OTHER_MARKER.match(line):
            markdown.append(line)
        i += 1
    emit_code(len(cells) - 1)
    flush_markdown()
    for number, cell in enumerate(notebook):
        cell["id"] = f"cell-{number}"  # nbformat 4.5: every cell has an id
    return {
        "cells": notebook,
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3",
                "language": "python",
                "name": "python3",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_name(lesson: Lesson, lang: str = "en") -> str:
    """'lessons/04_label_smoothing.py' → '04_label_smoothing.ipynb' ('….zh.ipynb' in zh)."""
    stem = Path(lesson.script).stem
    return f"{stem}.ipynb" if lang == "en" else f"{stem}.{lang}.ipynb"


def page_path(lesson: Lesson, lang: str, root: Path = ROOT) -> Path:
    """The lesson's page in that language: docs/lessons/NN-slug.md or ….zh.md."""
    page = root / "docs" / lesson.page
    return page if lang == "en" else page.with_suffix(f".{lang}.md")


def main() -> None:
    """Inside mkdocs-gen-files: write every lesson's notebook under notebooks/."""
    import mkdocs_gen_files

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gen_figures  # a sibling tool: the lessons' runs, which gen_figures made first

    runs = RunOutputs(
        values=gen_figures.with_run_values,
        fragment=lambda name: gen_figures.run_output(name).read_text(encoding="utf-8"),
    )
    for lesson in load_lessons(ROOT):
        for lang in LANGUAGES:
            if not page_path(lesson, lang).is_file():
                continue  # an untranslated page: the site shows the English one
            with mkdocs_gen_files.open(
                f"notebooks/{notebook_name(lesson, lang)}", "w"
            ) as out:
                notebook = lesson_notebook(lesson, ROOT, runs, lang)
                json.dump(notebook, out, indent=1, ensure_ascii=False)


if __name__ == "<run_path>":  # how mkdocs-gen-files runs its scripts
    main()

"""MkDocs hooks: exercise boxes and the exercise list, generated from the manifest.

A line ``<!-- lsce:exercises 4 -->`` on a page becomes one box per exercise of lesson 4
(id, title, the learner's file and function, the ``lsce`` commands, collapsible hints and
the reference solution). A line ``<!-- lsce:exercise-list -->`` becomes a table of every
exercise. Both come from ``lessons/exercises/exercises.toml`` through
:func:`lsce_course.exercises.load_manifest`, so no page types an exercise by hand.
(On the API pages, the Sphinx roles of the docstrings, ``:func:``, are dropped.)

The build fails (``PluginError``) on a marker for a lesson without exercises, on an
unknown ``lsce:`` marker, and when some lesson's exercises are shown on no page: the docs
cannot silently miss an exercise.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from lsce_course.exercises import Exercise, load_manifest

MARKER = re.compile(r"^<!--\s*lsce:(?P<kind>[\w-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SECTION = "# --8<-- [start:{name}]"


@dataclass
class _Build:
    """Per-build state: the manifest, and which lessons' boxes some page has shown."""

    root: Path = Path()
    manifest: list[Exercise] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)
    dirty: bool = False


_build = _Build()


def on_startup(command: str, dirty: bool) -> None:
    # A dirty rebuild (`mkdocs serve --dirty`) renders only changed pages, so the
    # every-exercise-shown check would see too little; skip it there.
    _build.dirty = dirty


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    # the repository: docs_dir's parent (a config elsewhere may point docs_dir here)
    _build.root = Path(config.docs_dir).resolve().parent
    _build.manifest = load_manifest(_build.root)
    _build.shown = set()
    return config


def anchor(exercise: Exercise) -> str:
    """The HTML id of an exercise's box: '4.2' → 'exercise-4-2'."""
    return "exercise-" + exercise.id.replace(".", "-")


def escape_markdown(text: str) -> str:
    """Manifest text (written for the terminal) as literal Markdown; `code spans` stay code."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        # outside code spans: emphasis, links, math and raw HTML would otherwise trigger
        part = re.sub(r"([\\*_\[\]$#|])", r"\\\1", parts[i])
        parts[i] = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts)


def reference_section(exercise: Exercise, root: Path) -> tuple[str, str] | None:
    """(file, section) of a snippet section showing the reference, if the library has one.

    The reference ``module:Object`` is found in ``module.py`` (or its package
    ``__init__.py``) under a section named after the function (``backward`` for
    ``LSCEFunction.backward``) or the object.
    """
    module, _, obj = exercise.reference.partition(":")
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        path = root / candidate
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for name in dict.fromkeys((exercise.function.split(".")[-1], obj)):
            if SECTION.format(name=name) in text:
                return candidate.as_posix(), name
    return None


def exercise_box(exercise: Exercise, root: Path, link: Callable[[str], str]) -> str:
    """The Markdown of one exercise box; ``link(id)`` is the URL of another exercise's box."""
    title = escape_markdown(exercise.title).replace('"', "&quot;")
    lines = [
        f'<div class="lsce-exercise" id="{anchor(exercise)}" markdown>',
        "",
        f'!!! question "Exercise {exercise.id} · {title}"',
        "",
        f"    Implement `{exercise.function}` in `lessons/exercises/{exercise.file}`. "
        f"It has the same contract as the library's `{exercise.reference.replace(':', '.')}`, "
        f"and its tests are in `{exercise.tests}` (marker `{exercise.marker}`).",
    ]
    if exercise.requires:
        needed = ", ".join(f"[{r}]({link(r)})" for r in exercise.requires)
        lines += ["", f"    Its tests also call your answer to exercise {needed}."]
    lines += [
        "",
        "    ```bash",
        f"    lsce check {exercise.id}            # run its tests against your file",
        f"    lsce hint {exercise.id}             # the first hint; --level 2 for the next",
        "    ```",
    ]
    for level, hint in enumerate(exercise.hints, start=1):
        # a multi-line hint stays inside its block: indent every line
        body = escape_markdown(hint).replace("\n", "\n        ")
        lines += ["", f'    ??? tip "Hint {level}"', "", f"        {body}"]
    section = reference_section(exercise, root)
    if section is not None:
        path, name = section
        lines += [
            "",
            '    ??? success "Solution: the library\'s version"',
            "",
            f'        ```python title="{path}"',
            f'        --8<-- "{path}:{name}"',
            "        ```",
        ]
    lines += ["", "</div>", ""]
    return "\n".join(lines)


def lesson_page(lesson: int, files: Files) -> str | None:
    """The docs path of lesson N's page (docs/lessons/NN-slug.md), if it exists."""
    prefix = f"lessons/{lesson:02d}-"
    pages = sorted(f.src_uri for f in files.documentation_pages() if f.src_uri.startswith(prefix))
    return pages[0] if pages else None


def box_link(exercise: Exercise, page: Page, files: Files) -> str | None:
    """A link from ``page`` to the exercise's box on its lesson's page (None: no page)."""
    target = lesson_page(exercise.lesson, files)
    if target is None:
        return None
    if target == page.file.src_uri:
        return f"#{anchor(exercise)}"
    here = posixpath.dirname(page.file.src_uri) or "."
    return f"{posixpath.relpath(target, here)}#{anchor(exercise)}"


def exercise_table(manifest: list[Exercise], page: Page, files: Files) -> str:
    """A table of every exercise, linked to its box on its lesson's page."""
    rows = ["| id | exercise | lesson | your file | implement |", "|---|---|---|---|---|"]
    for exercise in manifest:
        title = escape_markdown(exercise.title)
        link = box_link(exercise, page, files)
        if link is not None:
            title = f"[{title}]({link})"
        rows.append(
            f"| {exercise.id} | {title} | {exercise.lesson:02d} | `{exercise.file}` "
            f"| `{exercise.function}` |"
        )
    return "\n".join(rows) + "\n"


def expand_markers(
    markdown: str, page: Page, files: Files, root: Path, manifest: list[Exercise]
) -> tuple[str, set[int]]:
    """Replace the ``lsce:`` marker lines (outside code fences); return the lessons shown."""
    out: list[str] = []
    shown: set[int] = set()
    fence: str | None = None
    by_id = {e.id: e for e in manifest}

    def link(exercise_id: str) -> str:
        return box_link(by_id[exercise_id], page, files) or "#"

    for line in markdown.splitlines():
        opened = FENCE.match(line)
        if fence is not None:
            # a fence closes with the same character, at least as many times
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            out.append(line)
            continue
        if opened:
            fence = opened.group(1)
            out.append(line)
            continue
        match = MARKER.match(line)
        if match is None:
            out.append(line)
            continue
        kind, arg = match.group("kind"), match.group("arg")
        where = page.file.src_uri
        if kind == "exercises":
            if arg is None or not arg.isdigit():
                raise PluginError(f"{where}: write the marker as <!-- lsce:exercises N -->")
            lesson = int(arg)
            boxes = [exercise_box(e, root, link) for e in manifest if e.lesson == lesson]
            if not boxes:
                raise PluginError(
                    f"{where}: <!-- lsce:exercises {lesson} --> but lesson {lesson} has no "
                    "exercises in lessons/exercises/exercises.toml; fix the number or drop the line"
                )
            shown.add(lesson)
            out.append("\n".join(boxes))
        elif kind == "exercise-list":
            out.append(exercise_table(manifest, page, files))
        else:
            raise PluginError(
                f"{where}: unknown marker lsce:{kind}; use lsce:exercises N or lsce:exercise-list"
            )
    return "\n".join(out) + "\n", shown


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    text, shown = expand_markers(markdown, page, files, _build.root, _build.manifest)
    _build.shown |= shown
    return text


# The library's docstrings use Sphinx roles (:func:`name`), which mkdocstrings renders as
# the literal role name in front of a code span.
SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(?=<code>)")


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return SPHINX_ROLE.sub("", html)


def check_all_shown(manifest: list[Exercise], shown: set[int]) -> None:
    """Fail when some lesson has exercises but no page showed their boxes."""
    missing = sorted({e.lesson for e in manifest} - shown)
    if missing:
        ids = [e.id for e in manifest if e.lesson in missing]
        raise PluginError(
            f"exercises {', '.join(ids)} appear on no page: add <!-- lsce:exercises N --> "
            f"to the page of lesson(s) {', '.join(map(str, missing))}"
        )


def on_post_build(config: MkDocsConfig) -> None:
    if not _build.dirty:
        check_all_shown(_build.manifest, _build.shown)

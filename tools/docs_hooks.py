"""MkDocs hooks: exercise boxes, the exercise list, numbers from the lessons' runs, the
quick-build banner and the notebook link.

- A line ``<!-- lsce:exercise 4.2 -->`` becomes that exercise's box: id, title, the
  learner's file and function, the ``lsce`` commands, collapsible hints, then a collapsed
  learner-level solution (the function in ``lessons/solutions/``) and a collapsed library
  version with the manifest's ``library_note``. ``<!-- lsce:exercise-list -->`` becomes a
  table of all exercises.
  All come from ``lessons/exercises/exercises.toml``, so no page types an exercise by hand.
- ``[[run:08_table.json:methods.CE.ece:.3f]]`` in a lesson page's prose becomes that value
  of the JSON the lesson's run saved beside its figures (a dotted key path, list indexes as
  numbers, an optional format spec), and ``<!-- lsce:run-output 08_table.md -->`` the
  Markdown fragment it saved: prose numbers come from the run that made the figures.
- Every lesson page links its notebook (tools/notebooks.py), and a quick build
  (LSCE_QUICK=1) puts a banner on each lesson page saying its figures come from quick runs.
- On the API pages, the Sphinx roles of the docstrings (``:func:``) are dropped.

The build fails (``PluginError``) on a marker for an unknown lesson or exercise, on an
unknown ``lsce:`` marker, on a run value whose file or key is missing, and when some
exercise is shown on no page: the docs cannot silently miss an exercise or a number.
"""

from __future__ import annotations

import ast
import posixpath
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from lsce_course.course import Lesson, load_lessons
from lsce_course.exercises import Exercise, load_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_figures import MissingRunOutput, quick, run_output, with_run_values  # noqa: E402
from notebooks import notebook_name  # noqa: E402

MARKER = re.compile(r"^<!--\s*lsce:(?P<kind>[\w-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SECTION = "# --8<-- [start:{name}]"


@dataclass
class _Build:
    """Per-build state: the manifest, and which lessons' boxes some page has shown."""

    root: Path = Path()
    manifest: list[Exercise] = field(default_factory=list)
    lessons: list[Lesson] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)  # exercise ids
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
    _build.lessons = load_lessons(_build.root)
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


def learner_solution(exercise: Exercise, root: Path) -> str:
    """The source of the exercise's function (or method) in ``lessons/solutions/``: the
    plain version a learner would write, which CI runs against the exercise's tests."""
    path = root / "lessons" / "solutions" / exercise.file
    source = path.read_text(encoding="utf-8")
    nodes: list[ast.stmt] = ast.parse(source).body
    node: ast.stmt | None = None
    for name in exercise.function.split("."):
        node = next(
            (n for n in nodes if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name),
            None,
        )
        if node is None:
            raise PluginError(f"{path.relative_to(root)} defines no {exercise.function}")
        nodes = node.body if isinstance(node, ast.ClassDef) else []
    assert node is not None
    segment = ast.get_source_segment(source, node, padded=True) or ""
    first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
    decorators = source.splitlines()[first - 1 : node.lineno - 1]
    return textwrap.dedent("\n".join([*decorators, segment]))


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
    solution = learner_solution(exercise, root)
    lines += [
        "",
        '    ??? success "A solution"',
        "",
        f'        ```python title="lessons/solutions/{exercise.file}"',
        textwrap.indent(solution, " " * 8),
        "        ```",
    ]
    section = reference_section(exercise, root)
    if section is not None:
        path, name = section
        lines += ["", '    ??? note "The library\'s version"', ""]
        if exercise.library_note:
            lines += [f"        {escape_markdown(exercise.library_note)}", ""]
        lines += [
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
) -> tuple[str, set[str]]:
    """Replace the ``lsce:`` marker lines (outside code fences); return the exercises shown."""
    out: list[str] = []
    shown: set[str] = set()
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
        if kind == "exercise":
            if arg not in by_id:
                raise PluginError(f"{where}: <!-- lsce:exercise {arg} --> names no exercise")
            shown.add(arg)
            out.append(exercise_box(by_id[arg], root, link))
        elif kind == "exercise-list":
            out.append(exercise_table(manifest, page, files))
        elif kind == "run-output":
            try:
                out.append(run_output(arg or "", root).read_text(encoding="utf-8"))
            except MissingRunOutput as missing:
                raise PluginError(f"{where}: {missing}") from None
        else:
            raise PluginError(
                f"{where}: unknown marker lsce:{kind}; use lsce:exercise ID, "
                "lsce:exercise-list or lsce:run-output FILE"
            )
    return "\n".join(out) + "\n", shown


def lesson_of(page: Page) -> Lesson | None:
    return next((l for l in _build.lessons if l.page == page.file.src_uri), None)


QUICK_BANNER = """
!!! warning "Quick build"

    This copy of the site was built with `LSCE_QUICK=1`: its figures and the numbers taken
    from runs come from the lessons' quick runs (less data, fewer steps), so they can differ
    from what the text describes. `make docs` builds the site from full runs.
"""


def lesson_header(lesson: Lesson, page: Page) -> str:
    """What follows a lesson page's title: the notebook link, and the quick-build banner."""
    here = posixpath.dirname(page.file.src_uri)
    notebook = posixpath.relpath(f"notebooks/{notebook_name(lesson)}", here)
    text = (
        f"\n*This lesson as a Jupyter notebook: [{notebook_name(lesson)}]({notebook})"
        "{: download }, this page's text between the script's code cells.*\n"
    )
    return text + (QUICK_BANNER if quick() else "")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    text, shown = expand_markers(markdown, page, files, _build.root, _build.manifest)
    _build.shown |= shown
    try:
        text = with_run_values(text, _build.root)
    except MissingRunOutput as missing:
        raise PluginError(f"{page.file.src_uri}: {missing}") from None
    lesson = lesson_of(page)
    if lesson is not None:
        title, _, rest = text.partition("\n")
        text = f"{title}\n{lesson_header(lesson, page)}{rest}"
    return text


# The library's docstrings use Sphinx roles (:func:`name`), which mkdocstrings renders as
# the literal role name in front of a code span.
SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(?=<code>)")


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return SPHINX_ROLE.sub("", html)


def check_all_shown(manifest: list[Exercise], shown: set[str]) -> None:
    """Fail when some exercise's box is on no page."""
    missing = [e.id for e in manifest if e.id not in shown]
    if missing:
        raise PluginError(
            f"exercises {', '.join(missing)} appear on no page: put <!-- lsce:exercise ID --> "
            "on the lesson's page where the exercise belongs"
        )


def on_post_build(config: MkDocsConfig) -> None:
    if not _build.dirty:
        check_all_shown(_build.manifest, _build.shown)

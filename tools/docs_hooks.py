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
import json
import posixpath
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from lsce_course.course import Lesson, load_lessons
from lsce_course.exercises import Exercise, load_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_figures import (  # noqa: E402
    MissingRunOutput,
    quick,
    run_output,
    with_run_values,
)
from notebooks import notebook_name  # noqa: E402

MARKER = re.compile(r"^<!--\s*lsce:(?P<kind>[\w-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SECTION = "# --8<-- [start:{name}]"


# What the hook writes into a page, per language (a page's language: docs/X.zh.md is zh).
SITE_TEXT = {
    "en": {
        "exercise": "Exercise",
        "implement": "Implement `{function}` in `lessons/exercises/{file}`. It has the same "
        "contract as the library's `{reference}`, and its tests are in `{tests}` "
        "(marker `{marker}`).",
        "requires": "Its tests also call your answer to exercise {needed}.",
        "check": "run its tests against your file",
        "hint": "the first hint; --level 2 for the next",
        "hint_title": "Hint {level}",
        "solution": "A solution",
        "library": "The library's version",
        "notebook": "*This lesson as a Jupyter notebook: [{name}]({url}){{: download }}, this "
        "page's text between the script's code cells.*",
        "quick_title": "Quick build",
        "quick": "This copy of the site was built with `LSCE_QUICK=1`: its figures and the "
        "numbers taken from runs come from the lessons' quick runs (less data, fewer steps), "
        "so they can differ from what the text describes. `make docs` builds the site from "
        "full runs.",
    },
    "zh": {
        "exercise": "练习",
        "implement": "在 `lessons/exercises/{file}` 里实现 `{function}`。它和库里的 "
        "`{reference}` 约定相同，测试在 `{tests}` 中（标记 `{marker}`）。",
        "requires": "它的测试还会调用你在练习 {needed} 里写的函数。",
        "check": "用测试检查你的文件",
        "hint": "第一条提示；--level 2 看下一条",
        "hint_title": "提示 {level}",
        "solution": "参考答案",
        "library": "库里的版本",
        "notebook": "*本课的 Jupyter 笔记本：[{name}]({url}){{: download }}，即本页的文字穿插在"
        "脚本的代码单元之间。*",
        "quick_title": "快速构建",
        "quick": "这份网站是用 `LSCE_QUICK=1` 构建的：图和取自运行结果的数字都来自各课的快速模式"
        "（数据更少、步数更少），可能与正文的描述不一致。`make docs` 用完整运行构建网站。",
    },
}


# A line break between two Chinese characters renders as a space in the browser: a zh
# page's hard-wrapped prose is joined up (outside code blocks) before it is rendered.
CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
CJK_BREAK = re.compile(rf"(?<=[{CJK}])\n[ \t]*(?=[{CJK}])")


def join_cjk_lines(markdown: str) -> str:
    """Join the lines of Chinese prose that a line break between two Chinese characters
    splits; code fences are left as they are."""
    parts = re.split(
        r"(^[ \t]*(?:`{3,}|~{3,})[^\n]*\n.*?^[ \t]*(?:`{3,}|~{3,})[ \t]*$)",
        markdown,
        flags=re.S | re.M,
    )
    return "".join(
        part if i % 2 else CJK_BREAK.sub("", part) for i, part in enumerate(parts)
    )


def page_language(page: Page) -> str:
    """'zh' for a translated page (docs/X.zh.md), else 'en'."""
    return "zh" if page.file.src_uri.endswith(".zh.md") else "en"


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
            (
                n
                for n in nodes
                if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
            ),
            None,
        )
        if node is None:
            raise PluginError(
                f"{path.relative_to(root)} defines no {exercise.function}"
            )
        nodes = node.body if isinstance(node, ast.ClassDef) else []
    assert node is not None
    segment = ast.get_source_segment(source, node, padded=True) or ""
    first = (
        node.decorator_list[0].lineno
        if getattr(node, "decorator_list", None)
        else node.lineno
    )
    decorators = source.splitlines()[first - 1 : node.lineno - 1]
    return textwrap.dedent("\n".join([*decorators, segment]))


def exercise_box(
    exercise: Exercise, root: Path, link: Callable[[str], str], lang: str = "en"
) -> str:
    """The Markdown of one exercise box; ``link(id)`` is the URL of another exercise's box."""
    text = SITE_TEXT[lang]
    zh = lang == "zh"
    title = escape_markdown(exercise.title_zh if zh else exercise.title).replace(
        '"', "&quot;"
    )
    implement = text["implement"].format(
        function=exercise.function,
        file=exercise.file,
        reference=exercise.reference.replace(":", "."),
        tests=exercise.tests,
        marker=exercise.marker,
    )
    lines = [
        f'<div class="lsce-exercise" id="{anchor(exercise)}" markdown>',
        "",
        f'!!! question "{text["exercise"]} {exercise.id} · {title}"',
        "",
        f"    {implement}",
    ]
    if exercise.requires:
        needed = ", ".join(f"[{r}]({link(r)})" for r in exercise.requires)
        lines += ["", "    " + text["requires"].format(needed=needed)]
    lines += [
        "",
        "    ```bash",
        f"    lsce check {exercise.id}            # {text['check']}",
        f"    lsce hint {exercise.id}             # {text['hint']}",
        "    ```",
    ]
    for level, hint in enumerate(exercise.hints_zh if zh else exercise.hints, start=1):
        # a multi-line hint stays inside its block: indent every line
        body = escape_markdown(hint).replace("\n", "\n        ")
        hint_title = text["hint_title"].format(level=level)
        lines += ["", f'    ??? tip "{hint_title}"', "", f"        {body}"]
    solution = learner_solution(exercise, root)
    lines += [
        "",
        f'    ??? success "{text["solution"]}"',
        "",
        f'        ```python title="lessons/solutions/{exercise.file}"',
        textwrap.indent(solution, " " * 8),
        "        ```",
    ]
    section = reference_section(exercise, root)
    if section is not None:
        path, name = section
        lines += ["", f'    ??? note "{text["library"]}"', ""]
        note = exercise.library_note_zh if zh else exercise.library_note
        if note:
            lines += [f"        {escape_markdown(note)}", ""]
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
    pages = sorted(
        f.src_uri for f in files.documentation_pages() if f.src_uri.startswith(prefix)
    )
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
    rows = [
        "| id | exercise | lesson | your file | implement |",
        "|---|---|---|---|---|",
    ]
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
            if (
                opened
                and opened.group(1)[0] == fence[0]
                and len(opened.group(1)) >= len(fence)
            ):
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
                raise PluginError(
                    f"{where}: <!-- lsce:exercise {arg} --> names no exercise"
                )
            shown.add(arg)
            out.append(exercise_box(by_id[arg], root, link, page_language(page)))
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
    """The lesson whose page (in either language) this is."""
    english = page.file.src_uri.replace(".zh.md", ".md")
    return next((l for l in _build.lessons if l.page == english), None)


def lesson_header(lesson: Lesson, page: Page) -> str:
    """What follows a lesson page's title: the notebook link, and the quick-build banner."""
    lang = page_language(page)
    text = SITE_TEXT[lang]
    name = notebook_name(lesson, lang)
    url = posixpath.relpath(f"notebooks/{name}", posixpath.dirname(page.file.src_uri))
    header = "\n" + text["notebook"].format(name=name, url=url) + "\n"
    if quick():
        body = textwrap.fill(
            text["quick"], 88, initial_indent="    ", subsequent_indent="    "
        )
        header += f'\n!!! warning "{text["quick_title"]}"\n\n{body}\n'
    return header


def on_page_markdown(
    markdown: str, page: Page, config: MkDocsConfig, files: Files
) -> str:
    if page_language(page) == "zh":
        markdown = join_cjk_lines(markdown)
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


# TeX in the search index: arithmatex leaves \(…\) and \[…\] in the page text, which the
# search results would show raw; the index gets a plain reading of the math instead.
MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
TEX_WORDS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "epsilon": "ε",
    "varepsilon": "ε", "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "pi": "π",
    "sigma": "σ", "Sigma": "Σ", "tau": "τ", "phi": "φ", "ell": "ℓ", "nabla": "∇",
    "partial": "∂", "infty": "∞", "sum": "Σ", "prod": "Π", "cdot": "·", "times": "×",
    "ne": "≠", "neq": "≠", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "approx": "≈",
    "to": "→", "in": "∈", "odot": "⊙", "star": "⋆", "pm": "±", "mid": "|", "|": "‖",
    "_": "_", "frac": "", "left": "", "right": "", "big": "", "Big": "", "quad": " ",
    "qquad": " ", "displaystyle": "", "tfrac": "", "dfrac": "",
}  # fmt: skip


def plain_math(tex: str) -> str:
    """A readable plain-text version of a TeX fragment, for the search index."""
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", tex)
    text = re.sub(
        r"\\(?:operatorname|mathrm|text|mathbf|mathcal|boldsymbol)\{([^{}]*)\}",
        r"\1",
        text,
    )
    text = re.sub(
        r"\\([A-Za-z]+|\||_)", lambda m: TEX_WORDS.get(m.group(1), m.group(1)), text
    )
    text = re.sub(r"\\[,;:! ]|[{}]|\\(?=\W)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def clean_search_indexes(site_dir: Path) -> None:
    """Replace the TeX in every search index of the site (one per language) by plain text."""
    for path in site_dir.rglob("search/search_index.json"):
        index = json.loads(path.read_text(encoding="utf-8"))
        for doc in index.get("docs", []):
            for key in ("title", "text"):
                doc[key] = MATH.sub(
                    lambda m: plain_math(m.group(1) or m.group(2)), doc[key]
                )
        path.write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")


# after mkdocs-static-i18n (priority −100), which writes the final, both-language index
@event_priority(-200)
def on_post_build(config: MkDocsConfig) -> None:
    clean_search_indexes(Path(config.site_dir))
    if not _build.dirty:
        check_all_shown(_build.manifest, _build.shown)

"""The docs site: lessons ↔ pages, vendored KaTeX, the build hooks, the strict build, and a
real-browser check of the built site.

The browser test needs Debian's ``chromium`` and ``npm ci``'s ``playwright-core``; without
them it is skipped with the reason, unless ``LSCE_REQUIRE_BROWSER=1`` (set by ``.ci/run``)
makes their absence a failure.
"""

from __future__ import annotations

import functools
import html as html_module
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml

from lsce_course.course import load_lessons
from lsce_course.exercises import load_manifest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = load_lessons(ROOT)
DOCS_ENV = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


def _load_tool(name: str) -> ModuleType:
    """Import tools/<name>.py (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"lsce_tools_{name}", ROOT / "tools" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hooks = _load_tool("docs_hooks")
gen_figures = _load_tool("gen_figures")
vendor_katex = _load_tool("vendor_katex")


class _ConfigLoader(yaml.SafeLoader):
    """mkdocs.yml as plain data: its !!python/ tags (the toc slugify) become None."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def mkdocs_config() -> dict:
    return yaml.load(
        (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_ConfigLoader
    )


def nav_pages(nav: object) -> list[str]:
    """Every page path in a mkdocs nav, depth first."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


# --- lessons and pages -------------------------------------------------------------------


def test_every_lesson_script_and_page_is_in_the_course_manifest() -> None:
    for lesson in LESSONS:
        assert (ROOT / lesson.script).is_file(), (
            f"lessons/course.toml: no {lesson.script}"
        )
        assert (ROOT / "docs" / lesson.page).is_file(), (
            f"lessons/course.toml: no docs/{lesson.page}"
        )
        assert (
            Path(lesson.script).name
            == f"{lesson.label}_{lesson.slug.replace('-', '_')}.py"
        )
        assert Path(lesson.page).name == f"{lesson.label}-{lesson.slug}.md"
    scripts = {p.name for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py")}
    pages = {
        p.name for p in (ROOT / "docs" / "lessons").glob("*.md") if ".zh." not in p.name
    }
    assert scripts == {Path(lesson.script).name for lesson in LESSONS}, (
        "add it to lessons/course.toml"
    )
    assert pages == {Path(lesson.page).name for lesson in LESSONS}, (
        "add it to lessons/course.toml"
    )


def test_every_translated_page_has_its_english_page() -> None:
    for page in (ROOT / "docs").rglob("*.zh.md"):
        english = page.with_name(page.name.replace(".zh.md", ".md"))
        assert english.is_file(), f"{page.relative_to(ROOT)} translates no English page"


ZH_PAGES = sorted((ROOT / "docs").rglob("*.zh.md"))


def structure(page: Path) -> tuple[list[str], list[str], list[str]]:
    """What a translation keeps exactly: snippet includes and lsce markers (in order) and
    the run values (sorted: Chinese word order may move them). English comparison words
    from a run (``words.*`` keys) are left out: a zh sentence says it with the numbers."""
    text = page.read_text(encoding="utf-8")
    includes = [i.strip() for i in re.findall(r"^\s*--8<-- .+$", text, re.M)]
    markers = re.findall(r"<!-- lsce:[^>]+-->", text)
    values = re.findall(r"\[\[run:[^\]]+\]\]", text)
    return includes, markers, sorted(v for v in values if ":words." not in v)


@pytest.mark.parametrize(
    "page", ZH_PAGES, ids=lambda p: p.relative_to(ROOT / "docs").as_posix()
)
def test_a_translation_keeps_the_code_markers_and_run_values(page: Path) -> None:
    english = page.with_name(page.name.replace(".zh.md", ".md"))
    assert structure(page) == structure(english)


def test_every_lesson_and_page_of_the_site_has_a_zh_edition() -> None:
    for lesson in LESSONS:
        zh = (ROOT / "docs" / lesson.page).with_suffix(".zh.md")
        assert zh.is_file(), f"no zh edition of docs/{lesson.page}"
        first = zh.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# 第 {lesson.label} 课 · "), f"{zh.name}: {first}"
    for name in (
        "index",
        "setup",
        "exercises",
        "conventions",
        "benchmarks",
        "glossary",
    ):
        assert (ROOT / "docs" / f"{name}.zh.md").is_file(), f"no docs/{name}.zh.md"


def test_zh_prose_joins_lines_broken_between_chinese_characters() -> None:
    text = "第一行\n第二行。\n\n```python\n# 注释\n# 注释\n```\n    缩进\n    续行\nEnglish\n中文\n"
    joined = hooks.join_cjk_lines(text)
    assert joined.startswith("第一行第二行。") and "# 注释\n# 注释" in joined
    assert "    缩进续行\nEnglish\n中文" in joined


def test_a_zh_exercise_box_shows_the_chinese_hints() -> None:
    exercise = load_manifest(ROOT)[0]
    text, _ = _expand(
        f"<!-- lsce:exercise {exercise.id} -->\n", "lessons/01-softmax.zh.md"
    )
    assert f"练习 {exercise.id}" in text and '??? success "参考答案"' in text
    for level, hint in enumerate(exercise.hints_zh, start=1):
        assert f'??? tip "提示 {level}"' in text and hooks.escape_markdown(hint) in text


def test_math_in_the_search_index_reads_as_text() -> None:
    assert (
        hooks.plain_math(r"\operatorname{lse}(z) = \log \sum_j e^{z_j}")
        == "lse(z) = log Σ_j e^ z_j"
    )
    assert hooks.plain_math(r"\frac{\varepsilon}{K} \ne 0") == "(ε)/(K) ≠ 0"


def test_every_lesson_page_is_titled_from_the_manifest() -> None:
    for lesson in LESSONS:
        first = (
            (ROOT / "docs" / lesson.page).read_text(encoding="utf-8").splitlines()[0]
        )
        assert first == f"# Lesson {lesson.label} · {lesson.title}", (
            f"docs/{lesson.page}"
        )


def test_the_nav_lists_the_lessons_of_the_manifest_in_order() -> None:
    config = mkdocs_config()
    lessons = next(item["Lessons"] for item in config["nav"] if "Lessons" in item)
    expected = [{f"{lesson.label} {lesson.title}": lesson.page} for lesson in LESSONS]
    assert lessons == expected, (
        "the nav's Lessons must be lessons/course.toml's, in order"
    )


# --- vendored KaTeX ----------------------------------------------------------------------


def test_npm_packages_are_pinned_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    for name, spec in package["devDependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"pin {name} exactly, not {spec!r}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == spec, (
            f"package-lock.json is stale for {name}: run `npm install`"
        )


def test_vendored_katex_version_matches_the_lockfile() -> None:
    vendored = (vendor_katex.TARGET / "VERSION").read_text(encoding="utf-8").strip()
    assert vendored == vendor_katex.locked_version(), (
        "docs/assets/vendor/katex is not the locked katex: "
        "run `npm ci && python tools/vendor_katex.py`"
    )
    for needed in (
        "katex.min.js",
        "katex.min.css",
        "contrib/auto-render.min.js",
        "LICENSE",
    ):
        assert (vendor_katex.TARGET / needed).is_file(), (
            f"vendored KaTeX lacks {needed}"
        )
    assert list((vendor_katex.TARGET / "fonts").glob("KaTeX_*.woff2")), "no KaTeX fonts"


def test_vendored_katex_is_an_exact_copy_of_node_modules() -> None:
    if not (vendor_katex.SOURCE / "package.json").is_file():
        pytest.skip("node_modules/katex is missing (npm ci has not run)")
    if vendor_katex.installed_version() != vendor_katex.locked_version():
        pytest.skip("node_modules is not the locked version (run npm ci)")
    assert vendor_katex.differences() == [], "run `python tools/vendor_katex.py`"


# --- the exercise-box hook -----------------------------------------------------------------


def _page(src_uri: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def _files(*src_uris: str) -> SimpleNamespace:
    pages = [SimpleNamespace(src_uri=uri) for uri in src_uris]
    return SimpleNamespace(documentation_pages=lambda: pages)


def _expand(
    markdown: str, src_uri: str = "lessons/01-softmax.md"
) -> tuple[str, set[str]]:
    files = _files("lessons/01-softmax.md", "exercises.md")
    return hooks.expand_markers(
        markdown, _page(src_uri), files, ROOT, load_manifest(ROOT)
    )


@pytest.mark.parametrize("exercise", load_manifest(ROOT), ids=lambda e: e.id)
def test_marker_becomes_the_exercise_box_with_hints_and_commands(
    exercise: object,
) -> None:
    text, shown = _expand(f"# Lesson\n\n<!-- lsce:exercise {exercise.id} -->\n")
    assert shown == {exercise.id}
    assert "lsce:exercise" not in text
    assert f'id="{hooks.anchor(exercise)}"' in text
    assert f"Exercise {exercise.id}" in text
    assert f"lessons/exercises/{exercise.file}" in text
    assert f"lsce check {exercise.id}" in text and f"lsce hint {exercise.id}" in text
    for level in range(1, len(exercise.hints) + 1):
        assert f'??? tip "Hint {level}"' in text
    assert '??? success "A solution"' in text


def test_unknown_marker_fails_the_build() -> None:
    with pytest.raises(hooks.PluginError, match="unknown marker"):
        _expand("<!-- lsce:exercize 1 -->\n")


def test_exercises_shown_on_no_page_fail_the_build() -> None:
    manifest = load_manifest(ROOT)
    ids = {e.id for e in manifest}
    hooks.check_all_shown(manifest, ids)  # all shown: fine
    with pytest.raises(hooks.PluginError, match="exercises 2.2 appear on no page"):
        hooks.check_all_shown(manifest, ids - {"2.2"})


def test_one_exercise_box_ends_with_a_learner_solution_and_the_library_version() -> (
    None
):
    """The box shows the plain solution CI runs, then the library's code with its note."""
    manifest = {e.id: e for e in load_manifest(ROOT)}
    text, shown = _expand(
        "Some math first.\n\n<!-- lsce:exercise 1.1 -->\n\nMore prose.\n"
    )
    assert shown == {"1.1"}
    solution = text.index('??? success "A solution"')
    library = text.index('??? note "The library\'s version"')
    assert text.index('??? tip "Hint 1"') < solution < library
    assert "def logsumexp(x: np.ndarray, axis: int = -1)" in text[solution:library]
    assert 'title="lessons/solutions/ex01_softmax.py"' in text[solution:library]
    assert '--8<-- "lsce_scratch/softmax.py:logsumexp"' in text[library:]
    if manifest["1.1"].library_note:
        assert hooks.escape_markdown(manifest["1.1"].library_note) in text[library:]


def test_a_method_exercise_shows_only_that_method() -> None:
    exercise = next(e for e in load_manifest(ROOT) if "." in e.function)
    code = hooks.learner_solution(exercise, ROOT)
    method = exercise.function.split(".")[-1]
    assert code.lstrip().startswith(("def " + method, "@")) and f"def {method}(" in code
    assert not code.startswith(" "), "the method is dedented"


def test_an_unknown_exercise_id_fails_the_build() -> None:
    with pytest.raises(hooks.PluginError, match="names no exercise"):
        _expand("<!-- lsce:exercise 9.9 -->\n")


@pytest.fixture
def docs_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build state whose lesson-08 run saved 08_table.json and 08_table.md (quick mode)."""
    monkeypatch.setenv("LSCE_QUICK", "1")
    for manifest in ("lessons/course.toml", "lessons/exercises/exercises.toml"):
        (tmp_path / manifest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / manifest, tmp_path / manifest)
    monkeypatch.setattr(hooks._build, "root", tmp_path)
    monkeypatch.setattr(hooks._build, "lessons", LESSONS)
    lesson = next(lesson for lesson in LESSONS if lesson.number == 8)
    folder = gen_figures.cache_dir(tmp_path / lesson.script, tmp_path, True)
    folder.mkdir(parents=True)
    record = {"methods": {"CE": {"ece": 0.0312}}, "sizes": [10, 20]}
    (folder / "08_table.json").write_text(json.dumps(record), encoding="utf-8")
    (folder / "08_table.md").write_text("| a |\n|---|\n| 1 |\n", encoding="utf-8")
    return folder


def test_run_values_come_from_the_runs_json(docs_run: Path) -> None:
    page = _page("lessons/08-calibration.md")
    text = hooks.on_page_markdown(
        "# T\n\nECE [[run:08_table.json:methods.CE.ece:.3f]], n = [[run:08_table.json:sizes.1]].\n"
        "<!-- lsce:run-output 08_table.md -->\n",
        page, SimpleNamespace(), _files(),
    )  # fmt: skip
    assert "ECE 0.031, n = 20." in text
    assert "| a |\n|---|\n| 1 |" in text


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "[[run:08_table.json:methods.LSCE.ece]]",
            "08_table.json has no methods.LSCE.ece",
        ),
        ("[[run:08_other.json:x]]", "lesson 08's run saved no 08_other.json"),
        ("[[run:table.json:x]]", "does not start with a lesson number"),
    ],
)
def test_a_missing_run_value_fails_the_build(
    docs_run: Path, value: str, error: str
) -> None:
    with pytest.raises(hooks.PluginError, match=error):
        hooks.on_page_markdown(
            f"# T\n{value}\n", _page("index.md"), SimpleNamespace(), _files()
        )


def test_lesson_pages_link_their_notebook_and_a_quick_build_says_so(
    docs_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = _page("lessons/08-calibration.md")
    quick = hooks.on_page_markdown(
        "# Lesson 08 · Calibration\nText.\n", page, None, _files()
    )
    assert "(../notebooks/08_calibration.ipynb){: download }" in quick
    assert quick.index("Quick build") < quick.index("Text.")
    monkeypatch.delenv("LSCE_QUICK")
    full = hooks.on_page_markdown(
        "# Lesson 08 · Calibration\nText.\n", page, None, _files()
    )
    assert "Quick build" not in full and "08_calibration.ipynb" in full
    other = hooks.on_page_markdown("# Home\nText.\n", _page("index.md"), None, _files())
    assert "notebook" not in other


def test_markers_inside_code_fences_are_left_alone() -> None:
    markdown = "````markdown\n```\n<!-- lsce:exercise 99.9 -->\n```\n````\n"
    text, shown = _expand(markdown)
    assert shown == set() and "<!-- lsce:exercise 99.9 -->" in text


def test_exercise_list_links_every_exercise_to_its_box() -> None:
    text, _ = _expand("<!-- lsce:exercise-list -->\n", src_uri="exercises.md")
    for exercise in load_manifest(ROOT):
        assert f"| {exercise.id} |" in text
        if exercise.lesson == 1:
            assert f"(lessons/01-softmax.md#{hooks.anchor(exercise)})" in text


def test_box_links_work_within_and_across_pages() -> None:
    exercise = next(e for e in load_manifest(ROOT) if e.lesson == 1)
    files = _files("lessons/01-softmax.md", "exercises.md")
    same = hooks.box_link(exercise, _page("lessons/01-softmax.md"), files)
    assert same == f"#{hooks.anchor(exercise)}"
    other = hooks.box_link(exercise, _page("lessons/02-gradient-checking.md"), files)
    assert other == f"01-softmax.md#{hooks.anchor(exercise)}"
    assert hooks.box_link(exercise, _page("index.md"), _files("index.md")) is None


def test_manifest_text_is_escaped_but_code_spans_stay_code() -> None:
    escaped = hooks.escape_markdown("x_k * 2 <b> $5 `a_b * c`")
    assert escaped == r"x\_k \* 2 &lt;b&gt; \$5 `a_b * c`"


# --- figures ---------------------------------------------------------------------------------


def _fake_lesson(root: Path, body: str, name: str = "01_fake.py") -> Path:
    """A lesson script in a throw-away course tree that counts its runs."""
    (root / "lessons" / "exercises").mkdir(parents=True, exist_ok=True)
    script = root / "lessons" / name
    script.write_text(
        "import os, pathlib\n"
        "with open('runs.txt', 'a') as f: f.write('run\\n')\n"
        "out = pathlib.Path(os.environ['LSCE_FIGURE_DIR'])\n" + body,
        encoding="utf-8",
    )
    return script


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_figures_are_cached_until_the_lesson_changes(tmp_path: Path) -> None:
    script = _fake_lesson(tmp_path, f"(out / '01_plot.png').write_bytes({PNG!r})\n")
    first = gen_figures.run_lesson(script, tmp_path, quick_flag=True)
    assert first.ran and [p.name for p in first.figures] == ["01_plot.png"]
    second = gen_figures.run_lesson(script, tmp_path, quick_flag=True)
    assert not second.ran and second.figures == first.figures
    assert (tmp_path / "runs.txt").read_text().count("run") == 1
    full = gen_figures.run_lesson(script, tmp_path, quick_flag=False)  # own cache
    assert full.ran
    script.write_text(script.read_text() + "# changed\n")
    assert gen_figures.run_lesson(script, tmp_path, quick_flag=True).ran


def test_a_failing_lesson_fails_loudly_and_is_retried(tmp_path: Path) -> None:
    script = _fake_lesson(
        tmp_path, "print('the check table says no')\nraise SystemExit(1)\n"
    )
    with pytest.raises(gen_figures.LessonFailed, match="the check table says no"):
        gen_figures.run_lesson(script, tmp_path, quick_flag=True)
    with pytest.raises(gen_figures.LessonFailed):  # no stamp was left: it runs again
        gen_figures.run_lesson(script, tmp_path, quick_flag=True)
    assert (tmp_path / "runs.txt").read_text().count("run") == 2


def test_figures_must_carry_their_lesson_number(tmp_path: Path) -> None:
    script = _fake_lesson(tmp_path, f"(out / 'plot.png').write_bytes({PNG!r})\n")
    with pytest.raises(gen_figures.LessonFailed, match="01_what.png"):
        gen_figures.run_lesson(script, tmp_path, quick_flag=True)


# --- the numbers on the Conventions page ------------------------------------------------------


def test_conventions_page_examples_hold() -> None:
    examples = _load_tool("conventions_examples")
    for example in examples.EXAMPLES:
        example()


# --- the strict build ------------------------------------------------------------------------


# A cold build runs every lesson for its figures: minutes on a 2-core machine. The tests
# that build the site get the subprocess's limit plus a margin, not the suite's default.
BUILD_TIMEOUT = 1200


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mkdocs build --strict` into a temporary folder, figures from LSCE_QUICK=1 runs."""
    site = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, **DOCS_ENV, LSCE_QUICK="1")
    # Quick runs plot no timings, so running lessons side by side skews nothing.
    env.setdefault("LSCE_DOCS_JOBS", str(min(4, os.cpu_count() or 1)))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    )
    print(f"mkdocs build --strict: {seconds:.1f} s")
    return site


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_strict_build_shows_every_exercise_and_figure(built_site: Path) -> None:
    html = {p: p.read_text(encoding="utf-8") for p in built_site.rglob("*.html")}
    everything = "\n".join(html.values())
    assert "<!-- lsce:" not in everything, "an lsce: marker was not expanded"
    for exercise in load_manifest(ROOT):
        assert f'id="{hooks.anchor(exercise)}"' in everything, (
            f"no box for {exercise.id}"
        )
    for lesson in LESSONS:
        page = built_site / Path(lesson.page).with_suffix("") / "index.html"
        assert "Quick build" in page.read_text(encoding="utf-8"), (
            f"{page}: no quick banner"
        )
        notebook = (
            built_site / "notebooks" / Path(lesson.script).with_suffix(".ipynb").name
        )
        assert notebook.is_file() and notebook.name in page.read_text(encoding="utf-8")
    for page in (ROOT / "docs" / "lessons").glob("*.md"):
        for figure in re.findall(
            r"\.\./figures/([\w.-]+\.png)", page.read_text("utf-8")
        ):
            assert (built_site / "figures" / figure).is_file(), (
                f"{page.name}: no {figure}"
            )


def without_collapsed_blocks(html: str) -> str:
    """The page's text outside every <details> block (innermost first)."""
    innermost = re.compile(r"<details\b[^>]*>(?:(?!<details\b).)*?</details>", re.S)
    while True:
        shorter = innermost.sub("", html)
        if shorter == html:
            return html_module.unescape(re.sub(r"<[^>]+>", "", html))
        html = shorter


def columns(line: str) -> int:
    """The columns a line of code takes: a combining accent (the hat of m̂) takes none."""
    return sum(1 for char in line if not unicodedata.combining(char))


def test_a_combining_accent_takes_no_column() -> None:
    assert columns("m̂ = m") == 5


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_code_blocks_fit_88_columns_and_search_shows_no_tex(built_site: Path) -> None:
    """Phones: no code line on the site is wider than 88 columns. Search: the index (both
    languages) holds Chinese pages and no TeX source."""
    for page in built_site.rglob("*.html"):
        for block in re.findall(
            r"<pre[^>]*>(.*?)</pre>", page.read_text("utf-8"), re.S
        ):
            code = html_module.unescape(re.sub(r"<[^>]+>", "", block))
            wide = [line for line in code.splitlines() if columns(line) > 88]
            assert not wide, (
                f"{page.relative_to(built_site)}: {len(wide)} lines > 88: {wide[0]}"
            )
    index = json.loads((built_site / "search" / "search_index.json").read_text("utf-8"))
    text = " ".join(doc["title"] + doc["text"] for doc in index["docs"])
    assert not re.search(r"\\[(\[]|\\frac|\\operatorname", text), (
        "raw TeX in the search index"
    )
    zh = [
        doc["location"]
        for doc in index["docs"]
        if doc["location"].startswith("zh/lessons/")
    ]
    assert zh, "the search index has no zh lesson"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_zh_lesson_pages_show_chinese_exercise_boxes(built_site: Path) -> None:
    for lesson in LESSONS:
        page = built_site / "zh" / Path(lesson.page).with_suffix("") / "index.html"
        html = page.read_text(encoding="utf-8")
        assert "快速构建" in html and Path(lesson.script).stem + ".zh.ipynb" in html
        for exercise in lesson.exercises:
            assert f"练习 {exercise.id}" in html and "提示 1" in html, (
                f"{page}: {exercise.id}"
            )


def test_collapsed_blocks_are_left_out() -> None:
    html = "<p>a</p><details><summary>s</summary><details>def f(</details>x</details><p>b</p>"
    assert without_collapsed_blocks(html) == "ab"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_no_answer_is_shown_outside_its_collapsed_solution(built_site: Path) -> None:
    """A learner meets the exercise before its answer: no expanded code on a lesson page
    defines a function that one of its exercises asks for."""
    for lesson in LESSONS:
        html = (
            built_site / Path(lesson.page).with_suffix("") / "index.html"
        ).read_text("utf-8")
        text = without_collapsed_blocks(html)
        for exercise in lesson.exercises:
            name = exercise.function.split(".")[-1]
            assert f"def {name}(" not in text, (
                f"{lesson.page} shows `def {name}(` outside a collapsed block: move it into "
                f"exercise {exercise.id}'s box"
            )


# --- the real browser ------------------------------------------------------------------------


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        return "node_modules/playwright-core is missing (run `npm ci`, which `make setup` does)"
    if shutil.which(chromium_path()) is None:
        return "chromium is not installed (Debian: `apt-get install chromium`)"
    return None


def chromium_path() -> str:
    return (
        os.environ.get("LSCE_CHROMIUM")
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )


@pytest.fixture
def browser_ready() -> None:
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("LSCE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LSCE_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
    pytest.skip(f"browser test skipped: {reason}")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(built_site: Path) -> Iterator[str]:
    """The built site on http://127.0.0.1:PORT/ (a free port), for the duration of a test."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 600)
def test_site_works_offline_in_a_real_browser(
    browser_ready: None, built_site: Path, served: str
) -> None:
    pages = sorted(
        p.relative_to(built_site).as_posix()
        for p in built_site.rglob("index.html")
        if "assets" not in p.parts
    )
    for edition in ("", "zh/"):
        lessons = [p for p in pages if p.startswith(f"{edition}lessons/")]
        assert len(lessons) == len(LESSONS), (
            f"every {edition or 'en/'} lesson page is visited"
        )
    proc = subprocess.run(
        ["node", str(ROOT / "tests" / "browser_check.mjs"), "--base", served,
         "--pages", " ".join(pages), "--chromium", chromium_path()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"browser check printed no report:\n{proc.stdout}\n{proc.stderr}")
    problems = "\n".join(report["problems"])
    assert report["ok"] and proc.returncode == 0, (
        f"the site failed in Chromium:\n{problems}"
    )
    stats = report["stats"]
    assert stats["pages"] == 2 * len(pages)  # at 1280 px and at 390 px
    assert stats["formulas"] > 0 and stats["searchHits"] > 0
    assert stats["exercises"] >= len(load_manifest(ROOT))

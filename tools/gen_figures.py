"""Run every lesson script and put the figures it saves at ``figures/`` in the docs site.

mkdocs-gen-files runs this during the build (``plugins: gen-files`` in mkdocs.yml), so the
figures are made from the current code and never committed. Each lesson runs as
``python lessons/NN_name.py`` with ``LSCE_FIGURE_DIR`` pointing at its own cache folder
under ``build/docs-figures/{full,quick}/``; ``LSCE_QUICK`` passes through, so
``LSCE_QUICK=1 make docs`` builds with the test suite's fast, small runs.

A lesson is not run again while its cache stamp matches a hash of the lesson script, the
library, the course tooling and the examples (their ``*.py``), the learner's exercise
files and the quick flag, so a warm build takes seconds. A lesson that exits non-zero
fails the build with its output.

Run alone (``python tools/gen_figures.py``) it only fills the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lsce_course.course import Lesson, load_lessons

ROOT = Path(__file__).resolve().parents[1]
# what a lesson imports: its figures are made again when one of these changes
PACKAGES = ("lsce_scratch", "lsce_course", "lsce_examples")
CACHE = Path("build") / "docs-figures"
STAMP = "stamp.txt"
LOG = "run.log"
# Full-mode lessons take tens of seconds to ~2 minutes; this only stops a hung one.
TIMEOUT_S = float(os.environ.get("LSCE_DOCS_LESSON_TIMEOUT", "1800"))

log = logging.getLogger("mkdocs.plugins.lsce.figures")


class LessonFailed(RuntimeError):
    """A lesson script exited non-zero (or timed out) while making the docs figures."""


@dataclass(frozen=True)
class Result:
    """What one lesson contributed: its PNGs, and whether it had to run."""

    script: Path
    figures: tuple[Path, ...]
    ran: bool
    seconds: float


def quick() -> bool:
    """The lessons' quick flag, read the way lsce_course.report.quick_mode reads it."""
    return os.environ.get("LSCE_QUICK", "") not in ("", "0")


def lesson_scripts(root: Path = ROOT) -> list[Path]:
    """The lesson scripts of lessons/course.toml, in course order."""
    return [root / lesson.script for lesson in load_lessons(root)]


def stamp(script: Path, root: Path, quick_flag: bool) -> str:
    """Hash of everything a lesson's figures depend on."""
    digest = hashlib.sha256(f"quick={quick_flag}\n".encode())
    inputs = [script]
    for package in PACKAGES:
        inputs += sorted((root / package).rglob("*.py"))
    exercises = root / "lessons" / "exercises"
    # A lesson uses the learner's function once they wrote it (exercises.choose).
    inputs += sorted(exercises.glob("*.py")) + sorted(exercises.glob("*.toml"))
    for path in inputs:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir(script: Path, root: Path, quick_flag: bool) -> Path:
    return root / CACHE / ("quick" if quick_flag else "full") / script.stem


# [[run:08_table.json:methods.CE.ece:.3f]]: a value a lesson's run saved (with_run_values)
RUN_VALUE = re.compile(
    r"\[\[run:(?P<file>[\w.-]+):(?P<key>[\w.-]+)(?::(?P<spec>[^\]]*))?\]\]"
)


class MissingRunOutput(LookupError):
    """A page asks for a file or a value that the lesson's run did not save."""


def run_output(
    name: str, root: Path = ROOT, lessons: list[Lesson] | None = None
) -> Path:
    """A file a lesson's docs run saved beside its figures ('08_table.json' → lesson 8)."""
    lessons = load_lessons(root) if lessons is None else lessons
    lesson = next((l for l in lessons if name.startswith(f"{l.label}_")), None)
    if lesson is None:
        raise MissingRunOutput(f"{name!r} does not start with a lesson number (NN_)")
    path = cache_dir(root / lesson.script, root, quick()) / name
    if not path.is_file():
        raise MissingRunOutput(f"lesson {lesson.label}'s run saved no {name}")
    return path


def with_run_values(text: str, root: Path = ROOT) -> str:
    """``text`` with every ``[[run:FILE:key.path:spec]]`` replaced by its value: list
    indexes are numbers, and the spec is a Python format spec. Each file is read once."""
    if not RUN_VALUE.search(text):
        return text
    lessons = load_lessons(root)
    records: dict[str, object] = {}

    def value(match: re.Match[str]) -> str:
        name = match["file"]
        if name not in records:
            path = run_output(name, root, lessons)
            records[name] = json.loads(path.read_text(encoding="utf-8"))
        found = records[name]
        for key in match["key"].split("."):
            try:
                found = found[int(key)] if isinstance(found, list) else found[key]  # type: ignore[index]
            except (KeyError, IndexError, ValueError, TypeError):
                raise MissingRunOutput(f"{name} has no {match['key']}") from None
        return format(found, match["spec"] or "")

    return RUN_VALUE.sub(value, text)


def _remove_abandoned(parent: Path, stem: str) -> None:
    """Delete work folders of interrupted runs (older than any run may take)."""
    for old in parent.glob(f".{stem}-*"):
        if time.time() - old.stat().st_mtime > TIMEOUT_S:
            shutil.rmtree(old, ignore_errors=True)


def run_lesson(
    script: Path, root: Path = ROOT, quick_flag: bool | None = None
) -> Result:
    """Run one lesson into its cache folder unless the cache is current; return its PNGs."""
    quick_flag = quick() if quick_flag is None else quick_flag
    folder = cache_dir(script, root, quick_flag)
    wanted = stamp(script, root, quick_flag)
    stamp_file = folder / STAMP
    if stamp_file.is_file() and stamp_file.read_text().strip() == wanted:
        return Result(script, tuple(sorted(folder.glob("*.png"))), False, 0.0)

    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(folder.parent, script.stem)
    # Run into a fresh folder and swap it in only on success: a failed or interrupted run
    # leaves no stamp, so the next build runs the lesson again.
    work = Path(tempfile.mkdtemp(prefix=f".{script.stem}-", dir=folder.parent))
    env = dict(
        os.environ, LSCE_FIGURE_DIR=str(work), MPLBACKEND="Agg", PYTHONUNBUFFERED="1"
    )
    if quick_flag:
        env["LSCE_QUICK"] = "1"
    else:
        env.pop("LSCE_QUICK", None)
    started = time.perf_counter()
    log_path = work / LOG
    try:
        with log_path.open("wb") as out:
            proc = subprocess.run(
                [sys.executable, str(script.relative_to(root))],
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT_S,
                check=False,
            )
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        code = f"timeout after {TIMEOUT_S:.0f} s"
    seconds = time.perf_counter() - started
    if code != 0:
        output = log_path.read_text(encoding="utf-8", errors="replace")
        tail = "\n".join(output.splitlines()[-40:])
        kept = folder.parent / f"{script.stem}.failed.log"
        shutil.copyfile(log_path, kept)
        shutil.rmtree(work, ignore_errors=True)
        raise LessonFailed(
            f"lesson {script.relative_to(root)} failed ({code}) while making the docs figures; "
            f"last lines of its output (all of it in {kept.relative_to(root)}):\n{tail}"
        )
    prefix = script.name[:3]  # "04_"
    strays = [p.name for p in work.glob("*.png") if not p.name.startswith(prefix)]
    if strays:
        shutil.rmtree(work, ignore_errors=True)
        raise LessonFailed(
            f"{script.relative_to(root)} saved {', '.join(strays)}: name a lesson's figures "
            f"{prefix}what.png so figures of different lessons cannot collide"
        )
    (work / STAMP).write_text(wanted + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    work.rename(folder)
    return Result(script, tuple(sorted(folder.glob("*.png"))), True, seconds)


def run_all(root: Path = ROOT, jobs: int | None = None) -> list[Result]:
    """Run (or reuse) every lesson. LSCE_DOCS_JOBS > 1 runs lessons in parallel, which is
    faster on a cold cache but skews any timings a lesson plots; the default is 1."""
    jobs = jobs or int(os.environ.get("LSCE_DOCS_JOBS", "1"))
    scripts = lesson_scripts(root)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda s: run_lesson(s, root), scripts))
    for result in results:
        how = f"ran in {result.seconds:.1f} s" if result.ran else "cached"
        log.info(f"figures: {result.script.name}: {len(result.figures)} PNG(s), {how}")
    return results


def main() -> None:
    """Inside mkdocs-gen-files: add every lesson's PNGs to the site under figures/."""
    import mkdocs_gen_files
    from mkdocs.exceptions import PluginError

    try:
        results = run_all()
    except LessonFailed as failure:
        raise PluginError(str(failure)) from None
    for result in results:
        for png in result.figures:
            with mkdocs_gen_files.open(f"figures/{png.name}", "wb") as out:
                out.write(png.read_bytes())


if __name__ == "<run_path>":  # how mkdocs-gen-files runs its scripts
    main()
elif __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run_all()
    except LessonFailed as failure:
        sys.exit(str(failure))

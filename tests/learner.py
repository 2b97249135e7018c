"""A simulated learner: a copy of the course to edit, function bodies to write, `lsce` to run.

The exercise-mechanism tests and the mistake catalogue both use these::

    course = copy_course(tmp_path, solutions=True)
    write_body(course / "lessons/exercises/ex01_softmax.py", "logsumexp", "    return x\n")
    done = lsce(course, "check", "1.1")
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from lsce_course import exercises as ex

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "lessons" / "solutions"


def copy_course(dest: Path, *, solutions: bool = False) -> Path:
    """Copy the lessons, the tests and pyproject.toml into ``dest``; with ``solutions``, the
    learner's files are the learner-level solutions instead of the stubs."""
    for name in ("lessons", "tests"):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", dest)
    if solutions:
        for path in SOLUTIONS.glob("ex*.py"):
            shutil.copy(path, dest / "lessons" / "exercises" / path.name)
    return dest


def write_body(path: Path, function: str, body: str) -> None:
    """Replace the body of ``function`` ('f' or 'Class.method'; the definition Python uses)
    with ``body``, keeping its signature and docstring. ``body`` may be indented anyhow."""
    source = path.read_text(encoding="utf-8")
    definition = ex.definitions(ast.parse(source), function)[-1]
    statements = definition.body
    docstring = isinstance(statements[0], ast.Expr) and isinstance(
        statements[0].value, ast.Constant
    )
    first = statements[1] if docstring and len(statements) > 1 else statements[0]
    start = first.lineno - 1
    if docstring and len(statements) == 1:
        start = statements[0].end_lineno or start
    lines = source.splitlines(keepends=True)
    # comments right above the first statement (the stub's math) stay where they are
    new = textwrap.indent(
        textwrap.dedent(body).strip("\n") + "\n", " " * first.col_offset
    )
    lines[start : definition.end_lineno] = [new]
    path.write_text("".join(lines), encoding="utf-8")


def lsce(
    course: Path, *args: str, timeout: float = 180, **env_vars: str
) -> subprocess.CompletedProcess:
    """Run the real ``lsce`` command in ``course``, with wide, unwrapped English output
    unless ``env_vars`` (extra environment variables) say otherwise (a Chinese locale on
    the test machine must not change what the tests read)."""
    env = dict(
        os.environ,
        LSCE_ROOT=str(course),
        COLUMNS="1000",
        PYTHONUNBUFFERED="1",
        LSCE_LANG="en",
    )
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-m", "lsce_course.cli", *args],
        cwd=course, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip

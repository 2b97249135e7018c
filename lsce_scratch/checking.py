"""Checking the learner's exercises, and checking the exercises themselves.

:func:`check` runs an exercise's tests against the learner's file in a pytest subprocess
and turns the outcomes into one of: not started, blocked (an earlier exercise it needs is
not started), failing (with the first useful assertion), passed. :func:`verify_course` is
the maintainers' two-way check: every manifest entry is complete, every stub is still
unsolved, and every exercise has tests.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lsce_scratch import exercises as ex

NOT_STARTED, BLOCKED, FAILING, PASSED, NO_TESTS = (
    "not started",
    "blocked",
    "failing",
    "passed",
    "no tests",
)
STATE_FILE = Path(".lsce") / "state.json"
_EXERCISE_ID = re.compile(r"Exercise (\d+\.\d+)")


@dataclass(frozen=True)
class Result:
    """What ``lsce check`` found for one exercise."""

    id: str
    status: str
    detail: str = ""  # the first failing test and its message, or what blocks it
    tested_file: str = ""


def run_tests(selected: list[ex.Exercise], root: Path, impl: str = "learner") -> list[dict]:
    """Run the tests of these exercises in a pytest subprocess; return one record per test."""
    files = sorted({e.tests for e in selected})
    markers = " or ".join(e.marker for e in selected)
    with tempfile.TemporaryDirectory() as folder:
        outcomes = Path(folder) / "outcomes.json"
        command = [
            sys.executable, "-m", "pytest", *files, "-m", markers, f"--impl={impl}",
            "-p", "lsce_scratch._pytest_outcomes", "-p", "no:cacheprovider", "-q",
            "--no-header", "-o", "addopts=--strict-markers",
        ]  # fmt: skip
        env = dict(os.environ, LSCE_ROOT=str(root), LSCE_OUTCOMES_FILE=str(outcomes))
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if not outcomes.exists():
            raise RuntimeError(f"pytest did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(outcomes.read_text(encoding="utf-8"))


def _result_for(exercise: ex.Exercise, records: list[dict], manifest: list[ex.Exercise]) -> Result:
    tested = f"lessons/exercises/{exercise.file}"
    mine = [r for r in records if exercise.marker in r["exercises"]]
    if not mine:
        return Result(exercise.id, NO_TESTS, f"no tests are marked {exercise.marker}", tested)
    failures = [r for r in mine if r["outcome"] != "passed" and r["outcome"] != "skipped"]
    if not failures:
        return Result(exercise.id, PASSED, f"{len(mine)} tests passed", tested)
    functions = {e.id: e.function for e in manifest}
    unfinished = [r for r in failures if r["exception"] == "NotImplementedError"]
    if len(unfinished) == len(failures):
        named = {m for r in unfinished for m in _EXERCISE_ID.findall(r["message"])}
        blockers = sorted(i for i in named if functions.get(i) != exercise.function)
        if blockers:
            return Result(
                exercise.id,
                BLOCKED,
                f"needs exercise {', '.join(blockers)} first (its function is not written yet)",
                tested,
            )
        return Result(exercise.id, NOT_STARTED, unfinished[0]["message"], tested)
    first = next((r for r in failures if r["exception"] == "AssertionError"), failures[0])
    name = first["nodeid"].split("::")[-1]
    kind = first["exception"] or "error"
    return Result(exercise.id, FAILING, f"{name}: {kind}: {first['message']}", tested)


def _fingerprint(exercise: ex.Exercise, root: Path) -> str:
    """A hash of everything the result depends on: the learner's files and the tests."""
    digest = hashlib.sha256()
    for path in sorted((root / ex.MANIFEST.parent).glob("*.py")) + [root / exercise.tests]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _load_state(root: Path) -> dict:
    path = root / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _save_state(root: Path, state: dict) -> None:
    path = root / STATE_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(state, indent=1), encoding="utf-8")


def check(
    selected: list[ex.Exercise], root: Path | None = None, use_cache: bool = False
) -> list[Result]:
    """Check these exercises against the learner's files (one pytest run for all of them).

    With ``use_cache``, an exercise whose files are unchanged since its last check keeps
    its remembered result. Every result is remembered in .lsce/state.json.
    """
    root = root or ex.find_root()
    manifest = ex.load_manifest(root)
    state = _load_state(root)
    results: dict[str, Result] = {}
    to_run = []
    for exercise in selected:
        remembered = state.get(exercise.id)
        fingerprint = _fingerprint(exercise, root)
        if use_cache and remembered and remembered["fingerprint"] == fingerprint:
            results[exercise.id] = Result(**remembered["result"])
        elif not ex.is_started(exercise, root):
            results[exercise.id] = Result(
                exercise.id,
                NOT_STARTED,
                "the stub is untouched",
                f"lessons/exercises/{exercise.file}",
            )
        else:
            to_run.append(exercise)
    if to_run:
        records = run_tests(to_run, root)
        for exercise in to_run:
            results[exercise.id] = _result_for(exercise, records, manifest)
    for exercise in selected:
        state[exercise.id] = {
            "fingerprint": _fingerprint(exercise, root),
            "result": asdict(results[exercise.id]),
        }
    _save_state(root, state)
    return [results[e.id] for e in selected]


def next_exercise(results: list[Result]) -> str | None:
    """The first exercise, in course order, that has not passed."""
    return next((r.id for r in results if r.status != PASSED), None)


def _stub_functions(path: Path) -> list[str]:
    """Names ('f' or 'Class.method') whose body is a lone raise NotImplementedError."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for member in members:
            if isinstance(member, ast.FunctionDef) and ex.is_stub_body(member):
                found.append(prefix + member.name)
    return found


def verify_manifest(root: Path | None = None) -> list[str]:
    """Problems with the manifest, the stubs and the docs (an empty list when all is well)."""
    root = root or ex.find_root()
    manifest = ex.load_manifest(root)
    problems: list[str] = []
    ids = [e.id for e in manifest]
    order = sorted(ids, key=lambda i: tuple(int(p) for p in i.split(".")))
    if ids != order:
        problems.append(f"manifest is not in course order: {ids}")
    if len(set(ids)) != len(ids):
        problems.append("manifest has duplicate ids")
    first_id_of: dict[tuple[str, str], str] = {}
    for e in manifest:
        first_id_of.setdefault((e.file, e.function), e.id)
        where = f"exercise {e.id}"
        if not re.fullmatch(r"\d+\.\d+", e.id) or int(e.id.split(".")[0]) != e.lesson:
            problems.append(f"{where}: id must be '<lesson>.<n>' with lesson {e.lesson}")
        stub = ex.learner_path(e, root)
        if not stub.is_file():
            problems.append(f"{where}: stub file {stub} is missing")
        elif e.function not in _stub_functions(stub):
            problems.append(f"{where}: {e.file} has no unsolved stub {e.function}")
        elif f"Exercise {first_id_of[(e.file, e.function)]} " not in stub.read_text(
            encoding="utf-8"
        ):
            problems.append(f"{where}: the stub's NotImplementedError must name its exercise id")
        try:
            module, _, name = e.reference.partition(":")
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            problems.append(f"{where}: reference {e.reference} cannot be imported ({error})")
        if not (root / e.tests).is_file():
            problems.append(f"{where}: tests file {e.tests} is missing")
        if len([h for h in e.hints if h.strip()]) < 2:
            problems.append(f"{where}: needs at least two hints")
        for needed in e.requires:
            if needed not in ids[: ids.index(e.id)]:
                problems.append(f"{where}: requires {needed}, which is not an earlier exercise")
        pages = list((root / "docs" / "lessons").glob(f"{e.lesson:02d}-*.md"))
        marker = f"<!-- lsce:exercises {e.lesson} -->"
        if not any(marker in page.read_text(encoding="utf-8") for page in pages):
            problems.append(
                f"{where}: no docs page docs/lessons/{e.lesson:02d}-*.md shows {marker}"
            )
    listed = {(e.file, e.function) for e in manifest}
    for stub in sorted((root / ex.MANIFEST.parent).glob("ex*.py")):
        for function in _stub_functions(stub):
            if (stub.name, function) not in listed:
                problems.append(f"{stub.name}: stub {function} is not in the manifest")
    return problems


def verify_stubs_unsolved(root: Path | None = None) -> list[str]:
    """Run every exercise's tests on the untouched stubs: each must have tests, all failing
    with NotImplementedError. Returns the problems (an empty list when all is well)."""
    root = root or ex.find_root()
    manifest = ex.load_manifest(root)
    records = run_tests(manifest, root, impl="learner")
    problems = []
    for e in manifest:
        mine = [r for r in records if e.marker in r["exercises"]]
        if not mine:
            problems.append(f"exercise {e.id}: no tests collected (marker {e.marker})")
        for record in mine:
            if record["outcome"] == "passed":
                problems.append(f"exercise {e.id}: {record['nodeid']} passes on the untouched stub")
            elif record["exception"] != "NotImplementedError":
                problems.append(
                    f"exercise {e.id}: {record['nodeid']} fails with {record['exception']}, "
                    f"not NotImplementedError: {record['message'][:200]}"
                )
    return problems

"""Checking the learner's exercises, and checking the exercises themselves.

:func:`check` runs an exercise's tests against the learner's file in a pytest subprocess,
with a time limit per test, and turns the outcomes into one status: not started, blocked
(an earlier exercise it needs is not written yet), error (the file cannot be used, or the
code raised), timed out, failing (every failing test with its reason, the most telling
first) or passed. :func:`verify_course` is the maintainers' two-way check: every manifest
entry is complete, every stub is still unsolved, and every exercise has tests.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsce_course import course, messages
from lsce_course import exercises as ex

NOT_STARTED, BLOCKED, ERROR, TIMED_OUT, FAILING, PASSED, NO_TESTS = (
    "not started",
    "blocked",
    "error",
    "timed out",
    "failing",
    "passed",
    "no tests",
)
STATE_FILE = Path(".lsce") / "state.json"
STATE_VERSION = (
    "3"  # part of every fingerprint: a new result format forgets old results
)
# seconds one test may run before the check stops it ($LSCE_TIMEOUT or --timeout)
DEFAULT_TIMEOUT = 30.0
# seconds pytest may take to start and collect, before the first test runs
STARTUP_LIMIT = 120.0
_EXERCISE_ID = re.compile(r"Exercise (\d+\.\d+)")
# the most telling failures first: the file itself, a hang, a crash in the learner's code,
# an assertion that checked its cause, then a plain mismatch
_RANK = {"file": 0, "timeout": 1, "crash": 2, "diagnosis": 3, "mismatch": 4, "stub": 5}


def default_timeout() -> float:
    """$LSCE_TIMEOUT if it is set, else DEFAULT_TIMEOUT."""
    return float(os.environ.get("LSCE_TIMEOUT") or DEFAULT_TIMEOUT)


@dataclass(frozen=True)
class Failure:
    """One failing test, as the learner reads it."""

    test: str  # the test's readable name
    kind: str  # a key of _RANK
    reason: str  # one line: what went wrong
    detail: str = ""  # the rest: expected vs got, then the input
    where: str = ""  # the learner's line that raised: "<file>, line 17: return x[5]"
    # the fields above that are a message of lsce_course.messages: field → [id, values]
    i18n: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What ``lsce check`` found for one exercise."""

    id: str
    status: str
    summary: str = ""  # one line: "2 of 3 tests fail", "5 tests pass", what blocks it
    failures: tuple[Failure, ...] = ()
    note: str = ""  # said with any status, e.g. that the function is defined twice
    output: str = ""  # what the learner's code printed during the tests
    # the fields above that are a message of lsce_course.messages: field → [id, values]
    i18n: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        failures = tuple(Failure(**f) for f in data.get("failures", ()))
        return cls(**{**data, "failures": failures})


@dataclass
class TestRun:
    """The records of one pytest run, and the test that was stopped, if one was."""

    records: list[dict] = field(default_factory=list)  # one per finished test
    collected: list[dict] = field(
        default_factory=list
    )  # every test, with its exercises
    hung: dict | None = None  # the start event of the test that ran out of time
    died: dict | None = None  # the start event of the test during which pytest ended
    cancelled: bool = False


def _said(field_name: str, message_id: str, /, **values: object) -> dict:
    """The keyword arguments that give a Result's or a Failure's field ``field_name`` the
    English text of a message, and remember the message for :func:`text` in another language."""
    return {
        field_name: messages.message(message_id, "en", **values),
        "i18n": {field_name: [message_id, values]},
    }


def text(said: Result | Failure, name: str, lang: str = messages.DEFAULT) -> str:
    """Field ``name`` of a result or a failure in ``lang``: its message where it is one,
    else the text as it is (a test's own assertion, a learner's error, in English)."""
    key = said.i18n.get(name)
    if key is None or lang == "en":
        return getattr(said, name)
    message_id, values = key
    return messages.message(message_id, lang, **values)


def _stop(child: subprocess.Popen) -> None:
    """Kill pytest and anything the learner's code started."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines appended to ``path`` after ``offset``, and the new offset."""
    if not path.exists():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    events = [
        json.loads(line) for line in complete.decode("utf-8").splitlines() if line
    ]
    return events, offset + len(complete)


def run_tests(
    selected: list[ex.Exercise],
    root: Path,
    impl: str = "learner",
    timeout: float | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> TestRun:
    """Run the tests of these exercises in a pytest subprocess.

    A test that runs longer than ``timeout`` seconds is stopped (with everything it
    started) and named in ``hung``; ``cancelled()`` is asked a few times a second and
    stops the run when it says True (``lsce watch`` on a new save).
    """
    timeout = default_timeout() if timeout is None else timeout
    files = sorted({e.tests for e in selected})
    markers = " or ".join(e.marker for e in selected)
    run = TestRun()
    with tempfile.TemporaryDirectory() as folder:
        events_file, log_file = (
            Path(folder) / "events.jsonl",
            Path(folder) / "pytest.log",
        )
        command = [
            sys.executable, "-m", "pytest", *files, "-m", markers, f"--impl={impl}",
            "-p", "lsce_course.pytest_plugin", "-p", "no:cacheprovider", "-p", "no:timeout",
            "--assert=plain", "-q", "--no-header", "-o", "addopts=--strict-markers",
        ]  # fmt: skip
        env = dict(
            os.environ,
            LSCE_ROOT=str(root),
            LSCE_OUTCOMES_FILE=str(events_file),
            LSCE_EXERCISES_DIR=str(ex.exercises_dir(root)),
        )
        with log_file.open("w") as log:
            child = subprocess.Popen(
                command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        offset, since, running = 0, time.monotonic(), None
        try:
            while True:
                finished = child.poll() is not None
                events, offset = _read_events(events_file, offset)
                for event in events:
                    if "collected" in event:
                        run.collected = event["collected"]
                    elif "start" in event:
                        running, since = event, time.monotonic()
                    else:
                        run.records.append(event)
                        running, since = None, time.monotonic()
                if finished:
                    run.died = running
                    break
                limit = timeout if running else STARTUP_LIMIT
                if time.monotonic() - since > limit:
                    if running is None:
                        raise RuntimeError(f"pytest stopped responding for {limit:g} s")
                    run.hung = running
                    break
                if cancelled is not None and cancelled():
                    run.cancelled = True
                    break
                time.sleep(0.05)
        finally:
            _stop(child)
        if not run.collected and not run.cancelled:
            tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"pytest did not run the tests:\n{tail}")
    return run


def _failure(record: dict, exercise: ex.Exercise) -> Failure:
    """One failing test's record as the learner reads it: the reason first."""
    message = record["message"].strip()
    first, _, rest = message.partition("\n")
    kind, where = record["kind"] or "crash", record["where"] or ""
    if kind == "crash":
        name = exercise.function.split(".")[-1]
        raised = f"{record['exception']}: {first}" if first else record["exception"]
        if where:
            said = _said("reason", "reason.raised", name=name, raised=raised)
            return Failure(record["name"], kind, detail=rest, where=where, **said)
        said = _said("reason", "reason.raised_in_test", raised=raised, name=name)
        return Failure(record["name"], "mismatch", detail=rest, where=where, **said)
    if kind == "mismatch" and not first:
        exception = record["exception"] or "AssertionError"
        said = _said("reason", "reason.no_message", exception=exception)
        return Failure(record["name"], kind, detail=rest, where=where, **said)
    return Failure(record["name"], kind, first, rest, where)


def _timed_out(exercise: ex.Exercise, hung: dict, timeout: float) -> Result:
    name = exercise.function.split(".")[-1]
    seconds = f"{timeout:g}"
    stopped = Failure(
        hung["name"], "timeout", **_said("reason", "reason.timed_out", seconds=seconds)
    )
    return Result(
        exercise.id,
        TIMED_OUT,
        failures=(stopped,),
        **_said("summary", "summary.timed_out", name=name, seconds=seconds),
    )


def _process_ended(exercise: ex.Exercise, died: dict) -> Result:
    ending = Failure(died["name"], "crash", **_said("reason", "reason.process_ended"))
    return Result(
        exercise.id,
        ERROR,
        failures=(ending,),
        **_said("summary", "summary.process_ended"),
    )


def _result_for(
    exercise: ex.Exercise,
    records: list[dict],
    manifest: list[ex.Exercise],
    note: str = "",
) -> Result:
    """One exercise's status from its tests' records."""
    mine = [r for r in records if exercise.marker in r["exercises"]]
    output = "".join(r.get("output", "") for r in mine)
    if not mine:
        return Result(
            exercise.id,
            NO_TESTS,
            **_said("summary", "summary.no_tests", marker=exercise.marker),
        )
    failed = [r for r in mine if r["outcome"] == "failed"]
    if not failed:
        said = _said("summary", "summary.tests_pass", count=len(mine))
        return Result(exercise.id, PASSED, note=note, output=output, **said)
    files = [r for r in failed if r["kind"] == "file"]
    if files:
        problem = Failure(files[0]["name"], "file", files[0]["message"])
        said = _said("summary", "summary.file_unusable")
        return Result(
            exercise.id, ERROR, failures=(problem,), note=note, output=output, **said
        )
    if all(r["kind"] == "stub" for r in failed):
        functions = {e.id: e.function for e in manifest}
        named = {m for r in failed for m in _EXERCISE_ID.findall(r["message"])}
        blockers = sorted(i for i in named if functions.get(i) != exercise.function)
        if blockers:
            said = _said("summary", "summary.blocked", ids=", ".join(blockers))
            return Result(exercise.id, BLOCKED, note=note, output=output, **said)
        summary = failed[0]["message"] or "your code raised NotImplementedError"
        return Result(exercise.id, NOT_STARTED, summary, (), note, output)
    failures = sorted(
        (_failure(r, exercise) for r in failed), key=lambda f: _RANK[f.kind]
    )
    status = ERROR if failures[0].kind == "crash" else FAILING
    fail = "summary.test_fails" if len(mine) == 1 else "summary.tests_fail"
    said = _said("summary", fail, failed=len(failed), total=len(mine))
    return Result(
        exercise.id, status, failures=tuple(failures), note=note, output=output, **said
    )


def dependencies(
    exercise: ex.Exercise, root: Path, manifest: list[ex.Exercise]
) -> list[Path]:
    """The files an exercise's result depends on: its own file, the files of the exercises
    it requires and of the exercise files they import (transitively), and its tests."""
    by_id = {e.id: e for e in manifest}
    folder = ex.exercises_dir(root)
    learner: set[Path] = set()
    pending = [folder / exercise.file]
    pending += [folder / by_id[i].file for i in exercise.requires if i in by_id]
    while pending:
        path = pending.pop()
        if path not in learner and path.is_file():
            learner.add(path)
            pending += ex.imported_siblings(path)
    # its tests: the test file and every helper module beside it or above it (conftest, ...)
    test_file = root / exercise.tests
    helpers = [
        path
        for folder in (test_file.parent, root / "tests")
        for path in sorted(folder.glob("*.py"))
        if not path.name.startswith("test_")
    ]
    return sorted(learner) + [test_file] + helpers


def _fingerprint(exercise: ex.Exercise, root: Path, manifest: list[ex.Exercise]) -> str:
    digest = hashlib.sha256(STATE_VERSION.encode())
    for path in dependencies(exercise, root, manifest):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _load_state(root: Path) -> dict:
    path = root / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no state yet, or a file cut short: results are simply checked again


def _save_state(root: Path, state: dict) -> None:
    path = root / STATE_FILE
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(state, indent=1), encoding="utf-8")
    partial.replace(path)  # atomic: a check and a watch never leave half a file


def _remembered(state: dict, exercise: ex.Exercise, fingerprint: str) -> Result | None:
    entry = state.get(exercise.id)
    if not entry or entry.get("fingerprint") != fingerprint:
        return None
    try:
        return Result.from_json(entry["result"])
    except (KeyError, TypeError):
        return None


def _before_running(exercise: ex.Exercise, root: Path) -> Result | ex.Definition:
    """Read the learner's file without running it: an ERROR or NOT_STARTED result, or the
    definition to test."""
    try:
        definition = ex.read_definition(exercise, root)
    except ex.LearnerFileError as error:
        problem = Failure(
            kind="file", reason=str(error), **_said("test", "test.reading_file")
        )
        return Result(
            exercise.id,
            ERROR,
            failures=(problem,),
            **_said("summary", "summary.file_unusable"),
        )
    if not definition.started:
        said = _said("summary", "summary.stub_untouched")
        return Result(exercise.id, NOT_STARTED, note=definition.note, **said)
    return definition


def check(
    selected: list[ex.Exercise],
    root: Path | None = None,
    use_cache: bool = False,
    timeout: float | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[Result] | None:
    """Check these exercises against the learner's files (one pytest run for all of them).

    With ``use_cache``, an exercise whose files (:func:`dependencies`) are unchanged since
    its last check keeps its remembered result. Every result is remembered in
    .lsce/state.json. Returns None when ``cancelled()`` stopped the run.
    """
    root = root or ex.find_root()
    timeout = default_timeout() if timeout is None else timeout
    manifest = ex.load_manifest(root)
    state = _load_state(root)
    fingerprints = {e.id: _fingerprint(e, root, manifest) for e in selected}
    results: dict[str, Result] = {}
    notes: dict[str, str] = {}
    for exercise in selected:
        remembered = (
            _remembered(state, exercise, fingerprints[exercise.id])
            if use_cache
            else None
        )
        found = remembered or _before_running(exercise, root)
        if isinstance(found, Result):
            results[exercise.id] = found
        else:
            notes[exercise.id] = found.note
    to_run = [e for e in selected if e.id not in results]
    while to_run:
        run = run_tests(to_run, root, timeout=timeout, cancelled=cancelled)
        if run.cancelled:
            return None
        done = {r["nodeid"] for r in run.records}
        for exercise in to_run:
            tests = [
                t["nodeid"] for t in run.collected if exercise.marker in t["exercises"]
            ]
            if run.hung and exercise.marker in run.hung["exercises"]:
                results[exercise.id] = _timed_out(exercise, run.hung, timeout)
            elif run.died and exercise.marker in run.died["exercises"]:
                results[exercise.id] = _process_ended(exercise, run.died)
            elif all(t in done for t in tests):
                results[exercise.id] = _result_for(
                    exercise, run.records, manifest, notes[exercise.id]
                )
        # a stopped test leaves the exercises after it unchecked: run those again
        unchecked = [e for e in to_run if e.id not in results]
        if len(unchecked) == len(to_run):
            raise RuntimeError(
                f"pytest ended without running every test of {markers_of(to_run)}"
            )
        to_run = unchecked
    for exercise in selected:
        state[exercise.id] = {
            "fingerprint": fingerprints[exercise.id],
            "result": asdict(results[exercise.id]),
        }
    _save_state(root, state)
    return [results[e.id] for e in selected]


def markers_of(selected: list[ex.Exercise]) -> str:
    return ", ".join(e.marker for e in selected)


def next_exercise(results: list[Result], after: str | None = None) -> str | None:
    """The first exercise, in course order (after ``after``, if given), that has not passed."""
    ids = [r.id for r in results]
    start = ids.index(after) + 1 if after in ids else 0
    return next((r.id for r in results[start:] if r.status != PASSED), None)


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
    pages = {
        lesson.number: root / "docs" / lesson.page
        for lesson in course.load_lessons(root)
    }
    for e in manifest:
        first_id_of.setdefault((e.file, e.function), e.id)
        where = f"exercise {e.id}"
        if not re.fullmatch(r"\d+\.\d+", e.id) or int(e.id.split(".")[0]) != e.lesson:
            problems.append(
                f"{where}: id must be '<lesson>.<n>' with lesson {e.lesson}"
            )
        stub = ex.learner_path(e, root)
        if not stub.is_file():
            problems.append(f"{where}: stub file {stub} is missing")
        elif e.function not in _stub_functions(stub):
            problems.append(f"{where}: {e.file} has no unsolved stub {e.function}")
        elif f"Exercise {first_id_of[(e.file, e.function)]} " not in stub.read_text(
            encoding="utf-8"
        ):
            problems.append(
                f"{where}: the stub's NotImplementedError must name its exercise id"
            )
        try:
            module, _, name = e.reference.partition(":")
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            problems.append(
                f"{where}: reference {e.reference} cannot be imported ({error})"
            )
        if not (root / e.tests).is_file():
            problems.append(f"{where}: tests file {e.tests} is missing")
        if len([h for h in e.hints if h.strip()]) < 2:
            problems.append(f"{where}: needs at least two hints")
        for needed in e.requires:
            if needed not in ids[: ids.index(e.id)]:
                problems.append(
                    f"{where}: requires {needed}, which is not an earlier exercise"
                )
        page = pages.get(e.lesson)
        marker = f"<!-- lsce:exercise {e.id} -->"
        if page is None or marker not in page.read_text(encoding="utf-8"):
            problems.append(f"{where}: its lesson's page does not show {marker}")
        if not e.library_note.strip():
            problems.append(
                f"{where}: needs a library_note (what the library's version adds)"
            )
        problems += _chinese_problems(e, where)
        solution = root / "lessons" / "solutions" / e.file
        solved = solution.is_file() and ex.definitions(
            ast.parse(solution.read_text(encoding="utf-8")), e.function
        )
        if not solved:
            problems.append(
                f"{where}: lessons/solutions/{e.file} must define {e.function}"
            )
    listed = {(e.file, e.function) for e in manifest}
    for stub in sorted((root / ex.MANIFEST.parent).glob("ex*.py")):
        for function in _stub_functions(stub):
            if (stub.name, function) not in listed:
                problems.append(f"{stub.name}: stub {function} is not in the manifest")
    return problems


def _chinese_problems(e: ex.Exercise, where: str) -> list[str]:
    """What the Chinese edition of a manifest entry lacks: its title, its library note, or
    hint levels (hints_zh needs at least as many as hints)."""
    problems = []
    if not e.title_zh.strip() or "\n" in e.title_zh:
        problems.append(f"{where}: needs a title_zh (the title in Chinese, one line)")
    levels = len([h for h in e.hints_zh if h.strip()])
    if levels < len(e.hints):
        problems.append(
            f"{where}: hints_zh has {levels} level(s), fewer than the {len(e.hints)} of hints"
        )
    if not e.library_note_zh.strip():
        problems.append(
            f"{where}: needs a library_note_zh (the library_note in Chinese)"
        )
    return problems


def verify_stubs_unsolved(root: Path | None = None) -> list[str]:
    """Run every exercise's tests on the untouched stubs: each must have tests, all failing
    with NotImplementedError. Returns the problems (an empty list when all is well)."""
    root = root or ex.find_root()
    manifest = ex.load_manifest(root)
    records = run_tests(manifest, root, impl="learner").records
    problems = []
    for e in manifest:
        mine = [r for r in records if e.marker in r["exercises"]]
        if not mine:
            problems.append(f"exercise {e.id}: no tests collected (marker {e.marker})")
        for record in mine:
            if record["outcome"] == "passed":
                problems.append(
                    f"exercise {e.id}: {record['nodeid']} passes on the untouched stub"
                )
            elif record["exception"] != "NotImplementedError":
                problems.append(
                    f"exercise {e.id}: {record['nodeid']} fails with {record['exception']}, "
                    f"not NotImplementedError: {record['message'][:200]}"
                )
    return problems

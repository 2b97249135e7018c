"""A pytest plugin that streams each test's outcome to a JSON-lines file, for ``lsce check``.

Loaded with ``-p lsce_course.pytest_plugin``. It appends to $LSCE_OUTCOMES_FILE one line
when collection ends (the tests of each exercise), one when a test starts and one record
when it ends, flushed at once, so
the parent process always knows which test is running and can stop one that never returns.

A record holds the test's exercise markers, its outcome, what it printed and, for a
failure, the exception's type and message, the kind of failure, and the line of the
learner's file (in $LSCE_EXERCISES_DIR) where the exception was raised, if it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path

import pytest

from lsce_course import exercises

OUTPUT_LIMIT = 4000  # characters of printed output kept per test


def _write(entry: dict) -> None:
    path = os.environ.get("LSCE_OUTCOMES_FILE")
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


def readable_name(nodeid: str) -> str:
    """``tests/x.py::test_rel_error_floors_the_denominator[h=0.001]`` → ``rel error floors
    the denominator [h=0.001]``."""
    name = nodeid.split("::")[-1]
    base, bracket, params = name.partition("[")
    return base.removeprefix("test_").replace("_", " ") + (
        f" [{params}" if bracket else ""
    )


def failure_kind(error: BaseException) -> str:
    """'file' (the learner's file cannot be used), 'stub' (NotImplementedError), 'diagnosis'
    (an assertion that checked its cause), 'mismatch' (any other assertion) or 'crash'."""
    names = [cls.__name__ for cls in type(error).__mro__]
    if "LearnerFileError" in names:
        return "file"
    if isinstance(error, NotImplementedError):
        return "stub"
    if "Diagnosis" in names:
        return "diagnosis"
    if isinstance(error, AssertionError):
        return "mismatch"
    return "crash"


def _learner_line(error: BaseException) -> str | None:
    """Where in the learner's folder the exception was raised: "file, line N: code"."""
    folder = os.environ.get("LSCE_EXERCISES_DIR")
    frame = exercises.learner_frame(error, Path(folder)) if folder else None
    if frame is None:
        return None
    shown, line, code = frame
    return f"{shown}, line {line}" + (f": {code}" if code else "")


def _markers(item: pytest.Item) -> list[str]:
    return [m.name for m in item.iter_markers() if m.name.startswith("ex")]


def pytest_collection_finish(session: pytest.Session) -> None:
    _write(
        {
            "collected": [
                {"nodeid": i.nodeid, "exercises": _markers(i)} for i in session.items
            ]
        }
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # before the fixtures: loading the learner's file is part of the test's time
    _write(
        {
            "start": item.nodeid,
            "name": readable_name(item.nodeid),
            "exercises": _markers(item),
        }
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    outcome = yield
    report = outcome.get_result()
    # the call phase decides; a setup error (the learner's file not loading) counts too
    if report.when == "call" or (report.when == "setup" and not report.passed):
        record = {
            "nodeid": item.nodeid,
            "name": readable_name(item.nodeid),
            "exercises": _markers(item),
            "outcome": report.outcome,
            "exception": None,
            "kind": None,
            "message": "",
            "where": None,
            "output": (report.capstdout + report.capstderr)[-OUTPUT_LIMIT:],
        }
        if call.excinfo is not None and report.failed:
            record["exception"] = call.excinfo.type.__name__
            record["kind"] = failure_kind(call.excinfo.value)
            record["message"] = str(call.excinfo.value)[:3000]
            record["where"] = _learner_line(call.excinfo.value)
        _write(record)

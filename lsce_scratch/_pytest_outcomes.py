"""A pytest plugin that writes each test's outcome to JSON, for ``lsce check``.

Loaded with ``-p lsce_scratch._pytest_outcomes``; writes to the file named by
$LSCE_OUTCOMES_FILE: one record per test with its exercise markers, its outcome and, for
a failure, the exception's type and message (expected vs got, and the input, when the
test's assertion says so).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path

import pytest

_records: list[dict] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    outcome = yield
    report = outcome.get_result()
    # the call phase decides; a setup error (a missing fixture, say) counts as a failure too
    if report.when == "call" or (report.when == "setup" and not report.passed):
        record = {
            "nodeid": item.nodeid,
            "exercises": [m.name for m in item.iter_markers() if m.name.startswith("ex")],
            "outcome": report.outcome,
            "exception": None,
            "message": "",
        }
        if call.excinfo is not None and report.failed:
            record["exception"] = call.excinfo.type.__name__
            record["message"] = str(call.excinfo.value)[:3000]
        _records.append(record)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("LSCE_OUTCOMES_FILE")
    if path:
        Path(path).write_text(json.dumps(_records, indent=1), encoding="utf-8")

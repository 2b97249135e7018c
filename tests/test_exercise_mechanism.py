"""The exercise mechanism, both ways: the course is consistent, and `lsce` treats a learner right.

The maintainers' half (rustlings' `dev check`): every manifest entry is complete, every
stub is still unsolved and fails its tests with NotImplementedError, every exercise has
tests and a docs box. The learner's half: in a copy of the course, a simulated learner
fills in stubs and `lsce check` reports passed, failing (with expected vs got) and not
started.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsce_scratch import checking
from lsce_scratch import exercises as ex

ROOT = Path(__file__).resolve().parents[1]

CORRECT_LOGSUMEXP = """\
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)), axis=axis)
"""
CROSS_ENTROPY_FORWARD = """\
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -logp[np.arange(len(target)), target].mean()
    return loss, {"p": np.exp(logp), "target": target}
"""
# the gradient off by a factor of two: a plausible slip
WRONG_CROSS_ENTROPY_BACKWARD = """\
    grad = cache["p"].copy()
    grad[np.arange(len(grad)), cache["target"]] -= 1
    return 2 * dloss * grad / len(grad)
"""


def _fill(path: Path, exercise_id: str, body: str) -> None:
    """Replace the stub's `raise NotImplementedError("Exercise <id> ...")` with ``body``."""
    source = path.read_text(encoding="utf-8")
    pattern = re.compile(
        r"    raise NotImplementedError\(\s*\"Exercise "
        + re.escape(exercise_id)
        + r" .*?\"\s*\)\n",
        re.S,
    )
    assert pattern.search(source), f"no stub for {exercise_id} in {path}"
    path.write_text(pattern.sub(lambda _: body, source, count=1), encoding="utf-8")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A copy of the course's lessons and tests, for a simulated learner to edit."""
    for name in ("lessons", "tests"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def _lsce(course: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, LSCE_ROOT=str(course), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "lsce_scratch.cli", *args],
        cwd=course, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_manifest_stubs_and_docs_are_consistent():
    assert checking.verify_manifest(ROOT) == []


@pytest.mark.slow
def test_every_exercise_has_tests_and_every_stub_is_unsolved():
    assert checking.verify_stubs_unsolved(ROOT) == []


def test_a_stub_raises_not_implemented_error_naming_its_exercise():
    for exercise in ex.load_manifest(ROOT):
        source = ex.learner_path(exercise, ROOT).read_text(encoding="utf-8")
        assert "NotImplementedError(" in source
        assert not ex.is_started(exercise, ROOT), f"{exercise.id} is already solved in its stub"
    logsumexp = ex.learner_object(ex.get_exercise("1.1", ROOT), ROOT)
    with pytest.raises(NotImplementedError, match=r"Exercise 1\.1 .*lsce hint 1\.1"):
        logsumexp([1.0, 2.0])


@pytest.mark.slow
def test_simulated_learner_sees_passed_failing_and_not_started(course: Path):
    stubs = course / "lessons" / "exercises"
    _fill(stubs / "ex01_softmax.py", "1.1", CORRECT_LOGSUMEXP)
    _fill(stubs / "ex03_cross_entropy.py", "3.1", CROSS_ENTROPY_FORWARD)
    _fill(stubs / "ex03_cross_entropy.py", "3.2", WRONG_CROSS_ENTROPY_BACKWARD)

    passed = _lsce(course, "check", "1.1")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASSED" in passed.stdout and "ex01_softmax.py" in passed.stdout

    failing = _lsce(course, "check", "3.2")
    assert failing.returncode == 1
    assert "FAILING" in failing.stdout
    # expected vs got, and the input that broke it
    assert "ACTUAL" in failing.stdout and "DESIRED" in failing.stdout
    assert "logits=" in failing.stdout

    untouched = _lsce(course, "check", "2.1")
    assert untouched.returncode == 1 and "NOT STARTED" in untouched.stdout

    listing = _lsce(course, "list")
    assert listing.returncode == 0
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if "│" in line}
    assert "passed" in rows["1.1"] and "failing" in rows["3.2"] and "not started" in rows["2.1"]

    progress = _lsce(course, "progress")
    assert "2/" in progress.stdout and "Next: exercise 1.2" in progress.stdout
    assert (course / ".lsce" / "state.json").is_file()


@pytest.mark.slow
def test_a_function_needing_an_unstarted_exercise_is_blocked(course: Path):
    _fill(course / "lessons" / "exercises" / "ex03_cross_entropy.py", "3.2", "    return cache\n")
    blocked = _lsce(course, "check", "3.2")
    assert blocked.returncode == 1
    assert "BLOCKED" in blocked.stdout and "needs exercise 3.1 first" in blocked.stdout


@pytest.mark.slow
def test_watch_rechecks_on_save_and_moves_on(course: Path):
    env = dict(os.environ, LSCE_ROOT=str(course), COLUMNS="200", PYTHONUNBUFFERED="1")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lsce_scratch.cli", "watch", "--poll"],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = ""
        deadline = time.monotonic() + 60
        saved = False
        while time.monotonic() < deadline and "Next: exercise 1.2" not in output:
            line = watcher.stdout.readline()  # type: ignore[union-attr]
            output += line
            if "NOT STARTED" in line and not saved:
                _fill(
                    course / "lessons" / "exercises" / "ex01_softmax.py", "1.1", CORRECT_LOGSUMEXP
                )
                saved = True
        assert "PASSED" in output and "Next: exercise 1.2" in output, output
    finally:
        watcher.kill()
        watcher.wait()


def test_hint_levels_and_unknown_ids(course: Path):
    first = _lsce(course, "hint", "4.1")
    assert first.returncode == 0 and "hint 1/" in first.stdout and "--level 2" in first.stdout
    manifest_hint = ex.get_exercise("4.1", ROOT).hints[1][:40]
    assert manifest_hint in " ".join(_lsce(course, "hint", "4.1", "--level", "2").stdout.split())
    assert _lsce(course, "hint", "4.1", "--level", "99").returncode == 2
    unknown = _lsce(course, "check", "9.9")
    assert unknown.returncode == 2 and "no exercise '9.9'" in unknown.stdout


def _record(marker: str, outcome: str, exception: str | None = None, message: str = "") -> dict:
    return {
        "nodeid": f"tests/x.py::test_{outcome}",
        "exercises": [marker],
        "outcome": outcome,
        "exception": exception,
        "message": message,
    }


def test_outcomes_become_the_four_statuses():
    manifest = ex.load_manifest(ROOT)
    backward = ex.get_exercise("3.2", ROOT)

    def status(*records: dict) -> str:
        return checking._result_for(backward, list(records), manifest).status

    assert status(_record("ex3_2", "passed"), _record("ex3_2", "passed")) == checking.PASSED
    assert status(_record("ex3_2", "failed", "AssertionError", "x")) == checking.FAILING
    own = "Exercise 3.2 (cross_entropy_backward): run `lsce hint 3.2`"
    assert status(_record("ex3_2", "failed", "NotImplementedError", own)) == checking.NOT_STARTED
    other = "Exercise 3.1 (cross_entropy_forward): run `lsce hint 3.1`"
    assert status(_record("ex3_2", "failed", "NotImplementedError", other)) == checking.BLOCKED
    assert status(_record("ex9_9", "passed")) == checking.NO_TESTS

"""The exercise mechanism: the course is consistent, and `lsce` treats a learner right.

The maintainers' half (rustlings' `dev check`): every manifest entry is complete, every
stub is still unsolved and fails its tests with NotImplementedError, every exercise has
tests and a docs box. The learner's half: in a copy of the course, a simulated learner
writes functions, breaks them in the ordinary ways (a syntax error, an endless loop, a
renamed or doubled function, a failing import, Ctrl-C) and `lsce` answers each with one
clear message, never a hang or a traceback of ours. The third half, every catalogued
mistake with its diagnosis, is test_mistake_catalogue.py.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsce_course import checking
from lsce_course import exercises as ex
from tests.learner import ROOT, copy_course, lsce, write_body
from tests.test_mistake_catalogue import load_catalogue

CORRECT_LOGSUMEXP = """
m = np.max(x, axis=axis, keepdims=True)
m = np.where(np.isfinite(m), m, 0.0)
return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)), axis=axis)
"""
CROSS_ENTROPY_FORWARD = """
shifted = logits - logits.max(axis=-1, keepdims=True)
logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
loss = -logp[np.arange(len(target)), target].mean()
return loss, {"p": np.exp(logp), "target": target}
"""
# the gradient off by a factor of two: a plausible slip
WRONG_CROSS_ENTROPY_BACKWARD = """
grad = cache["p"].copy()
grad[np.arange(len(grad)), cache["target"]] -= 1
return 2 * dloss * grad / len(grad)
"""
ENDLESS = """
while True:
    pass
"""
# a short limit, so an endless loop costs seconds; the real tests take well under a second
TIMEOUT = "8"


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read lsce's English output: no Chinese locale or $LSCE_LANG of whoever
    runs them may switch it (test_messages.py tests the Chinese)."""
    monkeypatch.setenv("LSCE_LANG", "en")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A copy of the course's lessons and tests, for a simulated learner to edit."""
    return copy_course(tmp_path)


def _file(course: Path, name: str) -> Path:
    return course / "lessons" / "exercises" / name


def _rows(listing: str) -> dict[str, str]:
    """``lsce list``'s table rows by exercise id."""
    return {
        line.split("│")[1].strip(): line for line in listing.splitlines() if "│" in line
    }


def _no_internal_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_manifest_stubs_and_docs_are_consistent():
    assert checking.verify_manifest(ROOT) == []


@pytest.mark.slow
def test_every_exercise_has_tests_and_every_stub_is_unsolved():
    assert checking.verify_stubs_unsolved(ROOT) == []


def test_a_stub_raises_not_implemented_error_naming_its_exercise():
    for exercise in ex.load_manifest(ROOT):
        source = ex.learner_path(exercise, ROOT).read_text(encoding="utf-8")
        assert "NotImplementedError(" in source
        assert not ex.is_started(exercise, ROOT), (
            f"{exercise.id} is already solved in its stub"
        )
    logsumexp = ex.learner_object(ex.get_exercise("1.1", ROOT), ROOT)
    with pytest.raises(NotImplementedError, match=r"Exercise 1\.1 .*lsce hint 1\.1"):
        logsumexp([1.0, 2.0])


def test_every_assert_in_the_exercise_tests_has_a_message():
    # lsce check runs them with --assert=plain: a bare assert would say nothing at all
    bare = []
    for path in sorted((ROOT / "tests" / "exercises").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assert) and node.msg is None:
                bare.append(f"{path.name}:{node.lineno}")
    assert not bare, f"asserts without a message: {bare}"


# ---------------------------------------------------------------------------------------------
# reading the learner's file without running it


def test_a_syntax_error_names_the_file_the_line_and_the_caret(course: Path):
    path = _file(course, "ex01_softmax.py")
    write_body(path, "logsumexp", "m = np.max(x, axis=axis\nreturn m\n")
    with pytest.raises(ex.LearnerFileError) as raised:
        ex.read_definition(ex.get_exercise("1.1", course), course)
    message = str(raised.value)
    assert (
        "lessons/exercises/ex01_softmax.py, line" in message
        and "SyntaxError" in message
    )
    assert "m = np.max(x, axis=axis" in message and "^" in message, message


def test_a_renamed_function_is_named_with_the_name_the_tests_call(course: Path):
    path = _file(course, "ex01_softmax.py")
    path.write_text(path.read_text().replace("def logsumexp(", "def log_sum_exp("))
    with pytest.raises(
        ex.LearnerFileError, match="defines log_sum_exp.*rename log_sum_exp back"
    ):
        ex.read_definition(ex.get_exercise("1.1", course), course)


def test_the_definition_python_uses_is_the_one_judged(course: Path):
    path = _file(course, "ex01_softmax.py")
    path.write_text(
        path.read_text()
        + "\n\ndef logsumexp(x, axis=-1):\n    return np.log(np.exp(x).sum())\n"
    )
    found = ex.read_definition(ex.get_exercise("1.1", course), course)
    assert found.started, "the last definition is written: the exercise is started"
    assert (
        "defines logsumexp 2 times" in found.note and "uses the last one" in found.note
    )


def test_a_result_depends_on_its_own_files_only(course: Path):
    manifest = ex.load_manifest(course)
    by_id = {e.id: e for e in manifest}
    folder = ex.exercises_dir(course)
    files = {p.name for p in checking.dependencies(by_id["3.2"], course, manifest)}
    assert "ex03_cross_entropy.py" in files and "test_ex03_cross_entropy.py" in files
    assert "ex01_softmax.py" not in files and "test_ex01_softmax.py" not in files
    # reusing an earlier exercise makes its file a dependency too
    path = folder / "ex03_cross_entropy.py"
    path.write_text("from ex01_softmax import log_softmax\n" + path.read_text())
    files = {p.name for p in checking.dependencies(by_id["3.2"], course, manifest)}
    assert "ex01_softmax.py" in files


def test_editing_one_file_rechecks_only_its_exercises(course: Path, monkeypatch):
    write_body(_file(course, "ex01_softmax.py"), "logsumexp", CORRECT_LOGSUMEXP)
    ran: list[list[str]] = []
    real = checking.run_tests

    def recording(selected, root, **options):
        ran.append([e.id for e in selected])
        return real(selected, root, **options)

    monkeypatch.setattr(checking, "run_tests", recording)
    manifest = ex.load_manifest(course)
    checking.check(manifest, course, use_cache=True)
    assert ran == [["1.1"]], ran
    path = _file(course, "ex02_gradient_checking.py")
    write_body(path, "rel_error", "return 0.0\n")
    checking.check(manifest, course, use_cache=True)
    assert ran[1:] == [["2.1"]], (
        f"only exercise 2.1 changed, but these ran again: {ran[1:]}"
    )


def _record(
    marker: str, outcome: str, kind: str | None = None, message: str = ""
) -> dict:
    return {
        "nodeid": f"tests/x.py::test_{outcome}",
        "name": outcome,
        "exercises": [marker],
        "outcome": outcome,
        "exception": "NotImplementedError"
        if kind == "stub"
        else kind and "AssertionError",
        "kind": kind,
        "message": message,
        "where": None,
        "output": "",
    }


def test_outcomes_become_the_statuses():
    manifest = ex.load_manifest(ROOT)
    backward = ex.get_exercise("3.2", ROOT)

    def result(*records: dict) -> checking.Result:
        return checking._result_for(backward, list(records), manifest)

    assert (
        result(_record("ex3_2", "passed"), _record("ex3_2", "passed")).status
        == "passed"
    )
    failing = result(
        _record("ex3_2", "failed", "mismatch", "off by 2"),
        _record("ex3_2", "failed", "diagnosis", "modified its input"),
        _record("ex3_2", "passed"),
    )
    assert failing.status == checking.FAILING and failing.summary == "2 of 3 tests fail"
    assert [f.reason for f in failing.failures] == ["modified its input", "off by 2"]
    own = "Exercise 3.2 (cross_entropy_backward): run `lsce hint 3.2`"
    assert (
        result(_record("ex3_2", "failed", "stub", own)).status == checking.NOT_STARTED
    )
    other = "Exercise 3.1 (cross_entropy_forward): run `lsce hint 3.1`"
    assert result(_record("ex3_2", "failed", "stub", other)).status == checking.BLOCKED
    assert (
        result(_record("ex3_2", "failed", "file", "x.py, line 3")).status
        == checking.ERROR
    )
    assert result(_record("ex9_9", "passed")).status == checking.NO_TESTS


# ---------------------------------------------------------------------------------------------
# the real `lsce` command in a copy of the course


@pytest.mark.slow
def test_simulated_learner_sees_passed_failing_and_not_started(course: Path):
    write_body(_file(course, "ex01_softmax.py"), "logsumexp", CORRECT_LOGSUMEXP)
    write_body(
        _file(course, "ex03_cross_entropy.py"),
        "cross_entropy_forward",
        CROSS_ENTROPY_FORWARD,
    )
    write_body(
        _file(course, "ex03_cross_entropy.py"),
        "cross_entropy_backward",
        WRONG_CROSS_ENTROPY_BACKWARD,
    )
    passed = lsce(course, "check", "1.1")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASSED" in passed.stdout and "ex01_softmax.py" in passed.stdout

    failing = lsce(course, "check", "3.2")
    assert failing.returncode == 1
    assert "FAILING" in failing.stdout and "tests fail" in failing.stdout
    # the key fact, then expected vs got, then the input that broke it
    assert "got" in failing.stdout and "expected" in failing.stdout
    assert "input logits =" in failing.stdout
    assert "0x7f" not in failing.stdout, "no memory addresses"

    untouched = lsce(course, "check", "2.1")
    assert untouched.returncode == 1 and "NOT STARTED" in untouched.stdout

    everything = lsce(course, "check", "--all")
    assert everything.returncode == 1
    assert "2 of 22 exercises pass; 1 failing, 19 not started" in everything.stdout

    listing = lsce(course, "list")
    assert listing.returncode == 0
    rows = _rows(listing.stdout)
    assert (
        "passed" in rows["1.1"]
        and "failing" in rows["3.2"]
        and "not started" in rows["2.1"]
    )

    progress = lsce(course, "progress")
    assert "2/" in progress.stdout and "Next: exercise 1.2" in progress.stdout
    assert (course / ".lsce" / "state.json").is_file()


@pytest.mark.slow
def test_a_function_needing_an_unstarted_exercise_is_blocked(course: Path):
    write_body(
        _file(course, "ex03_cross_entropy.py"),
        "cross_entropy_backward",
        "return cache\n",
    )
    blocked = lsce(course, "check", "3.2")
    assert blocked.returncode == 1
    assert "BLOCKED" in blocked.stdout and "needs exercise 3.1 first" in blocked.stdout


@pytest.mark.slow
def test_an_endless_loop_is_stopped_and_named(course: Path):
    write_body(_file(course, "ex01_softmax.py"), "logsumexp", ENDLESS)
    began = time.monotonic()
    done = lsce(course, "check", "1.1", "--timeout", TIMEOUT, timeout=120)
    seconds = time.monotonic() - began
    assert done.returncode == 1 and "TIMED OUT" in done.stdout, (
        done.stdout + done.stderr
    )
    assert f"logsumexp did not return within {TIMEOUT} s" in done.stdout
    assert "logsumexp matches torch" in done.stdout, (
        "it names the test that was running"
    )
    assert seconds < float(TIMEOUT) + 60, f"lsce check took {seconds:.0f} s"
    _no_internal_traceback(done)
    # list and progress answer too: they check what changed, with the same limit
    listing = lsce(course, "list", "--timeout", TIMEOUT, timeout=120)
    assert listing.returncode == 0 and "timed out" in _rows(listing.stdout)["1.1"]
    assert "not started" in _rows(listing.stdout)["1.2"]
    progress = lsce(course, "progress", "--timeout", TIMEOUT, timeout=120)
    assert progress.returncode == 0 and "Next: exercise 1.1" in progress.stdout


@pytest.mark.slow
def test_ctrl_c_stops_a_check_cleanly(course: Path):
    write_body(_file(course, "ex01_softmax.py"), "logsumexp", ENDLESS)
    env = dict(os.environ, LSCE_ROOT=str(course), COLUMNS="200")
    with subprocess.Popen(
        [sys.executable, "-m", "lsce_course.cli", "check", "1.1", "--timeout", "600"],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    ) as checker:  # fmt: skip
        try:
            time.sleep(6)  # pytest is now inside the endless loop
            checker.send_signal(signal.SIGINT)
            output, _ = checker.communicate(timeout=60)
        finally:
            checker.kill()
    assert checker.returncode == 130 and "stopped" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert not _processes_in(course), "the check's pytest process is still running"


def _processes_in(folder: Path) -> list[int]:
    """The processes whose working directory is ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


@pytest.mark.slow
def test_broken_files_get_one_message_everywhere(course: Path):
    ex01 = _file(course, "ex01_softmax.py")
    write_body(
        ex01, "logsumexp", "return np.log(np.sum(np.exp(x), axis=axis)\n"
    )  # no ')'
    ex02 = _file(course, "ex02_gradient_checking.py")
    ex02.write_text(ex02.read_text().replace("def rel_error(", "def relative_error("))
    ex07 = _file(course, "ex07_training.py")
    ex07.write_text("import nump\n" + ex07.read_text())
    write_body(ex07, "logit_gap", "return logits[:, 0]\n")

    syntax = lsce(course, "check", "1.1")
    assert syntax.returncode == 1 and "ERROR" in syntax.stdout
    assert "ex01_softmax.py, line" in syntax.stdout and "SyntaxError" in syntax.stdout
    assert "^" in syntax.stdout
    renamed = lsce(course, "check", "2.1")
    assert "rename relative_error back to rel_error" in renamed.stdout
    failing_import = lsce(course, "check", "7.3")
    assert (
        "ERROR" in failing_import.stdout
        and "ex07_training.py, line 1" in failing_import.stdout
    )
    assert "No module named 'nump'" in failing_import.stdout
    listing = lsce(course, "list")
    assert listing.returncode == 0
    rows = _rows(listing.stdout)
    assert all("error" in rows[i] for i in ("1.1", "1.2", "2.1")), listing.stdout
    progress = lsce(course, "progress")
    assert progress.returncode == 0 and "Next: exercise 1.1" in progress.stdout
    for done in (syntax, renamed, failing_import, listing, progress):
        _no_internal_traceback(done)


@pytest.mark.slow
def test_a_crash_names_the_learners_line_and_verbose_shows_prints(course: Path):
    path = _file(course, "ex01_softmax.py")
    write_body(path, "logsumexp", 'print("looking at", x.shape)\nreturn x[99]\n')
    path.write_text(
        path.read_text() + "\n\ndef logsumexp(x, axis=-1):\n    return x[99]\n"
    )
    done = lsce(course, "check", "1.1")
    assert "ERROR" in done.stdout and "your logsumexp raised IndexError" in done.stdout
    assert "ex01_softmax.py, line" in done.stdout and "return x[99]" in done.stdout
    assert "defines logsumexp 2 times" in done.stdout, (
        "the doubled definition is pointed out"
    )
    write_body(path, "logsumexp", 'print("looking at", x.shape)\nreturn x[99]\n')
    quiet = lsce(course, "check", "1.1")
    assert "printed" in quiet.stdout and "looking at" not in quiet.stdout
    verbose = lsce(course, "check", "1.1", "-v")
    assert "looking at" in verbose.stdout
    _no_internal_traceback(done)


@pytest.mark.slow
def test_reusing_an_earlier_exercise_works_in_check_run_and_a_notebook(course: Path):
    write_body(_file(course, "ex01_softmax.py"), "log_softmax", """
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    """)  # fmt: skip
    ex03 = _file(course, "ex03_cross_entropy.py")
    ex03.write_text("from ex01_softmax import log_softmax\n" + ex03.read_text())
    write_body(ex03, "cross_entropy_forward", """
        logp = log_softmax(logits)
        loss = -logp[np.arange(len(target)), target].mean()
        return loss, {"p": np.exp(logp), "target": target}
    """)  # fmt: skip
    checked = lsce(course, "check", "3.1")
    assert checked.returncode == 0 and "PASSED" in checked.stdout, checked.stdout
    lesson = _lesson(course, "3")
    assert lesson.returncode == 0, lesson.stdout[-3000:] + lesson.stderr[-3000:]
    assert "using your cross_entropy_forward" in lesson.stdout
    # a notebook runs the lesson's code from lessons/, with no __file__
    script = (ROOT / "lessons" / "03_cross_entropy.py").read_text(encoding="utf-8")
    notebook = subprocess.run(
        [sys.executable, "-c", "import sys; exec(compile(sys.stdin.read(), '<cell>', 'exec'))"],
        cwd=course / "lessons", env=dict(os.environ, **_lesson_env(course)), input=script,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert notebook.returncode == 0, notebook.stdout[-3000:] + notebook.stderr[-3000:]
    assert "using your cross_entropy_forward" in notebook.stdout


def _watch(course: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, LSCE_ROOT=str(course), COLUMNS="200", PYTHONUNBUFFERED="1")
    log = (course / "watch.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "lsce_course.cli", "watch", *args],
        cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_for(course: Path, text: str, seconds: float = 90, times: int = 1) -> str:
    """The watch log once ``text`` is in it ``times`` times (never blocks on a pipe)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        output = (course / "watch.log").read_text()
        if output.count(text) >= times:
            return output
        time.sleep(0.2)
    raise AssertionError(
        f"{text!r} did not appear {times} time(s) in {seconds} s:\n{output}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--poll", "--events"])
def test_watch_sees_a_save_made_during_its_first_check(course: Path, mode: str):
    watcher = _watch(course, *([mode] if mode == "--poll" else []))
    try:
        _wait_for(course, "checking 1.1")
        # while the first check runs: the save that used to go unseen (and hung CI)
        write_body(_file(course, "ex01_softmax.py"), "logsumexp", CORRECT_LOGSUMEXP)
        output = _wait_for(course, "Next: exercise 1.2")
        assert "PASSED" in output
    finally:
        watcher.kill()
        watcher.wait(timeout=30)


# the stub's raise, swapped by hand: write_body cannot parse a file with a syntax error
_STUB_8_2 = """    raise NotImplementedError(
        "Exercise 8.2 (fit_temperature): run `lsce hint 8.2`, then `lsce check 8.2`"
    )
"""
ENDLESS_LINE = "    while True:\n        pass\n"


@pytest.mark.slow
def test_watch_survives_mistakes_and_stops_a_runaway_check(course: Path):
    path = _file(course, "ex08_calibration.py")
    watcher = _watch(course, "8.2", "--poll", "--timeout", "600")
    try:
        _wait_for(course, "NOT STARTED")
        stub = path.read_text()
        assert _STUB_8_2 in stub, "the 8.2 stub changed: update _STUB_8_2"
        write_body(path, "fit_temperature", "return 1.0 +\n")
        _wait_for(course, "SyntaxError")
        path.write_text(stub.replace(_STUB_8_2, ENDLESS_LINE))
        _wait_for(
            course, "checking 8.2", 30, times=3
        )  # the first, the syntax error, this
        time.sleep(4)  # the endless check is running, with a 600 s limit
        path.write_text(stub.replace(_STUB_8_2, "    return 1.0\n"))
        output = _wait_for(course, "FAILING", 60)
        assert "saved again: checking the new version" in output
        assert "TIMED OUT" not in output
        assert watcher.poll() is None, "watch is still watching"
    finally:
        watcher.kill()
        watcher.wait(timeout=30)
    _no_internal_traceback(subprocess.CompletedProcess([], 0, output, ""))


def test_hint_levels_and_unknown_ids(course: Path):
    first = lsce(course, "hint", "4.1")
    assert (
        first.returncode == 0
        and "hint 1/" in first.stdout
        and "--level 2" in first.stdout
    )
    manifest_hint = ex.get_exercise("4.1", ROOT).hints[1][:40]
    assert manifest_hint in " ".join(
        lsce(course, "hint", "4.1", "--level", "2").stdout.split()
    )
    assert lsce(course, "hint", "4.1", "--level", "99").returncode == 2
    unknown = lsce(course, "check", "9.9")
    assert unknown.returncode == 2 and "no exercise '9.9'" in unknown.stdout


def test_run_of_an_unknown_lesson_says_what_exists(course: Path):
    done = lsce(course, "run", "foo")
    assert done.returncode == 2 and "there is no lesson 'foo'" in done.stdout
    assert "lsce run 4" in done.stdout
    _no_internal_traceback(done)


def test_list_keeps_file_names_whole_at_80_columns(course: Path):
    done = lsce(course, "list", COLUMNS="80")
    assert done.returncode == 0
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    for exercise in ex.load_manifest(ROOT):
        assert f"{exercise.file}:" in done.stdout, (
            f"{exercise.file} is cut in lsce list"
        )


def _lesson_env(course: Path) -> dict[str, str]:
    """How the lessons run in the tests: quick, no display, figures inside the course."""
    return {
        "LSCE_ROOT": str(course),
        "LSCE_QUICK": "1",
        "MPLBACKEND": "Agg",
        "LSCE_FIGURE_DIR": str(course / "figures"),
    }


def _lesson(course: Path, number: str) -> subprocess.CompletedProcess:
    return lsce(course, "run", number, "--quick", timeout=300, **_lesson_env(course))


@pytest.mark.slow
def test_a_lesson_names_a_wrong_learner_function_and_exits_non_zero(course: Path):
    # the article's prose taken literally: the others get ε, not ε/K
    write_body(_file(course, "ex04_label_smoothing.py"), "smooth_labels", """
        target = np.asarray(target)
        q = np.full(target.shape + (num_classes,), epsilon)
        np.put_along_axis(q, target[..., None], 1 - epsilon, axis=-1)
        return q
    """)  # fmt: skip
    done = _lesson(course, "4")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Your smooth_labels (exercise 4.1) differs from the reference" in done.stdout
    assert "Run lsce check 4.1" in done.stdout and "FAIL (your 4.1)" in done.stdout
    assert "the rest of this lesson uses the reference" in done.stdout
    assert "d* = ln 334 = 5.8111" in done.stdout, "the lesson still runs to the end"


@pytest.mark.slow
def test_a_lesson_flags_a_backward_without_its_mean(tmp_path: Path):
    course = copy_course(tmp_path, solutions=True)
    done_right = _lesson(course, "5")
    assert done_right.returncode == 0, done_right.stdout[-3000:]
    assert "using your lsce_backward" in done_right.stdout
    (mistake,) = [
        m
        for m in load_catalogue()
        if (m.exercise, m.what) == ("5.2", "missing 1/N of the mean")
    ]
    write_body(_file(course, "ex05_lsce_backward.py"), "lsce_backward", mistake.body)
    done = _lesson(course, "5")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Your lsce_backward (exercise 5.2) differs from the reference" in done.stdout
    assert "checks passed" not in done.stdout


@pytest.mark.slow
def test_a_lesson_with_a_broken_learner_file_uses_the_reference_and_says_so(
    course: Path,
):
    write_body(_file(course, "ex01_softmax.py"), "logsumexp", "return (x\n")
    done = _lesson(course, "1")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "SyntaxError" in done.stdout and "ex01_softmax.py, line" in done.stdout
    assert "Your file for exercise 1.1 could not be used" in done.stdout
    _no_internal_traceback(done)


def test_parameter_ids_are_readable():
    from tests.conftest import pytest_make_parametrize_id

    assert pytest_make_parametrize_id(None, 1.5, "epsilon") == "epsilon=1.5"  # type: ignore[arg-type]
    assert pytest_make_parametrize_id(None, "mean", "reduction") == "reduction=mean"  # type: ignore[arg-type]

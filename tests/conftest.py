"""Shared test set-up: the exercise implementation switch and the exercise markers.

Exercise tests are marked with their exercise's marker (``@pytest.mark.ex4_1``) and get
the object under test from the ``impl`` fixture. By default that is the reference in
``lsce_scratch``; ``--impl=learner`` (or LSCE_IMPL=learner, which ``lsce check`` sets)
loads the learner's file from lessons/exercises/ instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from lsce_course import exercises
from lsce_scratch import fast, losses


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--impl",
        choices=("reference", "learner"),
        default=os.environ.get("LSCE_IMPL", "reference"),
        help="test the reference in lsce_scratch (default) or the learner's lessons/exercises/",
    )


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str:
    """Readable test ids: ``test_x[epsilon=1.5-index=0]`` rather than ``test_x[1.5-0]``."""
    if isinstance(val, str):
        shown = val
    else:
        shown = (
            val.__name__ if callable(val) and hasattr(val, "__name__") else repr(val)
        )
    return f"{argname}={shown}" if len(shown) <= 40 else argname


def pytest_configure(config: pytest.Config) -> None:
    for exercise in exercises.load_manifest():
        config.addinivalue_line(
            "markers",
            f"{exercise.marker}: tests of exercise {exercise.id} ({exercise.title})",
        )


def pytest_report_header(config: pytest.Config) -> list[str]:
    from tests.test_mistake_catalogue import load_catalogue

    if config.getoption("--impl") == "learner":
        implementation = (
            f"exercise implementation: learner ({exercises.exercises_dir()})"
        )
    else:
        implementation = "exercise implementation: reference (lsce_scratch)"
    catalogue = f"mistake catalogue: {len(load_catalogue())} typical learner mistakes"
    return [implementation, catalogue]


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Callable[..., object]:
    """``impl()`` is the object of this test's exercise; ``impl("4.2")`` of an earlier one."""
    marks = [m.name for m in request.node.iter_markers() if m.name.startswith("ex")]
    by_marker = {e.marker: e for e in exercises.load_manifest()}
    own = [by_marker[m] for m in marks if m in by_marker]
    learner = request.config.getoption("--impl") == "learner"

    def get(exercise_id: str | None = None) -> object:
        if exercise_id is None:
            if len(own) != 1:
                raise RuntimeError(
                    f"{request.node.nodeid} needs exactly one exercise marker"
                )
            exercise = own[0]
        else:
            exercise = exercises.get_exercise(exercise_id)
        if learner:
            return exercises.learner_object(exercise)
        return exercises.reference_object(exercise)

    return get


NUMPY_IMPLEMENTATIONS = {"simple": losses, "fast": fast}


@pytest.fixture(params=sorted(NUMPY_IMPLEMENTATIONS))
def lsce_implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    """Run a test module on both NumPy implementations: the simple one lesson 05 teaches
    (lsce_scratch.losses) and the fast one behind the public names (lsce_scratch.fast).

    A module opts in with ``pytestmark = pytest.mark.usefixtures("lsce_implementation")``;
    its module-level lsce_forward, lsce_backward and label_smoothing_cross_entropy are
    swapped for the chosen implementation's for the duration of each test.
    """
    implementation = NUMPY_IMPLEMENTATIONS[request.param]
    for name in ("lsce_forward", "lsce_backward", "label_smoothing_cross_entropy"):
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, getattr(implementation, name))
    return implementation


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test (tests.oracle.single_torch_thread). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    from tests.oracle import single_torch_thread

    with single_torch_thread():
        yield

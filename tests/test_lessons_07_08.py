"""Lessons 07 and 08 run in quick mode, pass their checks, save their figures and table, and
fail when the library under them is wrong.

As for lessons 01–05, each lesson runs as a subprocess (LSCE_QUICK=1, figures to a temporary
folder); the "broken" runs patch one library function first and expect exit status 1.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.lessons import (
    assert_lesson_failed,
    assert_lesson_passed,
    run_lesson,
    run_lesson_broken,
)

LESSONS = {
    "07_training.py": [
        "07_digits.png",
        "07_curves.png",
        "07_logit_gap.png",
        "07_confidence.png",
        "07_penultimate.png",
    ],
    "08_calibration.py": [
        "08_temperature.png",
        "08_one_vs_rest.png",
        "08_table.png",
        "08_reliability.png",
    ],
}
TABLE_ROWS = [
    "CE",
    "CE + temperature",
    "CE + Platt (one-vs-rest)",
    "CE + isotonic (one-vs-rest)",
    "CE + isotonic (scikit-learn)",
    "LSCE",
    "LSCE + temperature",
]


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(LESSONS))
def test_lesson_runs_and_passes(script: str, tmp_path: Path) -> None:
    result = run_lesson(script, tmp_path)
    assert_lesson_passed(result, script, LESSONS[script], tmp_path)
    if script.startswith("08"):
        record = json.loads((tmp_path / "08_table.json").read_text())
        assert list(record["methods"]) == TABLE_ROWS
        assert record["quick"] is True
        ce, ls = record["methods"]["CE"], record["methods"]["LSCE"]
        assert 0.9 < ce["accuracy"] <= 1 and 0 <= ce["ece"] <= ce["mce"] <= 1
        assert ls["ece_95_interval"][0] <= ls["ece"] <= ls["ece_95_interval"][1]
        assert record["temperature"]["LSCE"] < 1


# Run a lesson after replacing one library object by a plausible wrong version.
BROKEN = {
    "Linear.backward averages the bias gradient": (
        "07_training.py",
        "lsce_scratch.mlp",
        "Linear",
        textwrap.dedent(
            """
            class broken(original):
                def backward(self, dout, cache):
                    dx = super().backward(dout, cache)
                    self.db = dout.mean(axis=0)
                    return dx
            """
        ),
    ),
    "fit_temperature off by 1 %": (
        "08_calibration.py",
        "lsce_scratch.calibration",
        "fit_temperature",
        "broken = lambda logits, labels: 1.01 * original(logits, labels)",
    ),
    "PAV slightly off": (
        "08_calibration.py",
        "lsce_scratch.calibration",
        "pool_adjacent_violators",
        "broken = lambda values, weights=None: 0.999 * original(values, weights)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lesson_fails_when_the_library_is_wrong(case: str, tmp_path: Path) -> None:
    result = run_lesson_broken(*BROKEN[case], tmp_path)
    assert_lesson_failed(result, case)

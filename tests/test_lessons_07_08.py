"""Lessons 07 and 08 run in quick mode, pass their checks, save their figures and table, and
fail when the library under them is wrong.

As for lessons 01–05, each lesson runs as a subprocess (LSCE_QUICK=1, figures to a temporary
folder); the "broken" runs patch one library function first and expect exit status 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def run(args: list[str], figure_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LSCE_QUICK": "1",
        "LSCE_FIGURE_DIR": str(figure_dir),
        "MPLBACKEND": "Agg",
        "COLUMNS": "160",
    }
    env.pop("LSCE_ROOT", None)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(LESSONS))
def test_lesson_runs_and_passes(script: str, tmp_path: Path) -> None:
    result = run([str(ROOT / "lessons" / script)], tmp_path)
    assert result.returncode == 0, (
        f"{script} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    assert "checks passed" in result.stdout
    for figure in LESSONS[script]:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 1000, f"{script} did not save {figure}"
    if script.startswith("08"):
        record = json.loads((tmp_path / "08_table.json").read_text())
        assert list(record["methods"]) == TABLE_ROWS
        assert record["quick"] is True
        ce, ls = record["methods"]["CE"], record["methods"]["LSCE"]
        assert 0.9 < ce["accuracy"] <= 1 and 0 <= ce["ece"] <= ce["mce"] <= 1
        assert ls["ece_95_interval"][0] <= ls["ece"] <= ls["ece_95_interval"][1]
        assert record["temperature"]["LSCE"] < 1


# Run a lesson after replacing one library object by a plausible wrong version.
BROKEN_RUNNER = textwrap.dedent(
    """
    import runpy, sys
    module_name, name, script = sys.argv[1:4]
    module = __import__(module_name, fromlist=[name])
    original = getattr(module, name)
    {wrapper}
    setattr(module, name, broken)
    runpy.run_path(script, run_name="__main__")
    """
)

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
    script, module_name, name, wrapper = BROKEN[case]
    runner = tmp_path / "run_broken.py"
    runner.write_text(BROKEN_RUNNER.replace("{wrapper}", wrapper), encoding="utf-8")
    result = run([str(runner), module_name, name, str(ROOT / "lessons" / script)], tmp_path)
    assert result.returncode == 1, (
        f"{script} with '{case}' exited {result.returncode}, expected 1\n"
        f"{result.stdout}\n{result.stderr}"
    )
    assert "check(s) failed" in result.stdout

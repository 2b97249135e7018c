"""Lesson 09 runs in quick mode, passes its checks and saves its figures, and fails when the
library under it is wrong (the same subprocess pattern as the other lesson tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "lessons" / "09_pets_gpu.py"
FIGURES = ["09_one_cycle.png", "09_augment.png", "09_reliability.png", "09_history.png"]


def run(args: list[str], figure_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LSCE_QUICK": "1",
        "LSCE_FIGURE_DIR": str(figure_dir),
        "MPLBACKEND": "Agg",
        "COLUMNS": "160",
        # tiny batches gain little from threads, and OpenMP threads crawl on a busy machine
        "OMP_NUM_THREADS": "1",
    }
    env.pop("LSCE_ROOT", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_lesson_runs_and_passes(tmp_path: Path) -> None:
    result = run([str(SCRIPT)], tmp_path)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "checks passed" in result.stdout and "SYNTHETIC DATA" in result.stdout
    for figure in FIGURES:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 1000, f"no {figure}"
    # the runs' outputs sit beside the figures, never in the repository
    assert (tmp_path.parent / "lesson09" / "lsce" / "metrics.json").is_file()


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
    "one_cycle peaks one batch early": (
        "lsce_scratch.pets.train",
        "one_cycle",
        "broken = lambda step, total, max_lr, **kw: "
        "original(min(step + 1, total - 1), total, max_lr, **kw)",
    ),
    "freeze_body freezes BatchNorm too": (
        "lsce_scratch.pets.model",
        "freeze_body",
        "broken = lambda model: [p.requires_grad_(False) for p in model.body.parameters()]",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lesson_fails_when_the_library_is_wrong(case: str, tmp_path: Path) -> None:
    module_name, name, wrapper = BROKEN[case]
    runner = tmp_path / "run_broken.py"
    runner.write_text(BROKEN_RUNNER.replace("{wrapper}", wrapper), encoding="utf-8")
    result = run([str(runner), module_name, name, str(SCRIPT)], tmp_path / "figures")
    assert result.returncode == 1, f"{case}: exit {result.returncode}\n{result.stdout[-3000:]}"

"""Lesson 09 runs in quick mode, passes its checks and saves its figures, and fails when the
library under it is wrong (the same subprocess pattern as the other lesson tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lessons import (
    assert_lesson_failed,
    assert_lesson_passed,
    run_lesson,
    run_lesson_broken,
)

SCRIPT = "09_pets_gpu.py"
FIGURES = ["09_one_cycle.png", "09_augment.png", "09_reliability.png", "09_history.png"]


@pytest.mark.slow
def test_lesson_runs_and_passes(tmp_path: Path) -> None:
    result = run_lesson(SCRIPT, tmp_path)
    assert_lesson_passed(result, SCRIPT, FIGURES, tmp_path)
    assert "SYNTHETIC DATA" in result.stdout
    # the runs' outputs sit beside the figures, never in the repository
    assert (tmp_path.parent / "lesson09" / "lsce" / "metrics.json").is_file()


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
    result = run_lesson_broken(SCRIPT, *BROKEN[case], tmp_path)
    assert_lesson_failed(result, case)

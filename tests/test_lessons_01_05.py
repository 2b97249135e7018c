"""Lessons 01–05 run, pass their own checks, save their figures, and fail when the code is wrong.

Each lesson runs as a subprocess in quick mode (LSCE_QUICK=1) with its figures going to a
temporary folder. The "broken" tests patch one library function before the lesson runs and
check that the lesson notices: a lesson whose table cannot fail would prove nothing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.lessons import (
    assert_lesson_failed,
    assert_lesson_passed,
    run_lesson,
    run_lesson_broken,
    run_python,
)

LESSONS = {
    "01_softmax.py": ["01_naive_vs_stable.png"],
    "02_gradient_checking.py": ["02_error_vs_h.png"],
    "03_cross_entropy.py": ["03_ce_vs_gap.png"],
    "04_label_smoothing.py": ["04_loss_vs_gap.png"],
    "05_lsce_backward.py": ["05_float32_cancellation.png"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(LESSONS))
def test_lesson_runs_and_passes(script: str, tmp_path: Path) -> None:
    result = run_lesson(script, tmp_path)
    assert_lesson_passed(result, script, LESSONS[script], tmp_path)


BROKEN = {
    "lse off by 1e-6": (
        "01_softmax.py",
        "lsce_scratch.softmax",
        "logsumexp",
        "broken = lambda x, axis=-1: original(x, axis) + 1e-6",
    ),
    "numerical gradient off by 1e-5": (
        "02_gradient_checking.py",
        "lsce_scratch.gradcheck",
        "numerical_gradient",
        "broken = lambda f, x, h=1e-5: original(f, x, h) * (1 + 1e-5)",
    ),
    "CE gradient without the 1/N": (
        "03_cross_entropy.py",
        "lsce_scratch.losses",
        "cross_entropy_backward",
        "broken = lambda dloss, cache: original(dloss, cache) * cache['p'].shape[0]",
    ),
    "fairseq targets instead of PyTorch's": (
        "04_label_smoothing.py",
        "lsce_scratch.losses",
        "smooth_labels",
        "broken = lambda t, k, e, *, spread='all': original(t, k, e, spread='others')",
    ),
    "backward without the float32 fix": (
        "05_lsce_backward.py",
        "lsce_scratch.losses",
        "lsce_backward",
        textwrap.dedent(
            """
            def broken(dloss, cache):
                import numpy as np
                from lsce_scratch.losses import row_scale
                p, r = cache["p"], cache["r"]
                grad = r.sum(axis=-1, keepdims=True) * p - r
                grad = grad * row_scale(dloss, cache["prep"])
                shape = cache["prep"].leading_shape + (p.shape[-1],)
                return grad.reshape(shape).astype(cache["prep"].input_dtype)
            """
        ),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lesson_fails_when_the_library_is_wrong(case: str, tmp_path: Path) -> None:
    result = run_lesson_broken(*BROKEN[case], tmp_path)
    assert_lesson_failed(result, case)


@pytest.mark.slow
def test_a_failing_required_check_exits_one(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from lsce_scratch.report import CheckTable
        table = CheckTable("demo")
        table.compare("agrees", [1.0, 2.0], [1.0, 2.0])
        table.compare("learner's differs", [1.0], [2.0], required=False)
        table.compare("reference differs", [1.0, 2.0], [1.0, 2.1])
        raise SystemExit(table.finish())
        """
    )
    result = run_python(["-c", code], tmp_path)
    assert result.returncode == 1
    assert "1 check(s) failed" in result.stdout

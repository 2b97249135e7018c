"""Every lesson of lessons/course.toml runs, passes its own checks and saves its figures,
and a lesson notices when the library under it is wrong.

Each lesson runs as a subprocess in quick mode (LSCE_QUICK=1) with its figures going to a
temporary folder. The "broken" tests patch one library object before a lesson runs and check
that the lesson's table fails: a lesson whose checks cannot fail would prove nothing.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lsce_course.course import Lesson, load_lessons
from tests.lessons import (
    ROOT,
    assert_lesson_failed,
    assert_lesson_passed,
    run_lesson,
    run_lesson_broken,
    run_python,
)

LESSONS = load_lessons(ROOT)
TABLE_ROWS = [
    "CE",
    "CE + temperature",
    "CE + Platt (one-vs-rest)",
    "CE + isotonic (one-vs-rest)",
    "CE + isotonic (scikit-learn)",
    "LSCE",
    "LSCE + temperature",
]


def check_calibration_table(lesson_dir: Path, stdout: str) -> None:
    """Lesson 08 writes its results table as JSON and as the page's Markdown table, rows in
    the page's order, and the numbers its prose quotes as 08_results.json."""
    record = json.loads((lesson_dir / "08_table.json").read_text())
    assert list(record["methods"]) == TABLE_ROWS
    assert record["quick"] is True
    ce, ls = record["methods"]["CE"], record["methods"]["LSCE"]
    assert 0.9 < ce["accuracy"] <= 1 and 0 <= ce["ece"] <= ce["mce"] <= 1
    assert ls["ece_95_interval"][0] <= ls["ece"] <= ls["ece_95_interval"][1]
    assert record["temperature"]["LSCE"] < 1
    rows = (lesson_dir / "08_table.md").read_text(encoding="utf-8").splitlines()
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[2:]] == TABLE_ROWS
    prose = json.loads((lesson_dir / "08_results.json").read_text(encoding="utf-8"))
    assert prose["temperature"]["ce"] == record["temperature"]["CE"]
    assert prose["words"]["ce_t_vs_1"] in ("above", "below")


def check_fast_results(lesson_dir: Path, stdout: str) -> None:
    """Lesson 09's timing numbers are make bench's committed ones, never its own run's."""
    record = json.loads((lesson_dir / "09_results.json").read_text())
    for device, bench in record["bench"].items():
        saved = json.loads(
            (ROOT / "docs" / "benchmarks" / f"{device}.json").read_text()
        )
        assert bench["date"] == saved["machine"]["date"]
        largest = max(saved["results"], key=lambda r: r["size"][0] * r["size"][1])
        fast = "NumPy fast" if device == "cpu" else "LSCEFunction"
        key = "fast" if device == "cpu" else "lsce_function"
        row = next(
            r
            for r in saved["results"]
            if r["size"] == largest["size"] and r["impl"] == fast
        )
        assert bench["largest"]["vs_floor"][key] == row["vs_floor"]
    assert "cpu" in record["bench"]
    assert record["memory"]["naive"] >= 3 and record["memory"]["fast"] <= 1.25


def check_pets_run(lesson_dir: Path, stdout: str) -> None:
    """Lesson 10 says its data is synthetic, keeps its runs beside the figures and saves
    the numbers and the table its page renders."""
    assert "SYNTHETIC DATA" in stdout
    assert (lesson_dir.parent / "lesson10" / "lsce" / "metrics.json").is_file()
    summary = (lesson_dir / "10_summary.md").read_text()
    assert "| LSCE |" in summary and "| CE |" in summary and "synthetic" in summary
    gpu = json.loads((lesson_dir / "10_results.json").read_text())["gpu"]
    assert gpu["device"] == "NVIDIA H200" and gpu["speedup"] > 0


EXTRA_CHECKS = {8: check_calibration_table, 9: check_fast_results, 10: check_pets_run}


@pytest.mark.slow
@pytest.mark.parametrize(
    "lesson", LESSONS, ids=lambda lesson: f"{lesson.label}-{lesson.slug}"
)
def test_lesson_runs_and_passes(lesson: Lesson, tmp_path: Path) -> None:
    script = Path(lesson.script).name
    result = run_lesson(script, tmp_path)
    assert_lesson_passed(result, script, list(lesson.figures), tmp_path)
    if lesson.number in EXTRA_CHECKS:
        EXTRA_CHECKS[lesson.number](tmp_path, result.stdout)


def test_every_lesson_has_a_broken_library_case() -> None:
    covered = {int(script[:2]) for script, *_ in BROKEN.values()}
    assert covered >= {lesson.number for lesson in LESSONS}


# case → (script, module, name, wrapper): the wrapper builds `broken` from `original`
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
    "LSCEFunction ignores grad_output": (
        "06_pytorch.py",
        "lsce_scratch.nn.function",
        "LSCEFunction",
        textwrap.dedent(
            """
            import torch
            class broken(original):
                @staticmethod
                def backward(ctx, grad_output):
                    return original.backward(ctx, torch.ones_like(grad_output))
            """
        ),
    ),
    "Linear.backward averages the bias gradient": (
        "07_training.py",
        "lsce_examples.digits_mlp",
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
    "backward ignores dloss": (
        "09_fast_lsce.py",
        "lsce_scratch.fast",
        "lsce_backward",
        "broken = lambda dloss, cache: original(dloss / dloss, cache)",
    ),
    "online lse misses the rescale": (
        "09_fast_lsce.py",
        "lsce_scratch.fast",
        "online_logsumexp",
        "broken = lambda x, chunk=4096: original(x, chunk) + 1e-9",
    ),
    "fused linear drops the last chunk's d_weight": (
        "09_fast_lsce.py",
        "lsce_scratch.fast",
        "linear_lsce",
        textwrap.dedent(
            """
            def broken(hidden, lin_weight, target, epsilon=0.1, **kw):
                loss, dh, dw, db = original(hidden, lin_weight, target, epsilon, **kw)
                return loss, dh, dw * 0.99, db
            """
        ),
    ),
    "one_cycle peaks one batch early": (
        "10_pets.py",
        "lsce_examples.pets.train",
        "one_cycle",
        "broken = lambda step, total, max_lr, **kw: "
        "original(min(step + 1, total - 1), total, max_lr, **kw)",
    ),
    "freeze_body freezes BatchNorm too": (
        "10_pets.py",
        "lsce_examples.pets.model",
        "freeze_body",
        "broken = lambda model: [p.requires_grad_(False) for p in model.body.parameters()]",
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
        from lsce_course.report import CheckTable
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

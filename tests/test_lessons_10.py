"""Lesson 10 runs, passes its checks and fails when the code is wrong; the benchmark
command runs (quick mode) and the committed Benchmarks tables match their JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.lessons import (
    ROOT,
    assert_lesson_failed,
    assert_lesson_passed,
    run_lesson,
    run_lesson_broken,
)

LESSON = "10_fast_lsce.py"
FIGURES = ["10_memory_vs_classes.png", "10_time_vs_classes.png"]


@pytest.mark.slow
def test_lesson_10_runs_and_passes(tmp_path: Path) -> None:
    assert_lesson_passed(run_lesson(LESSON, tmp_path), LESSON, FIGURES, tmp_path)


# Run the lesson after replacing one library function by a plausible wrong version.
BROKEN = {
    "backward ignores dloss": (
        "lsce_backward",
        "broken = lambda dloss, cache: original(dloss / dloss, cache)",
    ),
    "online lse misses the rescale": (
        "online_logsumexp",
        "broken = lambda x, chunk=4096: original(x, chunk) + 1e-9",
    ),
    "fused linear drops the last chunk's d_weight": (
        "linear_lsce",
        textwrap.dedent(
            """
            def broken(hidden, lin_weight, target, epsilon=0.1, **kw):
                loss, dh, dw, db = original(hidden, lin_weight, target, epsilon, **kw)
                return loss, dh, dw * 0.99, db
            """
        ),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lesson_10_fails_when_the_library_is_wrong(case: str, tmp_path: Path) -> None:
    name, wrapper = BROKEN[case]
    result = run_lesson_broken(LESSON, "lsce_scratch.fast", name, wrapper, tmp_path)
    assert_lesson_failed(result, case)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_committed_benchmark_tables_match_their_json(device: str) -> None:
    """The Benchmarks page shows docs/benchmarks/*.txt: they must be the JSON's rendering."""
    json_path = ROOT / "docs" / "benchmarks" / f"{device}.json"
    text_path = json_path.with_suffix(".txt")
    assert text_path.is_file(), f"{text_path} is missing (the Benchmarks page includes it)"
    if not json_path.is_file():
        assert device == "cuda", "docs/benchmarks/cpu.json must be committed"
        assert "No GPU results" in text_path.read_text()  # the placeholder, never a number
        return
    data = json.loads(json_path.read_text())
    assert data["machine"]["device"] == device
    assert text_path.read_text() == load_bench().markdown(data)

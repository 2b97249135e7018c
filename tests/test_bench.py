"""The benchmark command: quick mode measures torch's fused heads and the torch CPU rows'
memory, each in a child process; older JSON renders with the newer rows as not measured;
the goals table is plain."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from tests.lessons import ROOT, run_python


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench", ROOT / "benchmarks" / "bench.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()
SAVED = ROOT / "docs" / "benchmarks"
NEW_ROWS = [bench.TORCH_LCE, bench.CHUNKED, bench.CHUNKED_PLAIN]


@pytest.mark.skipif(not bench.CLEAR_REFS.exists(), reason="peak RSS needs Linux /proc")
def test_child_peak_rss_sees_what_one_call_allocates() -> None:
    # the CPU floor, torch.softmax, returns one new array of the logits' size
    shape = (1024, 4096)
    logits_bytes = shape[0] * shape[1] * 4
    peak = bench.peak_rss_bytes("sizes", bench.FLOOR, shape, torch.float32)
    assert peak is not None and 0.9 * logits_bytes <= peak <= 2 * logits_bytes, peak


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``bench.py --quick`` run for this module: the path of its JSON."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = run_python(
        ["benchmarks/bench.py", "--quick", "--out", str(out)], out.parent
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def quick(quick_out: Path) -> dict:
    return json.loads(quick_out.read_text())


@pytest.mark.slow
def test_quick_run_writes_json_and_tables(quick: dict, quick_out: Path) -> None:
    names = {row["impl"] for row in quick["results"]}
    assert {
        "floor",
        "F.cross_entropy",
        "LSCEFunction",
        "NumPy fast",
        "NumPy naive",
    } <= names
    for row in quick["results"]:
        assert row["time_s"] > 0 and row["vs_builtin"] > 0, row
        if row["kind"] == "numpy":
            assert row["peak_bytes"] > 0, row
    fused = {row["impl"]: row for row in quick["fused_linear"]["rows"]}
    assert fused["NumPy fused"]["max_rel_error_vs_unfused"] < 1e-5
    assert quick["machine"]["cpu"] and quick["machine"]["date"]
    tables = quick_out.with_suffix(".txt").read_text()
    assert "| NumPy fast |" in tables and "× built-in" in tables


@pytest.mark.slow
def test_quick_run_measures_torch_fused_heads_and_torch_cpu_memory(quick: dict) -> None:
    fused = {row["impl"]: row for row in quick["fused_linear"]["rows"]}
    for name in [*NEW_ROWS, bench.FUSED, bench.UNFUSED]:
        row = fused[name]
        assert row["error"] is None and row["time_s"] > 0 and row["peak_bytes"] > 0, row
    # the same loss as the unfused path (or, at ε = 0, another loss: no comparison)
    assert fused[bench.TORCH_LCE]["max_rel_error_vs_unfused"] < 1e-5
    assert fused[bench.CHUNKED_PLAIN]["max_rel_error_vs_unfused"] is None
    for row in quick["results"]:
        assert row["peak_bytes"] is not None, row
        if row["size"] == [512, 1000]:
            assert row["peak_bytes"] > 0, row


@pytest.mark.slow
def test_quick_run_lists_every_goal_as_not_measured(quick: dict) -> None:
    # quick sizes are not the goals' sizes: every goal is listed, none has a value
    goals = quick["targets"]
    assert any(bench.CHUNKED_PLAIN in goal["target"] for goal in goals)
    assert all(goal["value"] is None and goal["pass"] is None for goal in goals)


def test_older_json_shows_the_newer_rows_as_not_measured() -> None:
    data = json.loads((SAVED / "cpu.json").read_text())
    older = copy.deepcopy(data)
    older["fused_linear"]["rows"] = [
        row for row in older["fused_linear"]["rows"] if row["impl"] not in NEW_ROWS
    ]
    text = bench.markdown(older)
    for name in NEW_ROWS:
        assert f"| {name} | not measured | — | — | — | — | — | — |" in text
    chunked_goals = [line for line in text.splitlines() if f"/ {bench.CHUNKED}" in line]
    assert len(chunked_goals) == 4
    assert all(line.endswith("| not measured | — |") for line in chunked_goals)
    # a row it has keeps its numbers
    fused_row = next(
        r for r in data["fused_linear"]["rows"] if r["impl"] == bench.FUSED
    )
    assert f"| {bench.FUSED} | {bench._time(fused_row['time_s'])} |" in text


def test_goals_are_a_plain_table_of_goal_and_measured() -> None:
    data = json.loads((SAVED / "cpu.json").read_text())
    failing = copy.deepcopy(data)
    failing["results"] = [
        row | {"vs_builtin": 9.0} if row["impl"] == "NumPy fast" else row
        for row in failing["results"]
    ]
    text = bench.markdown(failing)
    assert "| goal | limit | measured | result |" in text
    assert "| NumPy fast time / built-in (8192×32000) | ≤ 0.4 | 9 | not met |" in text
    assert (
        "| NumPy fast time / softmax floor (8192×32000) | ≤ 1.5 | 1.4 | met |" in text
    )
    assert "FAIL" not in text and "**not met**" not in text


READER_PAGES = [
    "benchmarks.md",
    "benchmarks/cpu.txt",
    "benchmarks/cuda.txt",
    "benchmarks/pets_gpu_h200.txt",
    "index.md",
    "setup.md",
    "exercises.md",
    "conventions.md",
]


@pytest.mark.parametrize("page", READER_PAGES)
def test_site_pages_speak_to_readers(page: str) -> None:
    """No internal language: issues, targets, build machines, bold FAIL or not-met verdicts."""
    text = (ROOT / "docs" / page).read_text()
    assert "**FAIL" not in text and "**not met**" not in text, (
        f"docs/{page}: a bold verdict"
    )
    if page.startswith("benchmarks"):
        assert "FAIL" not in text, f"docs/{page} says FAIL"
    # the conventions page links a PyTorch issue by its URL; no page talks about one
    prose = re.sub(r"\(https?://[^)]*\)", "", text).lower()
    for words in (
        "issue",
        "time target",
        "build machine",
        "next thing to try",
        "internal",
    ):
        assert words not in prose, f"docs/{page} says {words!r}"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_committed_benchmark_tables_match_their_json(device: str) -> None:
    """The Benchmarks page shows docs/benchmarks/*.txt: they must be the JSON's rendering."""
    json_path = ROOT / "docs" / "benchmarks" / f"{device}.json"
    text_path = json_path.with_suffix(".txt")
    assert text_path.is_file(), (
        f"{text_path} is missing (the Benchmarks page includes it)"
    )
    if not json_path.is_file():
        assert device == "cuda", "docs/benchmarks/cpu.json must be committed"
        assert (
            "No GPU results" in text_path.read_text()
        )  # the placeholder, never a number
        return
    data = json.loads(json_path.read_text())
    assert data["machine"]["device"] == device
    assert text_path.read_text() == load_bench().markdown(data)


def test_pets_goals_are_a_plain_table_of_goal_and_measured() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pets_gpu

    result = json.loads((SAVED / "pets_gpu_h200.json").read_text())
    result["recipe_seconds"] |= {"value": 75.0, "met": False}
    text = pets_gpu.markdown(result)
    assert "| goal | limit | measured | result |" in text
    assert "| full recipe wall time | ≤ 60 s | 75.0 s | not met |" in text
    assert "**" not in text and "FAIL" not in text

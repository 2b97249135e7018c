"""The GPU benchmark's CPU smoke mode runs every phase and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_small_cpu_run_measures_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "pets_gpu.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "pets_gpu.py"),
        "--device",
        "cpu",
    ]
    command += [
        "--small",
        "--out",
        str(out),
        "--work",
        str(tmp_path / "work"),
        "--workers",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == {} and result["device"] == "cpu" and result["synthetic"]
    assert set(result["phases"]) == {"generate", "decode", "baseline", "ours", "recipe"}
    assert result["phases"]["decode"]["skipped"] == ["beagle_116.jpg"]
    for phase in ("baseline", "ours"):
        assert result["phases"][phase]["images_per_s"] > 0
    assert result["speedup"]["target"] == 3.0 and result["recipe_seconds"]["value"] > 0
    assert {"torch", "date", "cudnn_allow_tf32"} <= set(result)


def test_committed_gpu_results_are_the_json_rendered() -> None:
    """Lesson 10's page includes docs/benchmarks/pets_gpu_h200.txt: it must be the JSON's."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pets_gpu

    saved = ROOT / "docs" / "benchmarks" / "pets_gpu_h200.json"
    result = json.loads(saved.read_text())
    assert result["device"] == "NVIDIA H200" and result["errors"] == {}
    assert saved.with_suffix(".txt").read_text() == pets_gpu.markdown(result)

"""Running lesson scripts from the tests.

Every lesson runs in a subprocess in quick mode (LSCE_QUICK=1) with its figures in a
temporary folder. To prove that a lesson's checks can fail, :func:`run_lesson_broken` runs
it with one library object replaced by a plausible wrong version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"

# replaces module.name by `broken`, built by the wrapper code from `original`; the public
# names of lsce_scratch re-export some objects, which are replaced too
_BROKEN_RUNNER = textwrap.dedent(
    """
    import runpy, sys
    import lsce_scratch
    module_name, name, script = sys.argv[1:4]
    module = __import__(module_name, fromlist=[name])
    original = getattr(module, name)
    {wrapper}
    setattr(module, name, broken)
    if getattr(lsce_scratch, name, None) is original:
        setattr(lsce_scratch, name, broken)
    runpy.run_path(script, run_name="__main__")
    """
)


def run_python(
    args: list[str], figure_dir: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root, in the lessons' quick mode."""
    env = {
        **os.environ,
        "LSCE_QUICK": "1",
        "LSCE_FIGURE_DIR": str(figure_dir),
        "MPLBACKEND": "Agg",
        "COLUMNS": "160",
        # idle OpenMP threads sleep: spinning ones crawl when another process holds a core
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.pop("LSCE_ROOT", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def run_lesson(
    script: str, figure_dir: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run lessons/<script>."""
    return run_python([str(LESSONS / script)], figure_dir, timeout)


def assert_lesson_passed(
    result: subprocess.CompletedProcess,
    script: str,
    figures: list[str],
    figure_dir: Path,
) -> None:
    """The lesson exited 0 after its table said so, and saved every figure."""
    assert result.returncode == 0, (
        f"{script} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    assert "checks passed" in result.stdout
    for figure in figures:
        path = figure_dir / figure
        assert path.is_file() and path.stat().st_size > 1000, (
            f"{script} did not save {figure}"
        )


def run_lesson_broken(
    script: str, module_name: str, name: str, wrapper: str, tmp_path: Path
) -> subprocess.CompletedProcess:
    """Run lessons/<script> with module_name.name replaced by ``broken`` from ``wrapper``."""
    runner = tmp_path / "run_broken.py"
    runner.write_text(_BROKEN_RUNNER.replace("{wrapper}", wrapper), encoding="utf-8")
    figures = tmp_path / "figures"
    return run_python([str(runner), module_name, name, str(LESSONS / script)], figures)


def assert_lesson_failed(result: subprocess.CompletedProcess, case: str) -> None:
    """The lesson noticed: its table reported a failed check and it exited 1."""
    assert result.returncode == 1, (
        f"'{case}': exit {result.returncode}, expected 1\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    assert "check(s) failed" in result.stdout

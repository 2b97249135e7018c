"""What every lesson script shares: its check table, its figures and its quick mode.

A lesson compares its results with a reference (PyTorch, an analytic value, a second
implementation) in a :class:`CheckTable`, prints the table at the end and exits non-zero
when a required check failed::

    table = CheckTable("Lesson 04: label smoothing")
    table.compare("LSCE vs F.cross_entropy", ours, theirs, rtol=1e-12)
    table.claim("optimal gap", abs(gap - analytic) < 1e-6, f"{gap:.6f} vs {analytic:.6f}")
    raise SystemExit(table.finish())
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from rich.console import Console
from rich.table import Table

from lsce_scratch.gradcheck import rel_error

# rich falls back to 80 columns when the output is not a terminal (make run logs, CI)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def quick_mode() -> bool:
    """True when LSCE_QUICK=1: lessons shrink their work so the test suite runs them fast."""
    return os.environ.get("LSCE_QUICK", "") not in ("", "0")


def figure_dir() -> Path:
    """Where lessons save figures: $LSCE_FIGURE_DIR, else ./build/figures."""
    return Path(os.environ.get("LSCE_FIGURE_DIR", Path.cwd() / "build" / "figures"))


def save_figure(fig: object, name: str) -> Path:
    """Save a matplotlib figure as PNG under :func:`figure_dir` and close it."""
    import matplotlib.pyplot as plt

    path = figure_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    console.print(f"saved figure [bold]{path}[/bold]")
    return path


@dataclass(frozen=True)
class Check:
    """One row of a check table."""

    name: str
    ok: bool
    detail: str
    required: bool = True


class CheckTable:
    """Collect comparisons, print them as one table, and turn them into an exit code."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Check] = []

    def compare(
        self,
        name: str,
        ours: ArrayLike,
        reference: ArrayLike,
        *,
        rtol: float = 1e-10,
        atol: float = 0.0,
        required: bool = True,
    ) -> bool:
        """Compare two arrays: ok when rel_error <= rtol or max |ours − reference| <= atol.

        NaN in the same places on both sides counts as equal (an all-ignored mean is NaN).
        """
        a = np.asarray(ours, dtype=np.float64)
        b = np.asarray(reference, dtype=np.float64)
        if a.shape != b.shape:
            return self._add(Check(name, False, f"shapes differ: {a.shape} vs {b.shape}", required))
        same_nan = np.isnan(a) == np.isnan(b)
        if not same_nan.all():
            return self._add(Check(name, False, "NaN in different places", required))
        a, b = np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        error = rel_error(a, b)
        ok = error <= rtol or diff <= atol
        tolerance = f"tol {rtol:.0e}" + (f", atol {atol:.0e}" if atol else "")
        detail = f"max|Δ| {diff:.1e}  rel_error {error:.1e}  ({tolerance})"
        return self._add(Check(name, ok, detail, required))

    def claim(self, name: str, ok: bool, detail: str, *, required: bool = True) -> bool:
        """Record a check that is not an array comparison (a value against a formula, say)."""
        return self._add(Check(name, bool(ok), detail, required))

    def _add(self, check: Check) -> bool:
        self.rows.append(check)
        return check.ok

    @property
    def failed(self) -> list[Check]:
        """Required checks that did not pass."""
        return [row for row in self.rows if row.required and not row.ok]

    def finish(self) -> int:
        """Print the table; return 0 when every required check passed, else 1."""
        table = Table(title=self.title, title_justify="left")
        table.add_column("check")
        table.add_column("detail")
        table.add_column("ok")
        for row in self.rows:
            mark = "[green]ok[/green]" if row.ok else "[red]FAIL[/red]"
            if not row.ok and not row.required:
                mark = "[yellow]off (not required)[/yellow]"
            table.add_row(row.name, row.detail, mark)
        console.print(table)
        differ = [row for row in self.rows if not row.required and not row.ok]
        note = f", {len(differ)} optional check(s) did not hold" if differ else ""
        if self.failed:
            console.print(f"[red]{len(self.failed)} check(s) failed[/red]{note}")
            return 1
        passed = len(self.rows) - len(differ)
        console.print(f"[green]{passed} checks passed[/green]{note}")
        return 0

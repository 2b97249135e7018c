"""What every lesson script shares: its check table, its figures and its quick mode.

A lesson compares its results with a reference (PyTorch, an analytic value, a second
implementation) in a :class:`CheckTable`, prints the table at the end and exits non-zero
when a required check failed::

    table = CheckTable("Lesson 04: label smoothing")
    table.compare("LSCE vs F.cross_entropy", ours, theirs, rtol=1e-12, uses="4.2")
    table.claim("optimal gap", abs(gap - analytic) < 1e-6, f"{gap:.6f} vs {analytic:.6f}")
    raise SystemExit(table.finish())

``uses`` names the exercises whose function the check ran. When one of them is the
learner's (see :func:`lsce_course.exercises.choose`) and the check fails, the table says
so in one line that names the function and ``lsce check``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lsce_course import exercises
from lsce_scratch.gradcheck import rel_error

T = TypeVar("T")

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


def save_run_output(name: str, content: str | dict) -> Path:
    """Save a run's numbers (a dict, as JSON) or a Markdown fragment (a str) beside the
    figures; the site renders the lesson's prose numbers and tables from these files."""
    path = figure_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Check:
    """One row of a check table."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    uses: tuple[str, ...] = ()  # the exercises whose function the check ran
    step: str = ""  # the lesson step it belongs to (CheckTable.step)

    @property
    def yours(self) -> tuple[str, ...]:
        """The exercises of this check whose function is the learner's."""
        return tuple(
            i for i in self.uses if (c := exercises.chosen(i)) is not None and c.yours
        )


def _ids(uses: str | tuple[str, ...]) -> tuple[str, ...]:
    return (uses,) if isinstance(uses, str) else tuple(uses)


class CheckTable:
    """Collect comparisons, print them as one table, and turn them into an exit code."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Check] = []
        self._distrusted: set[str] = set()
        self._step = ""

    def step(self, title: str) -> None:
        """Start a step of the lesson: print its title now, and group the checks that
        follow under it in the final table."""
        self._step = title
        console.rule(f"[bold]{escape(title)}", align="left")

    def compare(
        self,
        name: str,
        ours: ArrayLike,
        reference: ArrayLike,
        *,
        rtol: float = 1e-10,
        atol: float = 0.0,
        required: bool = True,
        uses: str | tuple[str, ...] = (),
    ) -> bool:
        """Compare two arrays: ok when rel_error <= rtol or max |ours − reference| <= atol.

        NaN in the same places on both sides counts as equal (an all-ignored mean is NaN).
        """
        a = np.asarray(ours, dtype=np.float64)
        b = np.asarray(reference, dtype=np.float64)
        uses = _ids(uses)
        if a.shape != b.shape:
            detail = f"shapes differ: {a.shape} vs {b.shape}"
            return self._add(Check(name, False, detail, required, uses))
        same_nan = np.isnan(a) == np.isnan(b)
        if not same_nan.all():
            return self._add(
                Check(name, False, "NaN in different places", required, uses)
            )
        a, b = np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        error = rel_error(a, b)
        ok = error <= rtol or diff <= atol
        tolerance = f"tol {rtol:.0e}" + (f", atol {atol:.0e}" if atol else "")
        detail = f"max|Δ| {diff:.1e}  rel_error {error:.1e}  ({tolerance})"
        return self._add(Check(name, ok, detail, required, uses))

    def claim(
        self,
        name: str,
        ok: bool,
        detail: str,
        *,
        required: bool = True,
        uses: str | tuple[str, ...] = (),
    ) -> bool:
        """Record a check that is not an array comparison (a value against a formula, say)."""
        return self._add(Check(name, bool(ok), detail, required, _ids(uses)))

    def _add(self, check: Check) -> bool:
        check = dataclasses.replace(check, step=self._step)
        self.rows.append(check)
        return check.ok

    @property
    def failed(self) -> list[Check]:
        """Required checks that did not pass."""
        return [row for row in self.rows if row.required and not row.ok]

    def finish(self) -> int:
        """Print the table; return 0 when every required check passed, else 1.

        A failed check that ran the learner's function is reported once per exercise, in
        a line that names the function, the first difference and ``lsce check``; so is a
        learner's file that could not be used at all.
        """
        table = Table(title=self.title, title_justify="left")
        table.add_column("check")
        table.add_column("detail")
        table.add_column("ok")
        step = ""
        for row in self.rows:
            if row.step != step:
                step = row.step
                table.add_section()
                table.add_row(f"[bold]{escape(step)}[/bold]", "", "")
            mark = "[green]ok[/green]" if row.ok else "[red]FAIL[/red]"
            if not row.ok and row.yours:
                mark = f"[red]FAIL (your {', '.join(row.yours)})[/red]"
            elif not row.ok and not row.required:
                mark = "[yellow]off (not required)[/yellow]"
            table.add_row(row.name, row.detail, mark)
        console.print(table)
        for line in self.learner_differences():
            console.print(f"[red]{escape(line)}[/red]")
        differ = [row for row in self.rows if not row.required and not row.ok]
        note = f", {len(differ)} optional check(s) did not hold" if differ else ""
        broken = [c for c in exercises.chosen_all() if c.problem]
        if self.failed or broken:
            console.print(f"[red]{len(self.failed)} check(s) failed[/red]{note}")
            return 1
        passed = len(self.rows) - len(differ)
        console.print(f"[green]{passed} checks passed[/green]{note}")
        return 0

    def trusted(self, exercise_id: str, yours: T, reference: T) -> T:
        """``yours`` while every check that ran the learner's function has held, else
        ``reference``: the lesson's later numbers and figures must be right. Says so once."""
        if not self.learner_failures(exercise_id):
            return yours
        if exercise_id not in self._distrusted:
            self._distrusted.add(exercise_id)
            console.print(
                f"[yellow]exercise {exercise_id}: yours differs from the reference, so the rest "
                f"of this lesson uses the reference[/yellow]"
            )
        return reference

    def learner_failures(self, exercise_id: str) -> list[Check]:
        """The failed checks that ran the learner's function of this exercise."""
        return [row for row in self.rows if not row.ok and exercise_id in row.yours]

    def learner_differences(self) -> list[str]:
        """One line per exercise whose learner's function made a check fail, or whose file
        could not be used: what differs and what to run."""
        lines = []
        for choice in exercises.chosen_all():
            exercise = choice.exercise
            if choice.problem:
                lines.append(
                    f"Your file for exercise {exercise.id} could not be used, so this lesson "
                    f"ran the reference {exercise.function}: run lsce check {exercise.id}"
                )
                continue
            failed = self.learner_failures(exercise.id)
            if failed:
                more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
                lines.append(
                    f"Your {exercise.function} (exercise {exercise.id}) differs from the "
                    f"reference in check '{failed[0].name}': {failed[0].detail}{more}. "
                    f"Run lsce check {exercise.id} to see why."
                )
        return lines

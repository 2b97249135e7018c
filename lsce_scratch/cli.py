"""The ``lsce`` command: exercises (list, check, hint, watch, progress), lessons, pets.

A thin layer over :mod:`lsce_scratch.exercises` and :mod:`lsce_scratch.checking`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from lsce_scratch import checking
from lsce_scratch import exercises as ex

console = Console(highlight=False)
STYLE = {
    checking.PASSED: "green",
    checking.FAILING: "red",
    checking.BLOCKED: "yellow",
    checking.NOT_STARTED: "dim",
    checking.NO_TESTS: "red",
}


def _selected(exercise_id: str | None, everything: bool, root: Path) -> list[ex.Exercise]:
    manifest = ex.load_manifest(root)
    if everything:
        return manifest
    if exercise_id is None:
        results = checking.check(manifest, root, use_cache=True)
        exercise_id = checking.next_exercise(results)
        if exercise_id is None:
            console.print("[green]Every exercise passes.[/green]")
            return []
    return [ex.get_exercise(exercise_id, root)]


def _print_result(result: checking.Result, exercise: ex.Exercise) -> None:
    style = STYLE[result.status]
    console.print(
        f"[{style}]{result.status.upper()}[/{style}]  exercise {exercise.id}: {exercise.title}  "
        f"(tested [bold]{result.tested_file}[/bold]: {exercise.function})"
    )
    if result.status == checking.FAILING:
        console.print(escape(result.detail))
        if "ACTUAL" in result.detail:
            console.print("(ACTUAL is what your code returned, DESIRED what it should return)")
        console.print(f"Stuck? [bold]lsce hint {exercise.id}[/bold]")
    elif result.status == checking.NOT_STARTED:
        console.print(
            f"Open lessons/exercises/{exercise.file}, write {exercise.function}, then run "
            f"[bold]lsce check {exercise.id}[/bold] (hints: [bold]lsce hint {exercise.id}[/bold])"
        )
    elif result.status != checking.PASSED:
        console.print(escape(result.detail))


def cmd_list(args: argparse.Namespace, root: Path) -> int:
    """Every exercise with its status."""
    manifest = ex.load_manifest(root)
    results = checking.check(manifest, root, use_cache=True)
    table = Table(title="lsce exercises")
    for column in ("id", "lesson", "exercise", "file", "status"):
        table.add_column(column)
    for exercise, result in zip(manifest, results, strict=True):
        style = STYLE[result.status]
        table.add_row(
            exercise.id,
            str(exercise.lesson),
            exercise.title,
            f"{exercise.file}: {exercise.function}",
            f"[{style}]{result.status}[/{style}]",
        )
    console.print(table)
    return 0


def cmd_check(args: argparse.Namespace, root: Path) -> int:
    """Run the tests of one exercise (or all of them) against the learner's file."""
    selected = _selected(args.id, args.all, root)
    results = checking.check(selected, root)
    for exercise, result in zip(selected, results, strict=True):
        _print_result(result, exercise)
    return 0 if all(r.status == checking.PASSED for r in results) else 1


def cmd_hint(args: argparse.Namespace, root: Path) -> int:
    """Print one hint of an exercise."""
    exercise = ex.get_exercise(args.id, root)
    count = len(exercise.hints)
    if not 1 <= args.level <= count:
        console.print(f"[red]exercise {exercise.id} has hints 1 to {count}[/red]")
        return 2
    console.print(
        f"[cyan]exercise {exercise.id}[/cyan] {exercise.title}, hint {args.level}/{count}:"
    )
    console.print(escape(exercise.hints[args.level - 1]))
    if args.level < count:
        console.print(f"More: [bold]lsce hint {exercise.id} --level {args.level + 1}[/bold]")
    return 0


def _mtimes(folder: Path) -> dict[Path, float]:
    return {path: path.stat().st_mtime for path in folder.glob("*.py")}


def _changes(folder: Path, poll: bool) -> Iterator[None]:
    """Yield once per batch of saved files in ``folder``: file events, or polling."""
    if not poll:
        try:
            from watchfiles import watch
        except ImportError:
            console.print("[yellow]watchfiles is not installed; polling instead[/yellow]")
        else:
            for _ in watch(folder):
                yield
            return
    seen = _mtimes(folder)
    while True:
        time.sleep(0.5)
        now = _mtimes(folder)
        if now != seen:
            seen = now
            yield


def cmd_watch(args: argparse.Namespace, root: Path) -> int:
    """Check the current exercise whenever a file in lessons/exercises/ is saved."""
    manifest = ex.load_manifest(root)
    by_id = {e.id: e for e in manifest}
    current = checking.next_exercise(checking.check(manifest, root, use_cache=True))
    mode = "polling every 0.5 s" if args.poll else "file events (use --poll if saves go unseen)"
    console.print(f"Watching lessons/exercises/ ({mode}); Ctrl-C to stop.")
    changes = _changes(ex.exercises_dir(root), args.poll)
    try:
        while current is not None:
            (result,) = checking.check([by_id[current]], root)
            _print_result(result, by_id[current])
            if result.status == checking.PASSED:
                results = checking.check(manifest, root, use_cache=True)
                current = checking.next_exercise(results)
                if current is not None:
                    console.print(f"Next: exercise {current}")
                continue
            next(changes)
    except KeyboardInterrupt:
        return 0
    console.print("[green]Every exercise passes. Well done.[/green]")
    return 0


def cmd_progress(args: argparse.Namespace, root: Path) -> int:
    """A progress bar over all exercises and the next one to do."""
    manifest = ex.load_manifest(root)
    results = checking.check(manifest, root, use_cache=True)
    passed = sum(r.status == checking.PASSED for r in results)
    progress = Progress(
        TextColumn("exercises"), BarColumn(), TextColumn("{task.completed}/{task.total}")
    )
    progress.add_task("exercises", total=len(manifest), completed=passed)
    console.print(progress.get_renderable())
    upcoming = checking.next_exercise(results)
    if upcoming is None:
        console.print("[green]All done.[/green]")
    else:
        exercise = ex.get_exercise(upcoming, root)
        console.print(
            f"Next: exercise {exercise.id}, {exercise.title} "
            f"(lessons/exercises/{exercise.file}: {exercise.function}); "
            f"[bold]lsce check {exercise.id}[/bold]"
        )
    return 0


def lesson_scripts(root: Path) -> list[Path]:
    """The lesson scripts lessons/NN_*.py, in course order."""
    return sorted((root / "lessons").glob("[0-9][0-9]_*.py"))


def cmd_run(args: argparse.Namespace, root: Path) -> int:
    """Run one lesson, or all of them in order."""
    scripts = lesson_scripts(root)
    if args.lesson != "all":
        scripts = [s for s in scripts if s.name.startswith(f"{int(args.lesson):02d}_")]
        if not scripts:
            console.print(f"[red]no lesson {args.lesson} in lessons/[/red]")
            return 2
    env = dict(os.environ, LSCE_QUICK="1") if args.quick else dict(os.environ)
    timings = []
    for script in scripts:
        console.rule(f"[bold]{script.name}")
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=root, env=env).returncode
        timings.append((script.name, time.perf_counter() - start, code))
    table = Table(title="lessons")
    for column in ("lesson", "seconds", "result"):
        table.add_column(column)
    for name, seconds, code in timings:
        table.add_row(
            name, f"{seconds:.1f}", "[green]ok[/green]" if code == 0 else f"[red]exit {code}[/red]"
        )
    console.print(table)
    return 0 if all(code == 0 for *_, code in timings) else 1


def cmd_dev_verify(args: argparse.Namespace, root: Path) -> int:
    """Maintainers: the manifest is complete and every stub is still unsolved."""
    problems = checking.verify_manifest(root) + checking.verify_stubs_unsolved(root)
    for problem in problems:
        console.print(f"[red]✗[/red] {escape(problem)}")
    if not problems:
        console.print("[green]manifest, stubs, tests and docs are consistent[/green]")
    return 1 if problems else 0


def _pets(argv: list[str]) -> int:
    from lsce_scratch.pets import command

    parser = argparse.ArgumentParser(prog="lsce pets", description=command.__doc__)
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsce", description="Label-smoothing cross-entropy from scratch: the course's command."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every exercise and its status")
    check = commands.add_parser("check", help="test your solution of an exercise")
    check.add_argument("id", nargs="?", help="exercise id, e.g. 4.1 (default: the next one)")
    check.add_argument("--all", action="store_true", help="check every exercise")
    hint = commands.add_parser("hint", help="a hint for an exercise")
    hint.add_argument("id")
    hint.add_argument("--level", type=int, default=1, help="1 is a nudge, the last an outline")
    watch = commands.add_parser("watch", help="re-check the current exercise on every save")
    watch.add_argument(
        "--poll", action="store_true", help="poll for changes (for file systems without events)"
    )
    run = commands.add_parser("run", help="run a lesson script (or all of them)")
    run.add_argument("lesson", help="a lesson number, or 'all'")
    run.add_argument("--quick", action="store_true", help="the lessons' quick mode (LSCE_QUICK=1)")
    commands.add_parser("progress", help="how far you are, and what is next")
    commands.add_parser(
        "pets", help="train the Oxford-IIIT Pet classifier (lsce pets --help)", add_help=False
    )
    dev = commands.add_parser("dev", help="maintainer checks")
    dev.add_argument("action", choices=["verify"])
    return parser


HANDLERS: dict[str, Callable[[argparse.Namespace, Path], int]] = {
    "list": cmd_list,
    "check": cmd_check,
    "hint": cmd_hint,
    "watch": cmd_watch,
    "run": cmd_run,
    "progress": cmd_progress,
    "dev": cmd_dev_verify,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pets"]:
        return _pets(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        root = ex.find_root()
    except FileNotFoundError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    try:
        return HANDLERS[args.command](args, root)
    except ex.UnknownExerciseError as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

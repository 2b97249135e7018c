"""The ``lsce`` command: exercises (list, check, hint, watch, progress), lessons, pets.

A thin layer over :mod:`lsce_course.exercises` and :mod:`lsce_course.checking`. What it
says comes from :mod:`lsce_course.messages`, in English or Chinese (``lsce --lang zh``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from lsce_course import checking, course, messages
from lsce_course import exercises as ex

console = Console(highlight=False)
# the language of the messages: main() sets it from --lang, $LSCE_LANG or the locale
lang = messages.DEFAULT
# in the order a summary line counts them
STYLE = {
    checking.PASSED: "green",
    checking.FAILING: "red",
    checking.ERROR: "red",
    checking.TIMED_OUT: "red",
    checking.NO_TESTS: "red",
    checking.BLOCKED: "yellow",
    checking.NOT_STARTED: "dim",
}


MAX_REASONS = 6  # failing tests listed, most telling first; -v lists them all


def say(message_id: str, **values: object) -> str:
    """A message of :mod:`lsce_course.messages` in the chosen language."""
    return messages.message(message_id, lang, **values)


def _timeout(args: argparse.Namespace) -> float:
    return (
        args.timeout if getattr(args, "timeout", None) else checking.default_timeout()
    )


def _selected(
    ids: list[str], everything: bool, args: argparse.Namespace, root: Path
) -> list:
    manifest = ex.load_manifest(root)
    if everything:
        return manifest
    if not ids:
        results = checking.check(manifest, root, use_cache=True, timeout=_timeout(args))
        upcoming = checking.next_exercise(results or [])
        if upcoming is None:
            console.print(say("check.all_pass"))
            return []
        ids = [upcoming]
    return [ex.get_exercise(i, root) for i in ids]


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def print_result(
    result: checking.Result, exercise: ex.Exercise, verbose: bool = False
) -> None:
    """One exercise's status, then what to do: every failing test, most telling first."""
    style = STYLE[result.status]
    word = messages.status_word(result.status, lang).upper()
    console.print(
        say(
            "check.header",
            status=f"[{style}]{word}[/{style}]",
            id=exercise.id,
            title=exercise.title_in(lang),
            file=exercise.file,
            function=exercise.function,
        )
    )
    if result.note:
        console.print(say("check.note", note=escape(result.note)))
    summary = checking.text(result, "summary", lang)
    if result.status == checking.NOT_STARTED:
        console.print(
            say(
                "check.not_started",
                file=exercise.file,
                function=exercise.function,
                id=exercise.id,
            )
        )
    elif result.failures:
        if summary:
            console.print(say("check.failures", summary=escape(summary)))
        # tests that fail for the same reason at the same line share one line
        same: dict[tuple[str, str], list[str]] = {}
        for failure in result.failures:
            reason = checking.text(failure, "reason", lang)
            same.setdefault((reason, failure.where), []).append(
                checking.text(failure, "test", lang)
            )
        shown_reasons = (
            list(same.items()) if verbose else list(same.items())[:MAX_REASONS]
        )
        for (reason, where), tests in shown_reasons:
            more = (
                say("check.failure_more", count=len(tests) - 1)
                if len(tests) > 1
                else ""
            )
            console.print(
                say(
                    "check.failure",
                    test=escape(tests[0]),
                    more=more,
                    reason=escape(reason),
                )
            )
            if where:
                console.print(say("check.failure_at", where=escape(where)))
        if len(same) > len(shown_reasons):
            console.print(
                say("check.more_reasons", count=len(same) - len(shown_reasons))
            )
        shown = result.failures if verbose else result.failures[:1]
        for failure in shown:
            if failure.detail:
                console.print(
                    f"[bold]{escape(checking.text(failure, 'test', lang))}[/bold]"
                )
                console.print(escape(_indent(failure.detail)))
        if not verbose and any(f.detail for f in result.failures[1:]):
            console.print(say("check.all_details", id=exercise.id))
        console.print(say("check.stuck", id=exercise.id))
    elif summary:
        console.print(escape(summary))
    if result.output and verbose:
        console.rule(say("check.printed_rule"), style="dim")
        console.print(escape(result.output.rstrip()))
        console.rule(style="dim")
    elif result.output and result.status != checking.PASSED:
        console.print(
            say("check.printed", count=len(result.output.splitlines()), id=exercise.id)
        )


def _count(results: list[checking.Result]) -> str:
    """'3 of 22 exercises pass; 2 failing, 17 not started'."""
    passed = sum(r.status == checking.PASSED for r in results)
    counts = [(sum(r.status == status for r in results), status) for status in STYLE]
    rest = say("count.separator").join(
        say("count.item", count=n, status=messages.status_word(status, lang))
        for n, status in counts
        if n and status != checking.PASSED
    )
    if rest:
        return say("count.summary_rest", passed=passed, total=len(results), rest=rest)
    return say("count.summary", passed=passed, total=len(results))


def cmd_list(args: argparse.Namespace, root: Path) -> int:
    """Every exercise with its status."""
    manifest = ex.load_manifest(root)
    with _checking(say("checking.changed")):
        results = (
            checking.check(manifest, root, use_cache=True, timeout=_timeout(args)) or []
        )
    table = Table(title=say("list.title"))
    table.add_column(say("list.id"), no_wrap=True)
    table.add_column(say("list.exercise"), ratio=1)
    # file names and statuses are never cut: the title column wraps instead
    table.add_column(say("list.file"), no_wrap=True)
    table.add_column(say("list.status"), no_wrap=True)
    for exercise, result in zip(manifest, results, strict=True):
        style = STYLE[result.status]
        table.add_row(
            exercise.id,
            exercise.title_in(lang),
            f"{exercise.file}: {exercise.function}",
            f"[{style}]{messages.status_word(result.status, lang)}[/{style}]",
        )
    console.print(table)
    console.print(_count(results))
    return 0


def cmd_check(args: argparse.Namespace, root: Path) -> int:
    """Run the tests of one exercise (or several, or all) against the learner's files."""
    selected = _selected(args.ids, args.all, args, root)
    if not selected:
        return 0
    names = (
        ", ".join(e.id for e in selected)
        if len(selected) <= 3
        else say("checking.n_exercises", count=len(selected))
    )
    with _checking(say("checking.ids", ids=names)):
        results = checking.check(selected, root, timeout=_timeout(args)) or []
    for exercise, result in zip(selected, results, strict=True):
        print_result(result, exercise, args.verbose)
    if len(selected) > 1:
        console.print(_count(results))
    return 0 if all(r.status == checking.PASSED for r in results) else 1


def cmd_hint(args: argparse.Namespace, root: Path) -> int:
    """Print one hint of an exercise."""
    exercise = ex.get_exercise(args.id, root)
    hints = exercise.hints_in(lang)
    count = len(hints)
    if not 1 <= args.level <= count:
        console.print(say("hint.levels", id=exercise.id, count=count))
        return 2
    title = exercise.title_in(lang)
    console.print(
        say("hint.header", id=exercise.id, title=title, level=args.level, count=count)
    )
    console.print(escape(hints[args.level - 1]))
    if args.level < count:
        console.print(say("hint.more", id=exercise.id, level=args.level + 1))
    return 0


def _checking(what: str) -> AbstractContextManager:
    """A spinner on a terminal, one plain line otherwise, while tests run."""
    if console.is_terminal:
        return console.status(f"{what} …")
    console.print(f"{what} …")
    return contextlib.nullcontext()


class Snapshot:
    """The modification times of the learner's files, to notice a save."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen = self._now()

    def _now(self) -> dict[str, tuple[int, int]]:
        found = {}
        for path in self.folder.glob("*.py"):
            with contextlib.suppress(FileNotFoundError):  # an editor replacing the file
                stat = path.stat()
                found[path.name] = (stat.st_mtime_ns, stat.st_size)
        return found

    def changed(self) -> bool:
        """True when a file was saved (added, removed) since the last :meth:`take`."""
        return self._now() != self.seen

    def take(self) -> None:
        self.seen = self._now()


def wait_for_save(snapshot: Snapshot, poll: bool) -> None:
    """Block until a file in the learner's folder is saved: file events, or polling.

    Either way the snapshot decides, so a save between two checks is never missed.
    """
    if not poll:
        try:
            from watchfiles import watch
        except ImportError:
            console.print(say("watch.no_watchfiles"))
        else:
            for _ in watch(snapshot.folder, yield_on_timeout=True, rust_timeout=500):
                if snapshot.changed():
                    break
            snapshot.take()
            return
    while not snapshot.changed():
        time.sleep(0.3)
    snapshot.take()


def cmd_watch(args: argparse.Namespace, root: Path) -> int:
    """Check an exercise whenever a file in lessons/exercises/ is saved; move on when it
    passes. A save while a check runs stops that check and starts a new one."""
    manifest = ex.load_manifest(root)
    by_id = {e.id: e for e in manifest}
    # the snapshot comes first: a save during the first check must not go unseen
    snapshot = Snapshot(ex.exercises_dir(root))
    timeout = _timeout(args)
    if args.id is not None:
        current: str | None = ex.get_exercise(args.id, root).id
    else:
        current = checking.next_exercise(
            checking.check(manifest, root, use_cache=True, timeout=timeout) or []
        )
    mode = say("watch.polling") if args.poll else say("watch.events")
    console.print(say("watch.start", mode=mode))
    while current is not None:
        exercise = by_id[current]
        with _checking(say("checking.ids", ids=current)):
            results = checking.check(
                [exercise], root, timeout=timeout, cancelled=snapshot.changed
            )
        if results is None:
            console.print(say("watch.saved_again"))
            snapshot.take()
            continue
        print_result(results[0], exercise, args.verbose)
        if results[0].status == checking.PASSED:
            everything = (
                checking.check(manifest, root, use_cache=True, timeout=timeout) or []
            )
            current = checking.next_exercise(everything, after=current) or (
                checking.next_exercise(everything)
            )
            if current is not None:
                console.print(say("watch.next", id=current))
            continue
        console.print(say("watch.waiting"))
        wait_for_save(snapshot, args.poll)
    console.print(say("watch.all_pass"))
    return 0


def cmd_progress(args: argparse.Namespace, root: Path) -> int:
    """A progress bar over all exercises and the next one to do."""
    manifest = ex.load_manifest(root)
    with _checking(say("checking.changed")):
        results = (
            checking.check(manifest, root, use_cache=True, timeout=_timeout(args)) or []
        )
    passed = sum(r.status == checking.PASSED for r in results)
    progress = Progress(
        TextColumn(say("progress.bar")),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    progress.add_task("exercises", total=len(manifest), completed=passed)
    console.print(progress.get_renderable())
    console.print(_count(results))
    upcoming = checking.next_exercise(results)
    if upcoming is None:
        console.print(say("progress.done"))
    else:
        exercise = ex.get_exercise(upcoming, root)
        console.print(
            say(
                "progress.next",
                id=exercise.id,
                title=exercise.title_in(lang),
                file=exercise.file,
                function=exercise.function,
            )
        )
    return 0


def cmd_run(args: argparse.Namespace, root: Path) -> int:
    """Run one lesson, or all of them in order (the lessons of lessons/course.toml)."""
    lessons = course.load_lessons(root)
    if args.lesson != "all":
        lesson = course.find_lesson(args.lesson, root)
        if lesson is None:
            numbers = ", ".join(str(lesson.number) for lesson in lessons)
            console.print(
                f"[red]there is no lesson {args.lesson!r}[/red]: give a lesson number "
                f"({numbers}) or 'all', e.g. [bold]lsce run 4[/bold]"
            )
            return 2
        lessons = [lesson]
    scripts = [root / lesson.script for lesson in lessons]
    env = dict(os.environ, LSCE_QUICK="1") if args.quick else dict(os.environ)
    timings = []
    for script in scripts:
        console.rule(f"[bold]{script.name}")
        start = time.perf_counter()
        try:
            code = subprocess.run(
                [sys.executable, str(script)], cwd=root, env=env, timeout=args.timeout
            ).returncode
        except subprocess.TimeoutExpired:
            console.print(
                f"[red]{script.name} did not finish within {args.timeout:g} s and was "
                f"stopped[/red] (a learner's function that never returns? --timeout for more)"
            )
            code = 124
        timings.append((script.name, time.perf_counter() - start, code))
    table = Table(title="lessons")
    for column in ("lesson", "seconds", "result"):
        table.add_column(column)
    for name, seconds, code in timings:
        table.add_row(
            name,
            f"{seconds:.1f}",
            "[green]ok[/green]" if code == 0 else f"[red]exit {code}[/red]",
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
    from lsce_examples.pets import command

    parser = argparse.ArgumentParser(prog="lsce pets", description=command.__doc__)
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsce",
        description="Label-smoothing cross-entropy from scratch: the course's command.",
    )
    languages = " or ".join(messages.LANGUAGES)
    parser.add_argument(
        "--lang",
        metavar="LANG",
        help=f"the language of lsce's messages and hints: {languages} "
        "(default: $LSCE_LANG, else zh where the locale is Chinese, else en)",
    )
    # --lang after the command too (lsce hint 1.1 --lang zh); SUPPRESS keeps a --lang
    # given before the command when none comes after it
    language = argparse.ArgumentParser(add_help=False)
    language.add_argument(
        "--lang", metavar="LANG", default=argparse.SUPPRESS, help="as lsce --lang"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    timeout = argparse.ArgumentParser(add_help=False)
    timeout.add_argument(
        "--timeout",
        type=float,
        help="seconds one test may run before it is stopped "
        f"(default {checking.DEFAULT_TIMEOUT:g}, or $LSCE_TIMEOUT)",
    )
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="every test's details and your printed output",
    )
    commands.add_parser(
        "list", help="every exercise and its status", parents=[timeout, language]
    )
    check = commands.add_parser(
        "check",
        help="test your solution of an exercise",
        parents=[timeout, verbose, language],
    )
    check.add_argument(
        "ids", nargs="*", metavar="ID", help="e.g. 4.1 (default: the next one)"
    )
    check.add_argument("--all", action="store_true", help="check every exercise")
    hint = commands.add_parser(
        "hint", help="a hint for an exercise", parents=[language]
    )
    hint.add_argument("id")
    hint.add_argument(
        "--level", type=int, default=1, help="1 is a nudge, the last an outline"
    )
    watch = commands.add_parser(
        "watch",
        help="re-check an exercise on every save",
        parents=[timeout, verbose, language],
    )
    watch.add_argument(
        "id", nargs="?", help="start with this exercise (default: the next one)"
    )
    watch.add_argument(
        "--poll",
        action="store_true",
        help="poll for changes (for file systems without events)",
    )
    run = commands.add_parser(
        "run", help="run a lesson script (or all of them)", parents=[language]
    )
    run.add_argument("lesson", help="a lesson number, or 'all'")
    run.add_argument(
        "--quick", action="store_true", help="the lessons' quick mode (LSCE_QUICK=1)"
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds one lesson may run (default 3600)",
    )
    commands.add_parser(
        "progress",
        help="how far you are, and what is next",
        parents=[timeout, language],
    )
    commands.add_parser(
        "pets",
        help="train the Oxford-IIIT Pet classifier (lsce pets --help)",
        add_help=False,
    )
    dev = commands.add_parser("dev", help="maintainer checks", parents=[language])
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


def _without_leading_lang(argv: list[str]) -> list[str]:
    """``argv`` without a ``--lang X`` before the command (to find ``lsce --lang zh pets``)."""
    if argv[:1] == ["--lang"]:
        return argv[2:]
    if argv[:1] and argv[0].startswith("--lang="):
        return argv[1:]
    return argv


def main(argv: list[str] | None = None) -> int:
    global lang
    argv = sys.argv[1:] if argv is None else argv
    if _without_leading_lang(argv)[:1] == ["pets"]:
        return _pets(_without_leading_lang(argv)[1:])
    args = build_parser().parse_args(argv)
    try:
        lang = messages.language(args.lang)
    except messages.UnknownLanguageError as error:
        # in both languages: the one wanted is unknown
        console.print(f"[red]{escape(error.text('en'))}[/red]")
        console.print(f"[red]{escape(error.text('zh'))}[/red]")
        return 2
    try:
        root = ex.find_root()
    except FileNotFoundError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    try:
        return HANDLERS[args.command](args, root)
    except ex.UnknownExerciseError as error:
        console.print(f"[red]{escape(error.text(lang))}[/red]")
        return 2
    except KeyboardInterrupt:
        # checks stop their pytest process on the way out (checking.run_tests)
        console.print("\n" + say("cli.stopped"))
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

"""The exercise mechanism: the manifest, the learner's stubs and the reference.

``lessons/exercises/exercises.toml`` is the one list of exercises. Each entry names the
learner's file and function, the ``lsce_scratch`` object with the same contract (the
reference), the tests that check it and its hints, in English and in Chinese (``title_zh``,
``hints_zh``, ``library_note_zh``). The CLI, the docs, the test suite and the lessons all
read it through this module.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import os
import sys
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.markup import escape

from lsce_course.messages import message

MANIFEST = Path("lessons") / "exercises" / "exercises.toml"


@dataclass(frozen=True)
class Exercise:
    """One manifest entry."""

    id: str  # "4.2": lesson 4, second exercise
    title: str
    lesson: int
    file: str  # the learner's file, relative to lessons/exercises/
    function: str  # "smooth_labels", or "LSCEFunction.backward" for a method
    reference: str  # "lsce_scratch.losses:smooth_labels" (the object, not the method)
    tests: str  # the pytest file that checks it, relative to the repository root
    hints: tuple[str, ...]
    requires: tuple[str, ...] = ()
    # what the library's version adds to a learner's solution (validation, dtypes, options);
    # the site shows it above the library's code, collapsed, after the learner-level solution
    library_note: str = ""
    # the Chinese edition: the title, the hints (at least as many levels as ``hints``) and
    # the library note in Chinese; ``lsce --lang zh`` and the zh pages show these
    title_zh: str = ""
    hints_zh: tuple[str, ...] = ()
    library_note_zh: str = ""

    def title_in(self, lang: str) -> str:
        """The title in ``lang`` ('en' or 'zh'); the English one where there is no other."""
        return self.title_zh if lang == "zh" and self.title_zh else self.title

    def hints_in(self, lang: str) -> tuple[str, ...]:
        """The hints in ``lang``, from a nudge to an outline; English where there are none."""
        return self.hints_zh if lang == "zh" and self.hints_zh else self.hints

    def library_note_in(self, lang: str) -> str:
        """The library note in ``lang``; the English one where there is no other."""
        return (
            self.library_note_zh
            if lang == "zh" and self.library_note_zh
            else self.library_note
        )

    @property
    def marker(self) -> str:
        """The pytest marker of this exercise's tests: '4.2' → 'ex4_2'."""
        return "ex" + self.id.replace(".", "_")

    @property
    def object_name(self) -> str:
        """The top-level name in the learner's file: the function, or the method's class."""
        return self.function.split(".")[0]


def find_root(start: Path | None = None) -> Path:
    """The course repository: $LSCE_ROOT, else the nearest folder up from ``start`` (or the
    current directory) that holds the manifest, else the checkout this package lives in."""
    if os.environ.get("LSCE_ROOT"):
        return Path(os.environ["LSCE_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MANIFEST).is_file():
            return folder
    package_checkout = Path(__file__).resolve().parents[1]
    if (package_checkout / MANIFEST).is_file():
        return package_checkout
    raise FileNotFoundError(
        f"cannot find {MANIFEST} above {here}; run this from the course repository or set LSCE_ROOT"
    )


def exercises_dir(root: Path | None = None) -> Path:
    """The learner's folder of stubs, lessons/exercises/ of the course repository."""
    return (root or find_root()) / MANIFEST.parent


def load_manifest(root: Path | None = None) -> list[Exercise]:
    """All exercises, in course order."""
    path = (root or find_root()) / MANIFEST
    with path.open("rb") as handle:
        entries = tomllib.load(handle)["exercise"]
    exercises = []
    for entry in entries:
        entry = dict(entry)
        entry["hints"] = tuple(entry["hints"])
        entry["hints_zh"] = tuple(entry.get("hints_zh", ()))
        entry["requires"] = tuple(entry.get("requires", ()))
        exercises.append(Exercise(**entry))
    return exercises


class UnknownExerciseError(LookupError):
    """An exercise id that the manifest does not have; ``str()`` lists the ids."""

    def __init__(self, exercise_id: str, known: str) -> None:
        self.exercise_id, self.known = exercise_id, known
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        """The error in ``lang``."""
        return message(
            "error.unknown_exercise", lang, id=repr(self.exercise_id), known=self.known
        )


def get_exercise(exercise_id: str, root: Path | None = None) -> Exercise:
    """The manifest entry with this id, or an UnknownExerciseError that lists the ids."""
    exercises = load_manifest(root)
    for exercise in exercises:
        if exercise.id == exercise_id:
            return exercise
    known = ", ".join(e.id for e in exercises)
    raise UnknownExerciseError(exercise_id, known)


def reference_object(exercise: Exercise) -> object:
    """The ``lsce_scratch`` function or class that the exercise rebuilds."""
    module_name, _, name = exercise.reference.partition(":")
    return getattr(importlib.import_module(module_name), name)


class LearnerFileError(Exception):
    """The learner's file cannot be used: a syntax error, a failing import, a missing function.

    ``str()`` is the whole message for the learner: the file and line, what went wrong and
    what to do. No traceback of ours goes with it.
    """


def display_path(path: Path, root: Path | None = None) -> str:
    """``lessons/exercises/ex01_softmax.py`` rather than an absolute path, where possible."""
    try:
        return str(path.resolve().relative_to((root or find_root()).resolve()))
    except (ValueError, FileNotFoundError):
        return str(path)


def describe_syntax_error(error: SyntaxError, shown: str) -> str:
    """The file, the line, the caret and what to do, in a few lines."""
    lines = [f"{shown}, line {error.lineno}: SyntaxError: {error.msg}"]
    if error.text:
        text = error.text.rstrip("\n")
        stripped = text.lstrip()
        lines.append("    " + stripped)
        if error.offset:
            caret = max(0, error.offset - 1 - (len(text) - len(stripped)))
            lines.append("    " + " " * caret + "^")
    lines.append("Python cannot read the file: fix that line, save, and check again.")
    return "\n".join(lines)


def learner_frame(error: BaseException, folder: Path) -> tuple[str, int, str] | None:
    """The deepest frame of ``error``'s traceback inside ``folder``: (file, line, code)."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if path.parent.resolve() == folder.resolve():
            found = (display_path(path), frame.lineno or 0, (frame.line or "").strip())
    return found


def _learner_import_path(folder: Path) -> None:
    """Put the learner's folder first on sys.path: ``from ex01_softmax import log_softmax``
    then works in every exercise file, in lsce check, in the lessons and in a notebook."""
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))


def load_learner_module(path: Path) -> ModuleType:
    """Import the learner's file under its own name (``ex01_softmax``), again whenever it
    changed on disk. Raises LearnerFileError when the file cannot be imported."""
    path = path.resolve()
    _learner_import_path(path.parent)
    name, mtime = path.stem, path.stat().st_mtime_ns
    module = sys.modules.get(name)
    same_file = getattr(module, "__file__", None) == str(path)
    if same_file and getattr(module, "_lsce_mtime", 0) == mtime:
        return module  # type: ignore[return-value]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LearnerFileError(
            f"{display_path(path)} is not a Python file Python can import"
        )
    module = importlib.util.module_from_spec(spec)
    module._lsce_mtime = mtime  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[name]
        where = Path(error.filename) if error.filename else path
        raise LearnerFileError(
            describe_syntax_error(error, display_path(where))
        ) from None
    except Exception as error:  # the learner's code at import time: anything can happen
        del sys.modules[name]
        frame = learner_frame(error, path.parent)
        where = f"{frame[0]}, line {frame[1]}" if frame else display_path(path)
        code = f"\n    {frame[2]}" if frame and frame[2] else ""
        raise LearnerFileError(
            f"{where}: {type(error).__name__}: {error}{code}\n"
            f"This runs when Python imports {display_path(path)}: fix it and check again."
        ) from None
    return module


def learner_path(exercise: Exercise, root: Path | None = None) -> Path:
    """The learner's file for this exercise."""
    return exercises_dir(root) / exercise.file


def learner_object(exercise: Exercise, root: Path | None = None) -> object:
    """The learner's function or class for this exercise (LearnerFileError if it is missing)."""
    path = learner_path(exercise, root)
    module = load_learner_module(path)
    if not hasattr(module, exercise.object_name):
        raise LearnerFileError(missing_definition_message(exercise, path, root))
    return getattr(module, exercise.object_name)


def definitions(tree: ast.Module, dotted: str) -> list[ast.FunctionDef]:
    """Every definition of a function, or of a method as 'Class.method', at the top of a
    module, in file order. Python uses the last one."""
    *classes, name = dotted.split(".")
    bodies: list[list[ast.stmt]] = [tree.body]
    for part in classes:
        bodies = [
            node.body
            for body in bodies
            for node in body
            if isinstance(node, ast.ClassDef) and node.name == part
        ][-1:]
    return [
        node
        for body in bodies
        for node in body
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]


def top_level_names(tree: ast.Module) -> list[str]:
    """The functions and classes a module defines at its top level."""
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


def missing_definition_message(
    exercise: Exercise, path: Path, root: Path | None = None
) -> str:
    """Say that the file lacks the exercise's function, and which similar name it has."""
    try:
        names = top_level_names(ast.parse(path.read_text(encoding="utf-8")))
    except SyntaxError:
        names = []
    close = difflib.get_close_matches(exercise.object_name, names, n=1, cutoff=0.6)
    kind = "method" if "." in exercise.function else "function"
    shown = display_path(path, root)
    message = f"{shown} has no {kind} {exercise.function} (exercise {exercise.id})"
    if close:
        return (
            f"{message}, but it defines {close[0]}. The tests call {exercise.object_name}: "
            f"rename {close[0]} back to {exercise.object_name}."
        )
    return f"{message}. The tests call {exercise.function}: define it with that name."


def is_stub_body(function: ast.FunctionDef) -> bool:
    """True when the body is (a docstring and) a lone ``raise NotImplementedError(...)``."""
    body = function.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    ):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


@dataclass(frozen=True)
class Definition:
    """What the learner's file says about one exercise, read without running it."""

    started: bool  # the definition Python uses is not the untouched stub
    note: str = ""  # e.g. that the function is defined twice


def read_definition(exercise: Exercise, root: Path | None = None) -> Definition:
    """Read (never run) the learner's file: is the exercise started? LearnerFileError for
    a syntax error or a missing function."""
    path = learner_path(exercise, root)
    shown = display_path(path, root)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as error:
        raise LearnerFileError(describe_syntax_error(error, shown)) from None
    found = definitions(tree, exercise.function)
    if not found:
        raise LearnerFileError(missing_definition_message(exercise, path, root))
    note = ""
    if len(found) > 1:
        lines = ", ".join(str(d.lineno) for d in found)
        note = (
            f"{shown} defines {exercise.function} {len(found)} times (lines {lines}); Python "
            f"uses the last one, at line {found[-1].lineno}: delete the others"
        )
    return Definition(started=not is_stub_body(found[-1]), note=note)


def is_started(exercise: Exercise, root: Path | None = None) -> bool:
    """False while the definition Python uses is still the untouched stub."""
    return read_definition(exercise, root).started


def imported_siblings(path: Path) -> list[Path]:
    """The other exercise files that ``path`` imports (``from ex01_softmax import ...``)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, OSError):
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return sorted(
        path.parent / f"{n}.py" for n in names if (path.parent / f"{n}.py").is_file()
    )


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` picked for a lesson, remembered for the lesson's check table."""

    exercise: Exercise
    yours: bool  # the learner's object is in use
    problem: str = ""  # why the learner's file could not be used, if it could not


_chosen: dict[str, Choice] = {}


def chosen(exercise_id: str) -> Choice | None:
    """What :func:`choose` picked for this exercise in this process, if it was called."""
    return _chosen.get(exercise_id)


def chosen_all() -> list[Choice]:
    """Every choice :func:`choose` made in this process, in the order it made them."""
    return list(_chosen.values())


def choose(exercise_id: str, console: Console | None = None) -> object:
    """For lessons: the learner's function if they started it, else the reference. Says which.

    A learner's file that cannot be used (a syntax error, a missing function) is reported in
    one line; the lesson then uses the reference and ends with a non-zero exit.
    """
    console = console or Console(highlight=False)
    exercise = get_exercise(exercise_id)
    try:
        started = is_started(exercise)
        yours = learner_object(exercise) if started else None
    except LearnerFileError as error:
        problem = str(error)
        _chosen[exercise.id] = Choice(exercise, yours=False, problem=problem)
        console.print(
            f"[red]exercise {exercise.id}[/red]: your file cannot be used, so this lesson "
            f"uses the reference {exercise.reference}:\n{escape(problem)}\n"
            f"Run [bold]lsce check {exercise.id}[/bold] once it is fixed."
        )
        return reference_object(exercise)
    _chosen[exercise.id] = Choice(exercise, yours=started)
    if started:
        console.print(
            f"[cyan]exercise {exercise.id}[/cyan]: using [bold]your[/bold] {exercise.function} "
            f"from lessons/exercises/{exercise.file}"
        )
        return yours
    console.print(
        f"[cyan]exercise {exercise.id}[/cyan]: not started, using the reference "
        f"{exercise.reference} (try it: [bold]lsce hint {exercise.id}[/bold])"
    )
    return reference_object(exercise)


@dataclass(frozen=True)
class Pair:
    """A forward/backward pair for a lesson (see :func:`choose_pair`)."""

    forward: Callable  # for the loss checks
    backward: Callable
    backward_forward: Callable  # the forward whose cache ``backward`` reads
    yours_forward: bool
    yours_backward: bool


def choose_pair(
    forward_id: str, backward_id: str, console: Console | None = None
) -> Pair:
    """For lessons: :func:`choose` a forward and a backward whose backward reads the cache
    of its own forward. A learner's backward runs on the learner's forward's cache, the
    reference's on the reference's; a learner's backward without a learner's forward yet
    waits, and the lesson uses the reference pair."""
    console = console or Console(highlight=False)
    forward, backward = choose(forward_id, console), choose(backward_id, console)
    reference_forward = reference_object(get_exercise(forward_id))
    reference_backward = reference_object(get_exercise(backward_id))
    yours_forward = forward is not reference_forward
    yours_backward = backward is not reference_backward
    if yours_backward and not yours_forward:
        console.print(
            f"[yellow]your backward (exercise {backward_id}) reads the cache of your forward "
            f"(exercise {forward_id}), which is not started yet: using the reference "
            f"pair[/yellow]"
        )
        backward, yours_backward = reference_backward, False
        _chosen[backward_id] = Choice(get_exercise(backward_id), yours=False)
    backward_forward = forward if yours_backward else reference_forward
    return Pair(forward, backward, backward_forward, yours_forward, yours_backward)

"""The exercise mechanism: the manifest, the learner's stubs and the reference.

``lessons/exercises/exercises.toml`` is the one list of exercises. Each entry names the
learner's file and function, the ``lsce_scratch`` object with the same contract (the
reference), the tests that check it and its hints. The CLI, the docs, the test suite and
the lessons all read it through this module.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from rich.console import Console

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
        entry["requires"] = tuple(entry.get("requires", ()))
        exercises.append(Exercise(**entry))
    return exercises


class UnknownExerciseError(LookupError):
    """An exercise id that the manifest does not have."""


def get_exercise(exercise_id: str, root: Path | None = None) -> Exercise:
    """The manifest entry with this id, or an UnknownExerciseError that lists the ids."""
    exercises = load_manifest(root)
    for exercise in exercises:
        if exercise.id == exercise_id:
            return exercise
    known = ", ".join(e.id for e in exercises)
    raise UnknownExerciseError(f"no exercise {exercise_id!r}; the exercises are {known}")


def reference_object(exercise: Exercise) -> object:
    """The ``lsce_scratch`` function or class that the exercise rebuilds."""
    module_name, _, name = exercise.reference.partition(":")
    return getattr(importlib.import_module(module_name), name)


_loaded: dict[Path, tuple[float, ModuleType]] = {}


def load_learner_module(path: Path) -> ModuleType:
    """Import the learner's file by path (again whenever it changed on disk)."""
    path = path.resolve()
    mtime = path.stat().st_mtime
    cached = _loaded.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    name = f"lsce_learner_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[path] = (mtime, module)
    return module


def learner_path(exercise: Exercise, root: Path | None = None) -> Path:
    """The learner's file for this exercise."""
    return exercises_dir(root) / exercise.file


def learner_object(exercise: Exercise, root: Path | None = None) -> object:
    """The learner's function or class for this exercise."""
    module = load_learner_module(learner_path(exercise, root))
    return getattr(module, exercise.object_name)


def _definition(tree: ast.Module, dotted: str) -> ast.FunctionDef | None:
    """Find a function, or a method as 'Class.method', at the top of a module."""
    body: list[ast.stmt] = tree.body
    found: ast.AST | None = None
    for part in dotted.split("."):
        found = next(
            (n for n in body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part),
            None,
        )
        if found is None:
            return None
        body = found.body  # type: ignore[attr-defined]
    return found if isinstance(found, ast.FunctionDef) else None


def is_stub_body(function: ast.FunctionDef) -> bool:
    """True when the body is (a docstring and) a lone ``raise NotImplementedError(...)``."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def is_started(exercise: Exercise, root: Path | None = None) -> bool:
    """False while the learner's function is still the untouched stub."""
    source = learner_path(exercise, root).read_text(encoding="utf-8")
    definition = _definition(ast.parse(source), exercise.function)
    if definition is None:
        raise LookupError(f"{exercise.file} has no {exercise.function} (exercise {exercise.id})")
    return not is_stub_body(definition)


def choose(exercise_id: str, console: Console | None = None) -> object:
    """For lessons: the learner's function if they started it, else the reference. Says which."""
    console = console or Console(highlight=False)
    exercise = get_exercise(exercise_id)
    if is_started(exercise):
        console.print(
            f"[cyan]exercise {exercise.id}[/cyan]: using [bold]your[/bold] {exercise.function} "
            f"from lessons/exercises/{exercise.file}"
        )
        return learner_object(exercise)
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

    @property
    def yours(self) -> bool:
        return self.yours_forward or self.yours_backward


def choose_pair(forward_id: str, backward_id: str, console: Console | None = None) -> Pair:
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
    backward_forward = forward if yours_backward else reference_forward
    return Pair(forward, backward, backward_forward, yours_forward, yours_backward)

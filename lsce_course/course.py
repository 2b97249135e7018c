"""The lessons of the course, read from ``lessons/course.toml``: the one list that the
``lsce run`` command, the lesson tests, the navigation check and the README check share."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from lsce_course.exercises import Exercise, find_root, load_manifest

COURSE = Path("lessons") / "course.toml"


@dataclass(frozen=True)
class Lesson:
    """One lesson: its script, its page, the figures it saves and its exercises."""

    number: int
    slug: str
    title: str
    summary: str  # one line, for the README's lesson table
    script: str  # relative to the repository root
    page: str  # relative to docs/
    figures: tuple[str, ...]
    exercises: tuple[Exercise, ...]

    @property
    def label(self) -> str:
        """The two-digit number the pages and file names use: 4 → '04'."""
        return f"{self.number:02d}"


def load_lessons(root: Path | None = None) -> list[Lesson]:
    """Every lesson, in course order, each with its exercises from the exercise manifest."""
    root = root or find_root()
    with (root / COURSE).open("rb") as handle:
        entries = tomllib.load(handle)["lesson"]
    manifest = load_manifest(root)
    return [
        Lesson(
            **{**entry, "figures": tuple(entry["figures"])},
            exercises=tuple(e for e in manifest if e.lesson == entry["number"]),
        )
        for entry in entries
    ]


def find_lesson(number: str, root: Path | None = None) -> Lesson | None:
    """The lesson with this number ('4' or '04'), or None."""
    wanted = number.lstrip("0")
    return next(
        (lesson for lesson in load_lessons(root) if str(lesson.number) == wanted), None
    )

"""The exercises, checked three ways: the solutions pass, the stubs stay unsolved (in
test_exercise_mechanism.py), and every catalogued learner mistake gets its diagnosis.

The catalogue is tests/exercises/mistakes/, one file per exercise file. Each mistake is
written into a copy of the course whose other functions are the solutions in
lessons/solutions/, and the real
``lsce check`` must report its status and a fragment of its message. Mistakes whose files
do not depend on each other are checked together, in one ``lsce check`` run.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsce_course import checking
from lsce_course import exercises as ex
from tests.learner import ROOT, SOLUTIONS, copy_course, lsce, write_body

CATALOGUE = ROOT / "tests" / "exercises" / "mistakes"
STATUSES = {
    checking.FAILING,
    checking.ERROR,
    checking.TIMED_OUT,
    checking.NOT_STARTED,
    checking.BLOCKED,
}
# enough for every solution's tests on a busy machine; an endless loop costs this much once
CATALOGUE_TIMEOUT = "20"
_HEADLINE = re.compile(r"^([A-Z ]+?)  exercise (\d+\.\d+): ", re.M)


@dataclass(frozen=True)
class Mistake:
    """One catalogue entry."""

    exercise: str
    what: str
    status: str
    says: str
    body: str


def load_catalogue(folder: Path = CATALOGUE) -> list[Mistake]:
    """Every catalogued mistake, in course order."""
    mistakes = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as handle:
            mistakes += [Mistake(**entry) for entry in tomllib.load(handle)["mistake"]]
    return mistakes


def rounds(mistakes: list[Mistake], course: Path) -> list[list[Mistake]]:
    """Group the mistakes so that no mistake in a group touches a file another one's
    result depends on: each group is one ``lsce check`` run."""
    manifest = ex.load_manifest(course)
    by_id = {e.id: e for e in manifest}
    folder = ex.exercises_dir(course)

    def own(m: Mistake) -> Path:
        return folder / by_id[m.exercise].file

    def depends(m: Mistake) -> set[Path]:
        return set(checking.dependencies(by_id[m.exercise], course, manifest))

    groups: list[list[Mistake]] = []
    for mistake in mistakes:
        for group in groups:
            if all(
                own(other) not in depends(mistake)
                and own(mistake) not in depends(other)
                for other in group
            ):
                group.append(mistake)
                break
        else:
            groups.append([mistake])
    return groups


def blocks(output: str) -> dict[str, tuple[str, str]]:
    """``lsce check`` output split per exercise: id → (status, its text)."""
    heads = list(_HEADLINE.finditer(output))
    found = {}
    for head, after in zip(heads, heads[1:] + [None], strict=True):
        text = output[head.start() : after.start() if after else len(output)]
        found[head.group(2)] = (head.group(1).lower(), " ".join(text.split()))
    return found


def test_the_catalogue_covers_every_exercise():
    mistakes = load_catalogue()
    manifest = ex.load_manifest(ROOT)
    assert len(mistakes) >= 40, (
        f"the catalogue holds {len(mistakes)} mistakes; keep at least 40"
    )
    missing = {e.id for e in manifest} - {m.exercise for m in mistakes}
    assert not missing, f"exercises with no catalogued mistake: {sorted(missing)}"
    for m in mistakes:
        assert m.status in STATUSES, (
            f"{m.exercise} {m.what!r}: unknown status {m.status!r}"
        )
        assert m.says.strip() and m.body.strip() and m.what.strip(), (
            f"{m.exercise} {m.what!r}"
        )
    names = [(m.exercise, m.what) for m in mistakes]
    assert len(set(names)) == len(names), "two mistakes of one exercise share a name"


@pytest.mark.slow
def test_the_solutions_pass_every_exercise(tmp_path: Path):
    course = copy_course(tmp_path, solutions=True)
    done = lsce(course, "check", "--all", "--timeout", CATALOGUE_TIMEOUT)
    total = len(ex.load_manifest(ROOT))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert f"{total} of {total} exercises pass" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(
    1200
)  # one lsce check per round; an endless loop costs its time limit
def test_every_catalogued_mistake_gets_its_diagnosis(tmp_path: Path):
    course = copy_course(tmp_path, solutions=True)
    mistakes = load_catalogue()
    by_id = {e.id: e for e in ex.load_manifest(course)}
    folder = ex.exercises_dir(course)
    wrong = []
    groups = rounds(mistakes, course)
    for group in groups:
        for path in SOLUTIONS.glob("ex*.py"):
            shutil.copy(path, folder / path.name)
        for mistake in group:
            exercise = by_id[mistake.exercise]
            write_body(folder / exercise.file, exercise.function, mistake.body)
        done = lsce(
            course,
            "check",
            *[m.exercise for m in group],
            "-v",
            "--timeout",
            CATALOGUE_TIMEOUT,
        )
        found = blocks(done.stdout)
        for mistake in group:
            status, text = found.get(
                mistake.exercise, ("missing", done.stdout + done.stderr)
            )
            says = " ".join(mistake.says.split())
            if status != mistake.status or says not in text:
                wrong.append(
                    f"{mistake.exercise} ({mistake.what}): expected {mistake.status!r} saying "
                    f"{says!r}; lsce check said {status!r}:\n{text[:1500]}"
                )
    print(
        f"mistake catalogue: {len(mistakes)} mistakes, checked in {len(groups)} lsce check runs"
    )
    assert not wrong, (
        f"{len(wrong)} of {len(mistakes)} mistakes misdiagnosed:\n\n"
        + "\n\n".join(wrong)
    )

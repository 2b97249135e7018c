"""`lsce` in English and in Chinese: the message table, the choice of language, and the
Chinese edition of the manifest (title_zh, hints_zh, library_note_zh).

The English output is the command's original, byte for byte (test_exercise_mechanism.py and
the mistake catalogue compare it); `--lang zh`, $LSCE_LANG=zh or a Chinese locale switch
the statuses, summaries, titles and hints to Chinese.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from lsce_course import checking, cli, messages
from lsce_course import exercises as ex
from tests.learner import ROOT, copy_course, lsce, write_body
from tests.test_exercise_mechanism import CORRECT_LOGSUMEXP

# no language from the environment of whoever runs the tests: each test says its own
NEUTRAL = {"LSCE_LANG": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}
STATUSES = (
    checking.NOT_STARTED,
    checking.BLOCKED,
    checking.ERROR,
    checking.TIMED_OUT,
    checking.FAILING,
    checking.PASSED,
    checking.NO_TESTS,
)
# what a hint's code is made of: calls, `code`, 'strings' and subscripts
CODE = re.compile(r"[A-Za-z_][\w.]*\(|`[^`]+`|'[\w-]+'|\b\w+\[")


def run(course: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``lsce`` in ``course`` with no language from the environment but ``env``'s."""
    return lsce(course, *args, timeout=180, **{**NEUTRAL, **env})


def flat(text: str) -> str:
    """Whitespace collapsed: a long hint may wrap."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the course with untouched stubs, for commands that change nothing."""
    return copy_course(tmp_path_factory.mktemp("course"))


# ---------------------------------------------------------------------------------------------
# the message table


def test_every_message_has_both_languages_with_the_same_placeholders():
    assert messages.LANGUAGES == ("en", "zh")
    for message_id, texts in messages.MESSAGES.items():
        assert set(texts) == set(messages.LANGUAGES), (
            f"{message_id} has {sorted(texts)}"
        )
        assert all(
            text.strip() or message_id == "count.separator" for text in texts.values()
        )
        en, zh = (messages.placeholders(texts[lang]) for lang in messages.LANGUAGES)
        assert en == zh, (
            f"{message_id}: placeholders {sorted(en)} in en, {sorted(zh)} in zh"
        )


def test_a_message_fills_its_placeholders():
    assert messages.message("hint.more", "en", id="1.1", level=2) == (
        "More: [bold]lsce hint 1.1 --level 2[/bold]"
    )
    assert messages.message("hint.more", "zh", id="1.1", level=2) == (
        "下一级提示：[bold]lsce hint 1.1 --level 2[/bold]"
    )
    with pytest.raises(KeyError):
        messages.message("hint.more", "en", id="1.1")  # no level
    with pytest.raises(messages.UnknownLanguageError, match="choose en or zh"):
        messages.message("hint.more", "fr", id="1.1", level=2)


def test_every_status_has_its_words():
    for status in STATUSES:
        assert messages.status_word(status, "en") == status, (
            "English keeps the status itself"
        )
        assert re.search(r"[\u4e00-\u9fff]", messages.status_word(status, "zh")), status
    chinese = [messages.status_word(status, "zh") for status in STATUSES]
    assert len(set(chinese)) == len(chinese), f"two statuses share a word: {chinese}"


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, "en"),
        (None, {"LANG": "C.UTF-8"}, "en"),
        (None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, {"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
        (None, {"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        (None, {"LC_ALL": "", "LANG": "zh_CN.UTF-8"}, "zh"),
        (None, {"LSCE_LANG": "zh", "LANG": "en_US.UTF-8"}, "zh"),
        (None, {"LSCE_LANG": "en", "LC_ALL": "zh_CN.UTF-8"}, "en"),
        (None, {"LSCE_LANG": "ZH"}, "zh"),
        ("zh", {"LSCE_LANG": "en"}, "zh"),
        ("en", {"LSCE_LANG": "zh", "LANG": "zh_CN.UTF-8"}, "en"),
        ("zh_CN", {}, "zh"),
    ],
)
def test_the_language_is_the_flag_then_lsce_lang_then_the_locale(
    flag, environ, expected
):
    assert messages.language(flag, environ) == expected


@pytest.mark.parametrize(
    ("flag", "environ", "source"),
    [
        ("fr", {}, "--lang"),
        ("", {}, "--lang"),
        (None, {"LSCE_LANG": "de"}, "LSCE_LANG"),
    ],
)
def test_an_unknown_language_names_the_choices(flag, environ, source):
    with pytest.raises(messages.UnknownLanguageError) as raised:
        messages.language(flag, environ)
    assert f"({source}): choose en or zh" in str(raised.value)
    assert "可选 en / zh" in raised.value.text("zh")


def test_a_result_keeps_its_messages_for_every_language():
    manifest = ex.load_manifest(ROOT)
    backward = ex.get_exercise("3.2", ROOT)
    records = [
        {"nodeid": f"t::{n}", "name": f"test {n}", "exercises": ["ex3_2"], "outcome": outcome,
         "exception": "AssertionError" if outcome == "failed" else None,
         "kind": "mismatch" if outcome == "failed" else None, "message": "", "where": None,
         "output": ""}
        for n, outcome in enumerate(["failed", "failed", "passed"])
    ]  # fmt: skip
    result = checking._result_for(backward, records, manifest)
    assert result.summary == "2 of 3 tests fail"
    assert checking.text(result, "summary", "en") == "2 of 3 tests fail"
    assert checking.text(result, "summary", "zh") == "3 个测试中有 2 个未通过"
    failure = result.failures[0]
    assert failure.reason == "AssertionError (no message)"
    assert checking.text(failure, "reason", "zh") == "AssertionError（没有错误信息）"
    # a test's own message has no translation: it stays as it is
    assert checking.text(failure, "test", "zh") == failure.test
    # what .lsce/state.json remembers brings the messages back
    again = checking.Result.from_json(
        json.loads(json.dumps(dataclasses.asdict(result)))
    )
    assert again == result
    assert checking.text(again, "summary", "zh") == "3 个测试中有 2 个未通过"


def test_a_pets_command_after_lang_still_reaches_pets():
    assert cli._without_leading_lang(["--lang", "zh", "pets", "--epochs", "1"]) == [
        "pets", "--epochs", "1",
    ]  # fmt: skip
    assert cli._without_leading_lang(["--lang=zh", "pets"]) == ["pets"]
    assert cli._without_leading_lang(["hint", "1.1"]) == ["hint", "1.1"]


# ---------------------------------------------------------------------------------------------
# the manifest's Chinese edition


def test_every_exercise_has_its_chinese_title_hints_and_note():
    chinese = [p for p in checking.verify_manifest(ROOT) if "_zh" in p]
    assert chinese == [], chinese
    for exercise in ex.load_manifest(ROOT):
        assert len(exercise.hints_zh) >= len(exercise.hints), exercise.id
        assert exercise.title_zh.strip() and "\n" not in exercise.title_zh, exercise.id
        assert exercise.library_note_zh.strip(), exercise.id
        assert re.search(
            r"[\u4e00-\u9fff]", exercise.title_zh + exercise.library_note_zh
        )


def test_the_code_of_every_hint_stays_code_in_chinese():
    for exercise in ex.load_manifest(ROOT):
        for level, hint in enumerate(exercise.hints, 1):
            lost = set(CODE.findall(hint)) - set(
                CODE.findall(exercise.hints_zh[level - 1])
            )
            assert not lost, (
                f"exercise {exercise.id}, hint {level}: hints_zh lacks {lost}"
            )


def test_verify_manifest_reports_a_missing_chinese_level_title_or_note(monkeypatch):
    manifest = ex.load_manifest(ROOT)
    by_id = {e.id: i for i, e in enumerate(manifest)}
    broken = list(manifest)
    short = broken[by_id["1.1"]]
    broken[by_id["1.1"]] = dataclasses.replace(short, hints_zh=short.hints_zh[:-1])
    broken[by_id["1.2"]] = dataclasses.replace(broken[by_id["1.2"]], title_zh="")
    broken[by_id["2.1"]] = dataclasses.replace(
        broken[by_id["2.1"]], library_note_zh=" "
    )
    broken[by_id["2.2"]] = dataclasses.replace(
        broken[by_id["2.2"]], hints_zh=("", "", "")
    )
    monkeypatch.setattr(checking.ex, "load_manifest", lambda root=None: broken)
    problems = [p for p in checking.verify_manifest(ROOT) if "_zh" in p]
    levels = len(short.hints)
    assert problems == [
        f"exercise 1.1: hints_zh has {levels - 1} level(s), fewer than the {levels} of hints",
        "exercise 1.2: needs a title_zh (the title in Chinese, one line)",
        "exercise 2.1: needs a library_note_zh (the library_note in Chinese)",
        "exercise 2.2: hints_zh has 0 level(s), fewer than the 3 of hints",
    ]


def test_an_entry_without_chinese_fields_still_loads(tmp_path: Path):
    manifest = tmp_path / ex.MANIFEST
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        '[[exercise]]\nid = "1.1"\ntitle = "T"\nlesson = 1\nfile = "f.py"\nfunction = "f"\n'
        'reference = "m:f"\ntests = "t.py"\nhints = ["a", "b"]\n',
        encoding="utf-8",
    )
    (exercise,) = ex.load_manifest(tmp_path)
    assert (exercise.title_zh, exercise.hints_zh, exercise.library_note_zh) == (
        "",
        (),
        "",
    )
    # lsce --lang zh falls back to the English text
    assert exercise.title_in("zh") == "T" and exercise.hints_in("zh") == ("a", "b")


# ---------------------------------------------------------------------------------------------
# the real `lsce` command


def test_lsce_lang_zh_and_lang_zh_print_the_chinese_hint(course: Path):
    exercise = ex.get_exercise("1.1", ROOT)
    ways = {
        "LSCE_LANG=zh": run(course, "hint", "1.1", LSCE_LANG="zh"),
        "--lang zh": run(course, "--lang", "zh", "hint", "1.1"),
        "--lang after the command": run(course, "hint", "1.1", "--lang", "zh"),
        "a Chinese locale": run(course, "hint", "1.1", LANG="zh_CN.UTF-8"),
    }
    for way, done in ways.items():
        assert done.returncode == 0, f"{way}: {done.stdout}{done.stderr}"
        shown = flat(done.stdout)
        assert f"练习 1.1 {exercise.title_zh}，提示 1/3：" in shown, (
            f"{way}: {done.stdout}"
        )
        assert flat(exercise.hints_zh[0]) in shown, f"{way}: {done.stdout}"
        assert "下一级提示：lsce hint 1.1 --level 2" in shown, f"{way}: {done.stdout}"
        assert exercise.hints[0][:30] not in shown, (
            f"{way}: the English hint is shown too"
        )
    assert ways["--lang zh"].stdout == ways["LSCE_LANG=zh"].stdout


def test_level_picks_the_chinese_hint_of_that_level(course: Path):
    exercise = ex.get_exercise("4.1", ROOT)
    count = len(exercise.hints_zh)
    for level in range(1, count + 1):
        done = run(course, "--lang", "zh", "hint", "4.1", "--level", str(level))
        assert done.returncode == 0, done.stdout + done.stderr
        shown = flat(done.stdout)
        assert (
            f"提示 {level}/{count}：" in shown
            and flat(exercise.hints_zh[level - 1]) in shown
        )
        assert ("--level " + str(level + 1) in shown) == (level < count), done.stdout
    too_far = run(course, "--lang", "zh", "hint", "4.1", "--level", "99")
    assert (
        too_far.returncode == 2
        and f"练习 4.1 只有第 1 到第 {count} 级提示" in too_far.stdout
    )


def test_english_output_is_unchanged(course: Path):
    exercise = ex.get_exercise("1.1", ROOT)
    expected = (
        f"exercise 1.1 {exercise.title}, hint 1/3:\n{exercise.hints[0]}\n"
        "More: lsce hint 1.1 --level 2\n"
    )
    for done in (
        run(course, "hint", "1.1"),
        run(course, "hint", "1.1", LSCE_LANG="en"),
        run(course, "--lang", "en", "hint", "1.1", LANG="zh_CN.UTF-8"),
        run(course, "hint", "1.1", LANG="fr_FR.UTF-8"),
    ):
        assert done.returncode == 0 and done.stdout == expected, (
            done.stdout + done.stderr
        )
    unknown = run(course, "check", "9.9")
    assert unknown.returncode == 2 and unknown.stdout.startswith(
        "no exercise '9.9'; the "
    )
    untouched = run(course, "check", "2.1")
    assert untouched.stdout.splitlines()[1:] == [
        "NOT STARTED  exercise 2.1: The relative error of two gradients  (tested "
        "lessons/exercises/ex02_gradient_checking.py: rel_error)",
        "Open lessons/exercises/ex02_gradient_checking.py, write rel_error, then run lsce "
        "check 2.1 (hints: lsce hint 2.1)",
    ]


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [(("--lang", "fr", "hint", "1.1"), {}, "--lang"),
     (("hint", "1.1", "--lang", "fr"), {}, "--lang"),
     (("list",), {"LSCE_LANG": "fr"}, "LSCE_LANG")],
)  # fmt: skip
def test_an_unknown_language_gets_a_clear_error(course: Path, args, env, source):
    done = run(course, *args, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"unknown language 'fr' ({source}): choose en or zh" in done.stdout
    assert "未知的语言 'fr'" in done.stdout and "可选 en / zh" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_list_progress_and_check_speak_chinese(tmp_path: Path):
    course = copy_course(tmp_path)
    write_body(
        course / "lessons/exercises/ex01_softmax.py", "logsumexp", CORRECT_LOGSUMEXP
    )
    manifest = ex.load_manifest(ROOT)
    listing = run(course, "--lang", "zh", "list")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    rows = {
        line.split("│")[1].strip(): line
        for line in listing.stdout.splitlines()
        if "│" in line
    }
    assert "已通过" in rows["1.1"] and all("未开始" in rows[e.id] for e in manifest[1:])
    assert all(e.title_zh.split()[0] in rows[e.id] for e in manifest), listing.stdout
    assert "lsce 练习" in listing.stdout and "状态" in listing.stdout
    assert (
        f"{len(manifest)} 个练习中已通过 1 个；未开始 {len(manifest) - 1} 个"
        in listing.stdout
    )
    assert "not started" not in listing.stdout and "passed" not in listing.stdout
    # the results it remembered read the same in English
    english = run(course, "list")
    assert (
        f"1 of {len(manifest)} exercises pass; {len(manifest) - 1} not started"
        in english.stdout
    )
    assert "passed" in english.stdout and "已通过" not in english.stdout

    progress = run(course, "progress", LSCE_LANG="zh")
    second = manifest[1]
    assert f"下一个：练习 1.2，{second.title_zh}" in flat(progress.stdout), (
        progress.stdout
    )

    passed = run(course, "check", "1.1", "--lang", "zh")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"已通过  练习 1.1：{manifest[0].title_zh}" in passed.stdout
    assert re.search(r"\d+ 个测试全部通过", passed.stdout), passed.stdout
    untouched = run(course, "--lang", "zh", "check", "1.2")
    assert untouched.returncode == 1 and "未开始  练习 1.2" in untouched.stdout
    assert (
        "打开 lessons/exercises/ex01_softmax.py，写好 log_softmax" in untouched.stdout
    )
    unknown = run(course, "--lang", "zh", "check", "9.9")
    assert unknown.returncode == 2 and "没有练习 '9.9'" in unknown.stdout

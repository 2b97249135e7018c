"""What ``lsce`` says, in English and in Chinese: one table of messages.

Every message has an id and a text per language, with ``{placeholders}``::

    message("hint.more", "zh", id="1.1", level=2)

:func:`language` picks the language: ``lsce --lang zh``, else ``$LSCE_LANG`` (``en`` or
``zh``), else the locale (``$LC_ALL``, ``$LC_MESSAGES``, ``$LANG`` starting with ``zh``),
else English. The English texts are the command's original output, word for word; the
Chinese ones follow the course's glossary (docs/glossary.zh.md).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping

LANGUAGES = ("en", "zh")
DEFAULT = "en"

MESSAGES: dict[str, dict[str, str]] = {
    # the statuses of an exercise (lsce check, list, progress, watch)
    "status.not_started": {"en": "not started", "zh": "未开始"},
    "status.blocked": {"en": "blocked", "zh": "受阻"},
    "status.error": {"en": "error", "zh": "出错"},
    "status.timed_out": {"en": "timed out", "zh": "超时"},
    "status.failing": {"en": "failing", "zh": "未通过"},
    "status.passed": {"en": "passed", "zh": "已通过"},
    "status.no_tests": {"en": "no tests", "zh": "没有测试"},
    # the one-line summary of a result (lsce_course.checking)
    "summary.tests_pass": {"en": "{count} tests pass", "zh": "{count} 个测试全部通过"},
    "summary.tests_fail": {
        "en": "{failed} of {total} tests fail",
        "zh": "{total} 个测试中有 {failed} 个未通过",
    },
    "summary.test_fails": {
        "en": "{failed} of {total} test fails",
        "zh": "{total} 个测试中有 {failed} 个未通过",
    },
    "summary.file_unusable": {
        "en": "your file cannot be used",
        "zh": "你的文件无法使用",
    },
    "summary.blocked": {
        "en": "needs exercise {ids} first (its function is not written yet)",
        "zh": "需要先完成练习 {ids}（它的函数还没有写）",
    },
    "summary.stub_untouched": {
        "en": "the stub is untouched",
        "zh": "桩函数还没有改动过",
    },
    "summary.no_tests": {
        "en": "no tests are marked {marker}",
        "zh": "没有标记为 {marker} 的测试",
    },
    "summary.timed_out": {
        "en": "{name} did not return within {seconds} s",
        "zh": "{name} 在 {seconds} 秒内没有返回",
    },
    "summary.process_ended": {
        "en": "the test process ended early",
        "zh": "测试进程提前结束了",
    },
    # why one test failed (lsce_course.checking)
    "reason.raised": {
        "en": "your {name} raised {raised}",
        "zh": "你的 {name} 抛出了 {raised}",
    },
    "reason.raised_in_test": {
        "en": "{raised} (in the test, from what your {name} returned)",
        "zh": "{raised}（发生在测试中，起因是你的 {name} 返回的值）",
    },
    "reason.no_message": {
        "en": "{exception} (no message)",
        "zh": "{exception}（没有错误信息）",
    },
    "reason.timed_out": {
        "en": "stopped after {seconds} s: look for a loop that never ends (a while loop "
        "whose condition never changes, say), or run with --timeout for more time",
        "zh": "{seconds} 秒后被停止：找找有没有永远不会结束的循环（比如条件永远不变的 "
        "while 循环），或者用 --timeout 给它更多时间",
    },
    "reason.process_ended": {
        "en": "Python itself stopped during this test: does your code call os._exit() or "
        "kill its own process?",
        "zh": "Python 本身在这个测试中停止了：你的代码是不是调用了 os._exit()，或者结束了"
        "自己的进程？",
    },
    "test.reading_file": {"en": "reading your file", "zh": "读取你的文件"},
    # lsce check (and watch): one exercise's result
    "check.header": {
        "en": "{status}  exercise {id}: {title}  "
        "(tested [bold]lessons/exercises/{file}[/bold]: {function})",
        "zh": "{status}  练习 {id}：{title}  "
        "（测试的是 [bold]lessons/exercises/{file}[/bold] 中的 {function}）",
    },
    "check.note": {
        "en": "[yellow]note:[/yellow] {note}",
        "zh": "[yellow]注意：[/yellow]{note}",
    },
    "check.not_started": {
        "en": "Open lessons/exercises/{file}, write {function}, then run "
        "[bold]lsce check {id}[/bold] (hints: [bold]lsce hint {id}[/bold])",
        "zh": "打开 lessons/exercises/{file}，写好 {function}，然后运行 "
        "[bold]lsce check {id}[/bold]（提示：[bold]lsce hint {id}[/bold]）",
    },
    "check.failures": {"en": "{summary}:", "zh": "{summary}："},
    "check.failure": {
        "en": "  [red]✗[/red] {test}{more}: {reason}",
        "zh": "  [red]✗[/red] {test}{more}：{reason}",
    },
    "check.failure_more": {"en": " (and {count} more)", "zh": "（另有 {count} 个）"},
    "check.failure_at": {"en": "      at {where}", "zh": "      位置：{where}"},
    "check.more_reasons": {
        "en": "  … and {count} more reasons (-v shows them)",
        "zh": "  …… 还有 {count} 个原因（加 -v 可以全部显示）",
    },
    "check.all_details": {
        "en": "(the details of every test: [bold]lsce check {id} -v[/bold])",
        "zh": "（每个测试的详情：[bold]lsce check {id} -v[/bold]）",
    },
    "check.stuck": {
        "en": "Stuck? [bold]lsce hint {id}[/bold]",
        "zh": "卡住了？试试 [bold]lsce hint {id}[/bold]",
    },
    "check.printed_rule": {"en": "what your code printed", "zh": "你的代码打印的内容"},
    "check.printed": {
        "en": "(your code printed {count} line(s): [bold]lsce check {id} -v[/bold] shows them)",
        "zh": "（你的代码打印了 {count} 行：[bold]lsce check {id} -v[/bold] 可以显示它们）",
    },
    "check.all_pass": {
        "en": "[green]Every exercise passes.[/green]",
        "zh": "[green]所有练习都已通过。[/green]",
    },
    # the line shown while tests run
    "checking.changed": {
        "en": "checking the exercises you changed",
        "zh": "正在检查你改动过的练习",
    },
    "checking.ids": {"en": "checking {ids}", "zh": "正在检查 {ids}"},
    "checking.n_exercises": {"en": "{count} exercises", "zh": "{count} 个练习"},
    # the summary line of list, progress and check with several exercises
    "count.summary": {
        "en": "{passed} of {total} exercises pass",
        "zh": "{total} 个练习中已通过 {passed} 个",
    },
    "count.summary_rest": {
        "en": "{passed} of {total} exercises pass; {rest}",
        "zh": "{total} 个练习中已通过 {passed} 个；{rest}",
    },
    "count.item": {"en": "{count} {status}", "zh": "{status} {count} 个"},
    "count.separator": {"en": ", ", "zh": "，"},
    # lsce list
    "list.title": {"en": "lsce exercises", "zh": "lsce 练习"},
    "list.id": {"en": "id", "zh": "编号"},
    "list.exercise": {"en": "exercise", "zh": "练习"},
    "list.file": {"en": "file: function", "zh": "文件: 函数"},
    "list.status": {"en": "status", "zh": "状态"},
    # lsce hint
    "hint.header": {
        "en": "[cyan]exercise {id}[/cyan] {title}, hint {level}/{count}:",
        "zh": "[cyan]练习 {id}[/cyan] {title}，提示 {level}/{count}：",
    },
    "hint.more": {
        "en": "More: [bold]lsce hint {id} --level {level}[/bold]",
        "zh": "下一级提示：[bold]lsce hint {id} --level {level}[/bold]",
    },
    "hint.levels": {
        "en": "[red]exercise {id} has hints 1 to {count}[/red]",
        "zh": "[red]练习 {id} 只有第 1 到第 {count} 级提示[/red]",
    },
    # lsce progress
    "progress.bar": {"en": "exercises", "zh": "练习"},
    "progress.done": {
        "en": "[green]All done.[/green]",
        "zh": "[green]全部完成。[/green]",
    },
    "progress.next": {
        "en": "Next: exercise {id}, {title} (lessons/exercises/{file}: {function}); "
        "[bold]lsce check {id}[/bold]",
        "zh": "下一个：练习 {id}，{title}（lessons/exercises/{file}: {function}）；"
        "[bold]lsce check {id}[/bold]",
    },
    # lsce watch
    "watch.start": {
        "en": "Watching lessons/exercises/ ({mode}); Ctrl-C to stop.",
        "zh": "正在监视 lessons/exercises/（{mode}）；按 Ctrl-C 停止。",
    },
    "watch.polling": {"en": "polling", "zh": "轮询"},
    "watch.events": {
        "en": "file events (use --poll if saves go unseen)",
        "zh": "文件事件；如果保存没有被察觉，请用 --poll",
    },
    "watch.no_watchfiles": {
        "en": "[yellow]watchfiles is not installed; polling instead[/yellow]",
        "zh": "[yellow]没有安装 watchfiles，改用轮询[/yellow]",
    },
    "watch.saved_again": {
        "en": "saved again: checking the new version",
        "zh": "又保存了一次：检查新的版本",
    },
    "watch.next": {"en": "Next: exercise {id}", "zh": "下一个：练习 {id}"},
    "watch.waiting": {
        "en": "[dim]waiting for you to save …[/dim]",
        "zh": "[dim]等你保存 ……[/dim]",
    },
    "watch.all_pass": {
        "en": "[green]Every exercise passes. Well done.[/green]",
        "zh": "[green]所有练习都已通过，干得好！[/green]",
    },
    # errors and interruptions
    "error.unknown_exercise": {
        "en": "no exercise {id}; the exercises are {known}",
        "zh": "没有练习 {id}；现有的练习是 {known}",
    },
    "error.unknown_language": {
        "en": "unknown language {lang} ({source}): choose {choices}",
        "zh": "未知的语言 {lang}（{source}）：可选 {choices}",
    },
    "cli.stopped": {"en": "stopped.", "zh": "已停止。"},
}

STATUS_IDS = {
    "not started": "status.not_started",
    "blocked": "status.blocked",
    "error": "status.error",
    "timed out": "status.timed_out",
    "failing": "status.failing",
    "passed": "status.passed",
    "no tests": "status.no_tests",
}


class UnknownLanguageError(ValueError):
    """A language that lsce has no messages in; ``str()`` names the choices."""

    def __init__(self, lang: str, source: str = "--lang") -> None:
        self.lang, self.source = lang, source
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        """The error in ``lang``."""
        choices = " or ".join(LANGUAGES) if lang == "en" else " / ".join(LANGUAGES)
        values = {"lang": repr(self.lang), "source": self.source, "choices": choices}
        return message("error.unknown_language", lang, **values)


def message(message_id: str, lang: str = DEFAULT, /, **values: object) -> str:
    """The message ``message_id`` in ``lang`` with its placeholders filled in.

    A KeyError for an unknown id or a missing placeholder; UnknownLanguageError for a
    language other than en and zh.
    """
    if lang not in LANGUAGES:
        raise UnknownLanguageError(lang)
    return MESSAGES[message_id][lang].format(**values)


def placeholders(text: str) -> set[str]:
    """The names of the ``{placeholders}`` in a message's text."""
    return {
        name for _, name, _, _ in string.Formatter().parse(text) if name is not None
    }


def status_word(status: str, lang: str = DEFAULT) -> str:
    """'failing' (a status of lsce_course.checking) as ``lang`` says it: 'failing', '未通过'."""
    return message(STATUS_IDS[status], lang)


def _checked(value: str, source: str) -> str:
    """``value`` as one of LANGUAGES: 'zh', 'ZH', 'zh_CN' and 'zh-Hans' are all 'zh'."""
    base = re.split(r"[-_.@]", value.strip().lower())[0]
    if base not in LANGUAGES:
        raise UnknownLanguageError(value, source)
    return base


def language(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The language of lsce's messages: ``flag`` (``--lang``), else $LSCE_LANG, else the
    locale (the first of $LC_ALL, $LC_MESSAGES, $LANG that is set: 'zh' when it starts
    with zh), else English. UnknownLanguageError for a flag or $LSCE_LANG other than en, zh.
    """
    environ = os.environ if environ is None else environ
    if flag is not None:
        return _checked(flag, "--lang")
    chosen = environ.get("LSCE_LANG", "").strip()
    if chosen:
        return _checked(chosen, "LSCE_LANG")
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        locale = environ.get(name, "").strip()
        if locale:
            return "zh" if locale.lower().startswith("zh") else DEFAULT
    return DEFAULT

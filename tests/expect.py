"""Assertions whose messages a learner can read: the key fact first, then the input.

:func:`assert_close` compares with a tolerance and says what was expected and what came
back, then the input, compactly. Given ``mistakes``, the values that typical mistakes
produce, it names the mistake only when the value matches it: a message names a cause only
when the test has checked it. Such a message is a :class:`Diagnosis`, which ``lsce check``
shows before plain mismatches.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


class Diagnosis(AssertionError):
    """An assertion failure whose cause the test has checked (shown first by lsce check)."""


def show(value: ArrayLike) -> str:
    """An array on a few lines: 4 significant digits, long arrays cut in the middle."""
    array = np.asarray(value)
    if array.ndim == 0:
        return np.format_float_positional(
            float(array), precision=6, trim="-", fractional=False
        )
    return np.array2string(
        array, precision=4, threshold=24, edgeitems=3, max_line_width=88, separator=", "
    )


def _lines(label: str, value: ArrayLike) -> str:
    text = show(value).splitlines()
    pad = " " * (len(label) + 1)
    return "\n".join([f"{label} {text[0]}"] + [pad + line for line in text[1:]])


def describe_inputs(inputs: dict[str, ArrayLike]) -> str:
    """``input x = [...]`` lines, one per argument."""
    return "\n".join(_lines(f"input {name} =", value) for name, value in inputs.items())


def got_expected(
    got: ArrayLike, expected: ArrayLike, inputs: dict[str, ArrayLike]
) -> str:
    """The block under a message's first line: got, expected, then the input."""
    block = [_lines("got     ", got), _lines("expected", expected)]
    if inputs:
        block.append(describe_inputs(inputs))
    return "\n".join(block)


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def assert_close(
    ours: ArrayLike,
    theirs: ArrayLike,
    rtol: float = 1e-10,
    what: str = "value",
    *,
    mistakes: dict[str, ArrayLike] | None = None,
    **inputs: ArrayLike,
) -> None:
    """Assert ``ours`` equals ``theirs`` to ``rtol`` relative to the largest |theirs|.

        Shapes must match exactly and NaNs must sit in the same places. The tolerance is
        rtol·max|theirs| (at least rtol·1e-6), so entries that are 0 in ``theirs`` must be
        tiny in ``ours`` too. ``what`` names the call (``"logsumexp(x, axis=0)"``) and the
        keyword arguments are its input, shown after the key fact. ``mistakes`` maps a cause
        to the value that mistake gives: when ``ours`` matches one (or several that give the same
    numbers), the message names it.
    """
    ours, theirs = (
        np.asarray(ours, dtype=np.float64),
        np.asarray(theirs, dtype=np.float64),
    )
    finite = np.isfinite(theirs)
    scale = float(np.max(np.abs(theirs[finite]), initial=0.0))
    atol = rtol * max(scale, 1e-6)
    if _close(ours, theirs, rtol, atol):
        return
    # mistakes that give the same numbers here cannot be told apart: name every one
    matched = [
        cause
        for cause, value in (mistakes or {}).items()
        if _close(ours, np.asarray(value, dtype=np.float64), rtol, atol)
    ]
    if matched:
        causes = "; or else ".join(matched)
        raise Diagnosis(f"{what}: {causes}\n{got_expected(ours, theirs, inputs)}")
    if ours.shape != theirs.shape:
        raise Diagnosis(
            f"{what} has shape {ours.shape}, expected {theirs.shape}\n"
            + got_expected(ours, theirs, inputs)
        )
    if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
        raise AssertionError(
            f"{what}: NaN where a number is expected (or the reverse)\n"
            + got_expected(ours, theirs, inputs)
        )
    difference = np.abs(np.nan_to_num(ours - theirs, nan=0.0))
    worst = (
        np.unravel_index(np.argmax(difference), difference.shape)
        if difference.ndim
        else ()
    )
    at = f" at index {tuple(int(i) for i in worst)}" if difference.ndim else ""
    raise AssertionError(
        f"{what}: off by {float(difference[worst]):.3g}{at} (allowed: {atol:.1g} + "
        f"{rtol:.0e}·|expected|)\n" + got_expected(ours, theirs, inputs)
    )

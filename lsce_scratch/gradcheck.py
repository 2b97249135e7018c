"""Numerical gradient checking (lesson 02), in the style of CS231n.

The thresholds for the relative error between an analytic and a numerical gradient of a
smooth function in float64 (CS231n, "Gradient checks"):

- rel_error <= 1e-7: pass; the analytic gradient is right.
- 1e-7 < rel_error <= 1e-4: suspicious; acceptable only for objectives with kinks
  (ReLU).
- rel_error > 1e-4: fail; for a smooth loss such as softmax cross-entropy it is a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from numpy.typing import ArrayLike

PASS_THRESHOLD = 1e-7
KINK_THRESHOLD = 1e-4


# --8<-- [start:numerical_gradient]
def numerical_gradient(
    f: Callable[[np.ndarray], float], x: ArrayLike, h: float = 1e-5
) -> np.ndarray:
    """∂f/∂x by central differences, one coordinate at a time.

    ``f`` maps an array shaped like ``x`` to a scalar. Each coordinate is nudged
    by ±h in a private copy of ``x`` and restored; ``x`` itself is never
    modified. Use float64: in float32 the rounding error of f (about 1e-7·|f|)
    divided by 2h swamps the result.
    """
    x = np.array(x, copy=True)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"x must be a floating-point array; got {x.dtype}. Use x.astype(np.float64)"
        )
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        f_plus = f(x)
        x[index] = original - h
        f_minus = f(x)
        x[index] = original
        # ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h, error O(h²)
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad


# --8<-- [end:numerical_gradient]


def numerical_gradient_wrt(
    loss: Callable[[], float], param: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """∂loss/∂param by central differences,
    for a ``loss()`` that reads ``param`` itself.

    A model's loss depends on its parameters through the model, not through an
    argument: each trial value is written into ``param`` in place, and
    ``param`` is restored after.
    """
    saved = param.copy()

    def loss_at(value: np.ndarray) -> float:
        param[...] = value
        try:
            return loss()
        finally:
            param[...] = saved

    return numerical_gradient(loss_at, saved, h=h)


# --8<-- [start:rel_error]
def rel_error(a: ArrayLike, b: ArrayLike) -> float:
    """CS231n's relative error: max over entries of |a − b| / max(1e-8, |a| + |b|)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape; got {a.shape} and {b.shape}"
        )
    if a.size == 0:
        return 0.0
    # the 1e-8 floor keeps entries where both are (almost) zero from dividing by zero
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


# --8<-- [end:rel_error]


def verdict(error: float) -> str:
    """'pass', 'suspicious' or 'fail' for a relative error, by the thresholds above."""
    if error <= PASS_THRESHOLD:
        return "pass"
    if error <= KINK_THRESHOLD:
        return "suspicious"
    return "fail"


@dataclass(frozen=True)
class GradientCheck:
    """The outcome of one analytic-vs-numerical comparison."""

    name: str
    max_abs_diff: float
    rel_error: float
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"


def check_gradient(
    f: Callable[[np.ndarray], float],
    x: ArrayLike,
    analytic: ArrayLike,
    *,
    h: float = 1e-5,
    name: str = "gradient",
    file: TextIO | None = None,
) -> GradientCheck:
    """Compare an analytic gradient of ``f`` at ``x`` with central differences; print
    the result as one line to ``file`` (default: standard output)."""
    numeric = numerical_gradient(f, x, h=h)
    analytic = np.asarray(analytic)
    if analytic.shape != numeric.shape:
        raise ValueError(
            f"analytic gradient has shape {analytic.shape}; x has shape {numeric.shape}"
        )
    error = rel_error(analytic, numeric)
    diff = float(np.max(np.abs(analytic - numeric))) if numeric.size else 0.0
    result = GradientCheck(name, diff, error, verdict(error))
    print(
        f"gradient check {name} (h = {h:g}, {numeric.dtype}): max |analytic − numeric| "
        f"= {diff:.2e}, rel_error = {error:.2e}: {result.verdict}",
        file=file or sys.stdout,
    )
    return result

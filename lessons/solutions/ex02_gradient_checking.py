"""Lesson 02 exercises, solved: the relative error and central differences
(CS231n style)."""

from collections.abc import Callable

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Return max over entries of |a − b| / max(1e-8, |a| + |b|).

    The 1e-8 floor keeps entries where both a and b are (almost) zero from dividing by
    zero. Raise ValueError if the shapes differ; return 0.0 for empty arrays.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"rel_error needs arrays of the same shape; got {a.shape} and {b.shape}"
        )
    if a.size == 0:
        return 0.0
    # rel_error = max_i |a_i − b_i| / max(1e-8, |a_i| + |b_i|)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Return ∂f/∂x (same shape as x) by central differences, one coordinate at a time.

    ``f`` maps an array shaped like x to a scalar. Do not modify the caller's x: work on
    a copy, nudge one entry by +h and -h, and put it back before moving on.
    """
    x = np.array(x, dtype=np.float64)  # a copy: the caller's x stays as it is
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old
        # ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h
        #   (error O(h²), unlike the one-sided O(h))
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad

"""Lesson 02 exercises: the relative error and central differences (CS231n style).

Fill in each function body, then run `lsce check 2.1`.
"""

from collections.abc import Callable

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Return max over entries of |a − b| / max(1e-8, |a| + |b|).

    The 1e-8 floor keeps entries where both a and b are (almost) zero from dividing by
    zero. Raise ValueError if the shapes differ; return 0.0 for empty arrays.
    """
    # rel_error = max_i |a_i − b_i| / max(1e-8, |a_i| + |b_i|)
    raise NotImplementedError(
        "Exercise 2.1 (rel_error): run `lsce hint 2.1`, then `lsce check 2.1`"
    )


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Return ∂f/∂x (same shape as x) by central differences, one coordinate at a time.

    ``f`` maps an array shaped like x to a scalar. Do not modify the caller's x: work on
    a copy, nudge one entry by +h and -h, and put it back before moving on.
    """
    # ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h
    #   (error O(h²), unlike the one-sided O(h))
    raise NotImplementedError(
        "Exercise 2.2 (numerical_gradient): run `lsce hint 2.2`, then `lsce check 2.2`"
    )

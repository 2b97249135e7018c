"""Softmax, log-softmax and log-sum-exp in NumPy, stable for any finite input
(lesson 01).

Notation (as on the docs page): x holds K logits, m = max_k x_k,
lse(x) = log Σ_k exp(x_k), softmax(x)_k = exp(x_k − lse(x)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype we compute in: float64 stays,
    smaller floats go to float32, integers to float64."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return dtype
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _as_float(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(compute_dtype(x.dtype), copy=False)


def _shift_by_max(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (x − m, m) with m = max along axis;
    a row of ±inf gets m = 0 so nothing is NaN."""
    # --8<-- [start:max-shift]
    m = np.max(x, axis=axis, keepdims=True)
    # All −inf (or +inf) rows: shifting by an infinite m would give inf − inf = NaN.
    m = np.where(np.isfinite(m), m, 0.0)
    # every exponent x_k − m ≤ 0, so exp(x_k − m) ∈ (0, 1] and cannot overflow; near the
    # float limits x_k − m itself may round to −inf, whose exp is the right 0
    with np.errstate(over="ignore"):
        return x - m, m
    # --8<-- [end:max-shift]


# --8<-- [start:logsumexp]
def logsumexp(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """log Σ_k exp(x_k) along ``axis``, without overflow or underflow.

    Computed as m + log Σ_k exp(x_k − m) with m = max_k x_k, which equals lse(x) exactly
    in real arithmetic and keeps every exponent ≤ 0. float16/float32 are computed in
    float32 and float64 in float64; the result has the reduced shape.
    """
    x = _as_float(x)
    shifted, m = _shift_by_max(x, axis)
    # lse(x) = m + log Σ_k exp(x_k − m); a row of all −inf is log 0 = −inf,
    # not a warning
    with np.errstate(divide="ignore"):
        lse = m + np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return np.squeeze(lse, axis=axis)


# --8<-- [end:logsumexp]


# --8<-- [start:log_softmax]
def log_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """log softmax(x)_k = x_k − lse(x), along ``axis``.

    We subtract log Σ exp(x_k − m) from the shifted logits x_k − m rather than lse from
    x_k: when |m| is large, x_k − (m + small) would round the small part away.
    """
    x = _as_float(x)
    shifted, _ = _shift_by_max(x, axis)
    # log p_k = (x_k − m) − log Σ_j exp(x_j − m)  (undefined, NaN, on a row of all −inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# --8<-- [end:log_softmax]


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """softmax(x)_k = exp(x_k − lse(x)) along ``axis``; each slice sums to 1."""
    # p_k = exp(log p_k)
    return np.exp(log_softmax(x, axis=axis))

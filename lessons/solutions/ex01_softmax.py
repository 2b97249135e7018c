"""Lesson 01 exercises, solved: log-sum-exp and log-softmax without overflow.

Notation as on the lesson page: x ∈ R^K are logits, m = max_k x_k,
lse(x) = log Σ_k exp(x_k).
"""

import numpy as np


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return log Σ_k exp(x_k) along ``axis`` (that axis removed),
    finite for any finite x.

    Must work for x = [1000, 1000] (answer 1000 + log 2) and x = [-1000, -1000] (answer
    -1000 + log 2), where exp overflows or underflows. A row of all -inf gives -inf. The
    result keeps x's floating dtype: float32 in, float32 out.
    """
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    # a row of all −inf has m = −inf, and x − m would be −inf − (−inf) = NaN: shift by 0
    m = np.where(np.isfinite(m), m, 0.0)
    # lse(x) = m + log Σ_k exp(x_k − m), with m = max_k x_k so every exponent is ≤ 0
    with np.errstate(
        divide="ignore"
    ):  # log(0) = −inf is the right answer for such a row
        return np.squeeze(
            m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)), axis=axis
        )


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return log softmax(x) along ``axis`` (same shape as x), finite for any finite x.

    log softmax(x)_k = x_k − lse(x). Never take log(softmax(x)): softmax underflows to 0
    for very negative logits and log(0) = -inf. The result keeps x's floating dtype.
    """
    x = np.asarray(x)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    # log p_k = (x_k − m) − log Σ_j exp(x_j − m)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

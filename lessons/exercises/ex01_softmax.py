"""Lesson 01 exercises: log-sum-exp and log-softmax without overflow.

Fill in each function body, then run `lsce check 1.1` (or `lsce watch`). Notation as on
the lesson page: x ∈ R^K are logits, m = max_k x_k, lse(x) = log Σ_k exp(x_k).
"""

import numpy as np


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return log Σ_k exp(x_k) along ``axis`` (that axis removed),
    finite for any finite x.

    Must work for x = [1000, 1000] (answer 1000 + log 2) and x = [-1000, -1000] (answer
    -1000 + log 2), where exp overflows or underflows. A row of all -inf gives -inf. The
    result keeps x's floating dtype: float32 in, float32 out.
    """
    # lse(x) = m + log Σ_k exp(x_k − m), with m = max_k x_k so every exponent is ≤ 0
    raise NotImplementedError(
        "Exercise 1.1 (logsumexp): run `lsce hint 1.1`, then `lsce check 1.1`"
    )


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return log softmax(x) along ``axis`` (same shape as x), finite for any finite x.

    log softmax(x)_k = x_k − lse(x). Never take log(softmax(x)): softmax underflows to 0
    for very negative logits and log(0) = -inf. The result keeps x's floating dtype.
    """
    # log p_k = (x_k − m) − log Σ_j exp(x_j − m)
    raise NotImplementedError(
        "Exercise 1.2 (log_softmax): run `lsce hint 1.2`, then `lsce check 1.2`"
    )

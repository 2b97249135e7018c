"""Lesson 09 exercise: log-sum-exp over a row too long to hold,
a chunk of classes at a time.

Notation as on the lesson page: x ∈ R^K are logits, lse(x) = log Σ_k exp(x_k). The
online softmax keeps, per row, the running maximum m and the running sum d = Σ_{k seen}
exp(x_k − m), and updates both after each chunk.
"""

import numpy as np


def online_logsumexp(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Return lse over the last axis of x (shape x.shape[:-1]), reading ``chunk``
    classes at a time: never build anything of x's full size. x is finite; chunk ≥ 1 (it
    may be larger than K, and need not divide it). Must not overflow for x = 1000 or
    underflow for −1000. The result has x's dtype for float32 and float64 x (float32 in,
    float32 out); x is left unchanged.
    """
    # per chunk c:  m' = max(m, max_k x_ck);  d' = d·exp(m − m') + Σ_k exp(x_ck − m')
    # at the end:   lse = m + log d       (start from m = −inf, d = 0)
    raise NotImplementedError(
        "Exercise 9.1 (online_logsumexp): run `lsce hint 9.1`, then `lsce check 9.1`"
    )

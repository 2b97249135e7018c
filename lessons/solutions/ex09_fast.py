"""Lesson 09 exercise, solved: log-sum-exp over a long row,
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
    # start from m = −inf and d = 0, per row, in x's dtype
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    d = np.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], chunk):
        block = x[..., start : start + chunk]
        # m' = max(m, max_k x_ck)
        new_m = np.maximum(m, block.max(axis=-1))
        # d' = d·exp(m − m') + Σ_k exp(x_ck − m'): the old terms rescaled to the new max
        d = d * np.exp(m - new_m) + np.exp(block - new_m[..., None]).sum(axis=-1)
        m = new_m
    # lse = m + log d
    return m + np.log(d)

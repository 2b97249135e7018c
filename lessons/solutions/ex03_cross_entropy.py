"""Lesson 03 exercises, solved: cross-entropy forward and backward, CS231n style.

The forward returns (loss, cache); the backward takes the upstream gradient and
that cache. Notation: z (N, K) logits, p = softmax(z), y (N,) true classes,
loss = mean over rows.
"""

import numpy as np
from ex01_softmax import log_softmax


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray) -> tuple[float, dict]:
    """Return (loss, cache): the mean over rows of −log p_{i,y_i}.

    ``logits`` is (N, K) float, ``target`` is (N,) int class indices. Compute log p
    stably (x − lse, lesson 01). The loss keeps the logits' dtype: float32 in, float32
    out. ``cache`` is a dict holding whatever your backward needs.
    """
    # log p = z − lse(z), with the max shift of exercise 1.2 (float32 stays float32)
    log_p = log_softmax(logits)
    rows = np.arange(len(target))
    # ℓ_i = −log p_{i,y_i} = lse(z_i) − z_{i,y_i};  loss = (1/N) Σ_i ℓ_i
    loss = -log_p[rows, target].mean()
    cache = {"p": np.exp(log_p), "target": target}
    return loss, cache


def cross_entropy_backward(dloss: float, cache: dict) -> np.ndarray:
    """Return ∂(dloss · loss)/∂logits, shape (N, K) and the logits' dtype,
    from the cache."""
    p, target = cache["p"], cache["target"]
    n = len(p)
    grad = p.copy()  # a copy: the cache stays as the forward left it
    # ∂ℓ_i/∂z_ij = p_ij − 1[j = y_i]
    grad[np.arange(n), target] -= 1
    # ∂loss/∂z_ij = (p_ij − 1[j = y_i]) / N, times the upstream dloss
    return (dloss * grad / n).astype(p.dtype)

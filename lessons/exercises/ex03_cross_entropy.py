"""Lesson 03 exercises: cross-entropy forward and backward, CS231n style.

The forward returns (loss, cache); the backward takes the upstream gradient and
that cache. Notation: z (N, K) logits, p = softmax(z), y (N,) true classes,
loss = mean over rows.
"""

import numpy as np


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray) -> tuple[float, dict]:
    """Return (loss, cache): the mean over rows of −log p_{i,y_i}.

    ``logits`` is (N, K) float, ``target`` is (N,) int class indices. Compute log p
    stably (x − lse, lesson 01). The loss keeps the logits' dtype: float32 in, float32
    out. ``cache`` is a dict holding whatever your backward needs.
    """
    # ℓ_i = −log p_{i,y_i} = lse(z_i) − z_{i,y_i};  loss = (1/N) Σ_i ℓ_i
    raise NotImplementedError(
        "Exercise 3.1 (cross_entropy_forward): run `lsce hint "
        "3.1`, then `lsce check 3.1`"
    )


def cross_entropy_backward(dloss: float, cache: dict) -> np.ndarray:
    """Return ∂(dloss · loss)/∂logits, shape (N, K) and the logits' dtype,
    from the cache."""
    # ∂loss/∂z_ij = (p_ij − 1[j = y_i]) / N, times the upstream dloss
    raise NotImplementedError(
        "Exercise 3.2 (cross_entropy_backward): run `lsce hint "
        "3.2`, then `lsce check 3.2`"
    )

"""Lesson 05 exercises: the LSCE forward/backward pair with PyTorch's semantics.

Notation: z (..., K) logits, p = softmax(z), q = (1 − ε)·onehot(y) + ε/K, w class
weights, r = w ⊙ q, S = Σ_k r_k. Per row ℓ = −Σ_k r_k log p_k and ∂ℓ/∂z_j = S·p_j − r_j.
Build it up in four steps: 5.1 the forward, 5.2 the backward, 5.3 class weights and
ignore_index in both, 5.4 a backward that survives confident float32 logits.
"""

import numpy as np


def lsce_forward(
    logits: np.ndarray,
    target: np.ndarray,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, dict]:
    """Return (loss, cache) for (..., K) logits and (...) integer targets.

    Reductions: "none" (shape of target), "sum", "mean"; any other raises
    ValueError. The loss keeps the logits' dtype (float32 in, float32 out). Exercise
    5.3 adds PyTorch's semantics for ``weight`` (K,) and ``ignore_index``:
    ℓ_i = −Σ_k w_k q_ik log p_ik, ignored rows contribute 0, and "mean" divides by
    Σ_i w_{y_i} over the rows that are not ignored (NaN when there are none). Until
    then you may raise NotImplementedError when they are used. Leave the caller's
    logits and target as they are.
    """
    # log p = z − lse(z);  r = w ⊙ q (0 on ignored rows);  ℓ_i = −Σ_k r_ik log p_ik
    raise NotImplementedError(
        "Exercise 5.1 (lsce_forward): run `lsce hint 5.1`, then `lsce check 5.1`"
    )


def lsce_backward(dloss: np.ndarray, cache: dict) -> np.ndarray:
    """Return ∂L/∂logits (shape and dtype of the logits) from ``lsce_forward``'s cache.

    ``dloss`` is a scalar for "mean"/"sum" and has the loss's shape for "none".
    """
    # ∂ℓ_i/∂z_ij = S_i p_ij − r_ij;  "mean" divides by Σ w_{y_i};
    #   "none" scales row i by dloss_i
    # 5.4: at the most likely class m use S p_m − r_m = Σ_{k≠m} r_k − S Σ_{k≠m} p_k
    raise NotImplementedError(
        "Exercise 5.2 (lsce_backward): run `lsce hint 5.2`, then `lsce check 5.2`"
    )

"""Lesson 05 exercises, solved: the LSCE forward/backward pair with PyTorch's semantics.

Notation: z (..., K) logits, p = softmax(z), q = (1 − ε)·onehot(y) + ε/K, w class
weights, r = w ⊙ q, S = Σ_k r_k. Per row ℓ = −Σ_k r_k log p_k and ∂ℓ/∂z_j = S·p_j − r_j.
Built up in four steps: 5.1 the forward, 5.2 the backward, 5.3 class weights and
ignore_index in both, 5.4 a backward that survives confident float32 logits.
"""

import numpy as np
from ex01_softmax import log_softmax
from ex04_label_smoothing import smooth_labels


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
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(
            f"reduction must be 'none', 'sum' or 'mean'; got {reduction!r}"
        )
    logits, target = np.asarray(logits), np.asarray(target)
    num_classes = logits.shape[-1]
    # every position of the leading axes is a row
    z = logits.reshape(-1, num_classes)
    y = target.reshape(-1)
    valid = y != ignore_index
    safe_y = np.where(valid, y, 0)  # a new array: ignored rows point at class 0
    w = np.ones(num_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    # log p = z − lse(z), stably (exercise 1.2)
    log_p = log_softmax(z)
    # q from exercise 4.1;  r = w ⊙ q, 0 on ignored rows
    q = smooth_labels(safe_y, num_classes, epsilon)
    r = w * q * valid[:, None]
    # ℓ_i = −Σ_k r_ik log p_ik
    row = -(r * log_p).sum(axis=-1)
    # "mean" divides by Σ_i w_{y_i} over the rows that count (0/0 = NaN when none count)
    denominator = (w[safe_y] * valid).sum()
    if reduction == "none":
        loss = row.reshape(target.shape)
    elif reduction == "sum":
        loss = row.sum()
    else:
        with np.errstate(invalid="ignore"):
            loss = row.sum() / denominator
    cache = {
        "p": np.exp(log_p),
        "q": q,
        "w": w,
        "valid": valid,
        "denominator": denominator,
        "reduction": reduction,
        "shape": logits.shape,
        "dtype": logits.dtype,
    }
    return np.asarray(loss, dtype=logits.dtype), cache


def lsce_backward(dloss: np.ndarray, cache: dict) -> np.ndarray:
    """Return ∂L/∂logits (shape and dtype of the logits) from ``lsce_forward``'s cache.

    ``dloss`` is a scalar for "mean"/"sum" and has the loss's shape for "none".
    """
    p, valid = cache["p"], cache["valid"]
    # r = w ⊙ q on the rows that count, 0 on ignored rows;  S_i = Σ_k r_ik
    r = cache["w"] * cache["q"] * valid[:, None]
    s = r.sum(axis=-1)
    # ∂ℓ_i/∂z_ij = S_i p_ij − r_ij
    grad = s[:, None] * p - r
    # 5.4: at the most likely class m, S p_m − r_m cancels when p_m ≈ 1. Use
    # S p_m − r_m = Σ_{k≠m} r_k − S Σ_{k≠m} p_k, which only adds small numbers
    rows = np.arange(len(p))
    m = p.argmax(axis=-1)
    not_m = np.arange(p.shape[-1]) != m[:, None]
    grad[rows, m] = (r * not_m).sum(axis=-1) - s * (p * not_m).sum(axis=-1)
    # through the reduction: "mean" divides by Σ w_{y_i}, "none" scales row i by dloss_i
    reduction = cache["reduction"]
    if reduction == "none":
        scale = np.reshape(dloss, (-1, 1))
    elif reduction == "sum":
        scale = dloss
    elif cache["denominator"] > 0:
        scale = dloss / cache["denominator"]
    else:
        scale = 0.0  # every row is ignored: nothing counts, so nothing moves
    grad = grad * scale
    return grad.reshape(cache["shape"]).astype(cache["dtype"])

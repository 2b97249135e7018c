"""Lesson 04 exercises, solved: smoothed targets and the label-smoothing loss.

Notation: K classes, ε the smoothing, y the true class, q the smoothed target.
"""

import numpy as np
from ex01_softmax import log_softmax


def smooth_labels(
    target: np.ndarray, num_classes: int, epsilon: float, *, spread: str = "all"
) -> np.ndarray:
    """Return q with shape target.shape + (K,), float64.

    ``spread="all"`` (PyTorch): every class gets ε/K and the true class 1 − ε + ε/K.
    ``spread="others"`` (fairseq): the true class gets 1 − ε, each other class
    ε/(K − 1). Raise ValueError for ε outside [0, 1], an index outside [0, K − 1] (−1
    too: NumPy would read it as the last class) or a spread other than "all" and
    "others", naming it.
    """
    target = np.asarray(target)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1]; got {epsilon}")
    if spread not in ("all", "others"):
        raise ValueError(f"spread must be 'all' or 'others'; got {spread!r}")
    if np.any((target < 0) | (target >= num_classes)):
        raise ValueError(f"every index must be in [0, {num_classes - 1}]; got {target}")
    if spread == "all":
        # q_k = (1 − ε)·1[k = y] + ε/K
        off, on = epsilon / num_classes, 1.0 - epsilon + epsilon / num_classes
    else:
        # q_k = (1 − ε)·1[k = y] + ε/(K − 1)·1[k ≠ y]
        off, on = epsilon / (num_classes - 1), 1.0 - epsilon
    q = np.full(target.shape + (num_classes,), off)
    np.put_along_axis(q, target[..., None], on, axis=-1)
    return q


def label_smoothing_cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
) -> np.ndarray:
    """Return the label-smoothing cross-entropy of (..., K) logits
    and (...) int targets.

    Per example ℓ = −Σ_k q_k log p_k with q from smooth_labels (spread="all"); then
    reduction "mean" (over examples), "sum", or "none" (shape of target). Must
    equal torch.nn.functional.cross_entropy(..., label_smoothing=epsilon). The
    result keeps the logits' dtype (float32 in, float32 out). Raise ValueError for
    any other reduction, and, as smooth_labels does, for ε outside [0, 1] or an
    index outside [0, K − 1].
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}"
        )
    logits = np.asarray(logits)
    # q from exercise 4.1, in the logits' dtype (smooth_labels gives float64)
    q = smooth_labels(target, logits.shape[-1], epsilon).astype(logits.dtype)
    # ℓ = −Σ_k q_k log p_k = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k)
    row = -(q * log_softmax(logits)).sum(axis=-1)
    if reduction == "mean":
        return row.mean()
    if reduction == "sum":
        return row.sum()
    return row

"""Lesson 04 exercises: smoothed targets and the label-smoothing loss.

Notation: K classes, ε the smoothing, y the true class, q the smoothed target.
"""

import numpy as np


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
    # q_k = (1 − ε)·1[k = y] + ε/K                  (spread="all")
    # q_k = (1 − ε)·1[k = y] + ε/(K − 1)·1[k ≠ y]   (spread="others")
    raise NotImplementedError(
        "Exercise 4.1 (smooth_labels): run `lsce hint 4.1`, then `lsce check 4.1`"
    )


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
    # ℓ = −Σ_k q_k log p_k = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k)
    raise NotImplementedError(
        "Exercise 4.2 (label_smoothing_cross_entropy): run `lsce hint "
        "4.2`, then `lsce check 4.2`"
    )

"""Lesson 08 exercises, solved: measuring calibration and fixing it, from scratch.

Notation: p (N, K) predicted probabilities, y the labels; the top label ŷ_i = argmax_k
p_ik and its confidence c_i = p_{i,ŷ_i}; M bins B_m; z logits, T a temperature, β = 1/T.
8.1 the expected calibration error, 8.2 temperature scaling, 8.3
pool-adjacent-violators.
"""

import numpy as np


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, norm: str = "l1"
) -> float:
    """Top-label calibration error of (N, K) ``probs`` over ``n_bins`` equal-width bins.

    Bin m = 1..M holds the rows whose confidence c_i lies in ((m − 1)/M, m/M], closed on
    the right, with the edges computed as m/M (``np.arange(M + 1) / M``): a confidence
    equal to an edge goes to the lower bin, 1.0 to the last and 0 to the first. Empty
    bins count for nothing. ``norm`` is "l1" (ECE), "l2" (RMS calibration error) or
    "max" (MCE); any other value raises ValueError. The top label ŷ_i is the first
    largest p_ik on ties (as np.argmax picks it).
    """
    if norm not in ("l1", "l2", "max"):
        raise ValueError(f"norm must be 'l1', 'l2' or 'max'; got {norm!r}")
    rows = np.arange(len(labels))
    # ŷ_i = argmax_k p_ik;  c_i = p_{i,ŷ_i}, the top label's confidence
    predicted = probs.argmax(axis=1)
    confidence = probs[rows, predicted]
    correct = (predicted == labels).astype(float)
    # bin m holds (m − 1)/M < c ≤ m/M: searchsorted(side="left") finds the first
    # edge ≥ c; c = 0 would give −1, so clip it into the first bin
    edges = np.arange(n_bins + 1) / n_bins
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    filled = count > 0  # empty bins count for nothing
    # acc(B_m) = mean 1[ŷ_i = y_i];  conf(B_m) = mean c_i, over the rows of bin m
    accuracy = (
        np.bincount(index, weights=correct, minlength=n_bins)[filled] / count[filled]
    )
    mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins)[filled]
    mean_confidence = mean_confidence / count[filled]
    gap = np.abs(accuracy - mean_confidence)
    # |B_m| / N
    share = count[filled] / len(labels)
    if norm == "l1":
        # ECE = Σ_m (|B_m|/N)·|acc − conf|
        return float(np.sum(share * gap))
    if norm == "l2":
        # RMS = √(Σ_m (|B_m|/N)·(acc − conf)²)
        return float(np.sqrt(np.sum(share * gap**2)))
    # MCE = max_m |acc − conf|
    return float(np.max(gap))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the mean NLL of softmax(z / T) on (N,
    K) logits and labels.

    Precise enough that the NLL at T·(1 ± 1e-3) is not lower. You may assume the minimum
    lies in [0.01, 100].
    """
    rows = np.arange(len(labels))
    true_logit = logits[rows, labels]

    def slope(beta: float) -> float:
        # p = softmax(β z), with the max shift
        scaled = beta * logits
        e = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        # dNLL/dβ = (1/N) Σ_i (Σ_k p_ik z_ik − z_{i,y_i})
        return float(np.mean(np.sum(p * logits, axis=1) - true_logit))

    # T in [0.01, 100] is β = 1/T in [0.01, 100];
    # bisect on the sign of the slope in log β
    low, high = np.log(0.01), np.log(100.0)
    for _ in range(60):
        middle = (low + high) / 2
        if slope(np.exp(middle)) < 0:
            low = middle  # the NLL still falls: the minimum is at a larger β
        else:
            high = middle
    # T = 1/β
    return float(np.exp(-(low + high) / 2))


def pool_adjacent_violators(
    values: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """The non-decreasing f (same length as ``values``) minimising Σ_i w_i (f_i − v_i)².

    ``values`` are already in score order; ``weights`` are positive (all 1 when None).
    """
    if weights is None:
        weights = np.ones(len(values))
    means, totals, sizes = [], [], []  # one entry per block: its mean, Σw and length
    for value, weight in zip(values, weights, strict=True):
        means.append(float(value))
        totals.append(float(weight))
        sizes.append(1)
        # pool while the last block's mean is below the one before:
        # one pool can create a new violation further left
        while len(means) > 1 and means[-2] > means[-1]:
            mean, total, size = means.pop(), totals.pop(), sizes.pop()
            # pooled mean = (W_a m_a + W_b m_b) / (W_a + W_b)
            means[-1] = (totals[-1] * means[-1] + total * mean) / (totals[-1] + total)
            totals[-1] += total
            sizes[-1] += size
    # one fitted value per input
    return np.repeat(means, sizes)

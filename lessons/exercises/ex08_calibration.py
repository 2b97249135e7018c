"""Lesson 08 exercises: measuring calibration and fixing it, from scratch.

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
    # ŷ_i = argmax_k p_ik;  c_i = p_{i,ŷ_i};
    # acc(B_m) = mean 1[ŷ_i = y_i];  conf(B_m) = mean c_i
    # l1: Σ_m (|B_m|/N)·|acc − conf|;  l2: √(Σ_m (|B_m|/N)·(acc − conf)²);
    # max: max_m |acc − conf|
    raise NotImplementedError(
        "Exercise 8.1 (expected_calibration_error): run `lsce hint "
        "8.1`, then `lsce check 8.1`"
    )


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the mean NLL of softmax(z / T) on (N,
    K) logits and labels.

    Precise enough that the NLL at T·(1 ± 1e-3) is not lower. You may assume the minimum
    lies in [0.01, 100].
    """
    # NLL(β) = (1/N) Σ_i [lse(β z_i) − β z_{i,y_i}] is convex in β = 1/T;
    # dNLL/dβ = (1/N) Σ_i (Σ_k p_ik z_ik − z_{i,y_i}) with p = softmax(β z),
    # non-decreasing in β
    raise NotImplementedError(
        "Exercise 8.2 (fit_temperature): run `lsce hint 8.2`, then `lsce check 8.2`"
    )


def pool_adjacent_violators(
    values: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """The non-decreasing f (same length as ``values``) minimising Σ_i w_i (f_i − v_i)².

    ``values`` are already in score order; ``weights`` are positive (all 1 when None).
    """
    # keep blocks (mean, Σw, size); append each value as a block; while the last block's
    # mean is below the one before, pool them: mean = (W_a m_a + W_b m_b) / (W_a + W_b)
    raise NotImplementedError(
        "Exercise 8.3 (pool_adjacent_violators): run `lsce hint "
        "8.3`, then `lsce check 8.3`"
    )

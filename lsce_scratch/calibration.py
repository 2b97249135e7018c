"""Calibration from scratch in NumPy (lesson 08): metrics, reliability bins,
recalibration.

Notation (the same symbols as the docs page):

- p: predicted probabilities of shape (N, K), one row per example; y_i the true class;
  z logits.
- Top label: ŷ_i = argmax_k p_ik (the first on ties) and its confidence c_i = p_iŷ_i
  (row i, column ŷ_i).
- M equal-width bins; B_m the rows whose confidence falls in bin m;
  acc(B_m) = mean of 1[ŷ_i = y_i] and conf(B_m) = mean of c_i over B_m.
- T: a temperature, p = softmax(z / T); β = 1/T.
- s_ik = log(p_ik / (1 − p_ik)): the one-vs-rest log-odds of class k, the score that
  Platt scaling and isotonic regression recalibrate class by class.

Bin-edge rule (Guo et al. 2017): bin m = 1..M holds confidences in ((m − 1)/M, m/M],
closed on the right, with the edges computed as m/M in floating point
(``np.arange(M + 1) / M``, so 0.7 is the double nearest 7/10, not ``np.linspace``'s
0.7000000000000001). A confidence equal to an edge goes to the lower bin, 1.0 to the
last bin, and 0 (impossible for a top label, which is at least 1/K) to the first.
torchmetrics and netcal close bins on the left instead, so their ECE differs from ours
when confidences sit exactly on edges.

Probabilities are accepted when they are finite, non-negative and every row sums to 1
within ``PROB_SUM_TOL`` = 1e-4: loose enough for a float32 softmax over thousands of
classes, tight enough to reject logits or per-class sigmoids passed by mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike

from lsce_scratch.softmax import logsumexp, softmax

PROB_SUM_TOL = 1e-4
NORMS = ("l1", "l2", "max")
# fit_temperature searches T in [T_MIN, T_MAX];
# fitted temperatures are rarely outside [0.2, 5].
T_MIN, T_MAX = 1e-2, 1e2


# --------------------------------------------------------------------------------------
# argument checks: every message names the argument, what was given and the fix


def _check_labels(
    labels: ArrayLike, num_rows: int, num_classes: int, rows_of: str
) -> np.ndarray:
    """Return labels as int64, or raise if they are not N class
    indices in [0, K − 1]."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D array of class indices, one per row of {rows_of}; "
            f"got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must hold integer class indices; got dtype {labels.dtype}. "
            f"Convert with labels.astype(int)"
        )
    if labels.shape[0] != num_rows:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but {rows_of} has {num_rows} rows; "
            f"pass one label per row"
        )
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(
            f"labels holds class index {int(bad[0])} outside [0, {num_classes - 1}] "
            f"({rows_of} has K = {num_classes} classes on the last axis)"
        )
    return labels.astype(np.int64)


def _check_matrix(values: ArrayLike, name: str) -> np.ndarray:
    """Return a non-empty, finite (N, K) floating-point array as float64, or raise."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(
            f"{name} must have shape (N, K), one row per example and the classes on "
            f"the last axis; got shape {values.shape}"
        )
    if not np.issubdtype(values.dtype, np.floating):
        raise TypeError(
            f"{name} must be floating point; got dtype {values.dtype}. "
            f"Convert with {name}.astype(np.float64)"
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {values.shape}); pass at least "
            "one example and one class"
        )
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite; found NaN or ±inf")
    return values


def _check_probs(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate (probs, labels) for the metrics; return them as float64 and int64."""
    p = _check_matrix(probs, "probs")
    if p.min() < 0:
        raise ValueError(
            f"probs must be >= 0; found {p.min()!r}. Pass "
            "softmax(logits), not the logits"
        )
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROB_SUM_TOL:
        raise ValueError(
            f"probs rows must each sum to 1 (within {PROB_SUM_TOL:g}); row {worst} "
            f"sums to {sums[worst]!r}. Pass softmax(logits) over the last axis, not "
            "logits or per-class sigmoids"
        )
    return p, _check_labels(labels, p.shape[0], p.shape[1], "probs")


def _check_calibration_set(
    logits: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Validate held-out (logits, labels) for a calibrator:
    at least two classes present."""
    z = _check_matrix(logits, "logits")
    labels = _check_labels(labels, z.shape[0], z.shape[1], "logits")
    present = np.unique(labels)
    if present.size < 2:
        raise ValueError(
            f"labels holds a single class ({int(present[0])}): a calibration "
            "set needs examples of at least two classes. Use a held-out "
            "split drawn from every class"
        )
    return z, labels


def _check_n_bins(n_bins: object) -> int:
    """Return the number of bins as an int, or raise if it is not an integer >= 1."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral):
        raise TypeError(
            f"n_bins must be an integer >= 1; got {type(n_bins).__name__} {n_bins!r}"
        )
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1 (15 is the usual choice); got {n_bins}")
    return int(n_bins)


def _check_vector(
    values: ArrayLike, name: str, length: int | None = None
) -> np.ndarray:
    """Return a non-empty, finite 1-D real array as float64, or raise."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {values.shape}")
    if not (
        np.issubdtype(values.dtype, np.number) or values.dtype == bool
    ) or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers; got dtype {values.dtype}")
    if values.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    if length is not None and values.shape[0] != length:
        raise ValueError(
            f"{name} has {values.shape[0]} entries but the scores have "
            f"{length}; pass one per score"
        )
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite; found NaN or ±inf")
    return values


def _check_weights(weights: ArrayLike | None, length: int) -> np.ndarray:
    """Return positive finite weights as float64 (all ones for None), or raise."""
    if weights is None:
        return np.ones(length)
    weights = _check_vector(weights, "weights", length)
    if weights.min() <= 0:
        raise ValueError(
            f"weights must be > 0; found {weights.min()!r}. Drop zero-weight rows"
        )
    return weights


# --------------------------------------------------------------------------------------
# metrics


@dataclass(frozen=True, eq=False)
class ReliabilityBins:
    """Top-label reliability data in M equal-width bins ((m − 1)/M, m/M]."""

    edges: np.ndarray  # (M + 1,) the bin edges m/M
    count: np.ndarray  # (M,) |B_m|, the number of rows in each bin
    accuracy: np.ndarray  # (M,) acc(B_m); NaN for an empty bin
    confidence: np.ndarray  # (M,) conf(B_m); NaN for an empty bin


# --8<-- [start:reliability_bins]
def reliability_bins(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15
) -> ReliabilityBins:
    """Bin the top-label confidences c_i into ``n_bins`` equal-width bins
    (Guo's rule above).

    ``probs`` is (N, K) with rows summing to 1, ``labels`` the N true classes.
    """
    p, labels = _check_probs(probs, labels)
    n_bins = _check_n_bins(n_bins)
    # ŷ_i = argmax_k p_ik, c_i = p_{i,ŷ_i}
    predicted = np.argmax(p, axis=1)
    confidence = p[np.arange(p.shape[0]), predicted]
    correct = (predicted == labels).astype(np.float64)
    edges = np.arange(n_bins + 1) / n_bins
    # bin m holds edges[m] < c ≤ edges[m + 1]: searchsorted(side="left") returns
    # the first edge ≥ c, so an edge value lands in the lower bin; c = 0 is
    # moved into the first bin
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        # acc(B_m) = (1/|B_m|) Σ_{i∈B_m} 1[ŷ_i = y_i];
        # conf(B_m) = (1/|B_m|) Σ_{i∈B_m} c_i
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
        mean_confidence = (
            np.bincount(index, weights=confidence, minlength=n_bins) / count
        )
    return ReliabilityBins(edges, count, accuracy, mean_confidence)


# --8<-- [end:reliability_bins]


# --8<-- [start:expected_calibration_error]
def expected_calibration_error(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, norm: str = "l1"
) -> float:
    """Top-label calibration error over equal-width bins ((m − 1)/M, m/M]
    (Guo et al. 2017).

    ``norm="l1"`` is the ECE, Σ_m (|B_m|/N)·|acc(B_m) − conf(B_m)|; ``"l2"`` the RMS
    calibration error, √(Σ_m (|B_m|/N)·(acc(B_m) − conf(B_m))²) (torchmetrics'
    'l2'); and ``"max"`` the MCE, max_m |acc(B_m) − conf(B_m)| over the non-empty
    bins. A value in [0, 1].
    """
    if norm not in NORMS:
        raise ValueError(
            "norm must be 'l1' (ECE), 'l2' (RMS calibration error) or "
            f"'max' (MCE); got {norm!r}"
        )
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins.count > 0
    # |B_m| / N, the share of the rows in bin m
    weight = bins.count[filled] / bins.count.sum()
    # |acc(B_m) − conf(B_m)|
    gap = np.abs(bins.accuracy[filled] - bins.confidence[filled])
    if norm == "l1":
        # ECE = Σ_m (|B_m|/N)·|acc(B_m) − conf(B_m)|
        return float(np.sum(weight * gap))
    if norm == "l2":
        # RMSCE = √(Σ_m (|B_m|/N)·(acc(B_m) − conf(B_m))²)
        return float(np.sqrt(np.sum(weight * gap**2)))
    # MCE = max_m |acc(B_m) − conf(B_m)|
    return float(np.max(gap))


# --8<-- [end:expected_calibration_error]


def negative_log_likelihood(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean NLL, −(1/N) Σ_i log p_iy_i (row i, column y_i), in nats;
    inf when some true class has p = 0.

    That infinity is honest: a calibrator that gives a true class probability 0
    (isotonic regression can) has infinite log loss. From logits,
    ``-log_softmax(z)`` is more precise.
    """
    p, labels = _check_probs(probs, labels)
    with np.errstate(divide="ignore"):
        # NLL = −(1/N) Σ_i log p_{i,y_i}
        return float(-np.mean(np.log(p[np.arange(p.shape[0]), labels])))


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass Brier score, (1/N) Σ_i Σ_k (p_ik − 1[k = y_i])², in [0, 2].

    Brier's original normalisation: summed over the K classes, averaged over
    the rows. scikit-learn's ``brier_score_loss`` is the binary case; some
    authors also divide by K.
    """
    p, labels = _check_probs(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), labels] = 1.0
    # BS = (1/N) Σ_i Σ_k (p_ik − 1[k = y_i])²
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


# --------------------------------------------------------------------------------------
# temperature scaling


def _nll_slope(beta: float, z: np.ndarray, true_logit: np.ndarray) -> float:
    """d NLL/dβ at β for logits z: the mean of E_p[z] − z_y, with p = softmax(β z)."""
    # dNLL/dβ = (1/N) Σ_i (Σ_k p_ik z_ik − z_{i,y_i}),  p = softmax(β z)
    return float(np.mean(np.sum(softmax(beta * z) * z, axis=1) - true_logit))


# --8<-- [start:fit_temperature]
def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(z / T) on held-out data.

    With β = 1/T, NLL(β) = (1/N) Σ_i [lse(β z_i) − β z_iy_i] is convex in β: its slope,
    the mean of E_p[z] − z_y, never decreases. So we bisect on the sign of the slope
    over log β, to machine precision: no step size, no starting point, no local minima.
    T is searched in [T_MIN, T_MAX] = [0.01, 100]; if the NLL still falls at an end (a
    set the model gets entirely right keeps gaining as T → 0) that end is returned.
    Dividing the logits by T > 0 never changes their argmax, so accuracy is unchanged.
    """
    z, labels = _check_calibration_set(logits, labels)
    true_logit = z[np.arange(z.shape[0]), labels]
    low, high = np.log(1.0 / T_MAX), np.log(1.0 / T_MIN)
    if _nll_slope(np.exp(low), z, true_logit) >= 0:
        return T_MAX
    if _nll_slope(np.exp(high), z, true_logit) <= 0:
        return T_MIN
    # invariant: the slope is < 0 at low and > 0 at high,
    # so the minimum lies between them
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if _nll_slope(np.exp(middle), z, true_logit) < 0:
            low = middle
        else:
            high = middle
    # T = 1/β
    return float(np.exp(-0.5 * (low + high)))


# --8<-- [end:fit_temperature]


# --------------------------------------------------------------------------------------
# one-vs-rest calibrators: Platt scaling and isotonic regression


def one_vs_rest_log_odds(logits: ArrayLike) -> np.ndarray:
    """s_ik = log(p_ik / (1 − p_ik)) for p = softmax(z), shape (N, K),
    without rounding p.

    Computed as z_k − log Σ_j≠k exp(z_j), which stays exact when p_k rounds to 1.
    """
    z = _check_matrix(logits, "logits")
    if z.shape[1] < 2:
        raise ValueError(
            f"logits must have K >= 2 classes for one-vs-rest; got {z.shape[1]}"
        )
    others = np.empty_like(z)
    for k in range(z.shape[1]):
        # log(1 − p_k) + lse(z) = log Σ_{j≠k} exp(z_j)
        others[:, k] = logsumexp(np.delete(z, k, axis=1), axis=1)
    # s_k = log p_k − log(1 − p_k) = z_k − log Σ_{j≠k} exp(z_j)
    return z - others


# --8<-- [start:pool_adjacent_violators]
def pool_adjacent_violators(
    values: ArrayLike, weights: ArrayLike | None = None
) -> np.ndarray:
    """The non-decreasing f minimising Σ_i w_i (f_i − v_i)², for v
    already in score order.

    Pool-adjacent-violators: walk left to right keeping blocks of equal fitted value;
    when a block's mean falls below the block before it, the two violate the order and
    are pooled into their weighted mean, repeatedly, backwards. O(n) amortised.
    """
    values = _check_vector(values, "values")
    weights = _check_weights(weights, values.shape[0])
    means: list[float] = []  # the fitted value of each block
    totals: list[float] = []  # Σ w over each block
    sizes: list[int] = []  # rows in each block
    for value, weight in zip(values, weights, strict=True):
        means.append(value)
        totals.append(weight)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            mean, total, size = means.pop(), totals.pop(), sizes.pop()
            # pooled mean = (W_a m_a + W_b m_b) / (W_a + W_b)
            means[-1] = (totals[-1] * means[-1] + total * mean) / (totals[-1] + total)
            totals[-1] += total
            sizes[-1] += size
    return np.repeat(means, sizes)


# --8<-- [end:pool_adjacent_violators]


@dataclass(frozen=True, eq=False)
class IsotonicFit:
    """A fitted isotonic regression:
    the value f(x_j) at each distinct training score x_j."""

    thresholds: np.ndarray  # the distinct training scores, increasing
    values: np.ndarray  # f at each threshold, non-decreasing

    def __call__(self, scores: ArrayLike) -> np.ndarray:
        """f at new scores: linear between thresholds, the end value beyond them.

        scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``
        predicts the same way.
        """
        return np.interp(
            np.asarray(scores, dtype=np.float64), self.thresholds, self.values
        )


# --8<-- [start:isotonic_fit]
def isotonic_fit(
    scores: ArrayLike, targets: ArrayLike, weights: ArrayLike | None = None
) -> IsotonicFit:
    """Least-squares non-decreasing fit of ``targets`` against ``scores``
    (weights optional).

    Tied scores must share one fitted value, so they are pooled first into their
    weighted mean (scikit-learn's IsotonicRegression does the same); then PAV
    runs in score order.
    """
    scores = _check_vector(scores, "scores")
    targets = _check_vector(targets, "targets", scores.shape[0])
    weights = _check_weights(weights, scores.shape[0])
    thresholds, tie = np.unique(scores, return_inverse=True)
    totals = np.bincount(tie, weights=weights)
    # the weighted mean target of each distinct score: Σ w t / Σ w
    means = np.bincount(tie, weights=weights * targets) / totals
    return IsotonicFit(thresholds, pool_adjacent_violators(means, totals))


# --8<-- [end:isotonic_fit]


def _sigmoid(u: np.ndarray) -> np.ndarray:
    # σ(u) = exp(−log(1 + e^{−u})): no overflow and no warning for any finite u
    return np.exp(-np.logaddexp(0.0, -u))


@dataclass(frozen=True)
class PlattFit:
    """A fitted Platt sigmoid, x ↦ σ(a·x + b)."""

    slope: float  # a
    intercept: float  # b

    def __call__(self, scores: ArrayLike) -> np.ndarray:
        # σ(a x + b)
        return _sigmoid(
            self.slope * np.asarray(scores, dtype=np.float64) + self.intercept
        )


# --8<-- [start:platt_fit]
def platt_fit(scores: ArrayLike, targets: ArrayLike) -> PlattFit:
    """Fit σ(a·x + b) to binary targets by minimising the log loss (Platt 1999).

    Platt's targets replace 1 by t₊ = (N₊ + 1)/(N₊ + 2) and 0 by t₋ = 1/(N₋ + 2): a
    prior that keeps the fit finite when the scores separate the classes perfectly (a
    form of label smoothing itself). Newton's method with step halving (Lin, Lin and
    Weng 2007) converges in a few steps on this strictly convex problem.
    """
    x = _check_vector(scores, "scores")
    y = _check_vector(targets, "targets", x.shape[0])
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("targets must be binary, 0 or 1 (1 where the event happened)")
    positives = int(y.sum())
    negatives = y.shape[0] - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"targets holds a single class ({positives} positives, "
            f"{negatives} negatives); Platt scaling needs both. Use a "
            "calibration set with both outcomes"
        )
    # t₊ = (N₊ + 1)/(N₊ + 2), t₋ = 1/(N₋ + 2)
    t = np.where(y == 1.0, (positives + 1) / (positives + 2), 1.0 / (negatives + 2))
    design = np.stack([x, np.ones_like(x)], axis=1)

    def log_loss(theta: np.ndarray) -> float:
        u = design @ theta
        # −[t log σ(u) + (1 − t) log(1 − σ(u))] = log(1 + e^u) − t u
        return float(np.sum(np.logaddexp(0.0, u) - t * u))

    # start at a = 0 and b = the log prior odds of the smoothed targets
    theta = np.array([0.0, np.log((positives + 1) / (negatives + 1))])
    loss = log_loss(theta)
    for _ in range(100):
        sigma = _sigmoid(design @ theta)
        # ∇ = Σ_i (σ_i − t_i)[x_i, 1];  H = Σ_i σ_i(1 − σ_i)[x_i, 1]ᵀ[x_i, 1]
        gradient = design.T @ (sigma - t)
        if np.max(np.abs(gradient)) < 1e-10 * x.shape[0]:
            break
        hessian = design.T @ (design * (sigma * (1 - sigma))[:, None])
        # Newton step; a tiny ridge keeps H invertible when every σ_i saturates
        step = -np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        # halve the step until the loss falls enough
        # (Armijo: by 1e-4 of the linear model)
        size = 1.0
        while log_loss(theta + size * step) > loss + 1e-4 * size * (gradient @ step):
            size /= 2
            if size < 1e-10:
                break
        theta = theta + size * step
        loss = log_loss(theta)
    return PlattFit(float(theta[0]), float(theta[1]))


# --8<-- [end:platt_fit]


@dataclass(frozen=True)
class OneVsRest:
    """K calibrators f_k, one per class,
    applied to the log-odds s_k and renormalised."""

    calibrators: tuple[Callable[[np.ndarray], np.ndarray], ...]

    def __call__(self, logits: ArrayLike) -> np.ndarray:
        """Calibrated probabilities (N, K) for new logits."""
        s = one_vs_rest_log_odds(logits)
        if s.shape[1] != len(self.calibrators):
            raise ValueError(
                f"logits have K = {s.shape[1]} classes but the calibrator was fitted "
                f"on {len(self.calibrators)}"
            )
        g = np.stack([f(s[:, k]) for k, f in enumerate(self.calibrators)], axis=1)
        total = g.sum(axis=1, keepdims=True)
        # p̃_ik = f_k(s_ik) / Σ_j f_j(s_ij); a row where every f_k is 0 gets 1/K
        # (scikit-learn)
        return np.where(
            total > 0, g / np.where(total > 0, total, 1.0), 1.0 / g.shape[1]
        )


def _fit_one_vs_rest(
    logits: ArrayLike,
    labels: ArrayLike,
    fit: Callable[[np.ndarray, np.ndarray], Callable],
) -> OneVsRest:
    """Fit ``fit(s_k, 1[y = k])`` for every class k on held-out (logits, labels)."""
    z, labels = _check_calibration_set(logits, labels)
    missing = np.setdiff1d(np.arange(z.shape[1]), labels)
    if missing.size:
        raise ValueError(
            f"labels never contains class {int(missing[0])}: one-vs-rest calibration "
            "fits one calibrator per class and needs examples of each. Use a larger "
            "calibration set, or temperature scaling (one parameter for all classes)"
        )
    s = one_vs_rest_log_odds(z)
    return OneVsRest(
        tuple(fit(s[:, k], (labels == k).astype(np.float64)) for k in range(z.shape[1]))
    )


def fit_platt(logits: ArrayLike, labels: ArrayLike) -> OneVsRest:
    """Platt scaling, one-vs-rest: p̃_k ∝ σ(a_k s_k + b_k), (a_k, b_k) fitted per class.

    Each class's log-odds s_k get their own sigmoid, fitted on held-out (logits,
    labels); the K outputs are renormalised to sum to 1, as in scikit-learn's
    CalibratedClassifierCV. With a = 1, b = 0 it would return softmax(z) unchanged.
    Renormalising can change the argmax, so unlike temperature scaling it can
    change the accuracy.
    """
    return _fit_one_vs_rest(logits, labels, platt_fit)


def fit_isotonic(logits: ArrayLike, labels: ArrayLike) -> OneVsRest:
    """Isotonic regression, one-vs-rest: p̃_k ∝ f_k(s_k), f_k non-decreasing,
    fitted per class.

    Same scheme as :func:`fit_platt` with a free monotone step function in
    place of the sigmoid. It can give a true class probability 0 (infinite NLL)
    and change the argmax.
    """
    return _fit_one_vs_rest(logits, labels, isotonic_fit)


def apply_temperature(logits: ArrayLike, temperature: float) -> np.ndarray:
    """softmax(z / T): the calibrated probabilities of temperature scaling."""
    z = _check_matrix(logits, "logits")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    # p = softmax(z / T)
    return softmax(z / temperature)

"""Exercises 8.1–8.3: the expected calibration error, temperature scaling and PAV.

The wrong values typical mistakes give are computed here (``_ece`` with one choice changed,
``_pav`` with one step changed), so a message names a mistake only when the learner's
number is that mistake's number.
"""

import numpy as np
import pytest
from sklearn.isotonic import isotonic_regression

from lsce_scratch.softmax import log_softmax, softmax
from tests.expect import Diagnosis, assert_close, describe_inputs, show

# K = 4 and M = 4 bins; four confidences sit exactly on bin edges (0.25, 0.5, 0.75, 1.0)
EDGE_PROBS = np.array(
    [
        [0.25, 0.25, 0.25, 0.25],  # c = .25 → bin 1, ŷ = 0, right
        [0.5, 0.5, 0.0, 0.0],  # c = .5 → bin 2, ŷ = 0, y = 1: wrong
        [0.75, 0.25, 0.0, 0.0],  # c = .75 → bin 3, right
        [0.0, 0.0, 1.0, 0.0],  # c = 1 → bin 4, right
        [0.125, 0.625, 0.25, 0.0],  # c = .625 → bin 3, wrong
    ]
)
EDGE_LABELS = np.array([0, 1, 0, 2, 2])


def _predictions(seed: int, n: int = 400, k: int = 6):
    """Logits and labels drawn from softmax(z / 1.7): the logits are over-confident."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * 3
    labels = np.array([rng.choice(k, p=row) for row in softmax(z / 1.7)])
    return z, labels


# --------------------------------------------------------------------------------------------
# 8.1 expected_calibration_error


def _ece(
    probs,
    labels,
    n_bins,
    norm="l1",
    *,
    confidence="top",
    closed="right",
    average="weighted",
    accuracy="top label",
    root=True,
    max_weighted=False,
):
    """The calibration error with one choice changed, as a mistake would change it."""
    rows = np.arange(len(labels))
    top = probs.argmax(axis=1)
    c = probs[rows, top] if confidence == "top" else probs[rows, labels]
    correct = (top == labels).astype(float)
    if accuracy == "true probability":
        correct = probs[rows, labels]
    edges = np.arange(n_bins + 1) / n_bins
    side = "left" if closed == "right" else "right"
    index = np.clip(np.searchsorted(edges, c, side=side) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    filled = count > 0
    acc = np.bincount(index, correct, minlength=n_bins)[filled] / count[filled]
    if accuracy == "overall":
        acc = np.full(filled.sum(), correct.mean())
    conf = np.bincount(index, c, minlength=n_bins)[filled] / count[filled]
    gap = np.abs(acc - conf)
    share = count[filled] / len(labels)
    if average == "bins":
        share = np.full(len(gap), 1 / len(gap))
    elif average == "all bins":
        share = np.full(len(gap), 1 / n_bins)
    if norm == "l1":
        return float(np.sum(share * gap))
    if norm == "l2":
        squares = np.sum(share * gap**2)
        return float(np.sqrt(squares) if root else squares)
    return float(np.max(share * gap if max_weighted else gap))


def _ece_mistakes(probs, labels, n_bins, norm):
    args = (probs, labels, n_bins, norm)
    mistakes = {
        "that uses the true label's probability p_(i,y_i) as the confidence: the confidence is "
        "the top label's, c_i = max_k p_ik": _ece(*args, confidence="true"),
        "a confidence on an edge m/M went to the upper bin ([(m−1)/M, m/M)): bins are closed "
        "on the right, so it belongs to the lower bin": _ece(*args, closed="left"),
        "the accuracy of a bin is the mean of p_(i,y_i): it is the share of rows whose top "
        "label ŷ_i = argmax_k p_ik equals the label": _ece(
            *args, accuracy="true probability"
        ),
        "every bin got the overall accuracy: the accuracy is computed per bin, over its rows": (
            _ece(*args, accuracy="overall")
        ),
    }
    if norm != "max":
        mistakes[
            "the bins are averaged without their weights |B_m|/N (a plain mean over the "
            "non-empty bins)"
        ] = _ece(*args, average="bins")
        mistakes[
            "the bins are averaged without their weights |B_m|/N (divided by M)"
        ] = _ece(*args, average="all bins")
    if norm == "l2":
        mistakes["the square root is missing: l2 = √(Σ_m (|B_m|/N)·(acc − conf)²)"] = (
            _ece(*args, root=False)
        )
    if norm == "max":
        mistakes[
            "the largest gap is weighted by |B_m|/N: the MCE is max_m |acc − conf|, unweighted"
        ] = _ece(*args, max_weighted=True)
        mistakes["that is the weighted sum (the 'l1' ECE), not the largest gap"] = _ece(
            *args[:3], "l1"
        )
    return mistakes


def _check_ece(ece, probs, labels, n_bins, norm, expected, what):
    with np.errstate(all="ignore"):
        got = ece(probs, labels, n_bins=n_bins, norm=norm)
    if np.isnan(got):
        raise Diagnosis(
            f"{what} returned NaN, expected {show(expected)}: an empty bin gives 0/0 = NaN. "
            f"Empty bins count for nothing: leave them out\n"
            + describe_inputs({"probs": probs, "labels": labels})
        )
    assert_close(
        got,
        expected,
        1e-12,
        what,
        mistakes=_ece_mistakes(probs, labels, n_bins, norm),
        probs=probs,
        labels=labels,
    )


@pytest.mark.ex8_1
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_by_hand_with_confidences_on_bin_edges(impl, norm):
    # bins: (count, acc, conf) = (1, 1, .25), (1, 0, .5), (2, .5, .6875), (1, 1, 1)
    # ECE = (.75 + .5 + 2·.1875 + 0) / 5 = .325; RMS = √((.75² + .5² + 2·.1875²)/5); MCE = .75
    expected = {
        "l1": 0.325,
        "l2": np.sqrt((0.75**2 + 0.5**2 + 2 * 0.1875**2) / 5),
        "max": 0.75,
    }
    expected = expected[norm]
    what = f"expected_calibration_error(probs, labels, n_bins=4, norm={norm!r})"
    _check_ece(impl(), EDGE_PROBS, EDGE_LABELS, 4, norm, expected, what)


@pytest.mark.ex8_1
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_decimal_edge_goes_to_the_lower_bin(impl, norm):
    # c = 0.7 equals the edge 7/10; in (0.6, 0.7] with c = 0.65 its bin has accuracy 1/2,
    # and one bin gives the same |acc − conf| = 0.175 in every norm
    probs, labels = np.array([[0.7, 0.3], [0.65, 0.35]]), np.array([0, 1])
    what = (
        f"expected_calibration_error(probs, labels, n_bins=10, norm={norm!r}), c = 0.7 on "
        f"the edge 7/10"
    )
    _check_ece(impl(), probs, labels, 10, norm, abs(0.5 - 0.675), what)


def _ece_by_loop(p: np.ndarray, labels: np.ndarray, n_bins: int, norm: str) -> float:
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == labels
    shares, gaps = [], []
    for m in range(n_bins):
        inside = (confidence > m / n_bins) & (confidence <= (m + 1) / n_bins)
        if inside.any():
            shares.append(inside.mean())
            gaps.append(abs(correct[inside].mean() - confidence[inside].mean()))
    shares, gaps = np.array(shares), np.array(gaps)
    if norm == "l1":
        return float(np.sum(shares * gaps))
    if norm == "l2":
        return float(np.sqrt(np.sum(shares * gaps**2)))
    return float(gaps.max())


@pytest.mark.ex8_1
@pytest.mark.parametrize(
    ("n_bins", "norm"), [(1, "l1"), (5, "l1"), (15, "l1"), (10, "l2"), (10, "max")]
)
def test_ece_on_random_predictions(impl, n_bins, norm):
    z, labels = _predictions(81 + n_bins)
    p = softmax(z)
    what = f"expected_calibration_error(probs, labels, n_bins={n_bins}, norm={norm!r}), N = 400"
    _check_ece(
        impl(), p, labels, n_bins, norm, _ece_by_loop(p, labels, n_bins, norm), what
    )


@pytest.mark.ex8_1
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_empty_bins_count_for_nothing(impl, norm):
    # 15 bins and 6 rows: most bins are empty
    z, labels = _predictions(86, n=6)
    p = softmax(z)
    what = (
        f"expected_calibration_error(probs, labels, n_bins=15, norm={norm!r}), 6 rows"
    )
    _check_ece(impl(), p, labels, 15, norm, _ece_by_loop(p, labels, 15, norm), what)


@pytest.mark.ex8_1
def test_an_unknown_norm_raises_value_error(impl):
    ece = impl()
    try:
        got = ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, norm="l3")
    except ValueError:
        return
    raise Diagnosis(
        f"expected_calibration_error(..., norm='l3') returned {got} instead of raising "
        f"ValueError: norm must be 'l1', 'l2' or 'max'"
    )


# --------------------------------------------------------------------------------------------
# 8.2 fit_temperature


def _nll(z: np.ndarray, labels: np.ndarray, t: float) -> float:
    log_p = log_softmax(z / t)
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def _best_temperature(z: np.ndarray, labels: np.ndarray) -> float:
    """Bisection on the sign of dNLL/dβ over log β, β = 1/T."""
    true = z[np.arange(len(labels)), labels]
    low, high = np.log(0.01), np.log(100.0)
    for _ in range(100):
        middle = (low + high) / 2
        slope = np.mean(np.sum(softmax(np.exp(middle) * z) * z, axis=1) - true)
        low, high = (middle, high) if slope < 0 else (low, middle)
    return float(np.exp(-(low + high) / 2))


def _check_temperature(t: float, z: np.ndarray, labels: np.ndarray, what: str) -> None:
    """Diagnose a temperature that is not at the NLL's minimum."""
    if np.ndim(t) != 0 or not float(t) > 0:
        raise Diagnosis(f"{what} returned {t!r}: it must return one number T > 0")
    t = float(t)
    best = _best_temperature(z, labels)
    lower = [
        n
        for n in (t * (1 - 1e-3), t * (1 + 1e-3))
        if _nll(z, labels, n) < _nll(z, labels, t)
    ]
    if not lower:
        return
    fact = (
        f"{what} returned T = {t:.6g}, but the NLL at T = {lower[0]:.6g} is lower "
        f"({_nll(z, labels, lower[0]):.9g} < {_nll(z, labels, t):.9g}); the NLL's minimum "
        f"is at T = {best:.6g}"
    )
    if abs(t * best - 1) < 1e-3:
        raise Diagnosis(
            f"{fact}. Your T is 1/{best:.6g}: that is β = 1/T. softmax(z / T) divides by T, "
            f"so return T = 1/β"
        )
    if t == 1.0:
        raise Diagnosis(
            f"{fact}. T = 1 leaves the logits as they are: nothing was fitted"
        )
    if min(abs(t / 0.01 - 1), abs(t / 100 - 1)) < 1e-6:
        raise Diagnosis(
            f"{fact}. T = {t:g} is an end of the range [0.01, 100]: does your objective change "
            f"with T at all? Accuracy does not (dividing by T > 0 keeps every argmax); the NLL "
            f"does. If you bisect on the slope, check its sign"
        )
    # the ECE a search that minimises the ECE would reach, on a fine grid around T*
    ece_yours, ece_best = (_ece(softmax(z / s), labels, 15) for s in (t, best))
    lowest = min(
        _ece(softmax(z / s), labels, 15) for s in np.geomspace(best / 3, best * 3, 2001)
    )
    if ece_yours < ece_best and ece_yours - lowest <= 0.1 * (ece_best - lowest):
        raise Diagnosis(
            f"{fact}. Your T minimises the ECE instead: its ECE, {ece_yours:.4f}, is about the "
            f"lowest any T reaches ({lowest:.4f}; {ece_best:.4f} at the NLL's minimum). "
            f"Temperature scaling minimises the NLL, not the ECE"
        )
    raise AssertionError(
        f"{fact}: search until the interval is much narrower than 1e-3·T"
    )


@pytest.mark.ex8_2
def test_fitted_temperature_is_the_minimum(impl):
    fit_temperature = impl()
    z, labels = _predictions(82)
    _check_temperature(
        fit_temperature(z, labels), z, labels, "fit_temperature(logits, labels)"
    )


@pytest.mark.ex8_2
def test_under_confident_logits_get_a_temperature_below_one(impl):
    fit_temperature = impl()
    z, labels = _predictions(84)
    z = z / 4  # labels drawn from softmax(z / 1.7) with the logits shrunk: T* < 1
    _check_temperature(
        fit_temperature(z, labels), z, labels, "fit_temperature(logits / 4, ...)"
    )


@pytest.mark.ex8_2
@pytest.mark.parametrize("factor", [0.3, 3.0])
def test_temperature_undoes_an_artificial_scaling(impl, factor):
    fit_temperature = impl()
    z, labels = _predictions(83, n=3000)
    base = _best_temperature(z, labels)
    scaled = fit_temperature(factor * z, labels)
    _check_temperature(
        scaled, factor * z, labels, f"fit_temperature({factor} · logits, labels)"
    )
    assert_close(
        scaled,
        factor * base,
        1e-4,
        f"fit_temperature({factor} · z, labels): T(c·z) must be c·T(z) = {factor}·{base:.6g}",
        mistakes={"that is β = 1/T: return T": 1 / (factor * base)},
    )


# --------------------------------------------------------------------------------------------
# 8.3 pool_adjacent_violators


def _pav(values, weights=None, *, repeat=True, mean="weighted"):
    """PAV with one step changed, as a mistake would change it."""
    weights = np.ones(len(values)) if weights is None else weights
    means, totals, sizes = [], [], []
    for value, weight in zip(values, weights, strict=True):
        means.append(float(value))
        totals.append(float(weight))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m, w, n = means.pop(), totals.pop(), sizes.pop()
            if mean == "weighted":
                means[-1] = (totals[-1] * means[-1] + w * m) / (totals[-1] + w)
            elif mean == "sizes":
                means[-1] = (sizes[-1] * means[-1] + n * m) / (sizes[-1] + n)
            else:
                means[-1] = (means[-1] + m) / 2
            totals[-1] += w
            sizes[-1] += n
            if not repeat:
                break
    return np.repeat(means, sizes)


def _pav_mistakes(values, weights=None):
    weighted = weights is not None and not np.allclose(weights, 1)
    mistakes = {
        "a pool can create a new violation further left: after pooling, compare the new "
        "block with the one before it again (while, not if)": _pav(
            values, weights, repeat=False
        ),
        "the pooled mean is the plain average of the two block means: weight each by its "
        "total weight, (W_a m_a + W_b m_b)/(W_a + W_b)": _pav(
            values, weights, mean="halves"
        ),
    }
    if weighted:
        mistakes[
            "the weights are ignored: the pooled mean is (W_a m_a + W_b m_b)/(W_a + W_b)"
        ] = _pav(values, weights, mean="sizes")
    return mistakes


def _check_pav(pav, values, weights, expected, what):
    got = np.asarray(pav(values.copy(), None if weights is None else weights.copy()))
    if got.ndim == 1 and got.shape[0] < values.shape[0]:
        raise Diagnosis(
            f"{what} returned {got.shape[0]} values for {values.shape[0]} inputs: one fitted "
            f"value per input, so expand the blocks (np.repeat(means, sizes))\n"
            f"got {show(got)}\nexpected {show(expected)}"
        )
    inputs = (
        {"values": values}
        if weights is None
        else {"values": values, "weights": weights}
    )
    mistakes = _pav_mistakes(values, weights)
    assert_close(got, expected, 1e-12, what, mistakes=mistakes, **inputs)


@pytest.mark.ex8_3
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pav_matches_sklearn_with_weights_and_ties(impl, seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(150).round(1)  # rounded: many tied values
    weights = rng.uniform(0.1, 3.0, 150)
    expected = isotonic_regression(values, sample_weight=weights)
    _check_pav(
        impl(), values, weights, expected, "pool_adjacent_violators(values, weights)"
    )


@pytest.mark.ex8_3
def test_pav_without_weights_matches_sklearn(impl):
    values = np.random.default_rng(3).standard_normal(60)
    expected = isotonic_regression(values)
    _check_pav(
        impl(), values, None, expected, "pool_adjacent_violators(values), 60 values"
    )


@pytest.mark.ex8_3
@pytest.mark.parametrize(
    ("values", "weights", "expected"),
    [
        ([1.0, 3.0, 2.0, 4.0], None, [1.0, 2.5, 2.5, 4.0]),
        # a late small value pulls back across several blocks: (3 + 2 + 1 + 0)/4 = 1.5
        ([3.0, 2.0, 1.0, 0.0, 5.0], None, [1.5, 1.5, 1.5, 1.5, 5.0]),
        # pooling 3 and 0 gives 1.5, now below the 2 before it: pool again, 5/3
        ([2.0, 3.0, 0.0], None, [5 / 3, 5 / 3, 5 / 3]),
        ([3.0, 1.0], [1.0, 3.0], [1.5, 1.5]),
        ([2.0, 3.0, 0.0, 4.0], [1.0, 2.0, 1.0, 5.0], [2.0, 2.0, 2.0, 4.0]),
        ([0.5], None, [0.5]),
        ([-1.0, 0.0, 0.0, 2.0], None, [-1.0, 0.0, 0.0, 2.0]),
    ],
)
def test_pav_small_cases_by_hand(impl, values, weights, expected):
    values, expected = np.array(values), np.array(expected)
    weights = None if weights is None else np.array(weights)
    what = f"pool_adjacent_violators({values.tolist()}, weights={weights})"
    _check_pav(impl(), values, weights, expected, what)

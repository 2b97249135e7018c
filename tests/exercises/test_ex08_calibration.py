"""Exercises 8.1–8.3: the expected calibration error, temperature scaling and PAV."""

import numpy as np
import pytest
from sklearn.isotonic import isotonic_regression

from lsce_scratch.softmax import softmax

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


def _nll(z: np.ndarray, labels: np.ndarray, t: float) -> float:
    log_p = np.log(softmax(z / t))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


@pytest.mark.ex8_1
@pytest.mark.parametrize(("norm", "expected"), [("l1", 0.325), ("max", 0.75)])
def test_ece_by_hand_with_confidences_on_bin_edges(impl, norm, expected):
    # bins: (count, acc, conf) = (1, 1, .25), (1, 0, .5), (2, .5, .6875), (1, 1, 1)
    # ECE = (.75 + .5 + 2·.1875 + 0) / 5 = .325; MCE = .75
    ece = impl()
    got = ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, norm=norm)
    assert got == pytest.approx(expected, rel=1e-12), (
        f"{norm}: got {got}; a confidence on an edge belongs to the lower bin ((m−1)/M, m/M]"
    )


@pytest.mark.ex8_1
def test_rms_calibration_error_by_hand(impl):
    ece = impl()
    expected = np.sqrt((0.75**2 + 0.5**2 + 2 * 0.1875**2) / 5)
    assert ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, norm="l2") == pytest.approx(expected, 1e-12)


@pytest.mark.ex8_1
def test_decimal_edge_goes_to_the_lower_bin(impl):
    # c = 0.7 equals the edge 7/10; in (0.6, 0.7] with c = 0.65 its bin has accuracy 1/2
    ece = impl()
    probs = np.array([[0.7, 0.3], [0.65, 0.35]])
    got = ece(probs, np.array([0, 1]), n_bins=10)
    assert got == pytest.approx(abs(0.5 - 0.675), rel=1e-12), f"got {got}"


@pytest.mark.ex8_1
@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_on_random_predictions(impl, n_bins):
    ece = impl()
    z, labels = _predictions(81 + n_bins)
    p = softmax(z)
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == labels
    expected = 0.0
    for m in range(n_bins):
        inside = (confidence > m / n_bins) & (confidence <= (m + 1) / n_bins)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            expected += inside.mean() * gap
    assert ece(p, labels, n_bins=n_bins) == pytest.approx(expected, rel=1e-12)


@pytest.mark.ex8_2
def test_fitted_temperature_is_the_minimum(impl):
    fit_temperature = impl()
    z, labels = _predictions(82)
    t = fit_temperature(z, labels)
    assert t > 0
    best = _nll(z, labels, t)
    for nudged in (t * (1 - 1e-3), t * (1 + 1e-3)):
        assert _nll(z, labels, nudged) >= best, f"NLL at {nudged} is below the NLL at T = {t}"


@pytest.mark.ex8_2
@pytest.mark.parametrize("factor", [0.3, 3.0])
def test_temperature_undoes_an_artificial_scaling(impl, factor):
    fit_temperature = impl()
    z, labels = _predictions(83, n=3000)
    base = fit_temperature(z, labels)
    scaled = fit_temperature(factor * z, labels)
    assert (scaled > base) == (factor > 1)
    assert scaled == pytest.approx(factor * base, rel=1e-4), "T(c·z) must be c·T(z)"


@pytest.mark.ex8_3
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pav_matches_sklearn_with_weights_and_ties(impl, seed):
    pav = impl()
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(150).round(1)  # rounded: many tied values
    weights = rng.uniform(0.1, 3.0, 150)
    got = np.asarray(pav(values, weights))
    expected = isotonic_regression(values, sample_weight=weights)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.ex8_3
def test_pav_without_weights_and_small_cases(impl):
    pav = impl()
    np.testing.assert_allclose(pav(np.array([1.0, 3.0, 2.0, 4.0])), [1.0, 2.5, 2.5, 4.0])
    # a late small value pulls back across several blocks: (3 + 2 + 1 + 0)/4 = 1.5
    np.testing.assert_allclose(pav(np.array([3.0, 2.0, 1.0, 0.0, 5.0])), [1.5] * 4 + [5.0])
    np.testing.assert_allclose(pav(np.array([3.0, 1.0]), np.array([1.0, 3.0])), [1.5, 1.5])
    values = np.random.default_rng(3).standard_normal(60)
    np.testing.assert_allclose(pav(values), isotonic_regression(values), rtol=0, atol=1e-12)

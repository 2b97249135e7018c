"""lsce_scratch.calibration: ECE and its bins, NLL, Brier, temperature scaling, PAV, Platt.

Oracles: hand-computed cases (with confidences exactly on bin edges), a per-bin loop
written differently from the library, scikit-learn (isotonic regression, calibration_curve,
Brier), SciPy's optimiser for Platt, and PyTorch's NLL.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression, isotonic_regression
from sklearn.metrics import brier_score_loss

from lsce_scratch import calibration as cal
from lsce_scratch.softmax import softmax

# K = 4, M = 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; four confidences sit exactly
# on edges (0.25, 0.5, 0.75, 1.0, all exact in binary) and go to the lower bin.
EDGE_PROBS = np.array(
    [
        [
            0.25,
            0.25,
            0.25,
            0.25,
        ],  # c = .25 → bin 1, ŷ = 0 (first on ties), y = 0: right
        [0.5, 0.5, 0.0, 0.0],  # c = .5 → bin 2, ŷ = 0, y = 1: wrong
        [0.75, 0.25, 0.0, 0.0],  # c = .75 → bin 3, right
        [0.0, 0.0, 1.0, 0.0],  # c = 1 → bin 4, right
        [0.125, 0.625, 0.25, 0.0],  # c = .625 → bin 3, ŷ = 1, y = 2: wrong
    ]
)
EDGE_LABELS = np.array([0, 1, 0, 2, 2])
# per bin: (count, acc, conf) = (1, 1, .25), (1, 0, .5), (2, .5, .6875), (1, 1, 1)
EDGE_GAPS = np.array([0.75, 0.5, 0.1875, 0.0])
EDGE_COUNTS = np.array([1, 1, 2, 1])


def random_predictions(
    rng: np.random.Generator, n: int = 400, k: int = 7, scale: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, probabilities and labels drawn from softmax(z / 1.7): mis-calibrated on purpose."""
    z = rng.standard_normal((n, k)) * scale
    p_true = softmax(z / 1.7)
    labels = np.array([rng.choice(k, p=row) for row in p_true])
    return z, softmax(z), labels


def ece_by_loop(
    probs: np.ndarray, labels: np.ndarray, n_bins: int
) -> tuple[float, float, float]:
    """(ECE, RMSCE, MCE) by an explicit loop over bins with interval masks."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    ece = squares = mce = 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        inside = (confidence > lo) & (confidence <= hi)
        if m == 1:
            inside |= confidence == 0.0
        if not inside.any():
            continue
        gap = abs(correct[inside].mean() - confidence[inside].mean())
        ece += inside.sum() / len(labels) * gap
        squares += inside.sum() / len(labels) * gap**2
        mce = max(mce, gap)
    return ece, np.sqrt(squares), mce


# ---------------------------------------------------------------------------------------------
# ECE, reliability bins


def test_ece_on_hand_computed_case_with_confidences_on_edges() -> None:
    bins = cal.reliability_bins(EDGE_PROBS, EDGE_LABELS, n_bins=4)
    np.testing.assert_array_equal(bins.edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(bins.count, EDGE_COUNTS)
    np.testing.assert_allclose(bins.accuracy, [1.0, 0.0, 0.5, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        bins.confidence, [0.25, 0.5, 0.6875, 1.0], rtol=0, atol=1e-15
    )
    # ECE = (1·.75 + 1·.5 + 2·.1875 + 1·0) / 5 = 0.325
    assert cal.expected_calibration_error(EDGE_PROBS, EDGE_LABELS, 4) == pytest.approx(
        0.325, 1e-14
    )
    assert cal.expected_calibration_error(EDGE_PROBS, EDGE_LABELS, 4, "max") == 0.75
    rms = np.sqrt(np.sum(EDGE_COUNTS * EDGE_GAPS**2) / 5)
    assert cal.expected_calibration_error(
        EDGE_PROBS, EDGE_LABELS, 4, "l2"
    ) == pytest.approx(rms, 1e-14)


def test_edge_rule_changes_the_ece_by_a_factor_of_three() -> None:
    # the docs page's question: c = 0.5 (wrong) sits on the edge of M = 2 and goes to bin 1
    probs = np.array([[0.5, 0.5], [0.75, 0.25]])
    assert cal.expected_calibration_error(probs, [1, 0], n_bins=2) == 0.375


def test_decimal_edges_go_to_the_lower_bin() -> None:
    # 0.7 is not exact in binary; the edge 7/10 is the same double, so c = 0.7 is "on" it
    probs = np.array([[0.7, 0.3], [0.8, 0.2], [0.1 + 0.2, 0.7], [0.9, 0.1]])
    bins = cal.reliability_bins(probs, np.array([0, 0, 1, 0]), n_bins=10)
    assert bins.edges[7] == 0.7
    np.testing.assert_array_equal(np.flatnonzero(bins.count), [6, 7, 8])
    np.testing.assert_array_equal(bins.count[[6, 7, 8]], [2, 1, 1])


def test_empty_bins_are_nan_and_counts_add_up() -> None:
    bins = cal.reliability_bins(EDGE_PROBS, EDGE_LABELS, n_bins=15)
    assert bins.count.sum() == len(EDGE_LABELS)
    empty = bins.count == 0
    assert (
        np.isnan(bins.accuracy[empty]).all() and np.isnan(bins.confidence[empty]).all()
    )
    assert not np.isnan(bins.accuracy[~empty]).any()


@pytest.mark.parametrize("n_bins", [1, 2, 7, 15, 40])
def test_ece_matches_a_per_bin_loop(n_bins: int) -> None:
    _, p, y = random_predictions(np.random.default_rng(n_bins))
    ece, rms, mce = ece_by_loop(p, y, n_bins)
    assert cal.expected_calibration_error(p, y, n_bins) == pytest.approx(ece, rel=1e-12)
    assert cal.expected_calibration_error(p, y, n_bins, "l2") == pytest.approx(
        rms, rel=1e-12
    )
    assert cal.expected_calibration_error(p, y, n_bins, "max") == pytest.approx(
        mce, rel=1e-12
    )


def test_bins_match_scikit_learn_calibration_curve() -> None:
    # sklearn bins the same way, (b_i, b_{i+1}], for one binary score: use c_i and correctness
    _, p, y = random_predictions(np.random.default_rng(5))
    bins = cal.reliability_bins(p, y, n_bins=10)
    correct = (p.argmax(axis=1) == y).astype(int)
    accuracy, confidence = calibration_curve(correct, p.max(axis=1), n_bins=10)
    filled = bins.count > 0
    np.testing.assert_allclose(bins.accuracy[filled], accuracy, rtol=1e-12)
    np.testing.assert_allclose(bins.confidence[filled], confidence, rtol=1e-12)


def test_one_bin_ece_is_accuracy_minus_mean_confidence() -> None:
    _, p, y = random_predictions(np.random.default_rng(6))
    expected = abs(np.mean(p.argmax(axis=1) == y) - np.mean(p.max(axis=1)))
    assert cal.expected_calibration_error(p, y, n_bins=1) == pytest.approx(
        expected, rel=1e-12
    )


def test_ece_accepts_float32_probabilities() -> None:
    z, _, y = random_predictions(np.random.default_rng(7), k=37)
    p32 = softmax(z.astype(np.float32))
    assert cal.expected_calibration_error(p32, y) == pytest.approx(
        cal.expected_calibration_error(softmax(z), y), abs=1e-5
    )


# ---------------------------------------------------------------------------------------------
# NLL and Brier


def test_nll_matches_torch() -> None:
    z, p, y = random_predictions(np.random.default_rng(8))
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(z), torch.tensor(y)
    ).item()
    assert cal.negative_log_likelihood(p, y) == pytest.approx(expected, rel=1e-12)


def test_nll_is_infinite_when_a_true_class_has_probability_zero() -> None:
    assert (
        cal.negative_log_likelihood(np.array([[1.0, 0.0], [0.5, 0.5]]), [1, 0])
        == np.inf
    )


def test_brier_hand_computed_and_twice_sklearn_binary() -> None:
    # ((0.8 − 1)² + 0.2²) + ((0.4 − 1)² + 0.6²) over 2 rows = (0.08 + 0.72) / 2 = 0.4
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert cal.brier_score(probs, [0, 0]) == pytest.approx(0.4, rel=1e-14)
    # for K = 2 the multiclass sum counts the binary error twice
    _, p, y = random_predictions(np.random.default_rng(9), k=2)
    assert cal.brier_score(p, y) == pytest.approx(
        2 * brier_score_loss(y, p[:, 1]), rel=1e-12
    )


def test_brier_three_classes_by_hand() -> None:
    probs = np.array([[0.5, 0.3, 0.2]])
    # (0.5 − 0)² + (0.3 − 0)² + (0.2 − 1)² = 0.25 + 0.09 + 0.64
    assert cal.brier_score(probs, [2]) == pytest.approx(0.98, rel=1e-14)


# ---------------------------------------------------------------------------------------------
# temperature scaling


def test_fitted_temperature_minimises_the_nll() -> None:
    z, _, y = random_predictions(np.random.default_rng(10))
    t = cal.fit_temperature(z, y)
    nll = cal.negative_log_likelihood(cal.apply_temperature(z, t), y)
    for nudged in (t * (1 - 1e-3), t * (1 + 1e-3)):
        assert cal.negative_log_likelihood(cal.apply_temperature(z, nudged), y) >= nll


def test_temperature_keeps_the_argmax() -> None:
    z, _, y = random_predictions(np.random.default_rng(11))
    t = cal.fit_temperature(z, y)
    np.testing.assert_array_equal(
        cal.apply_temperature(z, t).argmax(axis=1), z.argmax(axis=1)
    )


@pytest.mark.parametrize("factor", [0.25, 0.5, 2.0, 4.0])
def test_temperature_follows_an_artificial_scaling(factor: float) -> None:
    # labels drawn from softmax(z): calibrated at T ≈ 1, so the fit on factor·z is ≈ factor
    rng = np.random.default_rng(12)
    z = rng.standard_normal((4000, 5)) * 2
    y = np.array([rng.choice(5, p=row) for row in softmax(z)])
    t = cal.fit_temperature(factor * z, y)
    assert (t > 1) == (factor > 1)
    assert t == pytest.approx(factor * cal.fit_temperature(z, y), rel=1e-9)
    assert t == pytest.approx(factor, rel=0.1)


def test_temperature_of_a_perfect_set_is_the_lower_end() -> None:
    z = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    assert cal.fit_temperature(z, [0, 1]) == cal.T_MIN


def test_temperature_of_a_useless_model_is_the_upper_end() -> None:
    # logits that point away from the truth: the best is to flatten them completely
    z = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    assert cal.fit_temperature(z, [1, 0]) == cal.T_MAX


# ---------------------------------------------------------------------------------------------
# isotonic regression (PAV)


@pytest.mark.parametrize("seed", range(5))
def test_pav_matches_sklearn_with_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(200).round(1)  # rounding makes ties among the values
    weights = rng.uniform(0.1, 3.0, 200)
    expected = isotonic_regression(values, sample_weight=weights)
    np.testing.assert_allclose(
        cal.pool_adjacent_violators(values, weights), expected, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_isotonic_fit_matches_sklearn_with_tied_scores_and_weights(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    scores = rng.integers(0, 30, 300).astype(float)  # many tied scores
    targets = (rng.random(300) < scores / 30).astype(float) + 0.1 * rng.standard_normal(
        300
    )
    weights = rng.uniform(0.1, 2.0, 300)
    ours = cal.isotonic_fit(scores, targets, weights)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(
        scores, targets, sample_weight=weights
    )
    new = np.r_[scores, rng.uniform(-5, 35, 500)]
    np.testing.assert_allclose(ours(new), theirs.predict(new), rtol=0, atol=1e-12)


# Scores on a grid: scikit-learn also merges scores closer than 1e-15 (its _make_unique),
# where we tie only equal scores, so 0 and 1e-162 would differ for a reason of no interest.
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-50, 50).map(lambda i: i / 10),
            st.floats(-10, 10, allow_nan=False),
            st.floats(0.01, 10, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_isotonic_fit_property_matches_sklearn(
    rows: list[tuple[float, float, float]],
) -> None:
    scores, targets, weights = (np.array(column) for column in zip(*rows, strict=True))
    ours = cal.isotonic_fit(scores, targets, weights)
    theirs = IsotonicRegression().fit(scores, targets, sample_weight=weights)
    assert np.all(np.diff(ours.values) >= 0)
    np.testing.assert_allclose(
        ours(scores), theirs.predict(scores), rtol=1e-12, atol=1e-12
    )


def test_pav_leaves_a_sorted_sequence_alone_and_pools_a_reversed_one() -> None:
    np.testing.assert_array_equal(
        cal.pool_adjacent_violators([1.0, 2.0, 2.0, 5.0]), [1, 2, 2, 5]
    )
    # one block of weighted mean (3·1 + 1·3) / 4 = 1.5
    np.testing.assert_allclose(
        cal.pool_adjacent_violators([3.0, 1.0], [1.0, 3.0]), [1.5, 1.5]
    )


# ---------------------------------------------------------------------------------------------
# Platt scaling and the one-vs-rest calibrators


def test_platt_fit_minimises_the_smoothed_log_loss() -> None:
    rng = np.random.default_rng(20)
    x = rng.standard_normal(500) * 3
    y = (rng.random(500) < 1 / (1 + np.exp(-(0.7 * x - 0.5)))).astype(float)
    fit = cal.platt_fit(x, y)
    pos, neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (pos + 1) / (pos + 2), 1 / (neg + 2))

    def loss(theta: np.ndarray) -> float:
        u = theta[0] * x + theta[1]
        return float(np.sum(np.logaddexp(0, u) - t * u))

    best = minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose([fit.slope, fit.intercept], best, rtol=1e-6, atol=1e-7)
    assert fit.slope == pytest.approx(0.7, rel=0.3)


def test_platt_stays_finite_on_separable_scores() -> None:
    x = np.r_[np.linspace(-6, -1, 30), np.linspace(1, 6, 30)]
    y = np.r_[np.zeros(30), np.ones(30)]
    fit = cal.platt_fit(x, y)
    # a plain logistic fit would send the slope to infinity; Platt's targets keep it finite
    assert np.isfinite(fit.slope) and 0 < fit.slope < 10
    assert 0 < fit(np.array([-1.0]))[0] < 0.5 < fit(np.array([1.0]))[0] < 1


def test_one_vs_rest_log_odds_are_exact_for_confident_rows() -> None:
    z = np.array([[0.0, 1.0, -2.0], [50.0, 0.0, 0.0]])
    p = softmax(z[:1])
    np.testing.assert_allclose(
        cal.one_vs_rest_log_odds(z[:1]), np.log(p / (1 - p)), rtol=1e-12
    )
    # p_0 rounds to 1 in float64, yet s_0 = 50 − log 2
    assert cal.one_vs_rest_log_odds(z)[1, 0] == pytest.approx(50 - np.log(2), rel=1e-15)


def test_one_vs_rest_isotonic_matches_sklearn_per_class() -> None:
    z, _, y = random_predictions(np.random.default_rng(21))
    calibrator = cal.fit_isotonic(z, y)
    z_new, _, _ = random_predictions(np.random.default_rng(22))
    s_fit, s_new = cal.one_vs_rest_log_odds(z), cal.one_vs_rest_log_odds(z_new)
    g = np.stack(
        [
            IsotonicRegression(out_of_bounds="clip")
            .fit(s_fit[:, k], y == k)
            .predict(s_new[:, k])
            for k in range(z.shape[1])
        ],
        axis=1,
    )
    total = g.sum(axis=1, keepdims=True)
    expected = np.where(total > 0, g / np.where(total > 0, total, 1), 1 / z.shape[1])
    np.testing.assert_allclose(calibrator(z_new), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fit", [cal.fit_platt, cal.fit_isotonic])
def test_one_vs_rest_outputs_are_distributions_that_help_the_nll(fit) -> None:
    z, p, y = random_predictions(np.random.default_rng(23))
    calibrated = fit(z, y)(z)
    assert calibrated.shape == p.shape and (calibrated >= 0).all()
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, rtol=1e-12)
    # on its own calibration set a fitted calibrator improves the (over-confident) ECE
    assert cal.expected_calibration_error(
        calibrated, y
    ) < cal.expected_calibration_error(p, y)


def test_one_vs_rest_row_with_all_zero_scores_gets_uniform() -> None:
    zero = cal.OneVsRest((lambda s: np.zeros_like(s),) * 3)
    np.testing.assert_array_equal(zero(np.zeros((2, 3))), np.full((2, 3), 1 / 3))


# ---------------------------------------------------------------------------------------------
# bad input: the type, the argument named, and the fix


GOOD_P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
GOOD_Y = np.array([0, 2])


@pytest.mark.parametrize(
    ("probs", "labels", "error", "message"),
    [
        (
            GOOD_P * 1.01,
            GOOD_Y,
            ValueError,
            r"probs rows must each sum to 1 \(within 0.0001\)",
        ),
        (
            GOOD_P,
            np.array([0, 3]),
            ValueError,
            r"labels holds class index 3 outside \[0, 2\]",
        ),
        (GOOD_P, np.array([0, -1]), ValueError, r"labels holds class index -1"),
        (
            GOOD_P,
            np.array([0, 1, 2]),
            ValueError,
            r"labels has 3 entries but probs has 2 rows",
        ),
        (
            GOOD_P,
            np.array([0.0, 2.0]),
            TypeError,
            r"labels must hold integer class indices",
        ),
        (np.zeros((0, 3)), np.zeros(0, int), ValueError, r"probs is empty"),
        (GOOD_P[0], GOOD_Y, ValueError, r"probs must have shape \(N, K\)"),
        (np.array([[1.2, -0.2]]), [0], ValueError, r"probs must be >= 0"),
        (np.array([[np.nan, 1.0]]), [0], ValueError, r"probs must be finite"),
        (np.array([[1, 0]]), [0], TypeError, r"probs must be floating point"),
        (GOOD_P, GOOD_Y[:, None], ValueError, r"labels must be a 1-D array"),
    ],
)
@pytest.mark.parametrize(
    "metric",
    [
        cal.expected_calibration_error,
        cal.reliability_bins,
        cal.negative_log_likelihood,
        cal.brier_score,
    ],
)
def test_metrics_reject_bad_probs_and_labels(
    metric, probs, labels, error, message
) -> None:
    with pytest.raises(error, match=message):
        metric(probs, labels)


def test_tolerance_accepts_float_rounding() -> None:
    assert cal.negative_log_likelihood(GOOD_P * (1 + 5e-5), GOOD_Y) > 0


@pytest.mark.parametrize(
    ("n_bins", "error", "message"),
    [(0, ValueError, r"n_bins must be >= 1"), (-3, ValueError, r"n_bins must be >= 1")]
    + [
        (2.5, TypeError, r"n_bins must be an integer"),
        (True, TypeError, r"n_bins must be"),
    ],
)
def test_bad_n_bins(n_bins, error, message) -> None:
    with pytest.raises(error, match=message):
        cal.expected_calibration_error(GOOD_P, GOOD_Y, n_bins=n_bins)


def test_bad_norm() -> None:
    with pytest.raises(ValueError, match=r"norm must be 'l1' \(ECE\), 'l2'.*got 'l3'"):
        cal.expected_calibration_error(GOOD_P, GOOD_Y, norm="l3")


@pytest.mark.parametrize("fit", [cal.fit_temperature, cal.fit_platt, cal.fit_isotonic])
def test_calibrators_reject_a_single_class(fit) -> None:
    with pytest.raises(ValueError, match=r"labels holds a single class \(2\)"):
        fit(np.random.default_rng(0).standard_normal((5, 3)), np.full(5, 2))


@pytest.mark.parametrize("fit", [cal.fit_temperature, cal.fit_platt, cal.fit_isotonic])
def test_calibrators_reject_bad_logits_and_labels(fit) -> None:
    z = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"labels has 3 entries but logits has 4 rows"):
        fit(z, np.array([0, 1, 2]))
    with pytest.raises(
        ValueError, match=r"labels holds class index 3 outside \[0, 2\]"
    ):
        fit(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"logits is empty"):
        fit(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"logits must be finite"):
        fit(np.full((4, 3), np.inf), np.array([0, 1, 2, 0]))


@pytest.mark.parametrize("fit", [cal.fit_platt, cal.fit_isotonic])
def test_one_vs_rest_needs_every_class(fit) -> None:
    z = np.random.default_rng(0).standard_normal((6, 4))
    with pytest.raises(ValueError, match=r"labels never contains class 3: one-vs-rest"):
        fit(z, np.array([0, 1, 2, 0, 1, 2]))


def test_one_vs_rest_rejects_other_class_counts() -> None:
    z = np.random.default_rng(0).standard_normal((6, 3))
    calibrator = cal.fit_platt(z, np.array([0, 1, 2, 0, 1, 2]))
    with pytest.raises(
        ValueError, match=r"logits have K = 4 classes but the calibrator"
    ):
        calibrator(np.zeros((2, 4)))


def test_one_dimensional_fits_reject_bad_input() -> None:
    with pytest.raises(
        ValueError, match=r"targets has 2 entries but the scores have 3"
    ):
        cal.isotonic_fit([1.0, 2.0, 3.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"weights must be > 0"):
        cal.isotonic_fit([1.0, 2.0], [0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"scores is empty"):
        cal.isotonic_fit([], [])
    with pytest.raises(ValueError, match=r"values must be finite"):
        cal.pool_adjacent_violators([1.0, np.nan])
    with pytest.raises(ValueError, match=r"targets must be binary"):
        cal.platt_fit([1.0, 2.0], [0.0, 0.5])
    with pytest.raises(ValueError, match=r"targets holds a single class \(0 positives"):
        cal.platt_fit([1.0, 2.0], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"temperature must be > 0"):
        cal.apply_temperature(np.zeros((1, 2)), 0.0)


# ---------------------------------------------------------------------------------------------
# the plotting helper


def test_reliability_diagram_draws_the_bins() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lsce_examples.plots import reliability_diagram

    fig, ax = plt.subplots()
    bins = reliability_diagram(ax, EDGE_PROBS, EDGE_LABELS, n_bins=4, title="edges")
    np.testing.assert_array_equal(bins.count, EDGE_COUNTS)
    assert ax.get_title() == "edges"
    assert len(ax.patches) == 2 * 4  # accuracy and gap bars for the four filled bins
    assert any("ECE = 32.50 %" in text.get_text() for text in ax.texts)
    plt.close(fig)


def test_numpy_modules_import_neither_torch_nor_matplotlib_nor_sklearn() -> None:
    code = (
        "import sys, lsce_scratch.calibration, lsce_examples.digits_mlp; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

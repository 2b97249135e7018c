"""Exercises 4.1 and 4.2: smoothed targets and the label-smoothing loss."""

import numpy as np
import pytest

from tests.oracle import assert_close, random_index_targets, random_logits, torch_lsce


@pytest.mark.ex4_1
def test_spread_all_gives_every_class_eps_over_k(impl):
    smooth_labels = impl()
    q = smooth_labels(np.array([2, 0]), 4, 0.2)
    expected = np.array([[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]])
    assert_close(q, expected, 1e-15, "smooth_labels([2, 0], K=4, ε=0.2)")


@pytest.mark.ex4_1
def test_spread_others_gives_the_true_class_one_minus_eps(impl):
    smooth_labels = impl()
    q = smooth_labels(np.array([1]), 5, 0.2, spread="others")
    assert_close(q, np.array([[0.05, 0.8, 0.05, 0.05, 0.05]]), 1e-15, "spread='others', K=5")


@pytest.mark.ex4_1
def test_others_with_eps_equals_all_with_eps_k_over_k_minus_1(impl):
    smooth_labels = impl()
    target = random_index_targets(np.random.default_rng(41), (3, 2), 6)
    others = smooth_labels(target, 6, 0.3, spread="others")
    assert others.shape == (3, 2, 6), f"expected shape (3, 2, 6), got {others.shape}"
    assert_close(others, smooth_labels(target, 6, 0.3 * 6 / 5), 1e-15, "ε' = εK/(K−1)")


@pytest.mark.ex4_1
@pytest.mark.parametrize("epsilon, index", [(1.5, 0), (-0.1, 0), (0.1, 4)])
def test_smooth_labels_rejects_bad_arguments(impl, epsilon, index):
    smooth_labels = impl()
    with pytest.raises(ValueError):
        smooth_labels(np.array([index]), 4, epsilon)


@pytest.mark.ex4_2
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 1.0])
def test_loss_matches_torch(impl, reduction, epsilon):
    lsce = impl()
    rng = np.random.default_rng(42)
    z, y = random_logits(rng, (6,), 5), random_index_targets(rng, (6,), 5)
    got = lsce(z, y, epsilon, reduction=reduction)
    expected = torch_lsce(z, y, epsilon, reduction=reduction).loss
    assert_close(got, expected, 1e-12, f"ε={epsilon}, reduction={reduction!r}, logits={z}, y={y}")


@pytest.mark.ex4_2
def test_loss_handles_extra_leading_axes(impl):
    lsce = impl()
    rng = np.random.default_rng(43)
    z, y = random_logits(rng, (3, 4), 6), random_index_targets(rng, (3, 4), 6)
    got = lsce(z, y, 0.1, reduction="none")
    assert_close(got, torch_lsce(z, y, 0.1, reduction="none").loss, 1e-12, "(N, T, K) logits")

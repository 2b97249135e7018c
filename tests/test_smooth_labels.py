"""smooth_labels: both spreads, shapes, the εK/(K−1) equivalence, and its bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from lsce_scratch import smooth_labels


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.5, 1.0])
def test_spread_all_gives_eps_over_k_to_every_class(k: int, eps: float) -> None:
    target = np.array([0, k - 1, k // 2, 1])
    q = smooth_labels(target, k, eps)
    assert q.shape == (4, k)
    assert q.dtype == np.float64
    # the formula: (1 − ε)·onehot + ε/K
    np.testing.assert_allclose(q, (1 - eps) * np.eye(k)[target] + eps / k, rtol=1e-15)
    np.testing.assert_allclose(q[np.arange(4), target], 1 - eps + eps / k, rtol=1e-15)
    np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=1e-13)


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.5, 1.0])
def test_spread_others_gives_eps_over_k_minus_1_to_the_wrong_classes(
    k: int, eps: float
) -> None:
    target = np.array([0, k - 1, k // 2, 1])
    q = smooth_labels(target, k, eps, spread="others")
    onehot = np.eye(k)[target]
    np.testing.assert_allclose(q[onehot == 1], 1 - eps, rtol=1e-15)
    np.testing.assert_allclose(q[onehot == 0], eps / (k - 1), rtol=1e-15)
    np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=1e-13)


@pytest.mark.parametrize("k", [2, 5, 37])
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_others_with_eps_equals_all_with_eps_k_over_k_minus_1(
    k: int, fraction: float
) -> None:
    eps = fraction * (k - 1) / k  # so that εK/(K−1) ≤ 1
    target = np.arange(k)
    np.testing.assert_allclose(
        smooth_labels(target, k, eps, spread="others"),
        smooth_labels(target, k, eps * k / (k - 1)),
        rtol=1e-14,
        atol=1e-17,
    )


def test_the_two_spreads_differ() -> None:
    a = smooth_labels(np.array([2]), 5, 0.1)
    b = smooth_labels(np.array([2]), 5, 0.1, spread="others")
    assert a[0, 2] == pytest.approx(0.92) and b[0, 2] == pytest.approx(0.9)
    assert a[0, 0] == pytest.approx(0.02) and b[0, 0] == pytest.approx(0.025)


def test_epsilon_zero_is_one_hot_and_one_is_uniform() -> None:
    target = np.array([3, 0, 1])
    np.testing.assert_array_equal(smooth_labels(target, 4, 0.0), np.eye(4)[target])
    np.testing.assert_array_equal(
        smooth_labels(target, 4, 0.0, spread="others"), np.eye(4)[target]
    )
    np.testing.assert_allclose(smooth_labels(target, 4, 1.0), 0.25, rtol=1e-15)
    # 'others' at ε = 1 moves everything off the true class
    q = smooth_labels(target, 4, 1.0, spread="others")
    np.testing.assert_allclose(q, (1 - np.eye(4)[target]) / 3, rtol=1e-15)


@pytest.mark.parametrize(
    "target",
    [
        2,
        np.int64(2),
        np.array(2),
        np.array([2, 0]),
        np.array([[2, 0, 1], [1, 1, 0]]),
        [1, 2],
    ],
    ids=["int", "np.int64", "0d", "N", "NxT", "list"],
)
def test_shape_is_target_shape_plus_k(target: object) -> None:
    q = smooth_labels(target, 3, 0.3)
    t = np.asarray(target)
    assert q.shape == t.shape + (3,)
    np.testing.assert_allclose(q, 0.7 * np.eye(3)[t] + 0.1, rtol=1e-15)


def test_empty_target() -> None:
    assert smooth_labels(np.zeros((0,), dtype=int), 4, 0.1).shape == (0, 4)


def test_k_equals_one() -> None:
    # spread='all': the only class gets 1 − ε + ε = 1
    np.testing.assert_allclose(smooth_labels(np.array([0, 0]), 1, 0.3), 1.0, rtol=1e-15)
    with pytest.raises(ValueError, match=r"spread='others' needs num_classes >= 2"):
        smooth_labels(np.array([0]), 1, 0.3, spread="others")


def test_integer_dtypes() -> None:
    for dtype in (np.int8, np.uint8, np.int32, np.int64):
        q = smooth_labels(np.array([0, 2], dtype=dtype), 3, 0.3)
        np.testing.assert_allclose(q, 0.7 * np.eye(3)[[0, 2]] + 0.1, rtol=1e-15)


def test_target_not_modified() -> None:
    target = np.array([1, 2, 0])
    smooth_labels(target, 3, 0.1)
    np.testing.assert_array_equal(target, [1, 2, 0])


# bad input


@pytest.mark.parametrize("eps", [-0.01, 1.01, float("nan")])
def test_epsilon_outside_0_1(eps: float) -> None:
    with pytest.raises(ValueError, match=r"^epsilon must be in \[0, 1\]"):
        smooth_labels(np.array([0]), 3, eps)


def test_epsilon_not_a_number() -> None:
    with pytest.raises(TypeError, match=r"^epsilon must be a real number"):
        smooth_labels(np.array([0]), 3, "0.1")


def test_others_with_scaled_epsilon_above_one_is_rejected_for_all() -> None:
    """ε = 0.9 with K = 5 is fine for 'others', but ε' = εK/(K−1) = 1.125 is not a valid ε."""
    smooth_labels(np.array([0]), 5, 0.9, spread="others")
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        smooth_labels(np.array([0]), 5, 0.9 * 5 / 4)


@pytest.mark.parametrize("spread", ["All", "uniform", "", None])
def test_unknown_spread(spread: object) -> None:
    with pytest.raises(ValueError, match=r"^spread must be 'all' .* or 'others'"):
        smooth_labels(np.array([0]), 3, 0.1, spread=spread)


@pytest.mark.parametrize("k", [0, -3])
def test_num_classes_not_positive(k: int) -> None:
    with pytest.raises(ValueError, match=r"^num_classes must be >= 1"):
        smooth_labels(np.array([0]), k, 0.1)


@pytest.mark.parametrize("k", [3.0, "3", True, None])
def test_num_classes_not_an_integer(k: object) -> None:
    with pytest.raises(TypeError, match=r"^num_classes must be a positive integer"):
        smooth_labels(np.array([0]), k, 0.1)


@pytest.mark.parametrize(
    "target", [np.array([0.0, 1.0]), np.array([True]), [0.5]], ids=str
)
def test_non_integer_target(target: object) -> None:
    with pytest.raises(TypeError, match=r"^target must hold integer class indices"):
        smooth_labels(target, 3, 0.1)


@pytest.mark.parametrize("bad", [3, -1, -100, 99])
def test_target_out_of_range(bad: int) -> None:
    """smooth_labels has no ignore_index: even -100 is out of range, and the message says so."""
    with pytest.raises(
        ValueError, match=rf"^target holds class index {bad} outside \[0, 2\]"
    ) as e:
        smooth_labels(np.array([0, bad]), 3, 0.1)
    assert "every index must lie in that range" in str(e.value)
    assert "ignore_index" not in str(e.value)

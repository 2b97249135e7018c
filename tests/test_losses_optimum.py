"""The analytic optimum of LSCE, found by gradient descent with our own backward.

With free logits the loss is minimised at p = q: the logit gap z_y − z_k converges to
ln(1 + K(1−ε)/ε), the loss to its floor H(q) and the confidence p_y to 1 − ε + ε/K.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsce_scratch import lsce_backward, lsce_forward, smooth_labels, softmax
from lsce_scratch.losses import optimal_logit_gap

pytestmark = pytest.mark.usefixtures("lsce_implementation")


def minimise(
    logits: np.ndarray,
    target: np.ndarray,
    eps: float,
    *,
    weight: np.ndarray | None = None,
    steps: int = 20000,
    lr: float = 2.0,
    tol: float = 1e-12,
) -> tuple[np.ndarray, int]:
    """Gradient descent on Σ_i ℓ_i; return (logits, steps taken). Stops when max|∇| < tol.

    Every row's Hessian diag(p) − ppᵀ (times S) has eigenvalues ≤ S/2, so lr = 2 is stable.
    """
    z = logits.copy()
    for step in range(steps):
        _, cache = lsce_forward(z, target, eps, reduction="sum", weight=weight)
        grad = lsce_backward(1.0, cache)
        if np.abs(grad).max() < tol:
            return z, step
        z -= lr * grad
    return z, steps


def entropy(q: np.ndarray) -> np.ndarray:
    return -np.sum(q * np.log(q), axis=-1)


CASES = [
    (2, 0.1),
    (3, 0.5),
    (5, 0.2),
    (10, 0.1),
    (10, 0.05),
    (37, 0.3),
    (100, 0.5),
    (6, 1.0),
]


@pytest.mark.parametrize(("k", "eps"), CASES, ids=[f"K={k}-eps={e}" for k, e in CASES])
def test_gradient_descent_reaches_the_analytic_optimum(k: int, eps: float) -> None:
    rng = np.random.default_rng(k)
    target = np.arange(4) % k
    z, steps = minimise(rng.standard_normal((4, k)) * 3, target, eps)
    assert steps < 20000, "gradient descent did not converge"
    rows = np.arange(4)

    # the logit gap to every wrong class: ln(1 + K(1 − ε)/ε)
    gap = z[rows, target][:, None] - z
    wrong = np.arange(k) != target[:, None]
    np.testing.assert_allclose(
        gap[wrong], optimal_logit_gap(k, eps), rtol=1e-9, atol=1e-9
    )

    # the confidence 1 − ε + ε/K, and p = q everywhere
    p = softmax(z)
    np.testing.assert_allclose(p[rows, target], 1 - eps + eps / k, rtol=1e-10)
    np.testing.assert_allclose(p, smooth_labels(target, k, eps), rtol=1e-9)

    # the floor H(q), and no start does better
    loss, _ = lsce_forward(z, target, eps, reduction="none")
    floor = entropy(smooth_labels(target, k, eps))
    np.testing.assert_allclose(loss, floor, rtol=1e-12)
    for _ in range(5):
        other, _ = lsce_forward(
            rng.standard_normal((4, k)) * 5, target, eps, reduction="none"
        )
        assert np.all(other > floor)


def test_known_values_of_the_floor_and_gap() -> None:
    """K = 10, ε = 0.1: H(q) = 0.500 and the gap is 4.51 (research notes, §4)."""
    q = smooth_labels(np.array(0), 10, 0.1)
    assert entropy(q) == pytest.approx(0.5003, abs=1e-4)
    assert optimal_logit_gap(10, 0.1) == pytest.approx(4.5109, abs=1e-4)
    assert optimal_logit_gap(37, 0.1) == pytest.approx(np.log(334), rel=1e-15)
    assert optimal_logit_gap(37, 0.0) == np.inf
    z, _ = minimise(np.zeros((1, 10)), np.array([0]), 0.1)
    assert z[0, 0] - z[0, 1] == pytest.approx(4.5109, abs=1e-4)


def test_without_smoothing_the_gap_grows_without_bound() -> None:
    """ε = 0: the loss only approaches 0 as the gap goes to infinity; there is no optimum."""
    target = np.array([0, 1])
    z = np.random.default_rng(0).standard_normal((2, 5))
    gaps = []
    for _ in range(3):
        z, _ = minimise(z, target, 0.0, steps=3000)
        gaps.append(np.min(z[[0, 1], target][:, None] - z + np.eye(5)[target] * 1e9))
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[2] > 8.0
    assert gaps[2] > optimal_logit_gap(5, 0.1)


def test_spread_others_optimum_has_confidence_one_minus_epsilon() -> None:
    """Targets with ε/(K−1) on the wrong classes: p_y → 1 − ε, gap → ln((1 − ε)(K − 1)/ε)."""
    k, eps = 8, 0.2
    target = np.array([0, 3, 7])
    q = smooth_labels(target, k, eps, spread="others")
    z, steps = minimise(np.random.default_rng(1).standard_normal((3, k)), q, 0.0)
    assert steps < 20000
    p = softmax(z)
    np.testing.assert_allclose(p[np.arange(3), target], 1 - eps, rtol=1e-10)
    gap = z[np.arange(3), target] - z[np.arange(3), (target + 1) % k]
    np.testing.assert_allclose(gap, np.log((1 - eps) * (k - 1) / eps), rtol=1e-9)


def test_class_weights_move_the_optimum_to_w_times_q() -> None:
    """PyTorch weights every class term, so the optimum is p ∝ w ⊙ q (pytorch #104776):
    K = 2, ε = 0.1, w = [1, 100] puts 0.84 on the wrong class."""
    weight = np.array([1.0, 100.0])
    target = np.array([0])
    z, steps = minimise(np.zeros((1, 2)), target, 0.1, weight=weight, lr=0.02)
    assert steps < 20000
    p = softmax(z)[0]
    q = smooth_labels(target, 2, 0.1)[0]
    np.testing.assert_allclose(p, weight * q / np.sum(weight * q), rtol=1e-10)
    assert p[1] == pytest.approx(5.0 / 5.95, rel=1e-10)

"""Finite-difference checks of lsce_backward, and floating-point behaviour: huge float32
logits, the p_y → 1 cancellation in float32, and float16 inputs."""

from __future__ import annotations

import numpy as np
import pytest

from lsce_scratch import lsce_backward, lsce_forward, numerical_gradient, rel_error
from tests.oracle import (
    random_index_targets,
    random_logits,
    random_soft_targets,
    torch_lsce,
    upstream_gradient,
)

pytestmark = pytest.mark.usefixtures("lsce_implementation")

# Fixed inputs: a gradient entry that happens to sit near 0 (p_j ≈ ε/K) has a large
# elementwise rel_error from rounding alone; with this seed every case is below 1e-8.
SEED = 5400
FD_CASES = {
    # name: (leading shape, K, ε, reduction, kind, weighted, ignore some rows)
    "mean": ((6,), 5, 0.1, "mean", "index", False, False),
    "sum": ((6,), 5, 0.3, "sum", "index", False, False),
    "none-NxT": ((2, 3), 4, 0.1, "none", "index", False, False),
    "eps0": ((5,), 4, 0.0, "mean", "index", False, False),
    "eps1": ((5,), 4, 1.0, "mean", "index", False, False),
    "weighted": ((6,), 5, 0.2, "mean", "index", True, False),
    "weighted-ignored": ((2, 4), 5, 0.2, "mean", "index", True, True),
    "ignored-none": ((7,), 3, 0.1, "none", "index", False, True),
    "soft": ((5,), 4, 0.1, "mean", "soft", False, False),
    "soft-weighted-sum": ((2, 3), 4, 0.25, "sum", "soft", True, False),
    "soft-unnormalised": ((5,), 4, 0.1, "none", "soft-unnormalised", True, False),
    "unbatched": ((), 6, 0.1, "mean", "index", True, False),
}


@pytest.mark.parametrize("case", list(FD_CASES))
def test_lsce_backward_matches_finite_differences(case: str) -> None:
    shape, k, eps, reduction, kind, weighted, ignore = FD_CASES[case]
    rng = np.random.default_rng(SEED + sorted(FD_CASES).index(case))
    # Confident rows (p_max up to ≈ 0.999), but no probability below ≈ 3e-4: an entry of
    # the gradient that small would be swamped by the rounding error of f (≈ 1e-16·|f|/2h)
    # and its rel_error would say nothing about the formula.
    logits = random_logits(rng, shape, k, scale=2.0, confident_fraction=0.5)
    logits = np.clip(logits, -4.0, 4.0)
    if kind == "index":
        target = random_index_targets(rng, shape, k)
        if ignore:
            target.flat[::3] = -100
    else:
        target = random_soft_targets(rng, shape, k, normalised=(kind == "soft"))
    weight = rng.uniform(0.2, 3.0, size=k) if weighted else None
    dloss = upstream_gradient(reduction, shape, rng)

    def f(z: np.ndarray) -> float:
        loss, _ = lsce_forward(z, target, eps, reduction=reduction, weight=weight)
        return float(np.sum(dloss * loss))

    _, cache = lsce_forward(logits, target, eps, reduction=reduction, weight=weight)
    analytic = lsce_backward(dloss, cache)
    # h = 1e-4: truncation error ~h² ≈ 1e-8 relative, rounding error ~1e-12 absolute
    numeric = numerical_gradient(f, logits, h=1e-4)
    assert np.abs(analytic).max() > 1e-3  # a non-trivial gradient
    error = rel_error(analytic, numeric)
    assert error < 1e-7, f"{case}: rel_error {error:.2e}"


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_float32_logits_up_to_1e4_give_finite_loss_and_gradient(
    reduction: str, eps: float
) -> None:
    rng = np.random.default_rng(0)
    logits = rng.uniform(-1e4, 1e4, size=(6, 50))
    logits[0] = 1e4  # all equal and huge
    logits[1] = -1e4
    logits[2] = -1e4
    logits[2, 7] = 1e4  # one class dominates by 2e4
    logits = logits.astype(np.float32)
    target = rng.integers(0, 50, size=6)
    target[2] = 3  # the true class has p = exp(−2e4): −log p is huge but finite
    loss, cache = lsce_forward(logits, target, eps, reduction=reduction)
    dloss = upstream_gradient(reduction, (6,))
    grad = lsce_backward(dloss, cache)
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    assert np.all(np.isfinite(loss))
    assert np.all(np.isfinite(grad))
    # and correct: float64 torch on the very same float32 values
    want = torch_lsce(logits.astype(np.float64), target, eps, reduction=reduction)
    np.testing.assert_allclose(loss, want.loss, rtol=1e-5)
    np.testing.assert_allclose(
        grad, want.grad, rtol=1e-4, atol=1e-6 * np.abs(want.grad).max()
    )


@pytest.mark.parametrize("delta", [1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_confident_float32_true_class_gradient_is_accurate(
    delta: float, eps: float
) -> None:
    """p_y = 1 − δ: the true-class gradient p_y − 1 (+ ε terms) must not cancel in float32.

    Naively p_y rounds to within 6e-8 of 1, so p_y − 1 at δ = 1e-6 would be off by ~6 %.
    """
    k, n = 10, 4
    rng = np.random.default_rng(1)
    target = np.array([0, 3, 9, 5])
    logits = rng.uniform(-0.5, 0.5, size=(n, k))
    # choose z_y so that p_y = 1 − δ: e^{z_y} / (e^{z_y} + Σ_others) = 1 − δ
    others = np.exp(logits).sum(axis=-1) - np.exp(logits[np.arange(n), target])
    logits[np.arange(n), target] = np.log((1 - delta) / delta * others)
    logits32 = logits.astype(np.float32)
    _, cache32 = lsce_forward(logits32, target, eps)
    _, cache64 = lsce_forward(logits32.astype(np.float64), target, eps)
    grad32 = lsce_backward(np.float32(1.0), cache32)
    grad64 = lsce_backward(1.0, cache64)
    rows = np.arange(n)
    if eps == 0:
        np.testing.assert_allclose(grad64[rows, target], -delta / n, rtol=0.05)
    np.testing.assert_allclose(grad32[rows, target], grad64[rows, target], rtol=1e-3)
    # the other classes too, relative to the row's largest entry
    np.testing.assert_allclose(
        grad32, grad64, rtol=1e-3, atol=1e-6 * np.abs(grad64).max()
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_float16_inputs_are_computed_in_float32(reduction: str, kind: str) -> None:
    """float16 logits and weights: results in float16, as accurate as float32 math rounded
    once to float16 (not float16 arithmetic, whose 1000-term sums lose digits)."""
    rng = np.random.default_rng(2)
    k = 1000
    logits16 = random_logits(rng, (8,), k, scale=2.0).astype(np.float16)
    if kind == "index":
        target = random_index_targets(rng, (8,), k)
    else:
        target = random_soft_targets(rng, (8,), k).astype(np.float16)
    weight16 = rng.uniform(0.5, 2.0, size=k).astype(np.float16)
    loss, cache = lsce_forward(
        logits16, target, 0.1, reduction=reduction, weight=weight16
    )
    dloss = upstream_gradient(reduction, (8,)).astype(np.float16)
    grad = lsce_backward(dloss, cache)
    assert loss.dtype == np.float16
    assert grad.dtype == np.float16
    assert grad.shape == logits16.shape
    want = torch_lsce(
        logits16.astype(np.float64),
        target.astype(np.float64) if kind == "soft" else target,
        0.1,
        reduction=reduction,
        weight=weight16.astype(np.float64),
        dloss=dloss.astype(np.float64),
    )
    # one rounding to float16 is a relative error of at most 2^-11 ≈ 4.9e-4
    np.testing.assert_allclose(loss.astype(np.float64), want.loss, rtol=6e-4)
    scale = np.abs(want.grad).max()
    np.testing.assert_allclose(
        grad.astype(np.float64), want.grad, rtol=6e-4, atol=1e-4 * scale
    )


def test_float16_matches_float32_rounded_once() -> None:
    rng = np.random.default_rng(3)
    logits16 = random_logits(rng, (5,), 7).astype(np.float16)
    target = random_index_targets(rng, (5,), 7)
    loss16, cache16 = lsce_forward(logits16, target, 0.1, reduction="none")
    loss32, cache32 = lsce_forward(
        logits16.astype(np.float32), target, 0.1, reduction="none"
    )
    np.testing.assert_array_equal(loss16, loss32.astype(np.float16))
    dloss = np.linspace(0.5, 1.5, 5)
    np.testing.assert_array_equal(
        lsce_backward(dloss.astype(np.float16), cache16),
        lsce_backward(dloss.astype(np.float32), cache32).astype(np.float16),
    )

"""Exercises 5.1–5.4: the LSCE forward/backward pair with PyTorch's semantics."""

import numpy as np
import pytest

from lsce_scratch.gradcheck import numerical_gradient, rel_error
from tests.oracle import (
    assert_close,
    random_index_targets,
    random_logits,
    torch_lsce,
)

REDUCTIONS = ["mean", "sum", "none"]


def _case(seed: int, leading: tuple[int, ...] = (6,), k: int = 5):
    rng = np.random.default_rng(seed)
    return random_logits(rng, leading, k), random_index_targets(rng, leading, k)


@pytest.mark.ex5_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("leading", [(6,), (2, 3)])
def test_forward_matches_torch(impl, reduction, leading):
    forward = impl()
    z, y = _case(51, leading)
    loss, _ = forward(z, y, 0.1, reduction=reduction)
    expected = torch_lsce(z, y, 0.1, reduction=reduction).loss
    assert_close(loss, expected, 1e-12, f"loss, reduction={reduction!r}, logits={z}, y={y}")


@pytest.mark.ex5_2
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("leading", [(6,), (2, 3)])
def test_backward_matches_torch(impl, reduction, leading):
    forward, backward = impl("5.1"), impl()
    z, y = _case(52, leading)
    _, cache = forward(z, y, 0.1, reduction=reduction)
    expected = torch_lsce(z, y, 0.1, reduction=reduction)
    got = backward(expected.dloss, cache)
    assert_close(
        got, expected.grad, 1e-12, f"gradient, reduction={reduction!r}, dloss={expected.dloss}"
    )


@pytest.mark.ex5_2
@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_backward_passes_a_gradient_check(impl, epsilon):
    forward, backward = impl("5.1"), impl()
    # moderately confident rows: entries of p far below 1e-5 would drown in the O(1e-11)
    # rounding noise of central differences and make the relative error meaningless
    rng = np.random.default_rng(53)
    z, y = rng.normal(size=(4, 3)) * 2.0, random_index_targets(rng, (4,), 3)
    _, cache = forward(z, y, epsilon, reduction="sum")
    analytic = backward(np.asarray(1.0), cache)
    numeric = numerical_gradient(lambda x: float(forward(x, y, epsilon, reduction="sum")[0]), z)
    error = rel_error(analytic, numeric)
    assert error < 1e-7, f"rel_error {error:.1e} against central differences (threshold 1e-7)"


@pytest.mark.ex5_3
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weights_and_ignore_index_match_torch(impl, reduction):
    forward, backward = impl("5.1"), impl()
    z, y = _case(54, (7,), 4)
    y[[1, 4]] = -100
    w = np.array([0.5, 2.0, 1.0, 3.0])
    loss, cache = forward(z, y, 0.2, reduction=reduction, weight=w)
    expected = torch_lsce(z, y, 0.2, reduction=reduction, weight=w)
    what = f"weight={w}, target={y}, reduction={reduction!r}"
    assert_close(loss, expected.loss, 1e-12, f"loss with {what}")
    assert_close(backward(expected.dloss, cache), expected.grad, 1e-12, f"gradient with {what}")


@pytest.mark.ex5_3
def test_all_ignored_mean_is_nan_with_zero_gradient(impl):
    forward, backward = impl("5.1"), impl()
    z, _ = _case(55, (3,), 4)
    loss, cache = forward(z, np.full(3, -100), 0.1)
    assert np.isnan(loss), f"the mean over no rows is 0/0 = NaN in PyTorch; got {loss}"
    grad = backward(np.asarray(1.0), cache)
    assert np.array_equal(grad, np.zeros_like(z)), f"ignored rows get zero gradient; got {grad}"


@pytest.mark.ex5_4
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-6])
def test_confident_float32_true_class_gradient(impl, delta):
    forward, backward = impl("5.1"), impl()
    k = 5
    # the true class gets p_y = 1 − δ: its logit is log((1 − δ)(K − 1)/δ) above the others
    z64 = np.zeros((3, k))
    y = np.array([0, 2, 4])
    z64[np.arange(3), y] = np.log((1 - delta) * (k - 1) / delta)
    _, cache = forward(z64.astype(np.float32), y, 0.0, reduction="sum")
    got = backward(np.asarray(1.0, dtype=np.float32), cache)
    assert got.dtype == np.float32, f"the gradient must have the logits' dtype, got {got.dtype}"
    expected = torch_lsce(z64, y, 0.0, reduction="sum", dloss=1.0).grad
    true_got, true_expected = got[np.arange(3), y], expected[np.arange(3), y]
    error = np.max(np.abs(true_got - true_expected) / np.abs(true_expected))
    assert error < 1e-3, (
        f"p_y = 1 − {delta:g}: true-class gradient {true_got} vs float64 {true_expected} "
        f"(relative error {error:.1e} ≥ 1e-3): p_y − 1 cancels in float32"
    )

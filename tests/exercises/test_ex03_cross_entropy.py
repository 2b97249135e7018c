"""Exercises 3.1 and 3.2: cross-entropy forward and backward against PyTorch."""

import numpy as np
import pytest

from lsce_scratch.gradcheck import numerical_gradient, rel_error
from tests.oracle import assert_close, random_index_targets, random_logits, torch_lsce


def _batch(seed: int, n: int = 8, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return random_logits(rng, (n,), k), random_index_targets(rng, (n,), k)


@pytest.mark.ex3_1
def test_forward_matches_torch(impl):
    forward = impl()
    z, y = _batch(31)
    loss, _ = forward(z, y)
    expected = torch_lsce(z, y, 0.0).loss
    assert_close(loss, expected, 1e-12, f"cross-entropy of logits={z}, target={y}")


@pytest.mark.ex3_1
def test_forward_of_uniform_logits_is_log_k(impl):
    forward = impl()
    loss, _ = forward(np.full((4, 7), 3.0), np.array([0, 6, 2, 3]))
    assert abs(loss - np.log(7)) < 1e-12, (
        f"uniform logits must give log K = {np.log(7)}; got {loss}"
    )


@pytest.mark.ex3_1
def test_forward_is_finite_for_huge_logits(impl):
    forward = impl()
    z, y = _batch(32)
    loss, _ = forward(z * 1000, y)
    assert np.isfinite(loss), f"loss of logits × 1000 is {loss}: use a stable log-softmax"
    assert_close(loss, torch_lsce(z * 1000, y, 0.0).loss, 1e-12, "cross-entropy of logits × 1000")


@pytest.mark.ex3_2
def test_backward_matches_torch(impl):
    forward, backward = impl("3.1"), impl()
    z, y = _batch(33)
    _, cache = forward(z, y)
    expected = torch_lsce(z, y, 0.0, dloss=0.7).grad
    assert_close(backward(0.7, cache), expected, 1e-12, f"∂(0.7·CE)/∂z, logits={z}, target={y}")


@pytest.mark.ex3_2
def test_backward_passes_a_gradient_check(impl):
    forward, backward = impl("3.1"), impl()
    # moderately confident rows (see test_ex05's gradient check for why)
    rng = np.random.default_rng(34)
    z, y = rng.normal(size=(4, 3)) * 2.0, random_index_targets(rng, (4,), 3)
    _, cache = forward(z, y)
    analytic = backward(1.0, cache)
    numeric = numerical_gradient(lambda x: float(forward(x, y)[0]), z)
    error = rel_error(analytic, numeric)
    assert error < 1e-7, f"rel_error {error:.1e} against central differences (threshold 1e-7)"

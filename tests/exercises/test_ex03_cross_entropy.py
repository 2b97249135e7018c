"""Exercises 3.1 and 3.2: cross-entropy forward and backward against PyTorch."""

import numpy as np
import pytest

from lsce_scratch.gradcheck import numerical_gradient, rel_error
from tests.expect import Diagnosis, assert_close, got_expected, show
from tests.oracle import random_index_targets, random_logits, torch_lsce


def _batch(seed: int, n: int = 8, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return random_logits(rng, (n,), k), random_index_targets(rng, (n,), k)


def _log_p(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _dtype_of(value: object) -> object:
    return getattr(value, "dtype", type(value).__name__)


@pytest.mark.ex3_1
def test_forward_matches_torch(impl):
    forward = impl()
    z, y = _batch(31)
    loss, _ = forward(z, y)
    expected = torch_lsce(z, y, 0.0).loss
    log_p_y = _log_p(z)[np.arange(len(y)), y]
    assert_close(
        loss,
        expected,
        1e-12,
        "cross_entropy_forward(logits, target)",
        mistakes={
            "that is the sum over rows, not the mean: divide by N": -log_p_y.sum(),
            "that is the mean of log p_y: the loss is −log p_y, with a minus": log_p_y.mean(),
            "logp[:, target] takes an N × N block (every row at every target): pick one entry "
            "per row with logp[np.arange(N), target]": -_log_p(z)[:, y].mean(),
        },
        logits=z,
        target=y,
    )


@pytest.mark.ex3_1
def test_forward_of_uniform_logits_is_log_k(impl):
    forward = impl()
    z, y = np.full((4, 7), 3.0), np.array([0, 6, 2, 3])
    loss, _ = forward(z, y)
    assert_close(
        loss, np.log(7), 1e-12, "uniform logits must give log K", logits=z, target=y
    )


@pytest.mark.ex3_1
def test_forward_is_finite_for_huge_logits(impl):
    forward = impl()
    z, y = _batch(32)
    with np.errstate(all="ignore"):
        loss, _ = forward(z * 1000, y)
    if not np.isfinite(loss):
        raise Diagnosis(
            f"cross_entropy_forward(logits × 1000) returned {loss}: exp overflowed to inf. "
            f"Shift by the max first (log p = (z − m) − log Σ exp(z − m)), or reuse your "
            f"log_softmax from 1.2"
        )
    expected = torch_lsce(z * 1000, y, 0.0).loss
    assert_close(
        loss, expected, 1e-12, "cross_entropy_forward(logits × 1000)", logits=z * 1000
    )


@pytest.mark.ex3_1
def test_forward_leaves_the_logits_unchanged(impl):
    forward = impl()
    z, y = _batch(35)
    before = z.copy()
    forward(z, y)
    if not np.array_equal(z, before):
        raise Diagnosis(
            "cross_entropy_forward modified its input logits (an in-place `logits -= ...`?): "
            "compute shifted = logits − max into a new array\n"
            f"largest change {np.max(np.abs(z - before)):.3g}"
        )


@pytest.mark.ex3_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_keeps_the_logits_dtype(impl, dtype):
    forward = impl()
    z, y = _batch(36)
    loss, _ = forward(z.astype(dtype), y)
    if _dtype_of(loss) != dtype:
        raise Diagnosis(
            f"cross_entropy_forward of {np.dtype(dtype)} logits returned a {_dtype_of(loss)} "
            f"loss: keep the logits' dtype"
        )
    expected = torch_lsce(z.astype(dtype).astype(np.float64), y, 0.0).loss
    assert_close(
        loss, expected, 1e-5, "cross_entropy_forward(logits)", logits=z.astype(dtype)
    )


def _backward_mistakes(
    z: np.ndarray, y: np.ndarray, dloss: float
) -> dict[str, np.ndarray]:
    n = len(y)
    p_minus_onehot = np.exp(_log_p(z)) - np.eye(z.shape[-1])[y]
    return {
        "the 1/N of the mean is missing: divide every row by N": dloss * p_minus_onehot,
        "the upstream dloss is ignored: multiply the gradient by it": p_minus_onehot
        / n,
        "the sign is flipped: ∂ℓ/∂z = p − onehot(y), not onehot(y) − p": (
            -dloss * p_minus_onehot / n
        ),
        "that is p/N: subtract 1 at the true class (∂ℓ/∂z_j = p_j − 1[j = y])": (
            dloss * np.exp(_log_p(z)) / n
        ),
    }


@pytest.mark.ex3_2
def test_backward_matches_torch(impl):
    forward, backward = impl("3.1"), impl()
    z, y = _batch(33)
    _, cache = forward(z, y)
    expected = torch_lsce(z, y, 0.0, dloss=0.7).grad
    assert_close(
        backward(0.7, cache),
        expected,
        1e-12,
        "cross_entropy_backward(0.7, cache)",
        mistakes=_backward_mistakes(z, y, 0.7),
        logits=z,
        target=y,
    )


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
    assert error < 1e-7, (
        f"cross_entropy_backward(1.0, cache): rel_error {error:.1e} against central "
        f"differences (threshold 1e-7)\n"
        + got_expected(analytic, numeric, {"logits": z, "target": y})
    )


@pytest.mark.ex3_2
def test_backward_can_be_called_twice_with_one_cache(impl):
    forward, backward = impl("3.1"), impl()
    z, y = _batch(37)
    _, cache = forward(z, y)
    first = np.array(backward(1.0, cache), copy=True)
    second = backward(1.0, cache)
    if not np.array_equal(first, second):
        raise Diagnosis(
            "a second cross_entropy_backward(1.0, cache) with the same cache returned a "
            "different gradient: your backward changed the cache in place (copy p before "
            "subtracting 1 at the true class)\n"
            f"first call  {show(first)}\nsecond call {show(second)}"
        )


@pytest.mark.ex3_2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_keeps_the_logits_dtype(impl, dtype):
    forward, backward = impl("3.1"), impl()
    z, y = _batch(38)
    _, cache = forward(z.astype(dtype), y)
    grad = backward(1.0, cache)
    if _dtype_of(grad) != dtype:
        raise Diagnosis(
            f"cross_entropy_backward for {np.dtype(dtype)} logits returned {_dtype_of(grad)}: "
            f"the gradient must have the logits' dtype"
        )
    expected = torch_lsce(z.astype(dtype).astype(np.float64), y, 0.0, dloss=1.0).grad
    assert_close(grad, expected, 1e-5, "cross_entropy_backward(1.0, cache)", logits=z)

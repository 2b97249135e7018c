"""Exercises 1.1 and 1.2: log-sum-exp and log-softmax, checked against PyTorch."""

import numpy as np
import pytest
import torch

from tests.expect import Diagnosis, assert_close
from tests.oracle import random_logits


def _torch_lse(x: np.ndarray, axis: int) -> np.ndarray:
    return torch.logsumexp(torch.tensor(x, dtype=torch.float64), dim=axis).numpy()


@pytest.mark.ex1_1
@pytest.mark.parametrize("axis", [-1, 0])
def test_logsumexp_matches_torch(impl, axis):
    logsumexp = impl()
    x = random_logits(np.random.default_rng(11), (6,), 5)
    assert_close(
        logsumexp(x, axis=axis),
        _torch_lse(x, axis),
        1e-12,
        f"logsumexp(x, axis={axis})",
        mistakes={
            "the axis argument is ignored (it sums over the last axis)": _torch_lse(
                x, -1
            )
        }
        if axis != -1
        else None,
        x=x,
    )


@pytest.mark.ex1_1
@pytest.mark.parametrize("value", [1000.0, -1000.0])
def test_logsumexp_survives_overflow_and_underflow(impl, value):
    logsumexp = impl()
    x = np.array([value, value, value - 1.0])
    expected = value + np.log(2.0 + np.exp(-1.0))
    with np.errstate(all="ignore"):
        got = logsumexp(x)
    if not np.isfinite(got):
        kind = (
            "overflowed to inf" if value > 0 else "underflowed to 0, and log(0) = -inf"
        )
        raise Diagnosis(
            f"logsumexp(x) returned {got} for x = {x}: exp {kind}. Shift by the max first: "
            f"lse(x) = m + log Σ exp(x − m) (expected {expected})"
        )
    assert_close(got, expected, 1e-12, "logsumexp(x)", x=x)


@pytest.mark.ex1_1
def test_logsumexp_of_all_minus_inf_is_minus_inf(impl):
    logsumexp = impl()
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(all="ignore"):
        got = logsumexp(x)
    if np.isnan(np.asarray(got)).any():
        raise Diagnosis(
            f"logsumexp(x) returned {got}, expected [-inf, 0.0]: a row of all -inf has "
            f"m = -inf, and x − m = -inf − (-inf) = NaN. Shift such rows by 0 instead"
        )
    assert_close(got, np.array([-np.inf, 0.0]), 1e-12, "logsumexp(x)", x=x)


@pytest.mark.ex1_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_keeps_the_input_dtype(impl, dtype):
    logsumexp = impl()
    x = random_logits(np.random.default_rng(14), (4,), 6).astype(dtype)
    got = logsumexp(x)
    got_dtype = getattr(got, "dtype", type(got).__name__)
    if got_dtype != dtype:
        raise Diagnosis(
            f"logsumexp of {np.dtype(dtype)} logits returned {got_dtype}: keep the dtype"
        )
    assert_close(got, _torch_lse(x.astype(np.float64), -1), 1e-6, "logsumexp(x)", x=x)


@pytest.mark.ex1_2
@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_matches_torch(impl, axis):
    log_softmax = impl()
    x = random_logits(np.random.default_rng(12), (7,), 6, scale=10.0)
    expected = torch.log_softmax(torch.tensor(x), dim=axis).numpy()
    ignored = torch.log_softmax(torch.tensor(x), dim=-1).numpy()
    assert_close(
        log_softmax(x, axis=axis),
        expected,
        1e-12,
        f"log_softmax(x, axis={axis})",
        mistakes={"the axis argument is ignored (it normalises the last axis)": ignored}
        if axis != -1
        else None,
        x=x,
    )


@pytest.mark.ex1_2
def test_log_softmax_stays_finite_where_log_of_softmax_fails(impl):
    log_softmax = impl()
    x = np.array([0.0, -1000.0, 1000.0])
    with np.errstate(all="ignore"):
        got = log_softmax(x)
    expected = np.array([-1000.0, -2000.0, 0.0])
    if not np.all(np.isfinite(got)):
        raise Diagnosis(
            f"log_softmax(x) returned {got} for x = {x}, expected {expected}: softmax "
            f"underflowed to 0 (or exp overflowed) and log(0) = -inf. Never take "
            f"log(softmax(x)): compute (x − m) − log Σ exp(x − m)"
        )
    assert_close(got, expected, 1e-12, "log_softmax(x)", x=x)


@pytest.mark.ex1_2
def test_log_softmax_rows_are_log_distributions(impl):
    log_softmax = impl()
    x = random_logits(np.random.default_rng(13), (5,), 4, scale=50.0)
    total = np.exp(log_softmax(x)).sum(axis=-1)
    assert_close(
        total, np.ones(5), 1e-12, "Σ_k exp(log_softmax(x))_k in every row", x=x
    )


@pytest.mark.ex1_2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_keeps_the_input_dtype(impl, dtype):
    log_softmax = impl()
    x = random_logits(np.random.default_rng(15), (4,), 6).astype(dtype)
    got = log_softmax(x)
    got_dtype = getattr(got, "dtype", type(got).__name__)
    if got_dtype != dtype:
        raise Diagnosis(
            f"log_softmax of {np.dtype(dtype)} logits returned {got_dtype}: keep the dtype"
        )
    expected = torch.log_softmax(torch.tensor(x, dtype=torch.float64), dim=-1).numpy()
    assert_close(got, expected, 1e-5, "log_softmax(x)", x=x)

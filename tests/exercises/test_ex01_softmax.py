"""Exercises 1.1 and 1.2: log-sum-exp and log-softmax, checked against PyTorch."""

import numpy as np
import pytest
import torch

from tests.oracle import assert_close, random_logits


@pytest.mark.ex1_1
@pytest.mark.parametrize("axis", [-1, 0])
def test_logsumexp_matches_torch(impl, axis):
    logsumexp = impl()
    x = random_logits(np.random.default_rng(11), (6,), 5)
    expected = torch.logsumexp(torch.tensor(x), dim=axis).numpy()
    assert_close(logsumexp(x, axis=axis), expected, 1e-12, f"logsumexp(x, axis={axis}), x={x}")


@pytest.mark.ex1_1
@pytest.mark.parametrize("value", [1000.0, -1000.0])
def test_logsumexp_survives_overflow_and_underflow(impl, value):
    logsumexp = impl()
    x = np.array([value, value, value - 1.0])
    expected = value + np.log(2.0 + np.exp(-1.0))
    got = logsumexp(x)
    assert np.isfinite(got), f"logsumexp({x}) = {got}: exp over- or underflowed (shift by the max)"
    assert_close(got, expected, 1e-12, f"logsumexp({x})")


@pytest.mark.ex1_1
def test_logsumexp_of_all_minus_inf_is_minus_inf(impl):
    logsumexp = impl()
    with np.errstate(divide="ignore", invalid="ignore"):
        got = logsumexp(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))
    assert got[0] == -np.inf and got[1] == 0.0, f"expected [-inf, 0.0], got {got}"


@pytest.mark.ex1_2
def test_log_softmax_matches_torch(impl):
    log_softmax = impl()
    x = random_logits(np.random.default_rng(12), (7,), 6, scale=10.0)
    expected = torch.log_softmax(torch.tensor(x), dim=-1).numpy()
    assert_close(log_softmax(x), expected, 1e-12, f"log_softmax(x), x={x}")


@pytest.mark.ex1_2
def test_log_softmax_stays_finite_where_log_of_softmax_fails(impl):
    log_softmax = impl()
    x = np.array([0.0, -1000.0, 1000.0])
    got = log_softmax(x)
    assert np.all(np.isfinite(got)), f"log_softmax({x}) = {got}: never take log(softmax(x))"
    assert_close(got, np.array([-1000.0, -2000.0, 0.0]), 1e-12, f"log_softmax({x})")


@pytest.mark.ex1_2
def test_log_softmax_rows_are_log_distributions(impl):
    log_softmax = impl()
    x = random_logits(np.random.default_rng(13), (5,), 4, scale=50.0)
    total = np.exp(log_softmax(x)).sum(axis=-1)
    assert_close(total, np.ones(5), 1e-12, "Σ_k exp(log_softmax(x))_k must be 1 in every row")

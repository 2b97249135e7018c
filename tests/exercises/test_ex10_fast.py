"""Exercise 10.1: log-sum-exp over class chunks (online softmax), against the one-pass lse."""

import numpy as np
import pytest
import torch

from tests.oracle import assert_close, random_logits


@pytest.mark.ex10_1
@pytest.mark.parametrize("chunk", [1, 3, 7, 37, 100])
def test_matches_logsumexp_for_any_chunk(impl, chunk):
    """Chunks of one class, not dividing K = 37, exactly K, more than K."""
    online_logsumexp = impl()
    x = random_logits(np.random.default_rng(101), (4, 5), 37)
    expected = torch.logsumexp(torch.tensor(x), dim=-1).numpy()
    got = online_logsumexp(x, chunk)
    assert np.shape(got) == (4, 5), f"shape {np.shape(got)}: the class axis should be reduced"
    assert_close(got, expected, 1e-12, f"online_logsumexp(x, chunk={chunk})")


@pytest.mark.ex10_1
def test_a_later_chunk_with_a_larger_max_rescales_the_sum(impl):
    """The max grows chunk after chunk: forgetting d·exp(m − m') is off by a lot."""
    online_logsumexp = impl()
    x = np.array([[0.0, 1.0, 5.0, 6.0, 20.0, 21.0], [21.0, 20.0, 6.0, 5.0, 1.0, 0.0]])
    expected = torch.logsumexp(torch.tensor(x), dim=-1).numpy()
    assert_close(online_logsumexp(x, 2), expected, 1e-12, "max growing / shrinking over chunks")


@pytest.mark.ex10_1
@pytest.mark.parametrize("value", [1000.0, -1000.0])
def test_no_overflow_or_underflow(impl, value):
    online_logsumexp = impl()
    x = np.full((2, 10), value)
    x[1, 7] += 3.0
    got = online_logsumexp(x, 4)
    assert np.all(np.isfinite(got)), f"got {got}: subtract the running max before exp"
    expected = torch.logsumexp(torch.tensor(x), dim=-1).numpy()
    assert_close(got, expected, 1e-12, f"x = {value}")


@pytest.mark.ex10_1
def test_a_long_row_in_chunks_matches_in_float64(impl):
    online_logsumexp = impl()
    x = random_logits(np.random.default_rng(102), (3,), 50_000, scale=5.0)
    expected = torch.logsumexp(torch.tensor(x), dim=-1).numpy()
    assert_close(online_logsumexp(x, 4096), expected, 1e-12, "K = 50 000, chunk 4096")

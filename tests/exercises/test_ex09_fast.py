"""Exercise 9.1: log-sum-exp over class chunks (online softmax), against the one-pass lse.

The wrong values typical mistakes give are computed by ``_online`` with one step changed,
so a message names a mistake only when the learner's numbers are that mistake's numbers.
"""

import numpy as np
import pytest
import torch

from lsce_scratch.memory import numpy_peak_bytes
from tests.expect import Diagnosis, assert_close
from tests.oracle import random_logits


def _lse(x: np.ndarray) -> np.ndarray:
    return torch.logsumexp(torch.tensor(x, dtype=torch.float64), dim=-1).numpy()


def _online(
    x: np.ndarray, chunk: int, *, rescale: bool = True, keep: bool = True
) -> np.ndarray:
    """The online log-sum-exp with one step changed, as a mistake would change it."""
    m = np.full(x.shape[:-1], -np.inf)
    d = np.zeros(x.shape[:-1])
    for start in range(0, x.shape[-1], chunk):
        block = x[..., start : start + chunk]
        new_m = np.maximum(m, block.max(axis=-1))
        old = d * np.exp(m - new_m) if rescale else d
        d = (old if keep else 0.0) + np.exp(block - new_m[..., None]).sum(axis=-1)
        m = new_m
    return m + np.log(d)


def _check(
    online_logsumexp, x: np.ndarray, chunk: int, what: str, rtol: float = 1e-12
) -> None:
    before = x.copy()
    with np.errstate(all="ignore"):
        got = online_logsumexp(x, chunk)
    if not np.array_equal(x, before):
        raise Diagnosis(
            f"{what}: online_logsumexp modified its input x; work on new arrays"
        )
    expected = _lse(x)
    if np.shape(got) == expected.shape and not np.all(np.isfinite(got)):
        big = float(np.abs(x).max())
        raise Diagnosis(
            f"{what} returned inf or NaN where every lse is finite (max |x| = {big:g}): exp "
            f"overflowed or underflowed to 0. Subtract the running max m before exp, and "
            f"rescale d by exp(m − m') when the max grows"
        )
    with np.errstate(all="ignore"):
        mistakes = {
            "the running sum is not rescaled when the max grows: d ← d·exp(m − m') + "
            "Σ exp(x − m')": _online(x, chunk, rescale=False),
            "only the last chunk counts: d ← d·exp(m − m') + Σ exp(x − m') keeps the "
            "earlier chunks": _online(x, chunk, keep=False),
            "the max m is missing from the result: lse = m + log d": expected
            - x.max(axis=-1),
        }
    assert_close(got, expected, rtol, what, mistakes=mistakes, x=x)


@pytest.mark.ex9_1
@pytest.mark.parametrize("chunk", [1, 3, 7, 37, 100])
def test_matches_logsumexp_for_any_chunk(impl, chunk):
    """Chunks of one class, not dividing K = 37, exactly K, more than K."""
    x = random_logits(np.random.default_rng(101), (4, 5), 37)
    _check(
        impl(), x, chunk, f"online_logsumexp(x, chunk={chunk}), x of shape (4, 5, 37)"
    )


@pytest.mark.ex9_1
def test_a_later_chunk_with_a_larger_max_rescales_the_sum(impl):
    """The max grows chunk after chunk in row 0 and shrinks in row 1."""
    x = np.array([[0.0, 1.0, 5.0, 6.0, 20.0, 21.0], [21.0, 20.0, 6.0, 5.0, 1.0, 0.0]])
    _check(impl(), x, 2, "online_logsumexp(x, chunk=2), the max growing / shrinking")


@pytest.mark.ex9_1
@pytest.mark.parametrize("value", [1000.0, -1000.0])
def test_no_overflow_or_underflow(impl, value):
    x = np.full((2, 10), value)
    x[1, 7] += 3.0
    _check(impl(), x, 4, f"online_logsumexp(x, chunk=4), every x near {value:g}")


@pytest.mark.ex9_1
def test_a_long_row_in_chunks(impl):
    x = random_logits(np.random.default_rng(102), (3,), 50_000, scale=5.0)
    _check(impl(), x, 4096, "online_logsumexp(x, chunk=4096), K = 50 000")


@pytest.mark.ex9_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_input_dtype(impl, dtype):
    online_logsumexp = impl()
    x = random_logits(np.random.default_rng(103), (6,), 40).astype(dtype)
    got = online_logsumexp(x, 16)
    got_dtype = getattr(got, "dtype", type(got).__name__)
    if got_dtype != dtype:
        raise Diagnosis(
            f"online_logsumexp of {np.dtype(dtype)} logits returned {got_dtype}: keep the dtype "
            f"(np.full and np.zeros make float64 arrays unless given dtype=x.dtype)"
        )
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    _check(
        online_logsumexp,
        x,
        16,
        f"online_logsumexp(x, chunk=16), {np.dtype(dtype)}",
        rtol,
    )


@pytest.mark.ex9_1
def test_never_builds_an_array_of_the_full_row(impl):
    online_logsumexp = impl()
    x = random_logits(np.random.default_rng(104), (4,), 50_000)
    peak = numpy_peak_bytes(lambda: online_logsumexp(x, 1000))
    assert peak < x.nbytes // 4, (
        f"online_logsumexp(x, chunk=1000) on x of {x.nbytes:,} bytes (4 × 50 000 float64) had "
        f"{peak:,} bytes of NumPy arrays alive at once: read x a chunk of classes at a time "
        f"(x[..., c : c + chunk]) and never build anything of x's full size (x − m, exp(x))"
    )

"""logsumexp, softmax and log_softmax against torch: random and extreme inputs, −inf
entries, all −inf rows, the axis argument and the float16/32/64 dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsce_scratch import log_softmax, logsumexp, softmax
from tests.oracle import assert_close, random_logits

TORCH = {
    "logsumexp": lambda t, axis: torch.logsumexp(t, dim=axis),
    "softmax": lambda t, axis: torch.softmax(t, dim=axis),
    "log_softmax": lambda t, axis: torch.log_softmax(t, dim=axis),
}
OURS = {"logsumexp": logsumexp, "softmax": softmax, "log_softmax": log_softmax}
NAMES = sorted(OURS)


def torch_ref(name: str, x: np.ndarray, axis: int = -1) -> np.ndarray:
    return TORCH[name](torch.tensor(x, dtype=torch.float64), axis).numpy()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7,), (4, 9), (2, 3, 5)], ids=str)
def test_matches_torch_on_random_logits(name: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = random_logits(rng, shape[:-1], shape[-1])
    assert_close(OURS[name](x), torch_ref(name, x), rtol=1e-13, what=name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_axis_argument(name: str, axis: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5)) * 4
    got = OURS[name](x, axis=axis)
    want = torch_ref(name, x, axis)
    assert_close(got, want, rtol=1e-13, what=f"{name} axis={axis}")


def test_softmax_sums_to_one_along_the_axis_only() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 5)) * 10
    for axis in (0, 1, 2):
        p = softmax(x, axis=axis)
        np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-14)
        assert not np.allclose(p.sum(axis=(axis + 1) % 3), 1.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("magnitude", [1e3, 1e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_finite_and_match_torch(
    name: str, magnitude: float, dtype: type
) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-magnitude, magnitude, size=(6, 8))
    x[0] = magnitude  # all equal and huge: lse = m + log K
    x[1] = -magnitude  # all equal and very negative: naive exp underflows to 0
    x[2, :] = -magnitude
    x[2, 3] = magnitude  # one dominant class
    x = x.astype(dtype)
    got = OURS[name](x)
    assert np.all(np.isfinite(got)), (
        f"{name} overflowed or underflowed at ±{magnitude:g}"
    )
    # Compare with torch in float64 on the very same (rounded) values.
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    assert_close(got, torch_ref(name, x.astype(np.float64)), rtol=rtol, what=name)


def test_logsumexp_of_equal_huge_values_is_m_plus_log_k() -> None:
    for m in (1e3, -1e3, 1e4, -1e4, 700.0, 800.0):
        np.testing.assert_allclose(
            logsumexp(np.full(5, m)), m + np.log(5.0), rtol=1e-15
        )


@pytest.mark.parametrize("name", NAMES)
def test_minus_inf_entries(name: str) -> None:
    x = np.array([[1.0, -np.inf, 2.0, 0.5], [-np.inf, -np.inf, 3.0, -np.inf]])
    got = OURS[name](x)
    assert_close(got, torch_ref(name, x), rtol=1e-14, what=name)
    if name == "softmax":
        assert got[0, 1] == 0.0 and got[1, 2] == 1.0
    if name == "log_softmax":
        assert got[0, 1] == -np.inf and got[1, 2] == 0.0


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("name", NAMES)
def test_all_minus_inf_row_matches_torch(name: str) -> None:
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.5, -1.0, 2.0]])
    got = OURS[name](x)
    want = torch_ref(name, x)
    assert_close(got, want, rtol=1e-14, what=name)
    # the other row is unaffected
    assert np.all(np.isfinite(got[1]))
    if name == "logsumexp":
        # log Σ 0 = −inf, not NaN
        assert got[0] == -np.inf


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("dtype", "compute", "rtol"),
    [
        (np.float16, np.float32, 1e-6),
        (np.float32, np.float32, 1e-6),
        (np.float64, np.float64, 1e-14),
    ],
    ids=["float16", "float32", "float64"],
)
def test_dtypes(name: str, dtype: type, compute: type, rtol: float) -> None:
    """float16 and float32 are computed in float32 (and returned so), float64 in float64."""
    rng = np.random.default_rng(4)
    x = random_logits(rng, (5,), 11, dtype=dtype)
    got = OURS[name](x)
    assert got.dtype == compute
    # accurate to the compute precision for the (already rounded) input values
    assert_close(
        got, torch_ref(name, x.astype(np.float64)), rtol=rtol, what=f"{name} {dtype}"
    )


def test_float16_input_that_would_overflow_in_float16() -> None:
    """exp(12) > 65504 overflows float16; computed in float32 after the max-shift it is fine."""
    x = np.array([12.0, 11.0, -3.0], dtype=np.float16)
    want = torch_ref("logsumexp", x.astype(np.float64))
    assert_close(logsumexp(x), want, rtol=1e-6)
    assert np.all(np.isfinite(softmax(x)))


def test_integer_input_is_computed_in_float64() -> None:
    x = np.array([[1, 2, 3], [0, 0, 0]])
    got = log_softmax(x)
    assert got.dtype == np.float64
    assert_close(got, torch_ref("log_softmax", x.astype(np.float64)), rtol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_input_not_modified(name: str) -> None:
    x = np.random.default_rng(5).standard_normal((3, 4)) * 50
    before = x.copy()
    OURS[name](x)
    np.testing.assert_array_equal(x, before)


def test_log_softmax_is_accurate_where_log_of_softmax_underflows() -> None:
    """log(softmax) gives −inf for p < 1e-308; x − lse gives the exact −2000."""
    x = np.array([0.0, -2000.0])
    got = log_softmax(x)
    np.testing.assert_allclose(got, [0.0, -2000.0], rtol=1e-15, atol=0)

"""Every bad input raises ValueError or TypeError, naming the argument and saying what is
allowed, before anything is computed: the argument checks of the API reference
(docs/reference/) and the refusals of docs/conventions.md, "Where we differ from PyTorch"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from lsce_scratch import label_smoothing_cross_entropy, lsce_backward, lsce_forward

pytestmark = pytest.mark.usefixtures("lsce_implementation")

N, K = 4, 5
ENTRY_POINTS = [
    pytest.param(lambda *a, **kw: lsce_forward(*a, **kw)[0], id="lsce_forward"),
    pytest.param(label_smoothing_cross_entropy, id="label_smoothing_cross_entropy"),
]


def good_logits() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((N, K)) * 3


def good_target() -> np.ndarray:
    return np.array([0, 4, 2, 1])


@pytest.fixture(params=ENTRY_POINTS)
def loss_fn(request: pytest.FixtureRequest) -> Callable[..., np.ndarray]:
    return request.param


# ε outside [0, 1]


@pytest.mark.parametrize(
    "eps", [-0.1, -1e-12, 1.0 + 1e-12, 1.5, float("nan"), float("inf")]
)
def test_epsilon_outside_0_1(loss_fn, eps: float) -> None:
    with pytest.raises(ValueError, match=r"^epsilon must be in \[0, 1\].*got"):
        loss_fn(good_logits(), good_target(), eps)


@pytest.mark.parametrize(
    "eps", ["0.1", None, True, [0.1]], ids=["str", "None", "bool", "list"]
)
def test_epsilon_not_a_number(loss_fn, eps: object) -> None:
    with pytest.raises(TypeError, match=r"^epsilon must be a real number in \[0, 1\]"):
        loss_fn(good_logits(), good_target(), eps)


# an unknown reduction


@pytest.mark.parametrize("reduction", ["avg", "Mean", "", None, "elementwise_mean"])
def test_unknown_reduction(loss_fn, reduction: object) -> None:
    with pytest.raises(
        ValueError, match=r"^reduction must be one of 'none', 'mean', 'sum'; got"
    ):
        loss_fn(good_logits(), good_target(), reduction=reduction)


# non-floating logits, NaN or +inf logits in a row that counts, or K = 0


@pytest.mark.parametrize(
    "dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex128, object], ids=str
)
def test_non_floating_logits(loss_fn, dtype: type) -> None:
    logits = np.ones((N, K), dtype=dtype)
    with pytest.raises(
        TypeError, match=r"^logits must be floating point \(float16, .*\); got"
    ):
        loss_fn(logits, good_target())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_or_plus_inf_logits(loss_fn, bad: float, dtype: type) -> None:
    logits = good_logits().astype(dtype)
    logits[2, 3] = bad
    logits[3, 1:3] = bad  # a second bad row
    shown = "nan" if np.isnan(bad) else "inf"
    pattern = (
        rf"^logits contain NaN or \+inf in 2 row\(s\) that count, the first with {shown} "
        rf"at index \(2, 3\)"
    )
    with pytest.raises(ValueError, match=pattern):
        loss_fn(logits, good_target())


def test_bad_logits_are_named_in_the_leading_shape(loss_fn) -> None:
    logits = np.zeros((2, 3, K))
    logits[1, 2, 4] = np.nan
    with pytest.raises(ValueError, match=r"nan at index \(1, 2, 4\)"):
        loss_fn(logits, np.zeros((2, 3), dtype=int))


def test_logits_that_overflow_their_dtype_are_reported_not_computed(loss_fn) -> None:
    """1e5 does not fit in float16: it is inf by the time the loss sees it."""
    logits = good_logits()
    logits[0, 0] = 1e5
    with np.errstate(over="ignore"):
        logits16 = logits.astype(np.float16)
    with pytest.raises(ValueError, match=r"^logits contain NaN or \+inf in 1 row"):
        loss_fn(logits16, good_target())


@pytest.mark.parametrize("shape", [(N, 0), (0,), (2, 3, 0)], ids=str)
def test_zero_classes(loss_fn, shape: tuple[int, ...]) -> None:
    logits = np.zeros(shape)
    target = np.zeros(shape[:-1], dtype=np.int64)
    with pytest.raises(
        ValueError, match=r"^logits must have at least one class on the last axis"
    ):
        loss_fn(logits, target)


def test_scalar_logits(loss_fn) -> None:
    with pytest.raises(
        ValueError, match=r"^logits must have the classes on the last axis"
    ):
        loss_fn(np.float64(1.0), 0)


# a target shape that does not match


@pytest.mark.parametrize(
    "shape", [(N + 1,), (N - 1,), (N, 1), (N, K + 1), (1, N), (), (N, K, 1)], ids=str
)
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_target_shape_does_not_match(
    loss_fn, shape: tuple[int, ...], dtype: type
) -> None:
    target = np.zeros(shape, dtype=dtype)
    with pytest.raises(
        ValueError,
        match=r"^target shape .* does not fit logits shape \(4, 5\): pass class indices of "
        r"shape \(4,\) or class probabilities of shape \(4, 5\)",
    ):
        loss_fn(good_logits(), target)


# a float array given as index targets


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_float_index_targets(loss_fn, dtype: type) -> None:
    target = good_target().astype(dtype)
    with pytest.raises(
        TypeError, match=r"^target has shape \(4,\).*class indices must be integers"
    ):
        loss_fn(good_logits(), target)


def test_float_list_as_index_targets(loss_fn) -> None:
    with pytest.raises(TypeError, match=r"class indices must be integers"):
        loss_fn(good_logits(), [0.0, 4.0, 2.0, 1.0])


def test_integer_probability_targets(loss_fn) -> None:
    target = np.eye(K, dtype=np.int64)[good_target()]
    with pytest.raises(
        TypeError, match=r"^target has shape \(4, 5\).*must be floating point"
    ):
        loss_fn(good_logits(), target)


@pytest.mark.parametrize(
    "target", [np.array([True, False, True, True]), np.array(["a"] * N)]
)
def test_targets_neither_integer_nor_float(loss_fn, target: np.ndarray) -> None:
    with pytest.raises(TypeError, match=r"^target must hold integer class indices or"):
        loss_fn(good_logits(), target)


# an index out of range (unless it equals ignore_index)


@pytest.mark.parametrize("bad", [K, K + 100, -1, -99, -101, 2**40])
def test_index_out_of_range(loss_fn, bad: int) -> None:
    target = good_target()
    target[1] = bad
    with pytest.raises(
        ValueError,
        match=rf"^target holds class index {bad} outside \[0, 4\].*ignore_index=-100",
    ):
        loss_fn(good_logits(), target)


def test_index_out_of_range_is_fine_when_it_is_ignore_index(loss_fn) -> None:
    target = good_target()
    target[1] = K + 2
    loss_fn(good_logits(), target, ignore_index=K + 2)
    target[1] = -1
    loss_fn(good_logits(), target, ignore_index=-1)
    with pytest.raises(
        ValueError, match=r"class index -1 outside \[0, 4\].*ignore_index=-2"
    ):
        loss_fn(good_logits(), target, ignore_index=-2)


def test_unbatched_index_out_of_range(loss_fn) -> None:
    with pytest.raises(
        ValueError, match=r"^target holds class index 5 outside \[0, 4\]"
    ):
        loss_fn(good_logits()[0], 5)


@pytest.mark.parametrize(
    "ignore_index", [1.5, "x", None, True], ids=["float", "str", "None", "bool"]
)
def test_ignore_index_not_an_integer(loss_fn, ignore_index: object) -> None:
    with pytest.raises(
        TypeError, match=r"^ignore_index must be an integer class index"
    ):
        loss_fn(good_logits(), good_target(), ignore_index=ignore_index)


# negative soft targets


def test_negative_soft_targets(loss_fn) -> None:
    target = np.full((N, K), 0.2)
    target[1, 2] = -0.05
    with pytest.raises(
        ValueError, match=r"^target probabilities must be >= 0; found -0.05"
    ):
        loss_fn(good_logits(), target)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_soft_targets(loss_fn, bad: float) -> None:
    target = np.full((N, K), 0.2)
    target[3, 0] = bad
    with pytest.raises(ValueError, match=r"^target probabilities must be finite"):
        loss_fn(good_logits(), target)


@pytest.mark.parametrize("ignore_index", [0, 3, 100])
def test_soft_targets_with_non_negative_ignore_index(
    loss_fn, ignore_index: int
) -> None:
    target = np.full((N, K), 0.2)
    with pytest.raises(
        ValueError,
        match=rf"^ignore_index={ignore_index} is not supported with probability targets",
    ):
        loss_fn(good_logits(), target, ignore_index=ignore_index)


# a bad weight: wrong shape, negative or non-finite


@pytest.mark.parametrize(
    "shape", [(K + 1,), (K - 1,), (1, K), (K, 1), (), (0,)], ids=str
)
def test_weight_wrong_shape(loss_fn, shape: tuple[int, ...]) -> None:
    with pytest.raises(
        ValueError, match=r"^weight must have shape \(5,\), one weight per class"
    ):
        loss_fn(good_logits(), good_target(), weight=np.ones(shape))


def test_weight_negative(loss_fn) -> None:
    weight = np.ones(K)
    weight[3] = -0.5
    with pytest.raises(
        ValueError, match=r"^weight must be >= 0 for every class; found -0.5"
    ):
        loss_fn(good_logits(), good_target(), weight=weight)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weight_non_finite(loss_fn, bad: float) -> None:
    weight = np.ones(K)
    weight[0] = bad
    with pytest.raises(ValueError, match=r"^weight must be finite"):
        loss_fn(good_logits(), good_target(), weight=weight)


@pytest.mark.parametrize(
    "weight", [np.array(["a"] * K), np.ones(K, dtype=complex), [None] * K], ids=str
)
def test_weight_not_real_numbers(loss_fn, weight: object) -> None:
    with pytest.raises(
        TypeError, match=r"^weight must be a real-valued array of shape \(5,\)"
    ):
        loss_fn(good_logits(), good_target(), weight=weight)


def test_weight_with_soft_targets_is_checked_too(loss_fn) -> None:
    with pytest.raises(ValueError, match=r"^weight must have shape \(5,\)"):
        loss_fn(good_logits(), np.full((N, K), 0.2), weight=np.ones(K - 1))


# a dloss whose shape does not match


@pytest.mark.parametrize("shape", [(N + 1,), (1, N), (), (N, 1)], ids=str)
def test_dloss_shape_for_none(shape: tuple[int, ...]) -> None:
    _, cache = lsce_forward(good_logits(), good_target(), reduction="none")
    with pytest.raises(
        ValueError,
        match=r"^dloss must be shape \(4,\), the shape of the loss that lsce_forward returned "
        r"with reduction='none'; got shape",
    ):
        lsce_backward(np.ones(shape), cache)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(1,), (N,), (1, 1)], ids=str)
def test_dloss_shape_for_scalar_reductions(
    reduction: str, shape: tuple[int, ...]
) -> None:
    _, cache = lsce_forward(good_logits(), good_target(), reduction=reduction)
    with pytest.raises(
        ValueError,
        match=rf"^dloss must be a scalar, .*reduction='{reduction}'; got shape",
    ):
        lsce_backward(np.ones(shape), cache)


def test_dloss_shape_for_none_with_leading_n_t() -> None:
    logits = np.random.default_rng(1).standard_normal((2, 3, K))
    _, cache = lsce_forward(logits, np.zeros((2, 3), dtype=int), reduction="none")
    with pytest.raises(ValueError, match=r"^dloss must be shape \(2, 3\)"):
        lsce_backward(np.ones(6), cache)
    lsce_backward(np.ones((2, 3)), cache)  # the right shape works


def test_errors_are_raised_before_anything_is_returned(loss_fn) -> None:
    """A bad argument anywhere fails the whole call; a good call still works afterwards."""
    with pytest.raises(ValueError):
        loss_fn(good_logits(), good_target(), 0.1, weight=-np.ones(K))
    assert np.isfinite(loss_fn(good_logits(), good_target(), 0.1))

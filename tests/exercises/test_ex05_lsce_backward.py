"""Exercises 5.1–5.4: the LSCE forward/backward pair with PyTorch's semantics."""

import numpy as np
import pytest

from lsce_scratch.gradcheck import numerical_gradient, rel_error
from tests.expect import Diagnosis, assert_close, got_expected, show
from tests.oracle import random_index_targets, random_logits, torch_lsce

REDUCTIONS = ["mean", "sum", "none"]


def _case(seed: int, leading: tuple[int, ...] = (6,), k: int = 5):
    rng = np.random.default_rng(seed)
    return random_logits(rng, leading, k), random_index_targets(rng, leading, k)


def _dtype_of(value: object) -> object:
    return getattr(value, "dtype", type(value).__name__)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _smoothed(y: np.ndarray, k: int, eps: float) -> np.ndarray:
    return np.where(np.arange(k) == y[..., None], 1 - eps + eps / k, eps / k)


# --------------------------------------------------------------------------------------------
# 5.1 the forward


@pytest.mark.ex5_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("leading", [(6,), (2, 3), ()])
def test_forward_matches_torch(impl, reduction, leading):
    forward = impl()
    z, y = _case(51, leading)
    loss, _ = forward(z, y, 0.1, reduction=reduction)
    expected = torch_lsce(z, y, 0.1, reduction=reduction).loss
    plain = torch_lsce(z, y, 0.0, reduction=reduction).loss
    assert_close(
        loss,
        expected,
        1e-12,
        f"lsce_forward(logits, target, ε=0.1, reduction={reduction!r}), logits {z.shape}",
        mistakes={"ε is ignored: that is plain cross-entropy": plain},
        logits=z,
        target=y,
    )


@pytest.mark.ex5_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_keeps_the_logits_dtype(impl, dtype):
    forward = impl()
    z, y = _case(56)
    for reduction in ("mean", "none"):
        loss, _ = forward(z.astype(dtype), y, 0.1, reduction=reduction)
        if _dtype_of(loss) != dtype:
            raise Diagnosis(
                f"lsce_forward of {np.dtype(dtype)} logits, reduction={reduction!r}, returned a "
                f"{_dtype_of(loss)} loss: keep the logits' dtype (smooth_labels gives float64 q)"
            )
        expected = torch_lsce(
            z.astype(dtype).astype(np.float64), y, 0.1, reduction=reduction
        )
        assert_close(
            loss,
            expected.loss,
            1e-5,
            f"lsce_forward, reduction={reduction!r}",
            logits=z,
        )


@pytest.mark.ex5_1
def test_forward_rejects_an_unknown_reduction(impl):
    forward = impl()
    z, y = _case(57)
    try:
        got = forward(z, y, 0.1, reduction="avg")
    except ValueError:
        return
    except KeyError as error:
        raise Diagnosis(
            f"lsce_forward(..., reduction='avg') raised KeyError ({error}), not ValueError: "
            f"check the reduction yourself and raise ValueError naming it"
        ) from None
    raise Diagnosis(
        f"lsce_forward(..., reduction='avg') returned {show(got[0])} instead of raising "
        f"ValueError: the reduction must be 'none', 'sum' or 'mean'"
    )


@pytest.mark.ex5_1
def test_forward_leaves_its_inputs_unchanged(impl):
    forward = impl()
    z, y = _case(58, (2, 3))
    z_before, y_before = z.copy(), y.copy()
    forward(z, y, 0.1, reduction="none")
    for name, now, before in (("logits", z, z_before), ("target", y, y_before)):
        if not np.array_equal(now, before):
            raise Diagnosis(
                f"lsce_forward modified its input {name} (an in-place -= or [...] = ?): work "
                f"on a new array\nbefore {show(before)}\nafter  {show(now)}"
            )


# --------------------------------------------------------------------------------------------
# 5.2 the backward, through every reduction


@pytest.mark.ex5_2
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("leading", [(6,), (2, 3), ()])
def test_backward_matches_torch(impl, reduction, leading):
    forward, backward = impl("5.1"), impl()
    z, y = _case(52, leading)
    _, cache = forward(z, y, 0.1, reduction=reduction)
    expected = torch_lsce(z, y, 0.1, reduction=reduction)
    got = backward(expected.dloss, cache)
    ones = np.ones_like(expected.dloss)
    mistakes = {
        "the upstream dloss is ignored: multiply the gradient by it (row by row for 'none')": (
            torch_lsce(z, y, 0.1, reduction=reduction, dloss=ones).grad
        ),
        "the sign is flipped: ∂ℓ/∂z = p − q, not q − p": -expected.grad,
        "ε is missing from the gradient: that is p − onehot(y), use p − q": (
            torch_lsce(z, y, 0.0, reduction=reduction, dloss=expected.dloss).grad
        ),
    }
    if reduction == "mean":
        n = int(np.prod(leading))
        mistakes[
            f"the 1/N of 'mean' is missing: divide by the number of rows N = {n}"
        ] = torch_lsce(z, y, 0.1, reduction="sum", dloss=expected.dloss).grad
    assert_close(
        got,
        expected.grad,
        1e-12,
        f"lsce_backward(dloss, cache), reduction={reduction!r}, logits {z.shape}",
        mistakes=mistakes,
        dloss=expected.dloss,
        logits=z,
        target=y,
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
    numeric = numerical_gradient(
        lambda x: float(forward(x, y, epsilon, reduction="sum")[0]), z
    )
    error = rel_error(analytic, numeric)
    assert error < 1e-7, (
        f"lsce_backward(1.0, cache), ε={epsilon}, reduction='sum': rel_error {error:.1e} "
        f"against central differences (threshold 1e-7)\n"
        + got_expected(analytic, numeric, {"logits": z, "target": y})
    )


@pytest.mark.ex5_2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_keeps_the_logits_dtype(impl, dtype):
    forward, backward = impl("5.1"), impl()
    z, y = _case(59)
    for reduction in ("mean", "none"):
        _, cache = forward(z.astype(dtype), y, 0.1, reduction=reduction)
        expected = torch_lsce(
            z.astype(dtype).astype(np.float64), y, 0.1, reduction=reduction
        )
        grad = backward(expected.dloss, cache)
        if _dtype_of(grad) != dtype:
            raise Diagnosis(
                f"lsce_backward for {np.dtype(dtype)} logits, reduction={reduction!r}, returned "
                f"{_dtype_of(grad)}: the gradient must have the logits' dtype (a float64 dloss "
                f"or q makes the result float64: cast it)"
            )
        assert_close(
            grad, expected.grad, 1e-5, f"lsce_backward, reduction={reduction!r}"
        )


@pytest.mark.ex5_2
def test_backward_can_be_called_twice_with_one_cache(impl):
    forward, backward = impl("5.1"), impl()
    z, y = _case(60)
    _, cache = forward(z, y, 0.1, reduction="sum")
    first = np.array(backward(np.asarray(1.0), cache), copy=True)
    second = np.asarray(backward(np.asarray(1.0), cache))
    if not np.array_equal(first, second):
        raise Diagnosis(
            "a second lsce_backward(1.0, cache) with the same cache returned a different "
            "gradient: your backward changed the cache in place (p −= q, or grad = p then "
            "grad −= ...): compute the gradient into a new array\n"
            f"first call  {show(first)}\nsecond call {show(second)}"
        )


# --------------------------------------------------------------------------------------------
# 5.3 class weights and ignore_index


def _weighted_parts(z, y, eps, w, ignore_index=-100):
    """p, r = w ⊙ q (0 on ignored rows), S = Σ_k r_k, the mask of counted rows, Σ w_{y_i}."""
    valid = y != ignore_index
    safe = np.where(valid, y, 0)
    q = _smoothed(safe, z.shape[-1], eps)
    r = np.where(valid[:, None], w * q, 0.0)
    return _softmax(z), r, r.sum(axis=-1, keepdims=True), valid, (w[safe] * valid).sum()


def _per_row(dloss: np.ndarray, reduction: str, denominator: float) -> np.ndarray:
    """∂L/∂ℓ_i as a column: dloss through the reduction."""
    if reduction == "none":
        return np.reshape(dloss, (-1, 1))
    return dloss / denominator if reduction == "mean" else dloss


def _check_ignored_rows(
    grad: np.ndarray, valid: np.ndarray, what: str, ignore_index: int
):
    if grad.shape[:1] == valid.shape and np.any(grad[~valid] != 0):
        raise Diagnosis(
            f"{what}: the ignored rows (target = {ignore_index}) got a nonzero gradient; they "
            f"count for nothing, so r = 0 there and their gradient is exactly 0\n"
            f"ignored rows of the gradient {show(grad[~valid])}"
        )


@pytest.mark.ex5_3
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weights_and_ignore_index_match_torch(impl, reduction):
    forward, backward = impl("5.1"), impl()
    z, y = _case(54, (7,), 4)
    y[[1, 4]] = -100
    w = np.array([0.5, 2.0, 1.0, 3.0])
    loss, cache = forward(z, y, 0.2, reduction=reduction, weight=w)
    expected = torch_lsce(z, y, 0.2, reduction=reduction, weight=w)
    what = f"weight={w.tolist()}, reduction={reduction!r}, rows 1 and 4 ignored"
    p, r, s, valid, denominator = _weighted_parts(z, y, 0.2, w)
    n, counted = len(y), int(valid.sum())
    rows = torch_lsce(z, y, 0.2, reduction="none", weight=w).loss
    loss_mistakes = {}
    if reduction == "mean":
        loss_mistakes = {
            f"'mean' divides by Σ w_(y_i) over the rows that count ({denominator:g}), not by "
            f"N = {n}": rows.sum() / n,
            f"'mean' divides by Σ w_(y_i) over the rows that count ({denominator:g}), not by "
            f"their number ({counted})": rows.sum() / counted,
        }
    assert_close(
        loss,
        expected.loss,
        1e-12,
        f"lsce_forward loss with {what}",
        mistakes=loss_mistakes,
        logits=z,
        target=y,
    )
    grad = np.asarray(backward(expected.dloss, cache))
    _check_ignored_rows(grad, valid, f"lsce_backward with {what}", -100)
    scale = _per_row(expected.dloss, reduction, denominator)
    mistakes = {
        "the gradient of a row is S·p − r with S = Σ_k r_k: p − r assumes S = 1, which the "
        "weights break": np.where(valid[:, None], p - r, 0.0) * scale,
        "the weights are missing from the gradient: with r = w ⊙ q it is S·p − r, not p − q": (
            np.where(valid[:, None], p - _smoothed(np.where(valid, y, 0), 4, 0.2), 0.0)
            * scale
        ),
    }
    if reduction == "mean":
        per_row = s * p - r
        mistakes[
            f"'mean' divides by Σ w_(y_i) over the rows that count ({denominator:g}), not by "
            f"N = {n}"
        ] = per_row * expected.dloss / n
        mistakes[
            f"'mean' divides by Σ w_(y_i) over the rows that count ({denominator:g}), not by "
            f"their number ({counted})"
        ] = per_row * expected.dloss / counted
    assert_close(
        grad,
        expected.grad,
        1e-12,
        f"lsce_backward gradient with {what}",
        mistakes=mistakes,
        dloss=expected.dloss,
        logits=z,
        target=y,
    )


@pytest.mark.ex5_3
def test_all_ignored_mean_is_nan_with_zero_gradient(impl):
    forward, backward = impl("5.1"), impl()
    z, _ = _case(55, (3,), 4)
    with np.errstate(all="ignore"):
        loss, cache = forward(z, np.full(3, -100), 0.1)
    assert np.isnan(loss), (
        f"lsce_forward with every row ignored, reduction='mean': the mean over no rows is "
        f"0/0 = NaN in PyTorch; got {show(loss)}"
    )
    with np.errstate(all="ignore"):
        grad = np.asarray(backward(np.asarray(1.0), cache))
    if np.isnan(grad).any():
        raise Diagnosis(
            "lsce_backward with every row ignored, reduction='mean', returned NaN: Σ w_(y_i) "
            "is 0 here, and 0 · (dloss / 0) is NaN. Ignored rows must get exactly 0: don't "
            f"scale them by dloss / 0 (np.where, or a zero denominator check)\ngot {show(grad)}"
        )
    assert np.array_equal(grad, np.zeros_like(z)), (
        f"lsce_backward with every row ignored: ignored rows get zero gradient; got {show(grad)}"
    )


@pytest.mark.ex5_3
def test_ignore_index_is_an_argument(impl):
    forward, backward = impl("5.1"), impl()
    z, _ = _case(61, (6,), 4)
    y = np.array([3, 0, 3, 1, 2, 3])  # ignore_index=3 is a real class index here
    loss, cache = forward(z, y, 0.1, reduction="sum", ignore_index=3)
    expected = torch_lsce(z, y, 0.1, reduction="sum", ignore_index=3)
    assert_close(
        loss,
        expected.loss,
        1e-12,
        "lsce_forward(..., reduction='sum', ignore_index=3)",
        mistakes={
            "ignore_index is ignored (it ignores -100 only)": torch_lsce(
                z, y, 0.1, reduction="sum"
            ).loss
        },
        logits=z,
        target=y,
    )
    grad = np.asarray(backward(expected.dloss, cache))
    what = "lsce_backward after lsce_forward(..., reduction='sum', ignore_index=3)"
    _check_ignored_rows(grad, y != 3, what, 3)
    assert_close(
        grad,
        expected.grad,
        1e-12,
        what,
        logits=z,
        target=y,
    )


@pytest.mark.ex5_3
def test_forward_leaves_a_target_with_ignored_rows_unchanged(impl):
    forward = impl("5.1")
    z, y = _case(62, (5,), 4)
    y[[0, 3]] = -100
    before = y.copy()
    forward(z, y, 0.1, weight=np.array([1.0, 2.0, 0.5, 1.5]))
    if not np.array_equal(y, before):
        raise Diagnosis(
            f"lsce_forward modified its input target: {show(before)} became {show(y)}. "
            f"Point the ignored rows at class 0 in a new array: np.where(valid, target, 0)"
        )


# --------------------------------------------------------------------------------------------
# 5.4 float32 and a confident prediction

FLOAT32_SPACING_BELOW_1 = 2.0**-24


def _confident_logits(delta: float, y: np.ndarray, k: int) -> np.ndarray:
    # the true class gets p_y = 1 − δ: its logit is log((1 − δ)(K − 1)/δ) above the others
    z = np.zeros((len(y), k))
    z[np.arange(len(y)), y] = np.log((1 - delta) * (k - 1) / delta)
    return z


@pytest.mark.ex5_4
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-6])
def test_confident_float32_true_class_gradient(impl, delta):
    forward, backward = impl("5.1"), impl()
    y = np.array([0, 2, 4])
    z32 = _confident_logits(delta, y, 5).astype(np.float32)
    _, cache = forward(z32, y, 0.0, reduction="sum")
    got = backward(np.asarray(1.0, dtype=np.float32), cache)
    if _dtype_of(got) != np.float32:
        raise Diagnosis(
            f"the gradient must have the logits' dtype, float32; got {_dtype_of(got)}"
        )
    expected = torch_lsce(
        z32.astype(np.float64), y, 0.0, reduction="sum", dloss=1.0
    ).grad
    rows = np.arange(3)
    true_got, true_expected = got[rows, y].astype(np.float64), expected[rows, y]
    error = np.max(np.abs(true_got - true_expected) / np.abs(true_expected))
    if error < 1e-3:
        return
    steps = true_got / FLOAT32_SPACING_BELOW_1
    if np.all(steps == np.round(steps)):
        raise Diagnosis(
            f"p_y = 1 − {delta:g} in float32: the true-class gradient is off by {error:.1e} "
            f"(relative), and every entry is a whole multiple of 2⁻²⁴, float32's spacing just "
            f"below 1: it is a difference of two numbers near 1 (p_y − 1, or Σ_k p_k − p_y), "
            f"which cancels\nAt the most likely class m use S·p_m − r_m = Σ_(k≠m) r_k − "
            f"S·Σ_(k≠m) p_k, which adds only small numbers\n"
            + got_expected(true_got, true_expected, {"logits": z32, "target": y})
        )
    raise AssertionError(
        f"p_y = 1 − {delta:g}, float32: the true-class gradient is off by {error:.1e} "
        f"(relative, allowed 1e-3)\n"
        + got_expected(true_got, true_expected, {"logits": z32, "target": y})
    )


@pytest.mark.ex5_4
def test_confident_float32_with_smoothing(impl):
    forward, backward = impl("5.1"), impl()
    k, eps = 5, 0.1
    # rows 0–2 confidently right (p_y = 1 − 1e-6), row 3 confidently wrong (class 1 wins);
    # no class weights here: 5.4 needs only 5.1 and 5.2
    y = np.array([0, 2, 4, 3])
    z32 = _confident_logits(1e-6, np.array([0, 2, 4, 1]), k).astype(np.float32)
    _, cache = forward(z32, y, eps, reduction="sum")
    got = backward(np.asarray(1.0, dtype=np.float32), cache)
    expected = torch_lsce(z32.astype(np.float64), y, eps, reduction="sum", dloss=1.0)
    p = _softmax(z32.astype(np.float64))
    m, rows = p.argmax(axis=-1), np.arange(len(y))
    others_p = np.where(np.arange(k) == m[:, None], 0.0, p).sum(axis=-1)
    no_r = expected.grad.copy()
    no_r[rows, m] = -others_p
    assert_close(
        got,
        expected.grad,
        1e-4,
        f"float32 lsce_backward, ε={eps}, reduction='sum'",
        mistakes={
            "at the most likely class m, S·p_m − r_m = Σ_(k≠m) r_k − S·Σ_(k≠m) p_k: using "
            "−Σ_(k≠m) p_k alone is right only for ε = 0 without weights": no_r,
        },
        logits=z32,
        target=y,
    )

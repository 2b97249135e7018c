"""Exercises 4.1 and 4.2: smoothed targets and the label-smoothing loss."""

from collections.abc import Callable

import numpy as np
import pytest

from tests.expect import Diagnosis, assert_close, show
from tests.oracle import random_index_targets, random_logits, torch_lsce


def _targets(y: np.ndarray, k: int, on: float, off: float) -> np.ndarray:
    """Rows of ``off`` with ``on`` at the class in y: the target of any convention."""
    return np.where(np.arange(k) == np.asarray(y)[..., None], on, off)


def _value_error(
    call: Callable[[], object],
    what: str,
    why: str,
    returned: Callable[[object], str | None] = lambda got: None,
) -> str:
    """Run ``call``, which must raise ValueError; return its message. ``returned(got)`` may
    name the checked cause when it returns instead."""
    try:
        got = call()
    except ValueError as error:
        return str(error)
    except (IndexError, KeyError) as error:
        raise Diagnosis(
            f"{what} raised {type(error).__name__} ({error}), not ValueError: {why}, so check "
            f"the argument yourself and raise ValueError with a message that says what is wrong"
        ) from None
    cause = returned(got)
    if cause:
        raise Diagnosis(f"{what} returned {show(got)}: {cause}")
    raise Diagnosis(
        f"{what} returned instead of raising ValueError: {why}\ngot {show(got)}"
    )


@pytest.mark.ex4_1
def test_spread_all_gives_every_class_eps_over_k(impl):
    smooth_labels = impl()
    y, k, eps = np.array([2, 0]), 4, 0.2
    q = smooth_labels(y, k, eps)
    assert_close(
        q,
        _targets(y, k, 1 - eps + eps / k, eps / k),
        1e-15,
        "smooth_labels([2, 0], K=4, ε=0.2)",
        mistakes={
            "that is the article's prose (1 − ε on the true class, ε on every other one, rows "
            "summing to 1 + (K − 2)ε): spread='all' gives every class ε/K and the true class "
            "1 − ε + ε/K": _targets(y, k, 1 - eps, eps),
            "the true class gets 1 − ε + ε/K (ε/K like every class, plus 1 − ε), not 1 − ε: "
            "this row sums to 1 − ε/K": _targets(y, k, 1 - eps, eps / k),
            "that is spread='others' (ε/(K − 1) to the wrong classes only): spread='all' gives "
            "ε/K to every class": _targets(y, k, 1 - eps, eps / (k - 1)),
        },
        target=y,
    )


@pytest.mark.ex4_1
def test_spread_others_gives_the_true_class_one_minus_eps(impl):
    smooth_labels = impl()
    y, k, eps = np.array([1, 4]), 5, 0.2
    q = smooth_labels(y, k, eps, spread="others")
    assert_close(
        q,
        _targets(y, k, 1 - eps, eps / (k - 1)),
        1e-15,
        "smooth_labels([1, 4], K=5, ε=0.2, spread='others')",
        mistakes={
            "spread='others' gives each wrong class ε/(K − 1), not ε/K (this row sums to "
            "1 − ε/K)": _targets(y, k, 1 - eps, eps / k),
            "that is spread='all': the spread argument is ignored": _targets(
                y, k, 1 - eps + eps / k, eps / k
            ),
            "ε on each wrong class (the article's prose) sums to 1 + (K − 2)ε: share ε among "
            "the K − 1 wrong classes, ε/(K − 1) each": _targets(y, k, 1 - eps, eps),
        },
        target=y,
    )


@pytest.mark.ex4_1
def test_others_with_eps_equals_all_with_eps_k_over_k_minus_1(impl):
    smooth_labels = impl()
    target = random_index_targets(np.random.default_rng(41), (3, 2), 6)
    others = smooth_labels(target, 6, 0.3, spread="others")
    assert_close(
        others,
        smooth_labels(target, 6, 0.3 * 6 / 5),
        1e-15,
        "smooth_labels(target, 6, 0.3, spread='others') vs spread='all' with ε' = εK/(K−1)",
        target=target,
    )


@pytest.mark.ex4_1
@pytest.mark.parametrize("leading", [(), (0,), (3, 2)])
def test_smooth_labels_has_shape_target_shape_plus_k_in_float64(impl, leading):
    smooth_labels = impl()
    target = random_index_targets(np.random.default_rng(42), leading, 4).astype(
        np.int32
    )
    q = smooth_labels(target, 4, 0.1)
    got_dtype = getattr(q, "dtype", type(q).__name__)
    if np.shape(q) == leading + (4,) and got_dtype != np.float64:
        raise Diagnosis(
            f"smooth_labels of int32 targets returned {got_dtype}: q is float64"
        )
    assert_close(
        q,
        _targets(target, 4, 0.9 + 0.025, 0.025),
        1e-15,
        f"smooth_labels(target of shape {leading}, K=4, ε=0.1)",
        target=target,
    )


@pytest.mark.ex4_1
@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_smooth_labels_accepts_eps_0_and_1(impl, epsilon):
    smooth_labels = impl()
    y = np.array([1, 0])
    try:
        q_all = smooth_labels(y, 3, epsilon)
        q_others = smooth_labels(y, 3, epsilon, spread="others")
    except ValueError as error:
        raise Diagnosis(
            f"smooth_labels(y, 3, ε={epsilon}) raised ValueError ({error}): ε may be anything "
            f"in [0, 1], both ends included"
        ) from None
    what = f"smooth_labels([1, 0], K=3, ε={epsilon})"
    assert_close(
        q_all, _targets(y, 3, 1 - epsilon + epsilon / 3, epsilon / 3), 1e-15, what
    )
    expected = _targets(y, 3, 1 - epsilon, epsilon / 2)
    assert_close(q_others, expected, 1e-15, what + " with spread='others'")


@pytest.mark.ex4_1
@pytest.mark.parametrize("epsilon, index", [(1.5, 0), (-0.1, 0), (0.1, 4), (0.1, -1)])
def test_smooth_labels_rejects_bad_arguments(impl, epsilon, index):
    smooth_labels = impl()
    what = f"smooth_labels([{index}], K=4, ε={epsilon})"
    why = "ε must lie in [0, 1]" if index == 0 else "every index must lie in [0, K − 1]"

    def wrapped(got: object) -> str | None:
        last_row = _targets([3], 4, 1 - epsilon + epsilon / 4, epsilon / 4)
        if index == -1 and np.shape(got) == (1, 4) and np.allclose(got, last_row):
            return (
                "the row of the last class: NumPy reads index −1 as the last element. Check "
                "0 ≤ y < K yourself and raise ValueError"
            )
        return None

    _value_error(
        lambda: smooth_labels(np.array([index]), 4, epsilon), what, why, wrapped
    )


@pytest.mark.ex4_1
@pytest.mark.parametrize("spread", ["uniform", "other"])
def test_smooth_labels_rejects_an_unknown_spread(impl, spread):
    smooth_labels = impl()
    what = f"smooth_labels([0, 1], K=4, ε=0.1, spread={spread!r})"
    message = _value_error(
        lambda: smooth_labels(np.array([0, 1]), 4, 0.1, spread=spread),
        what,
        "spread must be 'all' or 'others'",
    )
    if spread not in message:
        raise Diagnosis(
            f"{what} raised ValueError({message!r}): name the spread you got ({spread!r}) in "
            f"the message, so the caller sees their typo"
        )


def _rows(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """−Σ_k q_k log p_k per row, in float64."""
    shifted = z - z.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -(q * log_p).sum(axis=-1)


def _reduced(rows: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]


@pytest.mark.ex4_2
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 1.0])
def test_loss_matches_torch(impl, reduction, epsilon):
    lsce = impl()
    rng = np.random.default_rng(42)
    k = 5
    z, y = random_logits(rng, (6,), k), random_index_targets(rng, (6,), k)
    got = lsce(z, y, epsilon, reduction=reduction)
    expected = torch_lsce(z, y, epsilon, reduction=reduction).loss
    rows = _rows(z, _targets(y, k, 1 - epsilon + epsilon / k, epsilon / k))
    nll = _rows(z, _targets(y, k, 1.0, 0.0))
    mistakes = {
        "the smoothing term is ε·mean_k(−log p_k), not ε·Σ_k(−log p_k): divide it by K": (
            _reduced(
                nll * (1 - epsilon) + epsilon * _rows(z, np.ones((6, k))), reduction
            )
        ),
        "ε is ignored: that is plain cross-entropy": _reduced(nll, reduction),
        "that is the spread='others' target (ε/(K − 1) to the wrong classes): "
        "F.cross_entropy's label_smoothing uses spread='all'": _reduced(
            _rows(z, _targets(y, k, 1 - epsilon, epsilon / (k - 1))), reduction
        ),
    }
    if reduction == "sum":
        mistakes["reduction='sum' returned the mean: add the rows up"] = rows.mean()
    if reduction == "mean":
        mistakes[
            "reduction='mean' returned the sum: divide by the number of examples"
        ] = rows.sum()
    assert_close(
        got,
        expected,
        1e-12,
        f"label_smoothing_cross_entropy(logits, target, ε={epsilon}, reduction={reduction!r})",
        mistakes=mistakes,
        logits=z,
        target=y,
    )


@pytest.mark.ex4_2
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_loss_handles_extra_leading_axes(impl, reduction):
    lsce = impl()
    rng = np.random.default_rng(43)
    z, y = random_logits(rng, (3, 4), 6), random_index_targets(rng, (3, 4), 6)
    got = lsce(z, y, 0.1, reduction=reduction)
    assert_close(
        got,
        torch_lsce(z, y, 0.1, reduction=reduction).loss,
        1e-12,
        f"label_smoothing_cross_entropy of (3, 4, K) logits, reduction={reduction!r}",
        logits=z,
        target=y,
    )


@pytest.mark.ex4_2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_keeps_the_logits_dtype(impl, dtype):
    lsce = impl()
    rng = np.random.default_rng(44)
    z, y = random_logits(rng, (5,), 4).astype(dtype), random_index_targets(rng, (5,), 4)
    for reduction in ("mean", "none"):
        got = lsce(z, y, 0.1, reduction=reduction)
        got_dtype = getattr(got, "dtype", type(got).__name__)
        if got_dtype != dtype:
            raise Diagnosis(
                f"label_smoothing_cross_entropy of {np.dtype(dtype)} logits, "
                f"reduction={reduction!r}, returned {got_dtype}: keep the logits' dtype "
                f"(smooth_labels gives float64 q: cast q, or the result)"
            )
        expected = torch_lsce(z.astype(np.float64), y, 0.1, reduction=reduction).loss
        assert_close(
            got, expected, 1e-5, f"reduction={reduction!r}", logits=z, target=y
        )


@pytest.mark.ex4_2
def test_loss_rejects_an_unknown_reduction(impl):
    lsce = impl()
    z, y = random_logits(np.random.default_rng(45), (3,), 4), np.array([0, 1, 2])
    _value_error(
        lambda: lsce(z, y, 0.1, reduction="avg"),
        "label_smoothing_cross_entropy(..., reduction='avg')",
        "reduction must be 'mean', 'sum' or 'none'",
    )


@pytest.mark.ex4_2
@pytest.mark.parametrize("epsilon, index", [(1.5, 0), (0.1, 4), (0.1, -1)])
def test_loss_rejects_bad_eps_and_indices(impl, epsilon, index):
    lsce = impl()
    z = random_logits(np.random.default_rng(46), (2,), 4)
    _value_error(
        lambda: lsce(z, np.array([0, index]), epsilon),
        f"label_smoothing_cross_entropy(logits, [0, {index}], ε={epsilon}) with K = 4",
        "ε must lie in [0, 1] and every index in [0, K − 1] (as in smooth_labels)",
    )

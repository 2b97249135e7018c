"""LSCE loss and gradient against torch.nn.functional.cross_entropy(label_smoothing=ε).

Float64 throughout, agreement to 1e-10 relative. The grid covers ε, K, the reductions,
class weights, ignore_index (none, some, all rows ignored), soft targets and the leading
shapes (), (N,) and (N, T); the named tests after it pin the corner cases.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from lsce_scratch import label_smoothing_cross_entropy, lsce_backward, lsce_forward
from lsce_scratch.losses import cross_entropy_backward, cross_entropy_forward
from tests.oracle import (
    assert_close,
    random_index_targets,
    random_logits,
    random_soft_targets,
    torch_lsce,
    upstream_gradient,
)

pytestmark = pytest.mark.usefixtures("lsce_implementation")

EPSILONS = [0.0, 0.05, 0.1, 0.5, 1.0]
CLASSES = [1, 2, 3, 37, 1000]
REDUCTIONS = ["none", "mean", "sum"]
LEADING = {"unbatched": (), "N": (6,), "NxT": (3, 4)}
RTOL = 1e-10


def rng_for(*key: object) -> np.random.Generator:
    """A generator seeded by the test case, so every case gets its own inputs."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def random_weight(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    return rng.uniform(0.2, 3.0, size=num_classes)


def check_against_torch(
    logits: np.ndarray,
    target: object,
    epsilon: float,
    *,
    reduction: str = "mean",
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    rtol: float = RTOL,
) -> tuple[np.ndarray, np.ndarray]:
    """Compare forward and backward with torch; return (our loss, our gradient)."""
    want = torch_lsce(
        logits,
        target,
        epsilon,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
    )
    loss, cache = lsce_forward(
        logits,
        target,
        epsilon,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
    )
    assert_close(loss, want.loss, rtol=rtol, what="loss")
    grad = lsce_backward(want.dloss, cache)
    assert grad.shape == np.shape(logits)
    assert_close(grad, want.grad, rtol=rtol, what="gradient")
    return loss, grad


def index_cases() -> list:
    cases = []
    for eps, k, red, weighted, ignore, lead in itertools.product(
        EPSILONS, CLASSES, REDUCTIONS, (False, True), ("off", "some", "all"), LEADING
    ):
        if ignore == "some" and lead == "unbatched":
            continue  # one row is either ignored ("all") or not ("off")
        w = "w" if weighted else "no_w"
        case_id = f"eps={eps}-K={k}-{red}-{w}-ignore_{ignore}-{lead}"
        cases.append(pytest.param(eps, k, red, weighted, ignore, lead, id=case_id))
    return cases


@pytest.mark.parametrize(
    ("eps", "k", "reduction", "weighted", "ignore", "lead"), index_cases()
)
def test_index_targets_match_torch(
    eps: float, k: int, reduction: str, weighted: bool, ignore: str, lead: str
) -> None:
    rng = rng_for("index", eps, k, reduction, weighted, ignore, lead)
    shape = LEADING[lead]
    logits = random_logits(rng, shape, k)
    target = random_index_targets(rng, shape, k)
    if ignore == "all":
        target = np.full(shape, -100, dtype=np.int64)
    elif ignore == "some":
        mask = np.zeros(target.size, dtype=bool)
        mask[rng.permutation(target.size)[: target.size // 3]] = True
        target = np.where(mask.reshape(shape), -100, target)
    weight = random_weight(rng, k) if weighted else None
    loss, grad = check_against_torch(
        logits, target, eps, reduction=reduction, weight=weight
    )
    if ignore == "all":
        assert np.all(grad == 0)
        if reduction == "mean":
            assert np.isnan(loss)


def soft_cases() -> list:
    cases = []
    for eps, k, red, weighted, lead in itertools.product(
        EPSILONS, CLASSES, REDUCTIONS, (False, True), LEADING
    ):
        w = "w" if weighted else "no_w"
        case_id = f"eps={eps}-K={k}-{red}-{w}-{lead}"
        cases.append(pytest.param(eps, k, red, weighted, lead, id=case_id))
    return cases


@pytest.mark.parametrize(("eps", "k", "reduction", "weighted", "lead"), soft_cases())
def test_soft_targets_match_torch(
    eps: float, k: int, reduction: str, weighted: bool, lead: str
) -> None:
    rng = rng_for("soft", eps, k, reduction, weighted, lead)
    shape = LEADING[lead]
    logits = random_logits(rng, shape, k)
    target = random_soft_targets(rng, shape, k)
    weight = random_weight(rng, k) if weighted else None
    check_against_torch(logits, target, eps, reduction=reduction, weight=weight)


@pytest.mark.parametrize("weighted", [False, True], ids=["no_w", "w"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_unnormalised_soft_targets_match_torch(
    eps: float, reduction: str, weighted: bool
) -> None:
    """Rows of the target summing to S ≠ 1: the gradient is S·p − r, not p − r."""
    rng = rng_for("unnormalised", eps, reduction, weighted)
    logits = random_logits(rng, (3, 4), 7)
    target = random_soft_targets(rng, (3, 4), 7, normalised=False)
    weight = random_weight(rng, 7) if weighted else None
    check_against_torch(logits, target, eps, reduction=reduction, weight=weight)


def test_smoothed_one_hot_soft_target_normalises_by_n_not_by_weights() -> None:
    """The same smoothed one-hot as probabilities: 'mean' divides by N, index targets by Σw_y."""
    rng = rng_for("soft vs index")
    logits = random_logits(rng, (8,), 5)
    y = random_index_targets(rng, (8,), 5)
    weight = random_weight(rng, 5)
    as_probs = np.eye(5)[y]
    soft_loss, _ = check_against_torch(logits, as_probs, 0.1, weight=weight)
    index_loss, _ = check_against_torch(logits, y, 0.1, weight=weight)
    sum_loss, _ = check_against_torch(logits, y, 0.1, weight=weight, reduction="sum")
    np.testing.assert_allclose(soft_loss * 8, sum_loss, rtol=1e-12)
    np.testing.assert_allclose(index_loss * weight[y].sum(), sum_loss, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lead", list(LEADING))
def test_label_smoothing_cross_entropy_equals_lsce_forward(
    reduction: str, lead: str
) -> None:
    rng = rng_for("lsce alias", reduction, lead)
    shape = LEADING[lead]
    logits = random_logits(rng, shape, 9)
    target = random_index_targets(rng, shape, 9)
    weight = random_weight(rng, 9)
    kwargs = {"reduction": reduction, "weight": weight, "ignore_index": 2}
    got = label_smoothing_cross_entropy(logits, target, 0.2, **kwargs)
    want, _ = lsce_forward(logits, target, 0.2, **kwargs)
    np.testing.assert_array_equal(got, want)
    assert_close(got, torch_lsce(logits, target, 0.2, **kwargs).loss)
    # and the default ε is 0.1, as documented
    assert_close(
        label_smoothing_cross_entropy(logits, target),
        torch_lsce(logits, target, 0.1).loss,
    )


def test_default_epsilon_is_0_1() -> None:
    rng = rng_for("default eps")
    logits = random_logits(rng, (5,), 6)
    y = random_index_targets(rng, (5,), 6)
    loss, _ = lsce_forward(logits, y)
    assert_close(loss, torch_lsce(logits, y, 0.1).loss)
    assert not np.isclose(loss, torch_lsce(logits, y, 0.0).loss)


def test_cross_entropy_forward_backward_equal_epsilon_zero() -> None:
    rng = rng_for("plain ce")
    logits = random_logits(rng, (7,), 5)
    y = random_index_targets(rng, (7,), 5)
    loss, cache = cross_entropy_forward(logits, y)
    want = torch_lsce(logits, y, 0.0)
    assert_close(loss, want.loss)
    assert_close(cross_entropy_backward(want.dloss, cache), want.grad)
    lsce_loss, lsce_cache = lsce_forward(logits, y, 0.0)
    assert_close(loss, lsce_loss, rtol=1e-14)
    assert_close(
        cross_entropy_backward(0.7, cache), lsce_backward(0.7, lsce_cache), rtol=1e-14
    )
    # the textbook gradient (p − onehot(y)) / N
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert_close(cross_entropy_backward(1.0, cache), (p - np.eye(5)[y]) / 7)


@pytest.mark.parametrize("lead", list(LEADING))
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_none_reduction_has_the_leading_shape(lead: str, kind: str) -> None:
    rng = rng_for("none shape", lead, kind)
    shape = LEADING[lead]
    logits = random_logits(rng, shape, 4)
    if kind == "index":
        target = random_index_targets(rng, shape, 4)
    else:
        target = random_soft_targets(rng, shape, 4)
    loss, _ = check_against_torch(logits, target, 0.1, reduction="none")
    assert np.shape(loss) == shape


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "make_target",
    [lambda: 3, lambda: np.array(3), lambda: np.int32(3)],
    ids=["int", "0d", "np32"],
)
def test_unbatched_vector_with_scalar_target(reduction: str, make_target) -> None:
    rng = rng_for("unbatched", reduction)
    logits = random_logits(rng, (), 6)
    loss, grad = check_against_torch(logits, make_target(), 0.1, reduction=reduction)
    assert np.shape(loss) == ()
    assert grad.shape == (6,)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore_index", [-100, -1, 0, 3, 7])
def test_weight_ignore_index_and_smoothing_together(
    reduction: str, ignore_index: int
) -> None:
    """The combination PyTorch once got wrong (pytorch #69339, #72056, #91383, #73205):
    class weights, ignored targets and ε > 0 in one call, with an (N, T, K) input."""
    rng = rng_for("combo", reduction, ignore_index)
    logits = random_logits(rng, (4, 5), 6)
    target = random_index_targets(rng, (4, 5), 6)
    target[0, :2] = ignore_index
    target[2, 3] = ignore_index
    target[3, 1] = 3 if ignore_index != 3 else 4
    weight = random_weight(rng, 6)
    weight[1] = 0.0  # a class with weight 0 still gets the smoothing mass of the others
    loss, grad = check_against_torch(
        logits,
        target,
        0.2,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
    )
    ignored = target == ignore_index
    assert np.all(grad[ignored] == 0)
    assert np.all(np.any(grad[~ignored] != 0, axis=-1))


@pytest.mark.parametrize("ignore_index", [0, 3])
def test_in_range_ignore_index_skips_that_class(ignore_index: int) -> None:
    """ignore_index=0 or 3: rows with that class count for nothing; the others as usual."""
    rng = rng_for("in range ignore", ignore_index)
    logits = random_logits(rng, (10,), 5)
    target = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    loss, _ = check_against_torch(logits, target, 0.1, ignore_index=ignore_index)
    keep = target != ignore_index
    only_kept, _ = lsce_forward(logits[keep], target[keep], 0.1)
    np.testing.assert_allclose(loss, only_kept, rtol=1e-14)
    with_default, _ = lsce_forward(logits, target, 0.1)
    assert not np.isclose(loss, with_default)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["no_w", "w"])
def test_all_ignored_batch(reduction: str, weighted: bool) -> None:
    """Nothing counts: 'mean' is 0/0 = NaN, as in PyTorch, and the gradient is exactly 0."""
    rng = rng_for("all ignored", reduction, weighted)
    logits = random_logits(rng, (2, 3), 4)
    target = np.full((2, 3), -100)
    weight = random_weight(rng, 4) if weighted else None
    loss, grad = check_against_torch(
        logits, target, 0.1, reduction=reduction, weight=weight
    )
    if reduction == "mean":
        assert np.isnan(loss)
    else:
        assert np.all(loss == 0)
    assert np.all(grad == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_zero_total_weight_with_valid_rows_is_nan_like_torch(
    reduction: str, eps: float
) -> None:
    """Every counted row's class has weight 0: 'mean' divides by Σ w_y = 0 and PyTorch gives
    NaN (loss and the counted rows' gradient), even though ε > 0 makes the sum positive."""
    rng = rng_for("zero total weight", reduction, eps)
    logits = random_logits(rng, (4,), 4)
    target = np.array([0, -100, 0, 2])
    weight = np.array([0.0, 1.0, 0.0, 1.5])
    loss, grad = check_against_torch(
        logits, target, eps, reduction=reduction, weight=weight
    )
    if reduction == "mean":
        assert np.isnan(loss)
        assert np.all(np.isnan(grad[[0, 2, 3]]))
        assert np.all(grad[1] == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "soft"])
@pytest.mark.parametrize("shape", [(0, 5), (0, 3, 5), (2, 0, 5)], ids=str)
def test_empty_batch(reduction: str, kind: str, shape: tuple[int, ...]) -> None:
    """N = 0 rows: 'mean' is NaN, 'sum' 0, 'none' an empty array; the gradient is empty."""
    logits = np.zeros(shape)
    target = (
        np.zeros(shape[:-1], dtype=np.int64) if kind == "index" else np.zeros(shape)
    )
    weight = np.ones(5)
    loss, grad = check_against_torch(
        logits, target, 0.1, reduction=reduction, weight=weight
    )
    assert grad.shape == shape
    if reduction == "mean":
        assert np.isnan(loss)
    elif reduction == "sum":
        assert loss == 0
    else:
        assert np.shape(loss) == shape[:-1]


@pytest.mark.parametrize("ignore_index", [0, 2, 7])
def test_soft_targets_with_non_negative_ignore_index_are_rejected_like_torch(
    ignore_index: int,
) -> None:
    rng = rng_for("soft ignore", ignore_index)
    logits = random_logits(rng, (3,), 4)
    target = random_soft_targets(rng, (3,), 4)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        torch_lsce(logits, target, 0.1, ignore_index=ignore_index)
    with pytest.raises(
        ValueError, match=rf"ignore_index={ignore_index} is not supported"
    ):
        lsce_forward(logits, target, 0.1, ignore_index=ignore_index)


def test_soft_targets_accept_a_negative_ignore_index() -> None:
    rng = rng_for("soft negative ignore")
    logits = random_logits(rng, (3,), 4)
    target = random_soft_targets(rng, (3,), 4)
    check_against_torch(logits, target, 0.1, ignore_index=-1)


def test_index_equal_to_an_out_of_range_ignore_index_is_skipped() -> None:
    """ignore_index = 7 with K = 5: a target of 7 is ignored, not out of range."""
    rng = rng_for("ignore 7")
    logits = random_logits(rng, (4,), 5)
    target = np.array([1, 7, 4, 7])
    check_against_torch(
        logits, target, 0.1, ignore_index=7, weight=random_weight(rng, 5)
    )


@pytest.mark.parametrize(
    "target_dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64]
)
def test_any_integer_dtype_for_index_targets(target_dtype: type) -> None:
    rng = rng_for("target dtype", np.dtype(target_dtype).name)
    logits = random_logits(rng, (6,), 5)
    target = random_index_targets(rng, (6,), 5).astype(target_dtype)
    check_against_torch(logits, target, 0.1)


def test_dloss_for_none_scales_each_row() -> None:
    """A gradient that ignored dloss, or applied it to the wrong rows, would differ."""
    rng = rng_for("dloss rows")
    logits = random_logits(rng, (3, 4), 6)
    target = random_index_targets(rng, (3, 4), 6)
    _, cache = lsce_forward(logits, target, 0.1, reduction="none")
    dloss = upstream_gradient("none", (3, 4), rng)
    grad = lsce_backward(dloss, cache)
    unit = lsce_backward(np.ones((3, 4)), cache)
    np.testing.assert_allclose(grad, unit * dloss[..., None], rtol=1e-14)
    assert_close(
        grad, torch_lsce(logits, target, 0.1, reduction="none", dloss=dloss).grad
    )


def test_forward_does_not_modify_its_inputs() -> None:
    rng = rng_for("inputs")
    logits = random_logits(rng, (4,), 5)
    target = random_index_targets(rng, (4,), 5)
    weight = random_weight(rng, 5)
    copies = [a.copy() for a in (logits, target, weight)]
    _, cache = lsce_forward(logits, target, 0.1, weight=weight)
    lsce_backward(1.0, cache)
    for before, after in zip(copies, (logits, target, weight), strict=True):
        np.testing.assert_array_equal(before, after)


def test_backward_can_run_twice_on_one_cache() -> None:
    rng = rng_for("twice")
    logits = random_logits(rng, (4,), 5)
    target = random_index_targets(rng, (4,), 5)
    _, cache = lsce_forward(logits, target, 0.1)
    first = lsce_backward(1.0, cache)
    second = lsce_backward(1.0, cache)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(lsce_backward(2.0, cache), 2 * first, rtol=1e-15)

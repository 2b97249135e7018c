"""Properties of LSCE that hold for every input (hypothesis, bounded sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsce_scratch import lsce_backward, lsce_forward, smooth_labels
from tests.oracle import random_index_targets, random_logits, random_soft_targets

pytestmark = pytest.mark.usefixtures("lsce_implementation")

# the implementation fixture only swaps functions, so it need not reset between examples
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

classes = st.integers(min_value=2, max_value=40)
rows = st.integers(min_value=1, max_value=8)
epsilons = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
scales = st.floats(min_value=0.1, max_value=30.0)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
kinds = st.sampled_from(["index", "soft"])


def draw_problem(seed: int, n: int, k: int, scale: float, kind: str):
    rng = np.random.default_rng(seed)
    logits = random_logits(rng, (n,), k, scale=scale)
    if kind == "index":
        target = random_index_targets(rng, (n,), k)
    else:
        target = random_soft_targets(rng, (n,), k)
    return rng, logits, target


def entropy(q: np.ndarray) -> np.ndarray:
    """H(q) = −Σ q log q with 0 log 0 = 0."""
    safe = np.where(q > 0, q, 1.0)
    return -np.sum(np.where(q > 0, q * np.log(safe), 0.0), axis=-1)


def smoothed(target: np.ndarray, k: int, eps: float) -> np.ndarray:
    """q for index or probability targets, PyTorch's convention (independent of the code)."""
    onehot = np.eye(k)[target] if target.dtype.kind == "i" else target
    return (1 - eps) * onehot + eps / k


@SETTINGS
@given(
    seed=seeds,
    n=rows,
    k=classes,
    scale=scales,
    eps=epsilons,
    kind=kinds,
    shift=st.floats(min_value=-500.0, max_value=500.0),
    weighted=st.booleans(),
)
def test_adding_a_constant_to_each_row_changes_nothing(
    seed: int,
    n: int,
    k: int,
    scale: float,
    eps: float,
    kind: str,
    shift: float,
    weighted: bool,
) -> None:
    rng, logits, target = draw_problem(seed, n, k, scale, kind)
    weight = rng.uniform(0.2, 3.0, size=k) if weighted else None
    shifts = shift * rng.uniform(-1.0, 1.0, size=(n, 1))  # a different constant per row
    loss, cache = lsce_forward(logits, target, eps, reduction="none", weight=weight)
    loss2, cache2 = lsce_forward(
        logits + shifts, target, eps, reduction="none", weight=weight
    )
    # shifting by c rounds each logit by up to |c|·2^-53, which moves the loss that much
    tol = 1e-12 * (1.0 + np.abs(shifts).max())
    np.testing.assert_allclose(loss2, loss, rtol=1e-11, atol=tol * k)
    dloss = rng.uniform(0.5, 1.5, size=n)
    np.testing.assert_allclose(
        lsce_backward(dloss, cache2),
        lsce_backward(dloss, cache),
        rtol=1e-9,
        atol=tol * k,
    )


@SETTINGS
@given(seed=seeds, n=rows, k=classes, scale=scales, eps=epsilons, kind=kinds)
def test_gradient_rows_sum_to_zero(
    seed: int, n: int, k: int, scale: float, eps: float, kind: str
) -> None:
    """Unweighted, nothing ignored, normalised targets: Σ_j (p_j − q_j) = 1 − 1 = 0."""
    _, logits, target = draw_problem(seed, n, k, scale, kind)
    for reduction, dloss in (
        ("mean", 1.0),
        ("sum", 0.7),
        ("none", np.linspace(0.5, 2, n)),
    ):
        _, cache = lsce_forward(logits, target, eps, reduction=reduction)
        grad = lsce_backward(dloss, cache)
        assert np.abs(grad).max() > 0  # random logits are never exactly uniform
        np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-14 * k)


@SETTINGS
@given(seed=seeds, n=rows, k=classes, scale=scales)
def test_epsilon_zero_is_plain_cross_entropy(
    seed: int, n: int, k: int, scale: float
) -> None:
    _, logits, target = draw_problem(seed, n, k, scale, "index")
    # −log p_y = lse(z) − z_y, computed here independently of the library
    m = logits.max(axis=-1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=-1))
    nll = lse - logits[np.arange(n), target]
    loss, cache = lsce_forward(logits, target, 0.0, reduction="none")
    np.testing.assert_allclose(loss, nll, rtol=1e-12, atol=1e-13)
    mean, cache = lsce_forward(logits, target, 0.0)
    np.testing.assert_allclose(mean, nll.mean(), rtol=1e-12, atol=1e-13)
    p = np.exp(logits - lse[:, None])
    # p_y − 1 loses digits when p_y ≈ 1 (the library avoids that), hence the atol
    np.testing.assert_allclose(
        lsce_backward(1.0, cache), (p - np.eye(k)[target]) / n, rtol=1e-9, atol=1e-14
    )


@SETTINGS
@given(seed=seeds, n=rows, k=classes, scale=scales, eps=epsilons, kind=kinds)
def test_loss_is_at_least_the_entropy_of_the_target(
    seed: int, n: int, k: int, scale: float, eps: float, kind: str
) -> None:
    """CE(q, p) = H(q) + KL(q‖p) ≥ H(q), with equality only at p = q."""
    _, logits, target = draw_problem(seed, n, k, scale, kind)
    loss, _ = lsce_forward(logits, target, eps, reduction="none")
    floor = entropy(smoothed(target, k, eps))
    assert np.all(loss >= floor - 1e-12 * (1 + floor))
    # and the loss at p = q is exactly the floor
    q = smoothed(target, k, eps)
    with np.errstate(divide="ignore"):
        at_q = np.log(q)
    at_q = np.where(np.isfinite(at_q), at_q, -800.0)
    loss_at_q, _ = lsce_forward(at_q, target, eps, reduction="none")
    np.testing.assert_allclose(loss_at_q, floor, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(
    n=rows,
    k=st.integers(min_value=1, max_value=2000),
    eps=epsilons,
    value=st.floats(min_value=-1e4, max_value=1e4),
    kind=kinds,
    seed=seeds,
)
def test_uniform_logits_give_log_k_for_every_epsilon(
    n: int, k: int, eps: float, value: float, kind: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    logits = np.full((n, k), value)
    if kind == "index":
        target = random_index_targets(rng, (n,), k)
    else:
        target = random_soft_targets(rng, (n,), k)
    loss, _ = lsce_forward(logits, target, eps, reduction="none")
    np.testing.assert_allclose(loss, np.log(k), rtol=1e-12, atol=1e-15)


@SETTINGS
@given(
    seed=seeds,
    n=rows,
    k=classes,
    scale=scales,
    fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_spread_others_is_spread_all_with_scaled_epsilon(
    seed: int, n: int, k: int, scale: float, fraction: float
) -> None:
    """ε/(K−1) on the wrong classes equals ε' = εK/(K−1) over all classes (ε ≤ (K−1)/K)."""
    eps = fraction * (k - 1) / k
    eps_all = eps * k / (k - 1)
    _, logits, target = draw_problem(seed, n, k, scale, "index")
    others = smooth_labels(target, k, eps, spread="others")
    np.testing.assert_allclose(
        others, smooth_labels(target, k, eps_all), rtol=1e-14, atol=1e-16
    )
    # the losses agree too: probability targets 'others' at ε = 0 vs index targets at ε'
    loss_others, cache_others = lsce_forward(logits, others, 0.0)
    loss_all, cache_all = lsce_forward(logits, target, eps_all)
    np.testing.assert_allclose(loss_others, loss_all, rtol=1e-12)
    np.testing.assert_allclose(
        lsce_backward(1.0, cache_others),
        lsce_backward(1.0, cache_all),
        rtol=1e-9,
        atol=1e-15,
    )


@SETTINGS
@given(seed=seeds, n=rows, k=classes, scale=scales, eps=epsilons)
def test_index_targets_equal_their_smoothed_one_hot_as_probabilities(
    seed: int, n: int, k: int, scale: float, eps: float
) -> None:
    """Unweighted, index target y at ε == probability target smooth_labels(y, K, ε) at ε = 0."""
    _, logits, target = draw_problem(seed, n, k, scale, "index")
    q = smooth_labels(target, k, eps)
    for reduction in ("none", "mean", "sum"):
        a, cache_a = lsce_forward(logits, target, eps, reduction=reduction)
        b, cache_b = lsce_forward(logits, q, 0.0, reduction=reduction)
        np.testing.assert_allclose(a, b, rtol=1e-12)
        dloss = np.ones(n) if reduction == "none" else 1.0
        np.testing.assert_allclose(
            lsce_backward(dloss, cache_a),
            lsce_backward(dloss, cache_b),
            rtol=1e-9,
            atol=1e-15,
        )


@SETTINGS
@given(seed=seeds, n=rows, k=classes, scale=scales, eps=epsilons, kind=kinds)
def test_reductions_are_consistent(
    seed: int, n: int, k: int, scale: float, eps: float, kind: str
) -> None:
    """Unweighted: sum = Σ none, mean = sum / N, and the gradients scale the same way."""
    _, logits, target = draw_problem(seed, n, k, scale, kind)
    none, cache_none = lsce_forward(logits, target, eps, reduction="none")
    total, cache_sum = lsce_forward(logits, target, eps, reduction="sum")
    mean, cache_mean = lsce_forward(logits, target, eps, reduction="mean")
    np.testing.assert_allclose(total, none.sum(), rtol=1e-12)
    np.testing.assert_allclose(mean, total / n, rtol=1e-12)
    g_sum = lsce_backward(1.0, cache_sum)
    np.testing.assert_allclose(lsce_backward(np.ones(n), cache_none), g_sum, rtol=1e-14)
    np.testing.assert_allclose(lsce_backward(1.0, cache_mean), g_sum / n, rtol=1e-12)
    # the gradient is linear in dloss
    np.testing.assert_allclose(
        lsce_backward(np.full(n, 2.5), cache_none), 2.5 * g_sum, rtol=1e-14
    )
    np.testing.assert_allclose(lsce_backward(-0.3, cache_sum), -0.3 * g_sum, rtol=1e-14)
    np.testing.assert_allclose(
        lsce_backward(0.3, cache_mean), 0.3 * g_sum / n, rtol=1e-12
    )


@SETTINGS
@given(
    seed=seeds,
    n=st.integers(min_value=2, max_value=10),
    k=classes,
    scale=scales,
    eps=epsilons,
    weighted=st.booleans(),
    ignore_index=st.sampled_from([-100, -1, 0, 1]),
    data=st.data(),
)
def test_ignored_rows_count_for_nothing(
    seed: int,
    n: int,
    k: int,
    scale: float,
    eps: float,
    weighted: bool,
    ignore_index: int,
    data: st.DataObject,
) -> None:
    """Ignoring rows is the same as dropping them: loss, and the others' gradient; the
    ignored rows get 0 loss ('none') and 0 gradient."""
    rng, logits, target = draw_problem(seed, n, k, scale, "index")
    ignored = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    ignored[0] = False  # keep at least one row
    # rows not drawn as ignored must not hit ignore_index by chance (K ≥ 2: class 1 exists)
    target = np.where(target == ignore_index, 1 if ignore_index == 0 else 0, target)
    target = np.where(ignored, ignore_index, target)
    weight = rng.uniform(0.2, 3.0, size=k) if weighted else None
    keep = ~ignored
    for reduction in ("none", "mean", "sum"):
        kw = {"reduction": reduction, "weight": weight}
        loss, cache = lsce_forward(logits, target, eps, ignore_index=ignore_index, **kw)
        kept, kept_cache = lsce_forward(logits[keep], target[keep], eps, **kw)
        dloss = rng.uniform(0.5, 1.5, size=n) if reduction == "none" else 0.7
        grad = lsce_backward(dloss, cache)
        kept_grad = lsce_backward(
            dloss[keep] if reduction == "none" else dloss, kept_cache
        )
        assert np.all(grad[ignored] == 0)
        np.testing.assert_allclose(grad[keep], kept_grad, rtol=1e-12, atol=1e-300)
        if reduction == "none":
            assert np.all(loss[ignored] == 0)
            np.testing.assert_allclose(loss[keep], kept, rtol=1e-14)
        else:
            np.testing.assert_allclose(loss, kept, rtol=1e-12)

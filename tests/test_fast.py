"""The fast NumPy LSCE (lsce_scratch.fast) against PyTorch and against the simple version.

The grid is the foundation's oracle grid (ε, K, every reduction, class weights,
ignore_index with some and all rows ignored, soft targets with and without weights,
leading shapes (), (N,), (N, T)); then what only the fast path has: row chunks, threads,
the gradient handed out by the first backward, the class-chunked (online softmax) forward,
memory, and the float32 true-class accuracy.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from lsce_scratch import chunking, fast, losses
from lsce_scratch.memory import numpy_peak_bytes
from lsce_scratch.softmax import logsumexp
from tests.oracle import (
    assert_close,
    random_index_targets,
    random_logits,
    random_soft_targets,
    torch_lsce,
)

EPSILONS = [0.0, 0.05, 0.1, 0.5, 1.0]
CLASSES = [1, 2, 3, 37, 1000]
REDUCTIONS = ["none", "mean", "sum"]
LEADING = [(), (6,), (3, 4)]
TARGETS = ["index", "some-ignored", "all-ignored", "soft"]


def rng_for(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def make_case(
    rng: np.random.Generator, leading: tuple[int, ...], k: int, target_kind: str
):
    """Logits (some rows confident) and a target of the given kind."""
    logits = random_logits(rng, leading, k)
    if target_kind == "soft":
        return logits, random_soft_targets(rng, leading, k)
    target = random_index_targets(rng, leading, k)
    if target_kind == "all-ignored":
        target = np.full(leading, -100, dtype=np.int64)
    elif target_kind == "some-ignored" and target.size > 1:
        target.flat[::3] = -100
    return logits, target


@pytest.mark.parametrize(
    "eps, k, reduction", list(itertools.product(EPSILONS, CLASSES, REDUCTIONS))
)
def test_matches_torch_and_the_simple_version_over_the_oracle_grid(eps, k, reduction):
    rng = rng_for("grid", eps, k, reduction)
    for leading, weighted, kind in itertools.product(LEADING, (False, True), TARGETS):
        logits, target = make_case(rng, leading, k, kind)
        weight = rng.uniform(0.2, 3.0, size=k) if weighted else None
        case = f"leading={leading}, weighted={weighted}, target={kind}"
        kwargs = {"reduction": reduction, "weight": weight}
        want = torch_lsce(logits, target, eps, **kwargs)
        loss, cache = fast.lsce_forward(logits, target, eps, **kwargs)
        assert_close(loss, want.loss, 1e-10, f"loss, {case}")
        assert_close(
            fast.lsce_backward(want.dloss, cache), want.grad, 1e-10, f"grad, {case}"
        )
        # the simple version loses a few digits where a confident row's loss is tiny
        # (log Σ exp with the max term inside); the fast one keeps them, like torch
        simple_loss, simple_cache = losses.lsce_forward(logits, target, eps, **kwargs)
        assert_close(loss, simple_loss, 1e-8, f"loss vs simple, {case}")
        assert_close(
            fast.lsce_backward(want.dloss, cache),
            losses.lsce_backward(want.dloss, simple_cache),
            1e-12,
            f"grad vs simple, {case}",
        )
        only_loss = fast.label_smoothing_cross_entropy(logits, target, eps, **kwargs)
        assert_close(only_loss, want.loss, 1e-10, f"loss-only path, {case}")


@pytest.mark.parametrize("dtype, rtol", [(np.float16, 2e-3), (np.float32, 1e-5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_and_single_precision_are_computed_in_float32(dtype, rtol, reduction):
    rng = rng_for("dtype", np.dtype(dtype).name, reduction)
    logits = random_logits(rng, (40,), 50, dtype=dtype)
    target = random_index_targets(rng, (40,), 50)
    want = torch_lsce(logits.astype(np.float64), target, 0.1, reduction=reduction)
    loss, cache = fast.lsce_forward(logits, target, 0.1, reduction=reduction)
    grad = fast.lsce_backward(want.dloss, cache)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert_close(loss, want.loss, rtol, "loss")
    assert_close(grad, want.grad, rtol, "gradient")


@pytest.mark.parametrize("delta", [1e-4, 1e-5, 1e-6])
def test_float32_true_class_gradient_when_p_is_almost_one(delta):
    """p_y = 1 − δ in float32: p_y − 1 would keep few digits; the fast path keeps 1e-3."""
    n, k = 4, 10
    target = np.array([0, 3, 9, 5])
    z = np.zeros((n, k))
    # softmax(z)_y = 1 − δ when z_y = log((1 − δ)(K − 1)/δ) and the other logits are 0
    z[np.arange(n), target] = np.log((1 - delta) * (k - 1) / delta)
    loss32, cache32 = fast.lsce_forward(
        z.astype(np.float32), target, 0.0, reduction="sum"
    )
    loss64, cache64 = fast.lsce_forward(z, target, 0.0, reduction="sum")
    rows = np.arange(n)
    g32 = fast.lsce_backward(np.float32(1.0), cache32)[rows, target].astype(np.float64)
    g64 = fast.lsce_backward(1.0, cache64)[rows, target]
    assert np.max(np.abs(g32 - g64) / np.abs(g64)) < 1e-3
    # the loss is ≈ nδ, just as small: it must keep its digits too
    assert abs(float(loss32) - float(loss64)) < 1e-3 * float(loss64)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 3 rows (of 37 float64 classes) and threads even for tiny inputs."""
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 3 * 37 * 8)
    monkeypatch.setattr(fast, "PARALLEL_MIN", 0)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize("kind", ["index", "some-ignored", "soft"])
def test_row_chunk_boundaries_do_not_change_results(small_chunks, rows, kind):
    """N smaller than a chunk, equal to it, not a multiple of it."""
    rng = rng_for("chunks", rows, kind)
    logits, target = make_case(rng, (rows,), 37, kind)
    weight = rng.uniform(0.2, 3.0, size=37)
    for reduction in REDUCTIONS:
        want = torch_lsce(logits, target, 0.2, reduction=reduction, weight=weight)
        loss, cache = fast.lsce_forward(
            logits, target, 0.2, reduction=reduction, weight=weight
        )
        assert_close(loss, want.loss, 1e-10, f"loss, {reduction}")
        assert_close(
            fast.lsce_backward(want.dloss, cache), want.grad, 1e-10, "gradient"
        )


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_do_not_depend_on_the_number_of_threads(
    small_chunks, monkeypatch, threads
):
    rng = rng_for("threads")
    logits, target = make_case(rng, (50,), 37, "some-ignored")
    monkeypatch.setattr(fast, "THREADS", 1)
    loss1, cache1 = fast.lsce_forward(logits, target, 0.1, reduction="sum")
    grad1 = fast.lsce_backward(0.5, cache1)
    monkeypatch.setattr(fast, "THREADS", threads)
    loss, cache = fast.lsce_forward(logits, target, 0.1, reduction="sum")
    np.testing.assert_array_equal(loss, loss1)
    np.testing.assert_array_equal(fast.lsce_backward(0.5, cache), grad1)


def test_first_backward_hands_out_the_forward_gradient_later_ones_recompute():
    rng = rng_for("handout")
    logits, target = make_case(rng, (8,), 6, "index")
    _, cache = fast.lsce_forward(logits, target, 0.1)
    first = fast.lsce_backward(1.0, cache)
    first_copy = first.copy()
    first[:] = 123.0  # the caller owns it now; the cache must not depend on it
    second = fast.lsce_backward(1.0, cache)
    np.testing.assert_array_equal(second, first_copy)
    np.testing.assert_array_equal(fast.lsce_backward(-2.0, cache), -2.0 * first_copy)


def test_a_bad_dloss_does_not_use_up_the_cache():
    rng = rng_for("bad dloss")
    logits, target = make_case(rng, (4,), 5, "index")
    _, cache = fast.lsce_forward(logits, target, 0.1, reduction="none")
    with pytest.raises(ValueError, match=r"^dloss must be shape \(4,\)"):
        fast.lsce_backward(1.0, cache)
    assert cache.grad is not None
    want = torch_lsce(logits, target, 0.1, reduction="none")
    assert_close(fast.lsce_backward(want.dloss, cache), want.grad)


def test_forward_and_backward_leave_their_inputs_alone():
    rng = rng_for("inputs")
    logits, target = make_case(rng, (5,), 7, "soft")
    weight = rng.uniform(0.2, 3.0, size=7)
    copies = [a.copy() for a in (logits, target, weight)]
    _, cache = fast.lsce_forward(logits, target, 0.1, weight=weight)
    fast.lsce_backward(3.0, cache)
    fast.lsce_backward(3.0, cache)
    for before, after in zip(copies, (logits, target, weight), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("chunk", [1, 3, 36, 37, 100])
@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("weighted", [False, True])
def test_class_chunked_forward_matches_the_plain_loss(chunk, kind, weighted):
    """Class chunks smaller and larger than K, not dividing it; ties across chunks."""
    rng = rng_for("class chunks", chunk, kind, weighted)
    logits, target = make_case(rng, (3, 4), 37, kind)
    # a row whose maximum appears in several chunks: the first one must win
    logits[0, 0, [2, 20, 36]] = logits[0, 0].max() + 1.0
    weight = rng.uniform(0.2, 3.0, size=37) if weighted else None
    for eps, reduction in itertools.product([0.0, 0.1, 1.0], REDUCTIONS):
        kwargs = {"reduction": reduction, "weight": weight}
        want = torch_lsce(logits, target, eps, **kwargs).loss
        got = fast.lsce_loss_chunked(logits, target, eps, chunk=chunk, **kwargs)
        assert_close(got, want, 1e-10, f"ε={eps}, {reduction}")


def test_class_chunked_forward_in_float32_with_a_confident_row():
    target = np.array([3])
    z = np.zeros((1, 40_000))
    # p_y = 1 − 1e-6: the loss is ≈ 1e-6, all of it in log1p(rest)
    z[0, 3] = np.log((1 - 1e-6) * (40_000 - 1) / 1e-6)
    exact = fast.lsce_loss_chunked(z, target, 0.0, chunk=4096)
    single = fast.lsce_loss_chunked(z.astype(np.float32), target, 0.0, chunk=4096)
    assert abs(float(single) - float(exact)) < 1e-3 * float(exact)


def test_class_chunked_forward_reports_nan_logits_and_bad_chunks():
    logits = np.zeros((3, 20))
    logits[1, 17] = np.nan
    with pytest.raises(
        ValueError, match=r"NaN or \+inf in 1 row\(s\).*nan at index \(1, 17\)"
    ):
        fast.lsce_loss_chunked(logits, np.array([0, 1, 2]), chunk=8)
    with pytest.raises(ValueError, match="chunk must be a positive number"):
        fast.lsce_loss_chunked(np.zeros((3, 20)), np.array([0, 1, 2]), chunk=0)


@pytest.mark.parametrize("chunk", [1, 5, 64, 1000])
def test_online_logsumexp_matches_logsumexp(chunk):
    rng = rng_for("online lse", chunk)
    x = rng.standard_normal((3, 4, 64)) * 20
    np.testing.assert_allclose(
        fast.online_logsumexp(x, chunk), logsumexp(x), rtol=1e-13
    )


def test_merge_is_order_free():
    """Merging the class chunks in any order gives the same state (up to rounding)."""
    rng = rng_for("merge order")
    z = rng.standard_normal((5, 30)) * 4
    parts = [fast.partial(z[:, c : c + 10], c) for c in (0, 10, 20)]
    left = fast.merge(fast.merge(parts[0], parts[1]), parts[2])
    right = fast.merge(parts[2], fast.merge(parts[1], parts[0]))
    for a, b in zip(left, right, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_array_equal(left.argmax, np.argmax(z, axis=-1))


def test_memory_forward_backward_one_gradient_and_chunks():
    """Forward + backward holds the gradient and cache-sized chunks, never (N, K) temporaries."""
    rng = rng_for("memory")
    logits = rng.standard_normal((512, 4000)).astype(np.float32)
    target = rng.integers(0, 4000, size=512)

    def forward_backward():
        _, cache = fast.lsce_forward(logits, target, 0.1)
        fast.lsce_backward(1.0, cache)

    assert numpy_peak_bytes(forward_backward) <= 1.25 * logits.nbytes
    simple = numpy_peak_bytes(
        lambda: losses.lsce_backward(1.0, losses.lsce_forward(logits, target)[1])
    )
    assert simple >= 3 * logits.nbytes  # the measurement sees (N, K) temporaries


def test_memory_loss_only_and_class_chunked_paths_are_small():
    """O(N + chunk·K): a chunk or two per thread and a few numbers per row."""
    rng = rng_for("memory loss")
    logits = rng.standard_normal((256, 20_000)).astype(np.float32)
    target = rng.integers(0, 20_000, size=256)
    budget = 2 * (fast.THREADS + 1) * chunking.CHUNK_BYTES + 64 * 256
    assert budget < 0.5 * logits.nbytes
    assert (
        numpy_peak_bytes(lambda: fast.label_smoothing_cross_entropy(logits, target))
        <= budget
    )
    assert (
        numpy_peak_bytes(lambda: fast.lsce_loss_chunked(logits, target, chunk=2048))
        <= budget
    )


# The two NumPy versions keep different caches: the taught lsce_forward a dict (the one
# exercises 5.x build too), the fast one a FastCache. Each backward names where the other
# one's cache belongs.

TAUGHT_CACHE = (
    r"this cache comes from lsce_scratch\.losses\.lsce_forward \(the taught version, a dict\); "
    r"pass it to lsce_scratch\.losses\.lsce_backward, or use lsce_scratch\.lsce_forward with "
    r"lsce_scratch\.lsce_backward"
)
FAST_CACHE = (
    r"this cache comes from lsce_scratch\.lsce_forward \(the fast version, lsce_scratch\.fast\); "
    r"pass it to lsce_scratch\.lsce_backward, or use lsce_scratch\.losses\.lsce_forward with "
    r"lsce_scratch\.losses\.lsce_backward"
)


def test_a_backward_given_the_other_versions_cache_says_where_it_belongs():
    import lsce_scratch

    logits, target = make_case(rng_for("caches"), (4,), 5, "index")
    _, taught = losses.lsce_forward(logits, target)
    _, fast_cache = lsce_scratch.lsce_forward(logits, target)
    assert isinstance(taught, dict) and {"prep", "p", "r"} <= taught.keys()
    assert isinstance(fast_cache, fast.FastCache)
    with pytest.raises(TypeError, match=TAUGHT_CACHE):
        lsce_scratch.lsce_backward(1.0, taught)
    with pytest.raises(TypeError, match=FAST_CACHE):
        losses.lsce_backward(1.0, fast_cache)
    # neither cache was used up: each still works with its own backward
    assert_close(
        lsce_scratch.lsce_backward(1.0, fast_cache), losses.lsce_backward(1.0, taught)
    )


@pytest.mark.parametrize("backward", [fast.lsce_backward, losses.lsce_backward])
def test_a_backward_given_no_cache_names_what_it_takes(backward):
    with pytest.raises(
        TypeError, match=r"^cache must be the (FastCache|dict) that .*; got NoneType"
    ):
        backward(1.0, None)

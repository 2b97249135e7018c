"""Fast label-smoothing cross-entropy in NumPy: fused, chunked, threaded (lesson 09).

The same contract and the same numbers as :mod:`lsce_scratch.losses` (lesson 05), but
the work is arranged around memory traffic. The simple version builds the (N, K) target
matrix, the log-probabilities, p and the gradient: four (N, K) arrays, each written and
read again from main memory. Here every row is read once and its gradient written once:

- no target matrix: r = (ε/K)·w + (1 − ε)·w_y·onehot(y) is applied as a broadcast and
  one scattered entry per row;
- no log-probabilities: ℓ = Σ_k r_k (z_max − z_k) + S·log(1 + rest) needs only row sums;
- the exponentials exp(z − z_max) go straight into the gradient buffer, which becomes
  S·p − r in place, already scaled through the reduction (the gradient is computed in
  the forward; :func:`lsce_backward` only multiplies by dloss, or nothing when it is 1);
- rows are processed in chunks that fit in a core's L2 cache
  (:mod:`lsce_scratch.chunking`), so the five or six passes over a chunk hit the cache,
  not main memory;
- chunks run on a small thread pool: NumPy's ufuncs release the GIL. Chunks are fixed by
  the shape alone, so the results do not depend on the number of threads.

For huge vocabularies, :func:`lsce_loss_chunked` reads the classes a chunk at a time
(online softmax) and :func:`linear_lsce` fuses the output layer with the loss, never
holding the (N, K) logits. Notation as in :mod:`lsce_scratch.losses`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from lsce_scratch import chunking
from lsce_scratch.losses import (
    Prepared,
    nonfinite_error,
    nonfinite_rows,
    prepare,
    reduce_rows,
    row_scale,
    upstream,
)
from lsce_scratch.row_stats import RowLosses, SoftmaxState, SoftmaxStats
from lsce_scratch.softmax import compute_dtype

# Below this many logits, handing chunks to threads costs more than it saves.
PARALLEL_MIN = 1 << 18
# Worker threads for large inputs;
# set lsce_scratch.fast.THREADS = 1 to stay on one core.
THREADS = max(1, os.cpu_count() or 1)

_pools: dict[int, ThreadPoolExecutor] = {}


def _map(fn: Callable[[slice], object], chunks: Sequence[slice], size: int) -> list:
    """``[fn(c) for c in chunks]``,
    on THREADS threads when ``size`` logits make it pay."""
    workers = min(THREADS, len(chunks)) if size >= PARALLEL_MIN else 1
    if workers <= 1:
        return [fn(c) for c in chunks]
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="lsce")
    # one task per worker, a contiguous run of chunks each:
    # few hand-overs between threads
    runs = np.array_split(np.arange(len(chunks)), workers)
    tasks = [[chunks[j] for j in run] for run in runs]
    done = _pools[workers].map(lambda task: [fn(c) for c in task], tasks)
    return [result for task in done for result in task]


@dataclass
class RowInfo:
    """Per-row numbers for all N rows, computed once (O(N));
    index targets fill y, w_y, S."""

    scale: (
        np.ndarray
    )  # ∂L/∂ℓ_i at dloss = 1: 1/Σw_y for 'mean', 1 otherwise, 0 where ignored
    y: np.ndarray | None = None  # true class (0 on ignored rows)
    w_y: np.ndarray | None = None  # its class weight
    total: np.ndarray | None = None  # S_i = Σ_k r_ik = (1 − ε) w_y + (ε/K) Σ_k w_k

    def index_targets(self, rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y, w_y, S) of some rows with class-index targets."""
        assert self.y is not None and self.w_y is not None and self.total is not None
        return self.y[rows], self.w_y[rows], self.total[rows]


def row_info(prep: Prepared, scale: np.ndarray) -> RowInfo:
    """The per-row numbers of ``prep``'s rows; ``scale`` is ∂L/∂ℓ_i for the gradient."""
    if prep.kind == "soft":
        return RowInfo(scale)
    eps, num_classes, w = prep.epsilon, prep.num_classes, prep.weight
    y = prep.safe_target
    w_y = np.ones(len(y), prep.logits.dtype) if w is None else w[y]
    w_sum = num_classes if w is None else w.sum()
    # S = (1 − ε) w_y + (ε/K) Σ_k w_k
    return RowInfo(scale, y, w_y, (1.0 - eps) * w_y + eps / num_classes * w_sum)


@dataclass
class FastCache:
    """What :func:`lsce_forward` keeps for :func:`lsce_backward`: the inputs, the
    softmax statistics of every row, and the gradient at dloss = 1 until a
    backward takes it."""

    prep: Prepared
    stats: SoftmaxStats[np.ndarray]
    grad: np.ndarray | None


# --8<-- [start:block]
def _block_forward(
    prep: Prepared, info: RowInfo, rows: slice, z: np.ndarray, e: np.ndarray
) -> RowLosses[np.ndarray]:
    """ℓ_i and the row statistics of one chunk of rows; leaves exp(z − z_max) in ``e``
    (0 at m). ``e`` may be z itself: z is not read after the first pass."""
    r = None if prep.kind == "index" else _soft_r(prep, rows)
    # z_y is read first: e may be z's own memory
    z_y = z[np.arange(len(z)), info.index_targets(rows)[0]] if r is None else None
    # z_max, m, rest = Σ_{k≠m} exp(z_k − z_max) and Σ_k a_k (z_max − z_k) for the
    # smoothing weights a = w (index targets) or r (probabilities); see partial
    state = partial(z, 0, prep.weight if r is None else r, out=e)
    row_loss = _row_loss(prep, info, rows, state, z_y)
    return RowLosses(row_loss, state.z_max, state.argmax, state.rest)


def _row_loss(
    prep: Prepared,
    info: RowInfo,
    rows: slice,
    state: SoftmaxState[np.ndarray],
    z_y: np.ndarray | None,
) -> np.ndarray:
    """ℓ_i of some rows from their softmax state (and z_y, for index targets)."""
    eps, num_classes = prep.epsilon, prep.num_classes
    if z_y is not None:
        _, w_y, total = info.index_targets(rows)
        # Σ_k r_k (z_max − z_k)
        #   = (1 − ε) w_y (z_max − z_y) + (ε/K) Σ_k w_k (z_max − z_k);
        # PyTorch leaves the second sum out at ε = 0,
        # where a masked class makes it 0 · ∞
        gap = (1.0 - eps) * w_y * (state.z_max - z_y)
        if eps > 0:
            gap = gap + eps / num_classes * state.gap
    else:
        # the state's weights were r: gap = Σ_k r_k (z_max − z_k) and S = Σ_k r_k
        gap, total = state.gap, state.mass
    # ℓ_i = Σ_k r_ik (z_max − z_ik) + S_i log(1 + rest_i); a row with every class masked
    # has no softmax (NaN, as in PyTorch); ignored rows count 0
    row_loss = np.where(
        state.z_max == -np.inf, np.nan, gap + total * np.log1p(state.rest)
    )
    return np.where(prep.valid[rows], row_loss, 0.0)


def _block_gradient(
    prep: Prepared,
    info: RowInfo,
    rows: slice,
    e: np.ndarray,
    m: np.ndarray,
    rest: np.ndarray,
) -> None:
    """Turn ``e`` = exp(z − z_max) of one chunk (any value at m) into (S p − r)·s,
    in place."""
    eps, num_classes, w = prep.epsilon, prep.num_classes, prep.weight
    i, s = np.arange(e.shape[0]), info.scale[rows]
    if prep.kind == "index":
        r = None
        y, w_y, total = info.index_targets(rows)
    else:
        r = _soft_r(prep, rows)
        total = r.sum(axis=-1)
    # (S p − r)·s with p = exp(z − z_max) / (1 + rest): scale the exponentials in place
    np.multiply(e, (total * s / (1.0 + rest))[:, None], out=e)
    if r is None:
        # − r·s, with r = (ε/K) w + (1 − ε) w_y onehot(y):
        # a broadcast and one entry per row
        e -= (
            (eps / num_classes * s)[:, None]
            if w is None
            else np.outer(eps / num_classes * s, w)
        )
        e[i, y] -= (1.0 - eps) * w_y * s
        w_m = 1.0 if w is None else w[m]
        w_sum = num_classes if w is None else w.sum()
        # r_m = (ε/K) w_m + (1 − ε) w_y [y = m]
        r_m = eps / num_classes * w_m + (1.0 - eps) * w_y * (y == m)
        # Σ_{k≠m} r_k = (1 − ε) w_y [y ≠ m] + (ε/K)(Σ_k w_k − w_m)
        r_others = (1.0 - eps) * w_y * (y != m) + eps / num_classes * (w_sum - w_m)
    else:
        # r_m, and Σ_{k≠m} r_k summed without it (the entry at m is overwritten below)
        r_m = r[i, m].copy()
        r[i, m] = 0.0
        r_others = r.sum(axis=-1)
        e -= np.multiply(r, s[:, None], out=r)
    # at m: S p_m − r_m with p_m = 1 / (1 + rest). When p_m > 1/2 (rest < 1), from
    # the other classes, Σ_{k≠m} r_k − S (1 − p_m) with 1 − p_m = rest·p_m:
    # nothing cancels as p_m → 1. For a flat row that form cancels instead (both
    # terms near S): the plain one
    p_m = 1.0 / (1.0 + rest)
    e[i, m] = np.where(rest < 1.0, r_others - total * rest * p_m, total * p_m - r_m) * s


# --8<-- [end:block]


def _soft_r(prep: Prepared, rows: slice, cols: slice = slice(None)) -> np.ndarray:
    """r = w ⊙ ((1 − ε) t + ε/K) for probability targets,
    on a block of rows and classes."""
    r = (1.0 - prep.epsilon) * prep.target[rows, cols] + prep.epsilon / prep.num_classes
    return r if prep.weight is None else np.multiply(r, prep.weight[cols], out=r)


def _block(
    prep: Prepared, info: RowInfo, rows: slice, z: np.ndarray, grad: np.ndarray | None
) -> RowLosses[np.ndarray]:
    """One chunk's losses and statistics, and with ``grad`` its gradient (scaled by
    ``info.scale``), in one read of its logits."""
    result = _block_forward(
        prep, info, rows, z, np.empty_like(z) if grad is None else grad
    )
    if grad is not None:
        _block_gradient(prep, info, rows, grad, result.argmax, result.rest)
        _rows_without_softmax(prep, rows, result.z_max, grad)
    return result


def _block_backward(
    prep: Prepared,
    info: RowInfo,
    rows: slice,
    z: np.ndarray,
    grad: np.ndarray,
    saved: SoftmaxStats[np.ndarray],
) -> None:
    """One chunk's gradient from its saved statistics."""
    # exp(z − z_max) from the saved row maxima: no argmax, no sums
    np.exp(np.subtract(z, saved.z_max[:, None], out=grad), out=grad)
    _block_gradient(prep, info, rows, grad, saved.argmax, saved.rest)
    _rows_without_softmax(prep, rows, saved.z_max, grad)


def _rows_without_softmax(
    prep: Prepared, rows: slice, z_max: np.ndarray, grad: np.ndarray
) -> None:
    """Fix the gradient of rows whose maximum is not finite (NaN, +inf or all masked).

    An ignored row gets exactly 0, whatever its logits (its scale is 0, but 0 · NaN is
    NaN); a counted row with every class masked gets NaN, as in PyTorch (NaN and +inf in
    a counted row are refused after the pass).
    """
    unusable = ~np.isfinite(z_max)
    if unusable.any():
        grad[unusable] = np.where(prep.valid[rows][unusable], np.nan, 0.0)[:, None]


def lsce_rows(
    prep: Prepared,
    info: RowInfo,
    start: int,
    z: np.ndarray,
    grad: np.ndarray | None = None,
) -> RowLosses[np.ndarray]:
    """Losses and statistics of rows start..start+len(z) (logits ``z``), chunked,
    threaded; with ``grad``, their gradient too.

    NaN or +inf in the logits shows in the row maxima (see losses.nonfinite_rows), so
    nothing else has to scan for it.
    """

    def run(c: slice) -> RowLosses[np.ndarray]:
        rows = slice(start + c.start, start + c.stop)
        # NaN/inf logits are reported after the pass, without warnings on the way
        with np.errstate(invalid="ignore", over="ignore"):
            return _block(prep, info, rows, z[c], None if grad is None else grad[c])

    parts = _map(run, _chunks(z), z.size)
    if not parts:
        return RowLosses(z[:, 0], z[:, 0], np.zeros(0, np.intp), z[:, 0])
    return RowLosses(*(np.concatenate(a) for a in zip(*parts, strict=True)))


def gradient_rows(
    prep: Prepared,
    info: RowInfo,
    start: int,
    z: np.ndarray,
    grad: np.ndarray,
    saved: SoftmaxStats[np.ndarray],
) -> None:
    """The gradient of rows start..start+len(z) into ``grad``, from their ``saved``
    statistics (what lsce_rows gave for them), chunked, threaded."""

    def run(c: slice) -> None:
        rows = slice(start + c.start, start + c.stop)
        part = SoftmaxStats(*(a[c] for a in saved))
        with np.errstate(invalid="ignore", over="ignore"):
            _block_backward(prep, info, rows, z[c], grad[c], part)

    _map(run, _chunks(z), z.size)


def _loss_rows(prep: Prepared, grad: np.ndarray | None) -> RowLosses[np.ndarray]:
    """Losses and statistics of all rows
    (and, with ``grad``, the gradient at dloss = 1)."""
    stats = lsce_rows(prep, row_info(prep, _unit_scale(prep)), 0, prep.logits, grad)
    # NaN or +inf in a row that counts; finite logits whose sums overflow just give inf
    bad = nonfinite_rows(stats.z_max, prep.valid)
    if bad.any():
        raise nonfinite_error(bad, stats.z_max, stats.argmax, prep.leading_shape)
    return stats


def _unit_scale(prep: Prepared) -> np.ndarray:
    """∂L/∂ℓ_i at dloss = 1, for every row."""
    ones = np.ones(prep.leading_shape) if prep.reduction == "none" else 1.0
    return row_scale(ones, prep)[:, 0]


def _prepare(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float,
    reduction: str,
    weight: ArrayLike | None,
    ignore_index: int,
) -> Prepared:
    # the kernel finds NaN/inf in its row sums, so prepare() need not scan the logits
    return prepare(
        logits, target, epsilon, reduction, weight, ignore_index, check_finite=False
    )


# --8<-- [start:lsce_forward]
def lsce_forward(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, FastCache]:
    """Label-smoothing cross-entropy, forward pass; returns ``(loss, cache)``.

    ``logits`` has shape (..., K); ``target`` holds class indices of shape (...) or
    probabilities of shape (..., K). The result equals ``F.cross_entropy(movedim(logits,
    -1, 1), target, weight, ignore_index=..., reduction=..., label_smoothing=epsilon)``,
    as :func:`lsce_scratch.losses.lsce_forward`'s does. The gradient is computed here
    too, in the same pass over the logits, and kept in the :class:`FastCache` (one array
    of the logits' size) for :func:`lsce_backward`;
    :func:`label_smoothing_cross_entropy` skips it.
    """
    prep = _prepare(logits, target, epsilon, reduction, weight, ignore_index)
    grad = np.empty_like(prep.logits)
    rows = _loss_rows(prep, grad)
    return reduce_rows(rows.loss, prep), FastCache(prep, rows.stats, grad)


# --8<-- [end:lsce_forward]


# --8<-- [start:lsce_backward]
def lsce_backward(dloss: ArrayLike, cache: FastCache) -> np.ndarray:
    """Gradient of the loss with respect to the logits,
    same shape and dtype as the logits.

    ``dloss`` is ∂(something)/∂loss: a scalar for 'mean'/'sum', the loss's shape
    for 'none'; ``cache`` is what :func:`lsce_forward` returned. The first call
    hands out the gradient the forward computed, multiplied by dloss in place
    (nothing to do when dloss is 1); a later call on the same cache computes it
    again from the saved statistics.
    """
    _check_cache(cache)
    prep = cache.prep
    dloss = upstream(dloss, prep)
    grad, cache.grad = cache.grad, None
    if grad is None:
        # the first call gave its buffer away: compute the gradient again
        grad = np.empty_like(prep.logits)
        info = row_info(prep, _unit_scale(prep))
        gradient_rows(prep, info, 0, prep.logits, grad, cache.stats)
    if prep.reduction == "none":
        # ignored rows are already 0; keep them so even where dloss is not finite
        scale = np.where(prep.valid, dloss, 0.0)[:, None]
        _map(
            lambda c: np.multiply(grad[c], scale[c], out=grad[c]),
            _chunks(grad),
            grad.size,
        )
    elif dloss != 1:
        _map(
            lambda c: np.multiply(grad[c], dloss, out=grad[c]), _chunks(grad), grad.size
        )
    shape = prep.leading_shape + (prep.num_classes,)
    return grad.reshape(shape).astype(prep.input_dtype, copy=False)


# --8<-- [end:lsce_backward]


def _chunks(a: np.ndarray) -> list[slice]:
    return chunking.row_chunks(a.shape[0], a.shape[-1], a.itemsize)


def _check_cache(cache: object) -> None:
    """Refuse a cache that is not lsce_forward's, naming where it belongs."""
    if isinstance(cache, FastCache):
        return
    if isinstance(cache, dict):
        raise TypeError(
            "this cache comes from lsce_scratch.losses.lsce_forward (the taught "
            "version, a dict); pass it to lsce_scratch.losses.lsce_backward, or use "
            "lsce_scratch.lsce_forward with lsce_scratch.lsce_backward"
        )
    raise TypeError(
        f"cache must be the FastCache that lsce_scratch.lsce_forward returned; got "
        f"{type(cache).__name__}"
    )


def label_smoothing_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    """The LSCE loss alone (arguments as :func:`lsce_forward`); no gradient is computed,
    so the extra memory is a chunk of rows per thread and a few numbers per row."""
    prep = _prepare(logits, target, epsilon, reduction, weight, ignore_index)
    return reduce_rows(_loss_rows(prep, None).loss, prep)


# --8<-- [start:online]
def partial(
    z: np.ndarray,
    offset: int = 0,
    a: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> SoftmaxState[np.ndarray]:
    """The online-softmax state (:class:`lsce_scratch.row_stats.SoftmaxState`) of a
    block of classes (columns offset.. of each row), with weights a.

    The exponentials exp(z − z_max) (0 at the max) are left in ``out``, which may be z.
    A masked class (z_k = −inf) adds 0 to rest and a_k·∞ to gap: inf, or NaN where
    a_k = 0, as PyTorch's 0 · log 0 is.
    """
    i = np.arange(z.shape[0])
    # m = argmax_k z_k, the most likely class (the first NaN, if any); z_max = z_m
    m = np.argmax(z, axis=-1)
    z_max = z[i, m]
    # z − z_max ≤ 0, exactly 0 at m. A block whose classes are all masked is
    # shifted by 0 instead (−inf − (−inf) would be NaN): its exponentials are 0
    # and gap is Σ_k a_k·∞
    e = np.subtract(z, np.where(z_max == -np.inf, 0.0, z_max)[:, None], out=out)
    # Σ_k a_k (z_max − z_k) ≥ 0: the smoothing term as a sum without cancellation
    if a is None:
        gap, mass = -e.sum(axis=-1), np.full(len(z), z.shape[-1], dtype=z.dtype)
    elif a.ndim == 1:
        gap, mass = -(e @ a), np.full(len(z), a.sum(), dtype=z.dtype)
    else:
        gap, mass = -np.einsum("ij,ij->i", a, e), a.sum(axis=-1)
    # rest = Σ_{k≠m} exp(z_k − z_max): the max term (exactly 1) is left out, so that
    # lse = z_max + log1p(rest) and 1 − p_m = rest / (1 + rest) keep every digit
    np.exp(e, out=e)
    e[i, m] = 0.0
    return SoftmaxState(z_max, m + offset, e.sum(axis=-1), gap, mass)


@np.errstate(invalid="ignore")
def merge(
    a: SoftmaxState[np.ndarray], b: SoftmaxState[np.ndarray]
) -> SoftmaxState[np.ndarray]:
    """Combine the states of two disjoint sets of classes (any order, any split)."""
    # the larger max stays the max; the other side is rescaled to it by
    # exp(lo − hi) ≤ 1. A NaN max wins, so that NaN logits show in z_max (see
    # losses.nonfinite_rows)
    b_wins = (b.z_max > a.z_max) | np.isnan(b.z_max)
    hi = SoftmaxState(*(np.where(b_wins, y, x) for x, y in zip(a, b, strict=True)))
    lo = SoftmaxState(*(np.where(b_wins, x, y) for x, y in zip(a, b, strict=True)))
    # a side whose classes are all masked has no max term, and its gap holds Σ_k a_k·∞
    masked = lo.z_max == -np.inf
    shrink = np.where(masked, 0.0, np.exp(lo.z_max - hi.z_max))
    # the losing side's own max term, exp(lo − hi), joins rest: (rest_lo + 1)·shrink
    rest = hi.rest + (lo.rest + 1.0) * shrink
    # Σ a_k (hi − z_k) over the losing side = its gap + its mass·(hi − lo), all ≥ 0
    gap = hi.gap + lo.gap + np.where(masked, 0.0, lo.mass * (hi.z_max - lo.z_max))
    return SoftmaxState(hi.z_max, hi.argmax, rest, gap, hi.mass + lo.mass)


# --8<-- [start:online_logsumexp]
def online_logsumexp(x: ArrayLike, chunk: int = 4096) -> np.ndarray:
    """log Σ_k exp(x_k) over the last axis, reading ``chunk`` classes at a time.

    Exercise 9.1. Memory beyond the result is O(rows·chunk); x must be finite.
    """
    chunk = _check_chunk(chunk)
    x = np.asarray(x)
    dtype = compute_dtype(x.dtype)
    rows = x.astype(dtype, copy=False).reshape(-1, x.shape[-1])
    state = _fold(rows, chunk, lambda c: None)
    # lse = z_max + log(1 + rest)
    return (state.z_max + np.log1p(state.rest)).reshape(x.shape[:-1])


# --8<-- [end:online_logsumexp]


def _check_chunk(chunk: object) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of classes; got {chunk!r}")
    return chunk


def _fold(
    z: np.ndarray, chunk: int, weights: Callable[[slice], np.ndarray | None]
) -> SoftmaxState[np.ndarray]:
    """Merge the states of z's class chunks from left to right."""
    state = None
    for c0 in range(0, z.shape[-1], chunk):
        cols = slice(c0, c0 + chunk)
        part = partial(z[:, cols], c0, weights(cols))
        state = part if state is None else merge(state, part)
    assert state is not None, "K ≥ 1 classes"
    return state


# --8<-- [end:online]


def lsce_loss_chunked(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    chunk: int = 8192,
) -> np.ndarray:
    """The LSCE loss, reading ``chunk`` classes at a time (online softmax).

    Arguments and result as :func:`label_smoothing_cross_entropy`. No row is ever held
    whole: the extra memory is O(N) for the running state plus one block of
    ``rows × chunk`` logits, so the classes may come from anywhere (vocabulary shards,
    a weight matrix read block by block).
    """
    chunk = _check_chunk(chunk)
    prep = _prepare(logits, target, epsilon, reduction, weight, ignore_index)
    num_classes, w = prep.num_classes, prep.weight
    info = row_info(prep, _unit_scale(prep))
    # a block of rows × chunk logits is one chunk's worth
    blocks = chunking.row_chunks(
        len(prep.logits), min(chunk, num_classes), prep.logits.itemsize
    )

    @np.errstate(invalid="ignore", over="ignore")
    def run(rows: slice) -> RowLosses[np.ndarray]:
        z = prep.logits[rows]
        if prep.kind == "index":
            state = _fold(z, chunk, lambda cols: None if w is None else w[cols])
            z_y = z[np.arange(len(z)), info.index_targets(rows)[0]]
        else:
            state = _fold(z, chunk, lambda cols: _soft_r(prep, rows, cols))
            z_y = None
        return RowLosses(_row_loss(prep, info, rows, state, z_y), *state.stats)

    parts = _map(run, blocks, prep.logits.size)
    if not parts:
        return reduce_rows(prep.logits[:, 0], prep)
    stats = RowLosses(*(np.concatenate(a) for a in zip(*parts, strict=True)))
    bad = nonfinite_rows(stats.z_max, prep.valid)
    if bad.any():
        raise nonfinite_error(bad, stats.z_max, stats.argmax, prep.leading_shape)
    return reduce_rows(stats.loss, prep)


# --8<-- [start:linear_lsce]
def linear_lsce(
    hidden: ArrayLike,
    lin_weight: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    lin_bias: ArrayLike | None = None,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    dloss: ArrayLike | None = None,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A linear layer fused with LSCE: logits = hidden @ lin_weightᵀ + lin_bias,
    never stored.

    ``hidden`` is (..., H), ``lin_weight`` (K, H), ``lin_bias`` (K,) or None; the other
    arguments are those of :func:`lsce_forward`, and ``dloss`` (default 1, or ones for
    'none') is the upstream gradient. Returns ``(loss, d_hidden, d_lin_weight,
    d_lin_bias)``. Rows are processed ``chunk_rows`` at a time: each chunk's logits are
    computed, turned into their gradient in place, and used at once for d_hidden and
    d_lin_weight, so the extra memory is one chunk of logits, not N × K. The price is
    time: d_lin_weight is updated once per chunk.
    """
    h, w_lin, b = _linear_inputs(hidden, lin_weight, lin_bias)
    num_rows, num_classes = len(h), len(w_lin)
    # prepare() checks the targets against the logits' shape; a stride-0 view of one
    # zero stands in for the logits, which are never built
    stand_in = np.broadcast_to(
        np.zeros((), h.dtype), np.shape(hidden)[:-1] + (num_classes,)
    )
    prep = _prepare(stand_in, target, epsilon, reduction, weight, ignore_index)
    if dloss is None:
        dloss = np.ones(prep.leading_shape) if reduction == "none" else 1.0
    info = row_info(prep, row_scale(dloss, prep)[:, 0])
    rows = chunk_rows or chunking.rows_per_chunk(
        num_classes, h.itemsize, chunking.FUSED_CHUNK_BYTES
    )
    buffer = np.empty((min(rows, num_rows), num_classes), h.dtype)
    row_loss = np.empty(num_rows, h.dtype)
    d_hidden = np.empty_like(h)
    d_weight = np.zeros_like(w_lin)
    d_bias = None if b is None else np.zeros_like(b)
    for a in range(0, num_rows, rows):
        h_c = h[a : a + rows]
        z = buffer[: len(h_c)]
        # this chunk's logits z = h Wᵀ + b, overwritten below by ∂L/∂z (NaN or ±inf in
        # the inputs is reported below, after the pass)
        with np.errstate(invalid="ignore", over="ignore"):
            np.matmul(h_c, w_lin.T, out=z)
            if b is not None:
                z += b
        stats = lsce_rows(prep, info, a, z, z)
        row_loss[a : a + len(h_c)] = stats.loss
        if nonfinite_rows(stats.z_max, prep.valid[a : a + len(h_c)]).any():
            _raise_nonfinite_linear(hidden, lin_weight, lin_bias)
        # ∂L/∂h = (∂L/∂z) W
        np.matmul(z, w_lin, out=d_hidden[a : a + len(h_c)])
        # ∂L/∂W += (∂L/∂z)ᵀ h, in blocks of classes so no (K, H) temporary is made
        for k0 in range(0, num_classes, chunking.CLASS_BLOCK):
            block = slice(k0, k0 + chunking.CLASS_BLOCK)
            d_weight[block] += z[:, block].T @ h_c
        if d_bias is not None:
            # ∂L/∂b = Σ_i ∂L/∂z_i
            d_bias += z.sum(axis=0)
    dtype = np.asarray(hidden).dtype
    return (
        reduce_rows(row_loss, prep),
        d_hidden.reshape(np.shape(hidden)).astype(dtype, copy=False),
        d_weight.astype(dtype, copy=False),
        None if d_bias is None else d_bias.astype(dtype, copy=False),
    )


# --8<-- [end:linear_lsce]


def _raise_nonfinite_linear(
    hidden: ArrayLike, lin_weight: ArrayLike, lin_bias: ArrayLike | None
) -> None:
    """Name the input that made logits of a counted row NaN or +inf
    (or say they overflowed).

    lin_bias may hold −inf: that masks a class (a padded vocabulary, say).
    """
    for name, a in (("hidden", hidden), ("lin_weight", lin_weight)):
        if not np.isfinite(a).all():
            raise ValueError(
                f"{name} contains NaN or ±inf; the loss is undefined there"
            )
    if lin_bias is not None and not (np.asarray(lin_bias) < np.inf).all():
        raise ValueError(
            "lin_bias contains NaN or +inf; the loss is undefined there (−inf is "
            "allowed: it masks a class)"
        )
    raise ValueError(
        "the logits hidden @ lin_weightᵀ + lin_bias overflow to "
        "+inf; scale the inputs down"
    )


def _linear_inputs(
    hidden: ArrayLike, lin_weight: ArrayLike, lin_bias: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check the linear layer's arrays;
    return them as (N, H), (K, H), (K,) in the compute dtype."""
    hidden, lin_weight = np.asarray(hidden), np.asarray(lin_weight)
    for name, a in (("hidden", hidden), ("lin_weight", lin_weight)):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(
                f"{name} must be floating point; got {a.dtype}. Convert with "
                f"{name}.astype(np.float32)"
            )
    if (
        hidden.ndim < 1
        or lin_weight.ndim != 2
        or lin_weight.shape[1] != hidden.shape[-1]
    ):
        raise ValueError(
            "hidden must be (..., H) and lin_weight (K, H) with the same H; got "
            f"shapes {hidden.shape} and {lin_weight.shape}"
        )
    dtype = compute_dtype(hidden.dtype)
    h = hidden.astype(dtype, copy=False).reshape(-1, hidden.shape[-1])
    w = lin_weight.astype(dtype, copy=False)
    if lin_bias is None:
        return h, w, None
    b = np.asarray(lin_bias)
    if b.shape != (len(w),) or not np.issubdtype(b.dtype, np.floating):
        raise ValueError(
            f"lin_bias must be a floating-point array of shape ({len(w)},), one per "
            f"class; got {b.dtype} {b.shape}"
        )
    return h, w, b.astype(dtype, copy=False)

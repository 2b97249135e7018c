"""The fast path in torch ops, for one chunk of rows at a time (lesson 09).

It runs where neither the NumPy kernel nor the Triton kernels do: float16/bfloat16
logits on the CPU, float64 or probability targets on a GPU, or a GPU without triton. The
same algorithm as :mod:`lsce_scratch.fast`, with the same records
(:mod:`lsce_scratch.row_stats`): the online-softmax state of blocks of classes, merged;
the loss from the merged state; the gradient written straight into its buffer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lsce_scratch import chunking
from lsce_scratch.nn.rows import Rows
from lsce_scratch.row_stats import SoftmaxState, SoftmaxStats


# --8<-- [start:statistics]
def partial(
    z: Tensor, offset: int, a: Tensor | None, work: Tensor
) -> SoftmaxState[Tensor]:
    """The online-softmax state of a block of classes, with smoothing weights a
    (w, r or 1).

    ``work`` is scratch space of z's shape. A masked class (z_k = −inf) adds 0 to rest
    and a_k·∞ to gap (inf, or NaN where a_k = 0, as PyTorch's 0 · log 0).
    """
    # m = argmax_k z_k and z_max = z_m (NaN if the block holds one)
    z_max, argmax = z.max(dim=-1)
    # z − z_max ≤ 0, exactly 0 at m. A block whose classes are all masked is
    # shifted by 0 instead (−inf − (−inf) would be NaN): its exponentials are 0
    # and gap is Σ_k a_k·∞
    e = torch.sub(z, torch.where(z_max == -torch.inf, 0.0, z_max)[:, None], out=work)
    # Σ_k a_k (z_max − z_k) ≥ 0: the smoothing term without cancellation
    if a is None:
        gap, mass = -e.sum(dim=-1), torch.full_like(z_max, z.shape[-1])
    elif a.dim() == 1:
        gap, mass = -(e @ a), a.sum().expand_as(z_max)
    else:
        gap, mass = -(e * a).sum(dim=-1), a.sum(dim=-1)
    # rest = Σ_{k≠m} exp(z_k − z_max): the max term (exactly 1) is left out, so that
    # lse = z_max + log1p(rest) and 1 − p_m = rest / (1 + rest) keep every digit
    rest = e.exp_().scatter_(1, argmax[:, None], 0.0).sum(dim=-1)
    return SoftmaxState(z_max, argmax + offset, rest, gap, mass)


def merge(a: SoftmaxState[Tensor], b: SoftmaxState[Tensor]) -> SoftmaxState[Tensor]:
    """Combine the states of two disjoint blocks of classes (online softmax)."""
    # a NaN max wins, so that NaN logits show in z_max (see rows.check_values)
    b_wins = (b.z_max > a.z_max) | torch.isnan(b.z_max)
    hi = SoftmaxState(*(torch.where(b_wins, y, x) for x, y in zip(a, b, strict=True)))
    lo = SoftmaxState(*(torch.where(b_wins, x, y) for x, y in zip(a, b, strict=True)))
    # a side whose classes are all masked has no max term, and its gap holds Σ_k a_k·∞
    masked = lo.z_max == -torch.inf
    # the other side is rescaled by exp(lo − hi) ≤ 1, and its own max term joins rest
    rest = hi.rest + (lo.rest + 1.0) * torch.where(
        masked, 0.0, torch.exp(lo.z_max - hi.z_max)
    )
    # its smoothing sum grows by its mass·(hi − lo): every term stays ≥ 0
    gap = hi.gap + lo.gap + torch.where(masked, 0.0, lo.mass * (hi.z_max - lo.z_max))
    return SoftmaxState(hi.z_max, hi.argmax, rest, gap, hi.mass + lo.mass)


def statistics(z: Tensor, a: Tensor | None, work: Tensor) -> SoftmaxState[Tensor]:
    """The state of each row of z (K ≥ 1 classes), CLASS_CHUNK classes at a time."""
    state = None
    for c0 in range(0, z.shape[-1], chunking.CLASS_CHUNK):
        cols = slice(c0, c0 + chunking.CLASS_CHUNK)
        block = z[:, cols]
        scratch = work[: len(z), : block.shape[1]]
        part = partial(block, c0, None if a is None else a[..., cols], scratch)
        state = part if state is None else merge(state, part)
    assert state is not None
    return state


# --8<-- [end:statistics]


def row_loss(rows: Rows, z_y: Tensor | None, state: SoftmaxState[Tensor]) -> Tensor:
    """ℓ_i for every row from its state (and z_y, for index targets);
    ignored rows count 0."""
    eps, num_classes = rows.epsilon, rows.num_classes
    gap = state.gap
    if z_y is not None:
        _, w_y = rows.index_targets()
        # Σ_k r_k (z_max − z_k)
        #   = (1 − ε) w_y (z_max − z_y) + (ε/K) Σ_k w_k (z_max − z_k);
        # PyTorch leaves the second sum out at ε = 0,
        # where a masked class makes it 0 · ∞
        true_term = (1.0 - eps) * w_y * (state.z_max - z_y)
        gap = true_term + eps / num_classes * gap if eps > 0 else true_term
    # ℓ_i = Σ_k r_ik (z_max − z_ik) + S_i log(1 + rest_i); a row with every class masked
    # has no softmax (NaN, as in PyTorch)
    loss = gap + rows.total * torch.log1p(state.rest)
    loss = torch.where(state.z_max == -torch.inf, torch.nan, loss)
    return torch.where(rows.valid, loss, 0.0)


def true_logit(logits: Tensor, rows: Rows) -> Tensor | None:
    """z_y per row for index targets
    (read before an in-place gradient overwrites it)."""
    if rows.kind == "soft":
        return None
    y, _ = rows.index_targets()
    return logits.gather(1, y[:, None])[:, 0].to(rows.dtype)


class IndexTerms(NamedTuple):
    """The per-row numbers of the gradient (S p − r)·s of rows with class indices, where
    s = ∂L/∂ℓ_i: c·exp(z − z_max) − smooth·w − [k = y]·true, and ``at_max`` at m."""

    coef: Tensor  # c = S s / (1 + rest)
    at_max: Tensor  # (S p_m − r_m)·s, computed without cancellation
    smooth: Tensor  # (ε/K)·s
    true: Tensor  # (1 − ε) w_y s


class SoftTerms(NamedTuple):
    """The same for probability targets: c·exp(z − z_max) − r·s, and ``at_max`` at m."""

    coef: Tensor
    at_max: Tensor
    r_scaled: Tensor  # r·s, (N, K)


# --8<-- [start:gradient]
def gradient_terms(
    rows: Rows, stats: SoftmaxStats[Tensor], scale: Tensor
) -> IndexTerms | SoftTerms:
    """The gradient's per-row numbers
    (O(N) work, or one (N, K) r for probability targets)."""
    eps, num_classes, argmax, rest = (
        rows.epsilon,
        rows.num_classes,
        stats.argmax,
        stats.rest,
    )
    # p_m = 1 / (1 + rest): the max term is exactly 1
    p_m = 1.0 / (1.0 + rest)
    # S p s = c·exp(z − z_max), with p = exp(z − z_max) / (1 + rest)
    # and c = S s / (1 + rest)
    coef = rows.total * scale * p_m
    r = None
    if rows.kind == "index":
        y, w_y = rows.index_targets()
        w_m = 1.0 if rows.w is None else rows.w[argmax]
        w_sum = num_classes if rows.w is None else rows.w.sum()
        # r_m = (ε/K) w_m + (1 − ε) w_y [y = m]
        r_m = eps / num_classes * w_m + (1.0 - eps) * w_y * (y == argmax)
        # Σ_{k≠m} r_k = (1 − ε) w_y [y ≠ m] + (ε/K)(Σ_k w_k − w_m)
        r_others = (1.0 - eps) * w_y * (y != argmax) + eps / num_classes * (w_sum - w_m)
    else:
        r = rows.r()
        r_m = r.gather(1, argmax[:, None])[:, 0]
        r_others = r.scatter(1, argmax[:, None], 0.0).sum(dim=-1)
    # at m: S p_m − r_m. Where p_m > 1/2 (rest < 1), from the other classes,
    # Σ_{k≠m} r_k − S (1 − p_m) with 1 − p_m = rest·p_m: nothing cancels as p_m → 1.
    # For a flat row that form cancels instead (both terms near S): the plain one
    at_max = torch.where(
        rest < 1.0, r_others - rows.total * rest * p_m, rows.total * p_m - r_m
    )
    if r is not None:
        return SoftTerms(coef, at_max * scale, r.mul_(scale[:, None]))
    # r = (ε/K) w + (1 − ε) w_y onehot(y): a broadcast and one entry per row
    return IndexTerms(
        coef, at_max * scale, eps / num_classes * scale, (1.0 - eps) * w_y * scale
    )


def write_gradient(
    z: Tensor,
    rows: Rows,
    stats: SoftmaxStats[Tensor],
    terms: IndexTerms | SoftTerms,
    out: Tensor,
    work: Tensor,
) -> None:
    """Write (S p − r)·s for the rows of z (in the compute dtype) into
    ``out``, which may be z itself; ``work`` (z's shape) holds it first when
    ``out`` has another dtype."""
    buf = out if out.dtype == z.dtype else work
    # S p s, the exponentials written straight into the gradient buffer
    torch.sub(z, stats.z_max[:, None], out=buf).exp_().mul_(terms.coef[:, None])
    if isinstance(terms, SoftTerms):
        buf.sub_(terms.r_scaled)
    else:
        y, _ = rows.index_targets()
        buf.sub_(
            terms.smooth[:, None] if rows.w is None else terms.smooth[:, None] * rows.w
        )
        buf.scatter_add_(1, y[:, None], -terms.true[:, None])
    buf.scatter_(1, stats.argmax[:, None], terms.at_max[:, None])
    if buf is not out:
        out.copy_(buf)


def gradient(
    z: Tensor,
    rows: Rows,
    stats: SoftmaxStats[Tensor],
    scale: Tensor,
    out: Tensor,
    work: Tensor,
) -> None:
    """Write (S p − r)·s for the rows of z into ``out`` (see write_gradient)."""
    write_gradient(z, rows, stats, gradient_terms(rows, stats, scale), out, work)


# --8<-- [end:gradient]


class Scratch(NamedTuple):
    """Scratch for one row chunk, reused by every chunk."""

    copy: (
        Tensor | None
    )  # the chunk's logits in the compute dtype (None: they are already)
    work: Tensor  # a working buffer of the chunk's shape


def row_chunks(logits: Tensor, rows: Rows) -> tuple[list[slice], Scratch]:
    """The row chunks of the logits (cache-sized on the CPU, large on a GPU)
    and their scratch."""
    itemsize = torch.finfo(rows.dtype).bits // 8
    budget = chunking.CUDA_CHUNK_BYTES if logits.is_cuda else None
    chunks = chunking.row_chunks(len(logits), logits.shape[-1], itemsize, budget)
    shape = (chunks[0].stop - chunks[0].start if chunks else 0, logits.shape[-1])
    copy = (
        None
        if logits.dtype == rows.dtype
        else logits.new_empty(shape, dtype=rows.dtype)
    )
    return chunks, Scratch(copy, logits.new_empty(shape, dtype=rows.dtype))


def in_compute_dtype(z: Tensor, scratch: Scratch) -> Tensor:
    """A row chunk of logits in the compute dtype (copied into scratch when needed)."""
    return z if scratch.copy is None else scratch.copy[: len(z)].copy_(z)

"""Label-smoothing cross-entropy inside PyTorch's autograd, with our own backward (lessons 06, 10).

:class:`LSCEFunction` computes the loss and, in ``backward``, the closed form derived in
lesson 05 instead of letting autograd differentiate a chain of ops:

    ∂ℓ_i/∂z_ij = S_i p_ij − r_ij,   r_i = w ⊙ q_i,   S_i = Σ_k r_ik.

It saves only the logits (which are alive anyway) and three numbers per row — never an
(N, K) log-probability tensor. Notation as in :mod:`lsce_scratch.losses`; classes sit on
the last axis, as in the article's module.

Lesson 09 makes it fast. Both passes stream the logits in row chunks (cache-sized on the
CPU), so the forward reads the logits once and the backward reads them once and writes
the gradient once; on a CUDA GPU with triton the two passes are Triton kernels
(:mod:`lsce_scratch.nn.triton_lsce`). Rows of more than CLASS_CHUNK classes are read a class
chunk at a time (online softmax). Opt-ins: ``grad_in_forward=True`` computes the gradient
in the forward (:class:`LSCEGradInForward`), ``inplace=True`` writes it over the logits;
:class:`LinearLSCEFunction` fuses the output layer with the loss.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from lsce_scratch import _validation as check
from lsce_scratch import fast
from lsce_scratch.losses import Prepared

# CPU row chunks: about this many bytes of float32 logits, so a chunk stays in L2.
CHUNK_BYTES = 1 << 21
# CUDA without triton: chunks bound the float32 temporaries instead.
CUDA_CHUNK_BYTES = 1 << 30
# Rows with more classes than this are read a class chunk at a time (online softmax).
CLASS_CHUNK = 1 << 15
# Use the Triton kernels on CUDA when triton is installed (set False to compare).
USE_TRITON = True
# CPU float32/float64 logits go through lsce_scratch.fast's NumPy kernel (set False to
# run the torch ops instead): its SIMD reductions are faster, and its chunks run on its
# own thread pool, where thousands of small torch ops would each fork and join torch's
# threads, which crawls whenever another process holds a core.
NUMPY_ON_CPU = True
# linear_label_smoothing_cross_entropy's row chunk of logits, in bytes: cache-sized on the
# CPU, large on a GPU, where a chunk of a few hundred rows starves the matrix products.
FUSED_CHUNK_BYTES = 64 << 20
CUDA_FUSED_CHUNK_BYTES = 1 << 30


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays; float16/bfloat16/float32 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _dtype_name(dtype: torch.dtype) -> str:
    """'float32' rather than 'torch.float32', so messages read as the NumPy core's do."""
    return str(dtype).removeprefix("torch.")


def _is_integer(t: Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _validate(
    logits: Tensor,
    target: Tensor,
    epsilon: float,
    reduction: str,
    weight: Tensor | None,
    ignore_index: int,
    defer_index_check: bool = False,
) -> str:
    """The checks of the NumPy core, on tensors; returns the target kind ('index'/'soft').

    With ``defer_index_check`` the class indices are checked after the forward pass instead,
    by :func:`_check_values`, so that a GPU training step waits for the device only once.
    """
    check.check_epsilon(epsilon)
    check.check_reduction(reduction)
    check.check_ignore_index(ignore_index)
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"logits and target must be torch tensors; got {type(logits).__name__} and "
            f"{type(target).__name__}. For NumPy arrays use lsce_scratch.lsce_forward"
        )
    num_classes = check.check_logits(
        logits.shape, _dtype_name(logits.dtype), logits.is_floating_point(), "logits.float()"
    )
    kind = check.target_kind(
        logits.shape,
        target.shape,
        _dtype_name(target.dtype),
        target.is_floating_point(),
        _is_integer(target),
    )
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but logits are on {logits.device}; "
            f"move it with target.to(logits.device)"
        )
    if kind == "index":
        if not defer_index_check:
            _check_index_range(target, num_classes, ignore_index)
    else:
        # detached: a target that requires grad must not warn about float() of a graph node
        probabilities = target.detach()
        finite = bool(torch.isfinite(probabilities).all())
        minimum = float(probabilities.min()) if target.numel() else 0.0
        check.check_soft_values(minimum, finite, ignore_index)
    if weight is not None:
        if not isinstance(weight, Tensor) or not weight.is_floating_point():
            raise TypeError(
                f"weight must be a floating-point tensor of shape ({num_classes},); "
                f"got {type(weight).__name__}"
            )
        check.check_weight(
            weight.shape,
            num_classes,
            float(weight.detach().min()) if weight.numel() else 0.0,
            bool(torch.isfinite(weight.detach()).all()),
        )
    return kind


def _check_index_range(target: Tensor, num_classes: int, ignore_index: int) -> None:
    """Raise if a class index other than ignore_index lies outside [0, K − 1]."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        check.check_index_values(target[bad].tolist(), num_classes, ignore_index)


def _check_values(
    target: Tensor, rows: _Rows, z_max: Tensor, argmax: Tensor, ignore_index: int
) -> bool:
    """Raise for NaN/+inf logits in counted rows or (on a GPU) a class index out of range;
    return whether some row has no softmax (see _rows_without_softmax). One host sync.

    NaN or +inf in a row makes its maximum NaN or +inf (see losses.nonfinite_rows), so the
    row statistics find them, even where an in-place gradient has overwritten the logits.
    A bad index was read as class 0 by the kernels (see _Rows.build), never out of bounds.
    """
    # NaN compares False: NaN and +inf fail z_max < inf, finite and −inf (masked) pass
    bad = rows.valid & ~(z_max < torch.inf)
    flags = [bad.any(), (~torch.isfinite(z_max)).any()]
    if rows.kind == "index" and target.is_cuda:
        out_of_range = (target < 0) | (target >= rows.num_classes)
        flags.append((out_of_range & rows.valid).any())
    has_bad, no_softmax, *bad_index = torch.stack(flags).tolist()
    if any(bad_index):
        _check_index_range(target, rows.num_classes, ignore_index)
    if has_bad:
        first = int(torch.nonzero(bad)[0])
        raise check.nonfinite_logits_error(
            int(bad.sum()), (first, int(argmax[first])), float(z_max[first])
        )
    return bool(no_softmax)


def _rows_without_softmax(rows: _Rows, z_max: Tensor, out: Tensor) -> None:
    """Fix the gradient of rows whose maximum is not finite (NaN, +inf or all masked).

    An ignored row gets exactly 0, whatever its logits (its scale is 0, but 0 · NaN is
    NaN); a counted row with every class masked gets NaN, as in PyTorch.
    """
    fill = torch.where(rows.valid, torch.nan, 0.0).to(out.dtype)
    # in place, one pass, no temporary of out's size
    torch.where(torch.isfinite(z_max)[:, None], out, fill[:, None], out=out)


@functools.cache
def _triton() -> ModuleType | None:
    """lsce_scratch.nn.triton_lsce, or None where triton is missing (the CPU-only wheel)."""
    try:
        from lsce_scratch.nn import triton_lsce
    except ImportError:
        return None
    return triton_lsce


@dataclass
class _Rows:
    """What the loss needs besides the logits: the targets and a few numbers per row."""

    kind: str  # "index" or "soft"
    epsilon: float
    num_classes: int
    dtype: torch.dtype  # the compute dtype
    valid: Tensor  # (N,) bool: the rows that count
    total: Tensor  # S_i = Σ_k r_ik
    w: Tensor | None  # class weights in the compute dtype
    y: Tensor | None = None  # index targets: the true class (0 on ignored rows)
    w_y: Tensor | None = None  # its class weight (ones without weights)
    soft: Tensor | None = None  # probability targets (N, K)

    @staticmethod
    def build(
        target: Tensor,
        kind: str,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        num_classes: int,
        dtype: torch.dtype,
    ) -> _Rows:
        w = None if weight is None else weight.to(dtype)
        w_sum = num_classes if w is None else w.sum()
        if kind == "soft":
            t = target.to(dtype)
            valid = torch.ones(len(t), dtype=torch.bool, device=t.device)
            # S = Σ_k w_k ((1 − ε) t_k + ε/K) = (1 − ε) Σ_k w_k t_k + (ε/K) Σ_k w_k
            weighted = t.sum(dim=-1) if w is None else t @ w
            total = (1.0 - epsilon) * weighted + epsilon / num_classes * w_sum
            return _Rows(kind, epsilon, num_classes, dtype, valid, total, w, soft=t)
        valid = target != ignore_index
        # an out-of-range index (caught later, see _check_values) reads class 0, not beyond
        y = torch.where(valid & (target >= 0) & (target < num_classes), target, 0)
        w_y = torch.ones(len(y), dtype=dtype, device=y.device) if w is None else w[y]
        # S = (1 − ε) w_y + (ε/K) Σ_k w_k
        total = (1.0 - epsilon) * w_y + epsilon / num_classes * w_sum
        return _Rows(kind, epsilon, num_classes, dtype, valid, total, w, y, w_y)

    def take(self, c: slice) -> _Rows:
        """The rows c."""
        cut = {"valid", "total", "y", "w_y", "soft"}
        return _Rows(**{
            name: value[c] if name in cut and value is not None else value
            for name, value in vars(self).items()
        })  # fmt: skip

    def r(self) -> Tensor:
        """Probability targets: r = w ⊙ ((1 − ε) t + ε/K), shape (N, K)."""
        r = self.soft * (1.0 - self.epsilon) + self.epsilon / self.num_classes
        return r if self.w is None else r.mul_(self.w)


def _uses_triton(z: Tensor, rows: _Rows) -> bool:
    """The Triton kernels take CUDA rows of float32/16 logits and index targets."""
    return (
        USE_TRITON
        and z.is_cuda
        and rows.kind == "index"
        and z.dtype != torch.float64
        and z.stride(-1) == 1
        and _triton() is not None
    )


def _row_chunks(z: Tensor) -> list[slice]:
    """Row chunks of z: cache-sized on the CPU, large on a GPU."""
    n, k = z.shape
    rows = max(1, (CUDA_CHUNK_BYTES if z.is_cuda else CHUNK_BYTES) // (4 * k))
    return [slice(a, min(a + rows, n)) for a in range(0, n, rows)]


# --8<-- [start:statistics]
def _partial(z: Tensor, offset: int, a: Tensor | None, work: Tensor) -> tuple[Tensor, ...]:
    """Row statistics of a block of classes: z_max, argmax, rest, gap and mass.

    gap = Σ_k a_k (z_max − z_k) and mass = Σ_k a_k, for smoothing weights a (w, r or 1);
    ``work`` is scratch space of z's shape. A masked class (z_k = −inf) adds 0 to rest and
    a_k·∞ to gap (inf, or NaN where a_k = 0, as PyTorch's 0 · log 0).
    """
    # m = argmax_k z_k and z_max = z_m (NaN if the block holds one)
    z_max, argmax = z.max(dim=-1)
    # z − z_max ≤ 0, exactly 0 at m. A block whose classes are all masked is shifted by 0
    # instead (−inf − (−inf) would be NaN): its exponentials are 0 and gap is Σ_k a_k·∞
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
    return z_max, argmax + offset, rest, gap, mass


def _merge(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Combine the statistics of two disjoint blocks of classes (online softmax)."""
    # a NaN max wins, so that NaN logits show in z_max (see _check_values)
    b_wins = (b[0] > a[0]) | torch.isnan(b[0])
    hi = [torch.where(b_wins, y, x) for x, y in zip(a, b, strict=True)]
    lo = [torch.where(b_wins, x, y) for x, y in zip(a, b, strict=True)]
    # a side whose classes are all masked has no max term, and its gap holds Σ_k a_k·∞
    masked = lo[0] == -torch.inf
    # the other side is rescaled by exp(lo − hi) ≤ 1, and its own max term joins rest
    rest = hi[2] + (lo[2] + 1.0) * torch.where(masked, 0.0, torch.exp(lo[0] - hi[0]))
    # its smoothing sum grows by its mass·(hi − lo): every term stays ≥ 0
    gap = hi[3] + lo[3] + torch.where(masked, 0.0, lo[4] * (hi[0] - lo[0]))
    return hi[0], hi[1], rest, gap, hi[4] + lo[4]


def _statistics(z: Tensor, a: Tensor | None, work: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """z_max, argmax, rest and gap of each row of z, CLASS_CHUNK classes at a time."""
    state = None
    for c0 in range(0, z.shape[-1], CLASS_CHUNK):
        cols = slice(c0, c0 + CLASS_CHUNK)
        block = z[:, cols]
        scratch = work[: len(z), : block.shape[1]]
        part = _partial(block, c0, None if a is None else a[..., cols], scratch)
        state = part if state is None else _merge(state, part)
    return state[:4]


# --8<-- [end:statistics]


# --8<-- [start:gradient]
def _gradient(
    z: Tensor,
    rows: _Rows,
    z_max: Tensor,
    argmax: Tensor,
    rest: Tensor,
    scale: Tensor,
    out: Tensor,
    work: Tensor | None = None,
) -> None:
    """Write (S p − r)·s for the rows of z into ``out``, which may be z itself.

    z is in the compute dtype (or the raw logits for the Triton kernel); the row
    statistics and the row scale s = ∂L/∂ℓ_i belong to the same rows. ``work`` (z's
    shape) is where a gradient for an ``out`` of another dtype is computed.
    """
    eps, num_classes = rows.epsilon, rows.num_classes
    # p_m = 1 / (1 + rest): the max term is exactly 1
    p_m = 1.0 / (1.0 + rest)
    # S p s = c·exp(z − z_max), with p = exp(z − z_max) / (1 + rest) and c = S s / (1 + rest)
    coef = rows.total * scale * p_m
    if rows.kind == "index":
        w_m = 1.0 if rows.w is None else rows.w[argmax]
        w_sum = num_classes if rows.w is None else rows.w.sum()
        # r_m = (ε/K) w_m + (1 − ε) w_y [y = m]
        r_m = eps / num_classes * w_m + (1.0 - eps) * rows.w_y * (rows.y == argmax)
        # Σ_{k≠m} r_k = (1 − ε) w_y [y ≠ m] + (ε/K)(Σ_k w_k − w_m)
        r_others = (1.0 - eps) * rows.w_y * (rows.y != argmax) + eps / num_classes * (w_sum - w_m)
        # r = (ε/K) w + (1 − ε) w_y onehot(y): a broadcast and one entry per row
        smooth, true_sub = eps / num_classes * scale, (1.0 - eps) * rows.w_y * scale
    else:
        r = rows.r()
        r_m = r.gather(1, argmax[:, None])[:, 0]
        r_others = r.scatter(1, argmax[:, None], 0.0).sum(dim=-1)
    # at m: S p_m − r_m. Where p_m > 1/2 (rest < 1), from the other classes,
    # Σ_{k≠m} r_k − S (1 − p_m) with 1 − p_m = rest·p_m: nothing cancels as p_m → 1. For a
    # flat row that form cancels instead (both terms near S): the plain one
    m_val = torch.where(rest < 1.0, r_others - rows.total * rest * p_m, rows.total * p_m - r_m)
    m_val = m_val * scale
    if _uses_triton(z, rows):
        _triton().gradient(z, rows.w, z_max, argmax, rows.y, coef, smooth, true_sub, m_val, out)
        return
    buf = out if out.dtype == z.dtype else work
    # S p s, the exponentials written straight into the gradient buffer
    torch.sub(z, z_max[:, None], out=buf).exp_().mul_(coef[:, None])
    if rows.kind == "index":
        buf.sub_(smooth[:, None] if rows.w is None else smooth[:, None] * rows.w)
        buf.scatter_add_(1, rows.y[:, None], -true_sub[:, None])
    else:
        buf.sub_(r.mul_(scale[:, None]))
    buf.scatter_(1, argmax[:, None], m_val[:, None])
    if buf is not out:
        out.copy_(buf)


# --8<-- [end:gradient]


def _on_numpy(logits: Tensor) -> bool:
    """CPU float32/float64 logits go through the NumPy kernel (see NUMPY_ON_CPU)."""
    return (
        NUMPY_ON_CPU
        and logits.device.type == "cpu"
        and logits.dtype in (torch.float32, torch.float64)
    )


def _numpy_pass(
    logits: Tensor,
    rows: _Rows,
    scale: Tensor | None,
    out: Tensor | None,
    saved: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, ...] | None:
    """lsce_scratch.fast's kernel on NumPy views of the tensors (no copies).

    Returns (ℓ_i, z_max, argmax, rest); with ``scale`` and ``out`` it writes the gradient
    to ``out`` as well (which may be the logits themselves). Given the ``saved``
    (z_max, argmax, rest), it only writes the gradient.
    """
    z = logits.detach().numpy()
    target = rows.y if rows.kind == "index" else rows.soft
    weight = None if rows.w is None else rows.w.numpy()
    prep = Prepared(
        z, target.numpy(), rows.kind, rows.valid.numpy(), weight, rows.epsilon, "sum",
        (len(z),), z.dtype,
    )  # fmt: skip
    info = fast.row_info(prep, np.zeros(len(z), z.dtype) if scale is None else scale.numpy())
    grad = None if out is None else out.numpy()
    if saved is not None:
        return fast.lsce_rows(prep, info, 0, z, grad, tuple(t.numpy() for t in saved))
    return tuple(torch.from_numpy(a) for a in fast.lsce_rows(prep, info, 0, z, grad))


def _empty_like(logits: Tensor) -> Tensor:
    """A tensor for the gradient. On the CPU, NumPy's: it asks the kernel for transparent
    huge pages, torch's allocator does not, and a fresh page costs a fault."""
    if _on_numpy(logits):
        return torch.from_numpy(np.empty(logits.shape, _dtype_name(logits.dtype)))
    return torch.empty_like(logits)


def _forward_pass(
    logits: Tensor, rows: _Rows, scale: Tensor | None = None, out: Tensor | None = None
) -> tuple[Tensor, ...]:
    """(ℓ_i, z_max, argmax, rest) for every row, in one read of the logits.

    With ``scale`` and ``out``, each chunk's gradient is written to ``out`` while the
    chunk is still in cache: the gradient computed in the forward.
    """
    if _on_numpy(logits):
        return _numpy_pass(logits, rows, scale, out)
    # z_y is read first: an in-place gradient overwrites it
    z_y = _true_logit(logits, rows)
    z_max, argmax, rest, gap = _statistics_pass(logits, rows, scale, out)
    return _row_loss(rows, z_y, z_max, rest, gap), z_max, argmax, rest


def _statistics_pass(
    logits: Tensor, rows: _Rows, scale: Tensor | None, out: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """z_max, argmax, rest and gap of every row: a Triton kernel or torch ops on chunks."""
    if _uses_triton(logits, rows):
        stats = _triton().statistics(logits, rows.w)
        if out is not None:
            # the gradient in the forward: a second read of the logits, then one write
            _gradient(logits, rows, *stats[:3], scale, out)
        return stats
    parts = []
    chunks = _row_chunks(logits)
    work = _work(logits, rows, chunks)
    for c in chunks:
        chunk = rows.take(c)
        z = _compute(logits[c], rows, work)
        stats = _statistics(z, chunk.w if rows.kind == "index" else chunk.r(), work[1])
        if out is not None:
            _gradient(z, chunk, *stats[:3], scale[c], out[c], work[1][: len(z)])
        parts.append(stats)
    if not parts:
        empty = logits.new_empty(0, dtype=rows.dtype)
        return empty, empty.long(), empty, empty
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


def _backward_pass(
    logits: Tensor,
    rows: _Rows,
    z_max: Tensor,
    argmax: Tensor,
    rest: Tensor,
    scale: Tensor,
    out: Tensor,
) -> None:
    """∂L/∂logits rebuilt from the row statistics into ``out`` (which may be the logits
    themselves): one read, one write."""
    if _on_numpy(logits):
        _numpy_pass(logits, rows, scale, out, (z_max, argmax, rest))
        return
    if _uses_triton(logits, rows):
        _gradient(logits, rows, z_max, argmax, rest, scale, out)
        return
    chunks = _row_chunks(logits)
    work = _work(logits, rows, chunks)
    for c in chunks:
        z = _compute(logits[c], rows, work)
        g = (z_max[c], argmax[c], rest[c], scale[c], out[c], work[1][: len(z)])
        _gradient(z, rows.take(c), *g)


# --8<-- [start:target-gradient]
def _target_gradient(
    logits: Tensor, rows: _Rows, z_max: Tensor, rest: Tensor, scale: Tensor
) -> Tensor:
    """∂L/∂t for probability targets t, from the row statistics (before any in-place
    gradient has overwritten the logits)."""
    # log p = (z − z_max) − log(1 + rest): −inf at a masked class, NaN on an all-masked row
    log_p = (logits.to(rows.dtype) - z_max[:, None]).sub_(torch.log1p(rest)[:, None])
    # r = w ⊙ ((1 − ε) t + ε/K), so ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik, times s = ∂L/∂ℓ_i
    grad = log_p.mul_((-(1.0 - rows.epsilon) * scale)[:, None])
    return grad if rows.w is None else grad.mul_(rows.w)


# --8<-- [end:target-gradient]


def _work(logits: Tensor, rows: _Rows, chunks: list[slice]) -> tuple[Tensor | None, Tensor]:
    """Scratch for one row chunk, reused by every chunk: a compute-dtype copy of the
    logits (None when they are in the compute dtype already) and a working buffer."""
    n = chunks[0].stop - chunks[0].start if chunks else 0
    shape = (n, logits.shape[-1])
    copy = None if logits.dtype == rows.dtype else logits.new_empty(shape, dtype=rows.dtype)
    return copy, logits.new_empty(shape, dtype=rows.dtype)


def _compute(z: Tensor, rows: _Rows, work: tuple[Tensor | None, Tensor]) -> Tensor:
    """A row chunk of logits in the compute dtype (copied into scratch when needed)."""
    return z if work[0] is None else work[0][: len(z)].copy_(z)


def _true_logit(logits: Tensor, rows: _Rows) -> Tensor | None:
    """z_y per row for index targets (read before an in-place gradient overwrites it)."""
    if rows.kind == "soft":
        return None
    return logits.gather(1, rows.y[:, None])[:, 0].to(rows.dtype)


def _row_loss(rows: _Rows, z_y: Tensor | None, z_max: Tensor, rest: Tensor, gap: Tensor) -> Tensor:
    """ℓ_i for every row; ignored rows count 0."""
    eps, num_classes = rows.epsilon, rows.num_classes
    if rows.kind == "index":
        # Σ_k r_k (z_max − z_k) = (1 − ε) w_y (z_max − z_y) + (ε/K) Σ_k w_k (z_max − z_k);
        # PyTorch leaves the second sum out at ε = 0, where a masked class makes it 0 · ∞
        true_term = (1.0 - eps) * rows.w_y * (z_max - z_y)
        gap = true_term + eps / num_classes * gap if eps > 0 else true_term
    # ℓ_i = Σ_k r_ik (z_max − z_ik) + S_i log(1 + rest_i); a row with every class masked
    # has no softmax (NaN, as in PyTorch)
    row_loss = torch.where(z_max == -torch.inf, torch.nan, gap + rows.total * torch.log1p(rest))
    return torch.where(rows.valid, row_loss, 0.0)


def _denominator(rows: _Rows, reduction: str) -> Tensor | None:
    """The 'mean' divisor: Σ_i w_{y_i} over non-ignored rows (index targets), N (soft)."""
    if reduction != "mean":
        return None
    if rows.kind == "index":
        total = torch.where(rows.valid, rows.w_y, 0.0).sum()
    else:
        total = torch.tensor(float(len(rows.valid)), dtype=rows.dtype, device=rows.valid.device)
    # a zero denominator (all ignored) makes the mean undefined: NaN, as in PyTorch
    return torch.where(total == 0, torch.nan, total)


def _reduce(row_loss: Tensor, reduction: str, denominator: Tensor | None) -> Tensor:
    if reduction == "none":
        return row_loss
    return row_loss.sum() if reduction == "sum" else row_loss.sum() / denominator


def _row_scale(
    grad_output: Tensor, denominator: Tensor | None, rows: _Rows, reduction: str
) -> Tensor:
    """∂L/∂ℓ_i for every row: grad_output through the reduction; ignored rows get 0."""
    scale = grad_output.to(rows.dtype)
    if reduction == "mean":
        scale = scale / denominator
    return torch.where(rows.valid, scale, 0.0)


def _refuse_double_backward() -> None:
    if torch.is_grad_enabled():
        # create_graph=True: autograd would differentiate this closed form as if it were
        # the function, giving a wrong second derivative. Refuse instead.
        raise RuntimeError(
            "LSCEFunction does not support double backward (create_graph=True): its "
            "backward is a hand-derived closed form. For second derivatives use "
            "torch.nn.functional.cross_entropy(..., label_smoothing=epsilon)"
        )


class LSCEFunction(torch.autograd.Function):
    """LSCE on (N, K) logits with the hand-derived backward.

    ``LSCEFunction.apply(logits, target, epsilon, weight, ignore_index, reduction, kind)``
    takes 2-D logits, flat index targets (N,) or probabilities (N, K), and returns the
    reduced loss (a scalar, or (N,) for 'none'). The functional and the module below
    validate arguments and handle any leading shape; call those instead. Probability
    targets that require grad get ∂L/∂t as well.
    """

    # --8<-- [start:forward]
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        target: Tensor,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        reduction: str,
        kind: str,
    ) -> Tensor:
        dtype = _compute_dtype(logits.dtype)
        rows = _Rows.build(target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype)
        # per row: z_max, its index m, rest = Σ_{k≠m} exp(z_k − z_max) and the loss
        # ℓ_i = Σ_k r_ik (z_max − z_ik) + S_i log(1 + rest_i), in one read of the logits
        # (see _statistics)
        row_loss, z_max, argmax, rest = _forward_pass(logits, rows)
        ctx.no_softmax = _check_values(target, rows, z_max, argmax, ignore_index)
        denominator = _denominator(rows, reduction)
        log1p_rest = torch.log1p(rest)
        ctx.save_for_backward(logits, target, weight, z_max, log1p_rest, rest, argmax, denominator)
        ctx.options = (epsilon, ignore_index, reduction, kind)
        return _reduce(row_loss, reduction, denominator).to(logits.dtype)

    # --8<-- [end:forward]

    # --8<-- [start:backward]
    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        _refuse_double_backward()
        logits, target, weight, z_max, log1p_rest, rest, argmax, denominator = ctx.saved_tensors
        epsilon, ignore_index, reduction, kind = ctx.options
        dtype = _compute_dtype(logits.dtype)
        rows = _Rows.build(target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype)
        # chain rule through the reduction: 'mean' divides by Σ w_{y_i}; ignored rows get 0
        scale = _row_scale(grad_output, denominator, rows, reduction)
        grad = grad_target = None
        if ctx.needs_input_grad[0]:
            # ∂ℓ/∂z = S p − r, rebuilt from the saved row statistics straight into the
            # gradient buffer (see _gradient); one read of the logits, one write
            grad = _empty_like(logits)
            _backward_pass(logits, rows, z_max, argmax, rest, scale, grad)
            if ctx.no_softmax:
                _rows_without_softmax(rows, z_max, grad)
        if ctx.needs_input_grad[1]:
            # probability targets: ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik (see _target_gradient)
            grad_target = _target_gradient(logits, rows, z_max, rest, scale).to(target.dtype)
        return grad, grad_target, None, None, None, None, None

    # --8<-- [end:backward]


def _loss_and_gradients(
    logits: Tensor, rows: _Rows, scale: Tensor, out: Tensor | None, target_grad: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """(ℓ_i, z_max, argmax, rest, ∂L/∂t or None), writing ∂L/∂logits to ``out`` (which
    may be the logits themselves; None when not wanted) for the row scale ``scale``.

    One read of the logits; when ∂L/∂t is wanted, two: it needs log p, which an in-place
    gradient would overwrite, so the gradient then comes in a second pass.
    """
    if not target_grad:
        return (*_forward_pass(logits, rows, scale, out), None)
    row_loss, z_max, argmax, rest = _forward_pass(logits, rows)
    grad_target = _target_gradient(logits, rows, z_max, rest, scale)
    if out is not None:
        _backward_pass(logits, rows, z_max, argmax, rest, scale, out)
    return row_loss, z_max, argmax, rest, grad_target


# --8<-- [start:grad-in-forward]
class LSCEGradInForward(torch.autograd.Function):
    """LSCE whose forward also computes ∂L/∂logits; its backward only scales it.

    ``apply(logits, target, epsilon, weight, ignore_index, reduction, kind, inplace)``.
    One read of the logits and one write of the gradient in all; the gradient (one tensor
    the size of the logits) is held from the forward to the backward, which may run once.
    With ``inplace=True`` the gradient is written over the logits themselves, so no
    memory is added, but the logits' values are gone: any op that saved the logits for
    its own backward would read gradients instead. The write bumps the logits' version
    counter, so autograd raises ("modified by an inplace operation") instead of silently
    computing wrong gradients (the Liger-Kernel #272 bug).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        target: Tensor,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        reduction: str,
        kind: str,
        inplace: bool,
    ) -> Tensor:
        dtype = _compute_dtype(logits.dtype)
        rows = _Rows.build(target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype)
        denominator = _denominator(rows, reduction)
        # the gradients for grad_output = 1; the backward multiplies by the real one
        one = torch.ones((), dtype=dtype, device=logits.device)
        scale = _row_scale(one, denominator, rows, reduction)
        grad = None
        if ctx.needs_input_grad[0]:
            grad = logits.detach() if inplace else _empty_like(logits)
        row_loss, z_max, argmax, rest, grad_target = _loss_and_gradients(
            logits, rows, scale, grad, ctx.needs_input_grad[1]
        )
        if inplace and grad is not None:
            # NumPy's and Triton's writes are invisible to autograd: bump the version
            torch.autograd.graph.increment_version(logits)
        # the checks read the row statistics, not the logits (gone if written over)
        if _check_values(target, rows, z_max, argmax, ignore_index) and grad is not None:
            _rows_without_softmax(rows, z_max, grad)
        if grad_target is not None:
            grad_target = grad_target.to(target.dtype)
        ctx.grads = (grad, grad_target)
        return _reduce(row_loss, reduction, denominator).to(logits.dtype)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        _refuse_double_backward()
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            raise RuntimeError(
                "the gradient computed in the forward (grad_in_forward=True) was already "
                "handed to autograd: backward can run once. Run the forward again, or use "
                "grad_in_forward=False to backward several times (retain_graph=True)"
            )
        # the forward's gradients are for grad_output = 1 (for 'none', 1 on every row)
        if not bool((grad_output == 1).all()):
            upstream = grad_output[:, None] if grad_output.dim() else grad_output
            grads = tuple(None if g is None else g.mul_(upstream) for g in grads)
        return (*grads, None, None, None, None, None, None)


# --8<-- [end:grad-in-forward]


# torch.compile treats the loss as one opaque call (a graph break): it syncs with the host
# to check its inputs and runs NumPy or Triton kernels, none of which a graph can hold
@torch.compiler.disable
def label_smoothing_cross_entropy(
    logits: Tensor,
    target: Tensor,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    grad_in_forward: bool = False,
    inplace: bool = False,
) -> Tensor:
    """LSCE with classes on the last axis: logits (..., K), target (...) indices or (..., K).

    Equals ``F.cross_entropy(movedim(logits, -1, 1), target, weight, ignore_index=...,
    reduction=..., label_smoothing=epsilon)``; the backward is our closed form.

    ``grad_in_forward=True`` computes the gradient during the forward
    (:class:`LSCEGradInForward`): the backward is then free, but the gradient is held
    until it runs, and it may run only once. ``inplace=True`` (implies grad_in_forward)
    writes that gradient over ``logits``: use it only when nothing else needs the logits
    after the loss. Logits that are a leaf requiring grad, or whose entries share memory
    (an expanded view), are refused. Under ``torch.autocast`` the loss is computed from
    float32 logits and returned in float32, as ``F.cross_entropy`` does there.
    """
    kind = _validate(
        logits, target, epsilon, reduction, weight, ignore_index, defer_index_check=logits.is_cuda
    )
    if inplace and logits.is_leaf and logits.requires_grad:
        raise ValueError(
            "inplace=True would overwrite logits that are a leaf tensor requiring grad (a "
            "parameter, or an input you asked gradients for) with their gradient; pass "
            "logits computed by the model, or use inplace=False"
        )
    device_type = logits.device.type
    autocast = torch.is_autocast_enabled(device_type)
    if autocast:
        # autocast runs cross-entropy in float32 (float64 stays): the same inputs for us
        logits, target, weight = (_autocast_float32(t) for t in (logits, target, weight))
    num_classes = logits.shape[-1]
    leading = logits.shape[:-1]
    flat = logits.reshape(-1, num_classes)
    if inplace and _entries_share_memory(flat):
        raise ValueError(
            f"inplace=True would write the gradient over logits whose entries share memory "
            f"(strides {tuple(logits.stride())}: an expanded or overlapping view), so one "
            f"entry would receive the gradients of several; pass logits.contiguous(), or "
            f"use inplace=False"
        )
    flat_target = target.reshape(-1).long() if kind == "index" else target.reshape(-1, num_classes)
    args = (flat, flat_target, float(epsilon), weight, int(ignore_index), reduction, kind)
    # our ops must run in the dtypes chosen above, not in autocast's
    with torch.autocast(device_type, enabled=False) if autocast else contextlib.nullcontext():
        if grad_in_forward or inplace:
            loss = LSCEGradInForward.apply(*args, bool(inplace))
        else:
            loss = LSCEFunction.apply(*args)
    return loss.reshape(leading) if reduction == "none" else loss


def _autocast_float32(t: Tensor | None) -> Tensor | None:
    """What autocast gives a float32 op: floating tensors in float32, float64 left alone."""
    if t is None or not t.is_floating_point() or t.dtype == torch.float64:
        return t
    return t.float()


def _entries_share_memory(t: Tensor) -> bool:
    """Whether two entries of t may occupy the same memory (stride 0, overlapping strides).

    Dimensions in order of stride: each must step past everything the smaller ones reach.
    """
    reach = 1  # one past the largest offset the dimensions so far reach
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape, strict=True) if n > 1):
        if stride < reach:
            return True
        reach += (size - 1) * stride
    return False


class LabelSmoothingCrossEntropy(nn.Module):
    """The article's module, with our backward: ``LabelSmoothingCrossEntropy(epsilon=0.1)``.

    Adds PyTorch's ``weight`` and ``ignore_index``, and lesson 09's ``grad_in_forward`` and
    ``inplace`` (see :func:`label_smoothing_cross_entropy`); classes on the last axis.
    """

    def __init__(
        self,
        epsilon: float = 0.1,
        reduction: str = "mean",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        grad_in_forward: bool = False,
        inplace: bool = False,
    ) -> None:
        super().__init__()
        self.epsilon = check.check_epsilon(epsilon)
        self.reduction = check.check_reduction(reduction)
        self.ignore_index = check.check_ignore_index(ignore_index)
        self.grad_in_forward = bool(grad_in_forward)
        self.inplace = bool(inplace)
        self.register_buffer("weight", weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(
            logits,
            target,
            self.epsilon,
            reduction=self.reduction,
            weight=self.weight,
            ignore_index=self.ignore_index,
            grad_in_forward=self.grad_in_forward,
            inplace=self.inplace,
        )

    def extra_repr(self) -> str:
        text = f"epsilon={self.epsilon}, reduction={self.reduction!r}"
        if self.grad_in_forward or self.inplace:
            text += f", grad_in_forward=True, inplace={self.inplace}"
        return text


# --8<-- [start:linear]
class LinearLSCEFunction(torch.autograd.Function):
    """A linear layer fused with LSCE; the (N, K) logits are never held (Liger's FLCE).

    ``apply(hidden, lin_weight, lin_bias, target, epsilon, weight, ignore_index,
    reduction, kind, chunk_rows)`` with hidden (N, H), lin_weight (K, H), lin_bias (K,) or
    None. The forward walks the rows ``chunk_rows`` at a time: the chunk's logits
    z = h Wᵀ + b, their gradient in place, and at once ∂L/∂h = (∂L/∂z) W,
    ∂L/∂W += (∂L/∂z)ᵀ h, ∂L/∂b += Σ_i ∂L/∂z_i. The backward scales these by grad_output.
    Extra memory: one chunk of logits; the price is time (W is read once per chunk).
    The loss comes back in the compute dtype (float32 for half-precision inputs).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        hidden: Tensor,
        lin_weight: Tensor,
        lin_bias: Tensor | None,
        target: Tensor,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        reduction: str,
        kind: str,
        chunk_rows: int,
    ) -> Tensor:
        num_rows, num_classes = len(hidden), len(lin_weight)
        dtype = _compute_dtype(hidden.dtype)
        rows = _Rows.build(target, kind, epsilon, weight, ignore_index, num_classes, dtype)
        denominator = _denominator(rows, reduction)
        one = torch.ones((), dtype=dtype, device=hidden.device)
        scale = _row_scale(one, denominator, rows, reduction)
        need_h, need_w, need_b, need_t = ctx.needs_input_grad[:4]
        d_hidden = torch.empty_like(hidden) if need_h else None
        # ∂L/∂W and ∂L/∂b add up over chunks: accumulate in the compute dtype
        d_weight = lin_weight.new_zeros(lin_weight.shape, dtype=dtype) if need_w else None
        d_bias = lin_weight.new_zeros(num_classes, dtype=dtype) if need_b else None
        d_target = torch.empty_like(target) if need_t else None
        row_loss = hidden.new_empty(num_rows, dtype=dtype)
        bad = torch.zeros((), dtype=torch.bool, device=hidden.device)
        for a in range(0, num_rows, chunk_rows):
            c = slice(a, min(a + chunk_rows, num_rows))
            h, chunk = hidden[c], rows.take(c)
            # the chunk's logits z = h Wᵀ + b; they become ∂L/∂z in place
            z = h @ lin_weight.T if lin_bias is None else torch.addmm(lin_bias, h, lin_weight.T)
            row_loss[c], z_max, _, _, chunk_d_target = _loss_and_gradients(
                z, chunk, scale[c], z, need_t
            )
            # NaN or +inf logits in a counted row (see _check_values); −inf masks a class
            bad = bad | (chunk.valid & ~(z_max < torch.inf)).any()
            if not _on_numpy(z):
                # (the NumPy kernel does this itself) every chunk: a host sync to skip it
                # would stall the GPU
                _rows_without_softmax(chunk, z_max, z)
            if need_t:
                d_target[c] = chunk_d_target
            if need_h:
                # ∂L/∂h = (∂L/∂z) W
                torch.matmul(z, lin_weight, out=d_hidden[c])
            if need_w:
                # ∂L/∂W += (∂L/∂z)ᵀ h
                d_weight.addmm_(z.T.to(dtype), h.to(dtype))
            if need_b:
                # ∂L/∂b += Σ_i ∂L/∂z_i
                d_bias += z.sum(dim=0, dtype=dtype)
        if bool(bad):
            raise ValueError(
                "the logits hidden @ lin_weightᵀ + lin_bias hold NaN or +inf in a row that "
                "counts: hidden, lin_weight or lin_bias contains NaN or ±inf, or the product "
                "overflows (lin_bias may hold −inf: that masks a class)"
            )
        ctx.grads = (
            d_hidden,
            None if d_weight is None else d_weight.to(lin_weight.dtype),
            None if d_bias is None else d_bias.to(lin_bias.dtype),
            d_target,
        )
        return _reduce(row_loss, reduction, denominator)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        _refuse_double_backward()
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            raise RuntimeError(
                "the fused linear LSCE computes its gradients in the forward; backward can "
                "run once. Run the forward again"
            )
        if not bool(grad_output == 1):
            grads = tuple(None if g is None else g.mul_(grad_output) for g in grads)
        return (*grads, None, None, None, None, None, None)


# --8<-- [end:linear]


@torch.compiler.disable  # as label_smoothing_cross_entropy
def linear_label_smoothing_cross_entropy(
    hidden: Tensor,
    lin_weight: Tensor,
    target: Tensor,
    epsilon: float = 0.1,
    *,
    lin_bias: Tensor | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    chunk_rows: int | None = None,
) -> Tensor:
    """LSCE of the logits ``hidden @ lin_weight.T + lin_bias``, never storing them.

    hidden (..., H), lin_weight (K, H), lin_bias (K,) or None; target (...) class indices
    or (..., K) probabilities; the other arguments as in
    :func:`label_smoothing_cross_entropy`. Equal to that function applied to the logits,
    with the extra memory of ``chunk_rows`` rows of logits instead of all of them. Its
    gradients are computed in the forward, so 'none' (whose upstream gradient is only
    known later) is not offered, and backward runs once. Under ``torch.autocast`` the
    product runs in autocast's dtype and the loss comes back in float32, as with
    ``F.linear`` followed by ``F.cross_entropy`` (or ``F.linear_cross_entropy``).
    """
    for name, t in (("hidden", hidden), ("lin_weight", lin_weight)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor; got {type(t).__name__}")
    if hidden.dim() < 1 or lin_weight.dim() != 2 or lin_weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"hidden must be (..., H) and lin_weight (K, H) with the same H; got shapes "
            f"{tuple(hidden.shape)} and {tuple(lin_weight.shape)}"
        )
    num_classes = lin_weight.shape[0]
    if lin_bias is not None and (
        not isinstance(lin_bias, Tensor) or tuple(lin_bias.shape) != (num_classes,)
    ):
        raise ValueError(f"lin_bias must be a tensor of shape ({num_classes},), one per class")
    if reduction == "none":
        raise ValueError(
            "reduction='none' is not offered by the fused linear loss: it computes the "
            "gradients in the forward, before the per-row upstream gradient is known. Use "
            "'sum' or 'mean', or the unfused label_smoothing_cross_entropy"
        )
    device_type = hidden.device.type
    autocast = torch.is_autocast_enabled(device_type)
    if autocast:
        # as F.linear under autocast: the product in autocast's dtype (float64 stays)
        low = torch.get_autocast_dtype(device_type)
        hidden, lin_weight, lin_bias = (
            t if t is None or t.dtype == torch.float64 else t.to(low)
            for t in (hidden, lin_weight, lin_bias)
        )
    # _validate checks the targets against the logits' shape; a stride-0 view of one
    # zero stands in for the logits, which are never built
    stand_in = hidden.new_zeros(()).expand(hidden.shape[:-1] + (num_classes,))
    kind = _validate(stand_in, target, epsilon, reduction, weight, ignore_index)
    flat_target = target.reshape(-1).long() if kind == "index" else target.reshape(-1, num_classes)
    itemsize = torch.finfo(_compute_dtype(hidden.dtype)).bits // 8
    chunk_bytes = CUDA_FUSED_CHUNK_BYTES if hidden.is_cuda else FUSED_CHUNK_BYTES
    rows = chunk_rows or max(1, chunk_bytes // (num_classes * itemsize))
    # our ops must run in the dtypes chosen above, not in autocast's
    with torch.autocast(device_type, enabled=False) if autocast else contextlib.nullcontext():
        loss = LinearLSCEFunction.apply(
            hidden.reshape(-1, hidden.shape[-1]),
            lin_weight,
            lin_bias,
            flat_target,
            float(epsilon),
            weight,
            int(ignore_index),
            reduction,
            kind,
            int(rows),
        )
    # F.cross_entropy's float32 under autocast, else the input dtype
    return loss if autocast else loss.to(hidden.dtype)


# --8<-- [start:composite]
class CompositeLabelSmoothingCrossEntropy(nn.Module):
    """The article's formulation, written from its formula: autograd does the backward.

    ℓ = ε·mean_k(−log p_k) + (1 − ε)·(−log p_y), reduced by mean or sum. Like the article's
    module it has no class weights and no ignore_index; it accepts any leading shape.
    """

    def __init__(self, epsilon: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        self.epsilon = check.check_epsilon(epsilon)
        self.reduction = check.check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        # log p = log_softmax(z); autograd keeps this (N, K) tensor for the backward
        log_p = F.log_softmax(logits.reshape(-1, num_classes), dim=-1)
        # mean_k(−log p_k) per row: the uniform part of the target
        uniform = -log_p.mean(dim=-1)
        # −log p_y per row
        nll = -log_p.gather(1, target.reshape(-1, 1))[:, 0]
        # ε·uniform + (1 − ε)·nll, the article's linear combination
        row_loss = self.epsilon * uniform + (1.0 - self.epsilon) * nll
        if self.reduction == "none":
            return row_loss.reshape(logits.shape[:-1])
        return row_loss.mean() if self.reduction == "mean" else row_loss.sum()


# --8<-- [end:composite]

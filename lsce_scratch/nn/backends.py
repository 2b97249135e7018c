"""Which kernel runs a pass of the fast path over all rows (lesson 09).

- CPU float32/float64 logits: the NumPy kernel of :mod:`lsce_scratch.fast`, on NumPy
  views of the tensors (no copies);
- CUDA logits with class-index targets (float32, float16, bfloat16) where triton is
  installed: the Triton kernels of :mod:`lsce_scratch.nn.triton_lsce`;
- anything else: torch ops in row chunks (:mod:`lsce_scratch.nn.torch_chunks`).

A forward pass reads the logits once and gives each row's loss and softmax statistics
(with ``scale`` and ``out``, it writes the gradient while a chunk is in cache); a
backward pass rebuilds the gradient from the statistics: one read, one write. The
switches below are read at each call.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

from lsce_scratch import fast
from lsce_scratch.losses import Prepared
from lsce_scratch.nn import torch_chunks
from lsce_scratch.nn.function import target_gradient
from lsce_scratch.nn.rows import Rows
from lsce_scratch.nn.validation import dtype_name
from lsce_scratch.row_stats import RowLosses, SoftmaxState, SoftmaxStats

# Use the Triton kernels on CUDA when triton is installed (set False to compare).
USE_TRITON = True
# CPU float32/float64 logits go through lsce_scratch.fast's NumPy kernel (set False to
# run the torch ops instead): its SIMD reductions are faster, and its chunks run on its
# own thread pool, where thousands of small torch ops would each fork and join torch's
# threads, which crawls whenever another process holds a core.
NUMPY_ON_CPU = True


@functools.cache
def triton_kernels() -> ModuleType | None:
    """lsce_scratch.nn.triton_lsce, or None where triton is missing
    (the CPU-only wheel)."""
    try:
        from lsce_scratch.nn import triton_lsce
    except ImportError:
        return None
    return triton_lsce


def uses_triton(z: Tensor, rows: Rows) -> bool:
    """Whether these rows go to the Triton kernels (where triton is installed): CUDA
    rows of float32/16 logits with index targets."""
    return (
        USE_TRITON
        and z.is_cuda
        and rows.kind == "index"
        and z.dtype != torch.float64
        and z.stride(-1) == 1
    )


def on_numpy(logits: Tensor) -> bool:
    """CPU float32/float64 logits go through the NumPy kernel (see NUMPY_ON_CPU)."""
    return (
        NUMPY_ON_CPU
        and logits.device.type == "cpu"
        and logits.dtype in (torch.float32, torch.float64)
    )


def empty_like(logits: Tensor) -> Tensor:
    """A tensor for the gradient. On the CPU, NumPy's: it asks the kernel for
    transparent huge pages, torch's allocator does not,
    and a fresh page costs a fault."""
    if on_numpy(logits):
        return torch.from_numpy(np.empty(logits.shape, dtype_name(logits.dtype)))
    return torch.empty_like(logits)


def _numpy_pass(
    logits: Tensor,
    rows: Rows,
    scale: Tensor | None,
    out: Tensor | None,
    saved: SoftmaxStats[Tensor] | None = None,
) -> RowLosses[Tensor] | None:
    """lsce_scratch.fast's kernel on NumPy views of the tensors: the rows' losses and
    statistics, and with ``scale`` and ``out`` the gradient in ``out`` (which may be the
    logits themselves). Given the ``saved`` statistics, only the gradient."""
    z = logits.detach().numpy()
    target = rows.y if rows.kind == "index" else rows.soft
    assert target is not None
    weight = None if rows.w is None else rows.w.numpy()
    prep = Prepared(
        z, target.numpy(), rows.kind, rows.valid.numpy(), weight, rows.epsilon, "sum",
        (len(z),), z.dtype,
    )  # fmt: skip
    info = fast.row_info(
        prep, np.zeros(len(z), z.dtype) if scale is None else scale.numpy()
    )
    grad = None if out is None else out.numpy()
    if saved is not None:
        assert grad is not None, "a backward pass writes a gradient"
        fast.gradient_rows(
            prep, info, 0, z, grad, SoftmaxStats(*(t.numpy() for t in saved))
        )
        return None
    return RowLosses(
        *(torch.from_numpy(a) for a in fast.lsce_rows(prep, info, 0, z, grad))
    )


def forward_pass(
    logits: Tensor, rows: Rows, scale: Tensor | None = None, out: Tensor | None = None
) -> RowLosses[Tensor]:
    """(ℓ_i, z_max, argmax, rest) for every row, in one read of the logits.

    With ``scale`` and ``out``, each chunk's gradient is written to ``out`` while the
    chunk is still in cache: the gradient computed in the forward.
    """
    if on_numpy(logits):
        result = _numpy_pass(logits, rows, scale, out)
        assert result is not None
        return result
    # z_y is read first: an in-place gradient overwrites it
    z_y = torch_chunks.true_logit(logits, rows)
    state = _statistics_pass(logits, rows, scale, out)
    return RowLosses(torch_chunks.row_loss(rows, z_y, state), *state.stats)


def _statistics_pass(
    logits: Tensor, rows: Rows, scale: Tensor | None, out: Tensor | None
) -> SoftmaxState[Tensor]:
    """The online-softmax state of every row: a Triton kernel or torch ops on chunks."""
    kernels = triton_kernels()
    if kernels is not None and uses_triton(logits, rows):
        state: SoftmaxState[Tensor] = kernels.statistics(logits, rows.w)
        if scale is not None and out is not None:
            # the gradient in the forward: a second read of the logits, then one write
            _triton_gradient(kernels, logits, rows, state.stats, scale, out)
        return state
    parts = []
    chunks, scratch = torch_chunks.row_chunks(logits, rows)
    for c in chunks:
        chunk = rows.take(c)
        z = torch_chunks.in_compute_dtype(logits[c], scratch)
        state = torch_chunks.statistics(
            z, chunk.w if rows.kind == "index" else chunk.r(), scratch.work
        )
        if scale is not None and out is not None:
            work = scratch.work[: len(z)]
            torch_chunks.gradient(z, chunk, state.stats, scale[c], out[c], work)
        parts.append(state)
    if not parts:
        empty = logits.new_empty(0, dtype=rows.dtype)
        return SoftmaxState(empty, empty.long(), empty, empty, empty)
    return SoftmaxState(*(torch.cat(p) for p in zip(*parts, strict=True)))


def _triton_gradient(
    kernels: ModuleType,
    logits: Tensor,
    rows: Rows,
    stats: SoftmaxStats[Tensor],
    scale: Tensor,
    out: Tensor,
) -> None:
    """The gradient of every row by the Triton kernel, from the per-row numbers."""
    terms = torch_chunks.gradient_terms(rows, stats, scale)
    assert isinstance(terms, torch_chunks.IndexTerms), (
        "Triton takes class-index targets"
    )
    y, _ = rows.index_targets()
    kernels.gradient(logits, rows.w, stats, y, terms, out)


def backward_pass(
    logits: Tensor, rows: Rows, stats: SoftmaxStats[Tensor], scale: Tensor, out: Tensor
) -> None:
    """∂L/∂logits rebuilt from the row statistics into ``out`` (which may be the logits
    themselves): one read, one write."""
    if on_numpy(logits):
        _numpy_pass(logits, rows, scale, out, stats)
        return
    kernels = triton_kernels()
    if kernels is not None and uses_triton(logits, rows):
        _triton_gradient(kernels, logits, rows, stats, scale, out)
        return
    chunks, scratch = torch_chunks.row_chunks(logits, rows)
    for c in chunks:
        z = torch_chunks.in_compute_dtype(logits[c], scratch)
        chunk_stats = SoftmaxStats(*(t[c] for t in stats))
        torch_chunks.gradient(
            z, rows.take(c), chunk_stats, scale[c], out[c], scratch.work[: len(z)]
        )


def loss_and_gradients(
    logits: Tensor, rows: Rows, scale: Tensor, out: Tensor | None, target_grad: bool
) -> tuple[RowLosses[Tensor], Tensor | None]:
    """The rows' losses and statistics, and ∂L/∂t (or None), writing ∂L/∂logits
    to ``out`` (which may be the logits themselves; None when not wanted) for the
    row scale ``scale``.

    One read of the logits; when ∂L/∂t is wanted, two: it needs log p, which an in-place
    gradient would overwrite, so the gradient then comes in a second pass.
    """
    if not target_grad:
        return forward_pass(logits, rows, scale, out), None
    result = forward_pass(logits, rows)
    grad_target = target_gradient(
        logits.to(rows.dtype), result.z_max, result.rest, rows.epsilon, rows.w, scale
    )
    if out is not None:
        backward_pass(logits, rows, result.stats, scale, out)
    return result, grad_target

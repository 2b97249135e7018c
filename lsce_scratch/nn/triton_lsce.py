"""Triton kernels for LSCE on a CUDA GPU (lesson 09). Needs triton, imported lazily by
:mod:`lsce_scratch.nn.backends`.

Both kernels run one program per (row, block of classes), so every block of every row is
in flight at once and the GPU's memory system stays busy:

- :func:`statistics` reads the logits once. Each program writes the online-softmax state
  of its block: the block's max and its index, rest = Σ exp(z_k − max) over the block
  without the max term, Σ_k a_k (max − z_k) for the class weights a (or 1); torch merges
  the few blocks of a row (O(N·blocks) work) into the row's
  :class:`lsce_scratch.row_stats.SoftmaxState`;
- :func:`gradient` reads the logits once more and writes the gradient once:
  g_k = c·exp(z_k − z_max) − (ε/K)·s·w_k − [k = y]·(1 − ε)·w_y·s, and g_m = at_max.
  The per-row numbers (:class:`lsce_scratch.nn.torch_chunks.IndexTerms`) come from the
  statistics (O(N) work in torch).

The default path runs the first in the forward and the second in the backward; the
gradient in the forward runs both in the forward. The output may be the logits
themselves: each program reads its block before it writes it.

Only exp is used inside the kernels: log1p(rest) and the loss are O(N) and are
computed in torch, in float32, with the same formulas as the CPU path. Index
targets only; float32, float16 and bfloat16 logits (float64 and probability targets
use the torch path).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from lsce_scratch import chunking
from lsce_scratch.nn.torch_chunks import IndexTerms
from lsce_scratch.row_stats import SoftmaxState, SoftmaxStats


def _config(num_classes: int) -> tuple[int, int]:
    """(BLOCK, num_warps): up to CLASS_BLOCK classes per program."""
    block = min(triton.next_power_of_2(num_classes), chunking.CLASS_BLOCK)
    return block, 8 if block >= 2048 else 4


# --8<-- [start:statistics-kernel]
@triton.jit
def _statistics_kernel(
    z_ptr, z_stride, w_ptr, max_ptr, arg_ptr, rest_ptr, gap_ptr, num_classes,
    num_blocks, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """The state of one block of one row: (max, its index, rest, gap)."""
    row = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    cols = block * BLOCK + tl.arange(0, BLOCK)
    inside = cols < num_classes
    x = tl.load(z_ptr + row * z_stride + cols, mask=inside, other=float("-inf")).to(
        tl.float32
    )
    m = tl.max(x, axis=0)
    where = block * BLOCK + tl.argmax(x, axis=0, tie_break_left=True)
    # tl.max may drop a NaN: make the block's max NaN then, so that the host finds it
    m = tl.where(tl.max((x != x).to(tl.int32), axis=0) > 0, float("nan"), m)
    # a block whose classes are all masked (−inf) is shifted by 0, not by −inf
    # (−inf − (−inf) is NaN): its exponentials are 0 and its gap is Σ a_k·∞
    # (NaN where an a_k = 0)
    shift = tl.where(m == float("-inf"), 0.0, m)
    if HAS_WEIGHT:
        a = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    else:
        a = inside.to(tl.float32)
    # Σ a_k (m − z_k) ≥ 0; a masked class adds a_k·∞
    gap = tl.sum(tl.where(inside, a * (shift - x), 0.0), axis=0)
    # Σ_{k≠argmax} exp(z_k − m): the max term is left out
    rest = tl.sum(tl.where(inside & (cols != where), tl.exp(x - shift), 0.0), axis=0)
    out = row * num_blocks + block
    tl.store(max_ptr + out, m)
    tl.store(arg_ptr + out, where)
    tl.store(rest_ptr + out, rest)
    tl.store(gap_ptr + out, gap)


# --8<-- [end:statistics-kernel]


# --8<-- [start:merge]
def _merge_blocks(
    block_max: Tensor, where: Tensor, rest: Tensor, gap: Tensor, mass: Tensor
) -> SoftmaxState[Tensor]:
    """Merge the (N, blocks) states of the blocks of each row into the row's state;
    ``mass`` (1, blocks) holds Σ_k a_k over each block."""
    # the row max (NaN if a block holds one) and the first block that holds it
    z_max, winner = block_max.max(dim=1)
    # a block whose classes are all masked has no max term, and its gap holds Σ a_k·∞
    masked = block_max == -torch.inf
    # every other block's terms, its own max term included, rescaled by
    # exp(max − z_max) ≤ 1; the winning block keeps its rest alone, so the
    # row's max term stays out
    shrink = torch.where(masked, 0.0, torch.exp(block_max - z_max[:, None]))
    scaled = (rest + 1.0) * shrink
    scaled.scatter_(1, winner[:, None], rest.gather(1, winner[:, None]))
    # Σ_k a_k (z_max − z_k) = Σ_blocks [gap_b + mass_b (z_max − max_b)], all terms ≥ 0
    row_gap = (gap + torch.where(masked, 0.0, mass * (z_max[:, None] - block_max))).sum(
        dim=1
    )
    argmax = where.gather(1, winner[:, None])[:, 0].long()
    return SoftmaxState(
        z_max, argmax, scaled.sum(dim=1), row_gap, mass.sum(dim=1).expand_as(z_max)
    )


# --8<-- [end:merge]


# --8<-- [start:gradient-kernel]
@triton.jit
def _gradient_kernel(
    z_ptr, z_stride, g_ptr, g_stride, w_ptr, max_ptr, arg_ptr, y_ptr, coef_ptr,
    smooth_ptr, true_ptr, m_val_ptr, num_classes,
    HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Write the gradient of one block of one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < num_classes
    x = tl.load(z_ptr + row * z_stride + cols, mask=inside, other=0.0).to(tl.float32)
    # a constexpr if/else: Triton compiles only the branch taken
    if HAS_WEIGHT:  # noqa: SIM108
        w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    else:
        w = 1.0
    # (S p − r)·s with S p = c·exp(z − z_max) and r = (ε/K) w + (1 − ε) w_y onehot(y)
    g = (
        tl.load(coef_ptr + row) * tl.exp(x - tl.load(max_ptr + row))
        - tl.load(smooth_ptr + row) * w
    )
    g = tl.where(cols == tl.load(y_ptr + row), g - tl.load(true_ptr + row), g)
    # at m the cancellation-free value computed from rest
    g = tl.where(cols == tl.load(arg_ptr + row), tl.load(m_val_ptr + row), g)
    tl.store(g_ptr + row * g_stride + cols, g.to(g_ptr.dtype.element_ty), mask=inside)


# --8<-- [end:gradient-kernel]


def statistics(z: Tensor, w: Tensor | None) -> SoftmaxState[Tensor]:
    """The online-softmax state of each row of z (N, K), for the class weights w (or 1),
    in float32."""
    n, num_classes = z.shape
    if z.stride(1) != 1:
        z = z.contiguous()
    w = None if w is None else w.contiguous()
    block, warps = _config(num_classes)
    blocks = triton.cdiv(num_classes, block)
    parts = [
        torch.empty(n, blocks, device=z.device, dtype=torch.float32) for _ in range(3)
    ]
    block_max, rest, gap = parts
    where = torch.empty(n, blocks, device=z.device, dtype=torch.int32)
    if n == 0:
        empty = torch.empty(0, device=z.device, dtype=torch.float32)
        return SoftmaxState(empty, empty.long(), empty, empty, empty)
    _statistics_kernel[(n, blocks)](
        z, z.stride(0), z if w is None else w, block_max, where, rest, gap, num_classes,
        blocks, HAS_WEIGHT=w is not None, BLOCK=block, num_warps=warps,
    )  # fmt: skip
    # Σ_k a_k over each block: the class weights' block sums, or the block's class count
    a = torch.ones(num_classes, device=z.device) if w is None else w.float()
    mass = torch.nn.functional.pad(a, (0, blocks * block - num_classes)).view(
        blocks, block
    )
    return _merge_blocks(block_max, where, rest, gap, mass.sum(dim=1)[None, :])


def gradient(
    z: Tensor,
    w: Tensor | None,
    stats: SoftmaxStats[Tensor],
    y: Tensor,
    terms: IndexTerms,
    out: Tensor,
) -> Tensor:
    """Write the gradient of z's rows into ``out`` (which may be z itself);
    see the module."""
    n, num_classes = z.shape
    block, warps = _config(num_classes)
    w = None if w is None else w.contiguous()
    if n:
        row_values = (stats.z_max, terms.coef, terms.smooth, terms.true, terms.at_max)
        z_max, coef, smooth, true_sub, m_val = (
            t.to(torch.float32).contiguous() for t in row_values
        )
        _gradient_kernel[(n, triton.cdiv(num_classes, block))](
            z, z.stride(0), out, out.stride(0), z if w is None else w, z_max,
            stats.argmax.to(torch.int32).contiguous(), y.to(torch.int32).contiguous(),
            coef, smooth, true_sub, m_val, num_classes,
            HAS_WEIGHT=w is not None, BLOCK=block, num_warps=warps,
        )  # fmt: skip
    return out

"""Triton kernels for LSCE on a CUDA GPU (lesson 10). Needs triton; nn.py imports it lazily.

One program per row, streaming the row through in blocks of classes:

- :func:`statistics` reads the logits once and returns, per row, the online-softmax state
  of lsce_scratch.fast: z_max, its index m, rest = Σ_{k≠m} exp(z_k − z_max) (the max
  term left out) and Σ_k a_k (z_max − z_k) for the class weights a (or 1);
- :func:`gradient` reads the logits once more and writes the gradient once:
  g_k = c·exp(z_k − z_max) − (ε/K)·s·w_k − [k = y]·(1 − ε)·w_y·s, and g_m = m_val.
  The per-row numbers c, s, m_val come from the statistics (O(N) work in torch);
- :func:`fused` does both in one launch, for the gradient in the forward: each program
  reads its row for the statistics and right away again for the gradient, which then
  mostly comes from the L2 cache.

The output may be the logits themselves (each block is read before it is written).

Only exp is used inside the kernels: log1p(rest) and the loss are O(N) and are computed
in torch, in float32, with the same formulas as the CPU path. Index targets only; float32,
float16 and bfloat16 logits (float64 and probability targets use the torch path).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


def _config(num_classes: int) -> tuple[int, int]:
    """(BLOCK, num_warps): up to 8192 classes per step, 16 warps for the big rows."""
    block = min(triton.next_power_of_2(num_classes), 8192)
    return block, 16 if block >= 8192 else 8 if block >= 2048 else 4


# --8<-- [start:statistics-kernel]
@triton.jit
def _block_state(z_row, w_ptr, start, num_classes, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr):
    """The state of classes start..start+BLOCK: (max, its index, rest, gap, mass)."""
    cols = start + tl.arange(0, BLOCK)
    inside = cols < num_classes
    x = tl.load(z_row + cols, mask=inside, other=float("-inf")).to(tl.float32)
    m = tl.max(x, axis=0)
    where = start + tl.argmax(x, axis=0, tie_break_left=True)
    if HAS_WEIGHT:
        a = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    else:
        a = inside.to(tl.float32)
    # Σ a_k (m − z_k) ≥ 0; NaN or ±inf logits make it non-finite, which the host checks
    gap = tl.sum(tl.where(inside, a * (m - x), 0.0), axis=0)
    # Σ_{k≠argmax} exp(z_k − m): the max term is left out
    e = tl.where(inside & (cols != where), tl.exp(x - m), 0.0)
    return m, where, tl.sum(e, axis=0), gap, tl.sum(a, axis=0)


@triton.jit
def _row_state(z_row, w_ptr, num_classes, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr):
    """The state of a whole row, block after block (online softmax)."""
    m, where, rest, gap, mass = _block_state(z_row, w_ptr, 0, num_classes, HAS_WEIGHT, BLOCK)
    for start in range(BLOCK, num_classes, BLOCK):
        bm, b_where, b_rest, b_gap, b_mass = _block_state(
            z_row, w_ptr, start, num_classes, HAS_WEIGHT, BLOCK
        )
        # merge: the larger max stays; the other side is rescaled by exp(lo − hi) ≤ 1 and
        # its own max term joins rest; its gap grows by its mass·(hi − lo)
        b_wins = bm > m
        hi = tl.where(b_wins, bm, m)
        lo = tl.where(b_wins, m, bm)
        lo_rest = tl.where(b_wins, rest, b_rest)
        rest = tl.where(b_wins, b_rest, rest) + (lo_rest + 1.0) * tl.exp(lo - hi)
        gap = gap + b_gap + tl.where(b_wins, mass, b_mass) * (hi - lo)
        mass = mass + b_mass
        where = tl.where(b_wins, b_where, where)
        m = hi
    return m, where, rest, gap, mass


@triton.jit
def _statistics_kernel(
    z_ptr,
    z_stride,
    w_ptr,
    max_ptr,
    arg_ptr,
    rest_ptr,
    gap_ptr,
    num_classes,
    HAS_WEIGHT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    m, where, rest, gap, _ = _row_state(
        z_ptr + row * z_stride, w_ptr, num_classes, HAS_WEIGHT, BLOCK
    )
    tl.store(max_ptr + row, m)
    tl.store(arg_ptr + row, where)
    tl.store(rest_ptr + row, rest)
    tl.store(gap_ptr + row, gap)


# --8<-- [end:statistics-kernel]


# --8<-- [start:gradient-kernel]
@triton.jit
def _write_gradient(
    z_row, g_row, w_ptr, z_max, m, y, coef, smooth, true_sub, m_val, num_classes,
    HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Write one row's gradient, block after block."""
    for start in range(0, num_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        inside = cols < num_classes
        x = tl.load(z_row + cols, mask=inside, other=0.0).to(tl.float32)
        # a constexpr if/else: Triton compiles only the branch taken
        if HAS_WEIGHT:  # noqa: SIM108
            w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
        else:
            w = 1.0
        # (S p − r)·s with S p = c·exp(z − z_max) and r = (ε/K) w + (1 − ε) w_y onehot(y)
        g = coef * tl.exp(x - z_max) - smooth * w
        g = tl.where(cols == y, g - true_sub, g)
        # at m the cancellation-free value computed from rest
        g = tl.where(cols == m, m_val, g)
        tl.store(g_row + cols, g.to(g_row.dtype.element_ty), mask=inside)


@triton.jit
def _gradient_kernel(
    z_ptr, z_stride, g_ptr, g_stride, w_ptr, max_ptr, arg_ptr, y_ptr, coef_ptr, smooth_ptr,
    true_ptr, m_val_ptr, num_classes, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    _write_gradient(
        z_ptr + row * z_stride, g_ptr + row * g_stride, w_ptr, tl.load(max_ptr + row),
        tl.load(arg_ptr + row), tl.load(y_ptr + row), tl.load(coef_ptr + row),
        tl.load(smooth_ptr + row), tl.load(true_ptr + row), tl.load(m_val_ptr + row),
        num_classes, HAS_WEIGHT, BLOCK,
    )  # fmt: skip


# --8<-- [end:gradient-kernel]


# --8<-- [start:fused-kernel]
@triton.jit
def _fused_kernel(
    z_ptr, z_stride, g_ptr, g_stride, w_ptr, y_ptr, scale_ptr, max_ptr, arg_ptr, rest_ptr,
    gap_ptr, num_classes, epsilon, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Statistics, then at once the gradient, of one row: the gradient in the forward."""
    row = tl.program_id(0).to(tl.int64)
    z_row = z_ptr + row * z_stride
    m, where, rest, gap, mass = _row_state(z_row, w_ptr, num_classes, HAS_WEIGHT, BLOCK)
    tl.store(max_ptr + row, m)
    tl.store(arg_ptr + row, where)
    tl.store(rest_ptr + row, rest)
    tl.store(gap_ptr + row, gap)
    # the per-row numbers of _gradient in nn.py; s = 0 on ignored rows zeroes them all
    y = tl.load(y_ptr + row)
    s = tl.load(scale_ptr + row)
    if HAS_WEIGHT:
        w_y = tl.load(w_ptr + y).to(tl.float32)
        w_m = tl.load(w_ptr + where).to(tl.float32)
    else:
        w_y = 1.0
        w_m = 1.0
    smooth = epsilon / num_classes
    # S = (1 − ε) w_y + (ε/K) Σ_k w_k  (mass = Σ_k w_k, or K)
    total = (1.0 - epsilon) * w_y + smooth * mass
    # Σ_{k≠m} r_k = (1 − ε) w_y [y ≠ m] + (ε/K)(Σ_k w_k − w_m)
    r_others = tl.where(y != where, (1.0 - epsilon) * w_y, 0.0) + smooth * (mass - w_m)
    # at m: S p_m − r_m = Σ_{k≠m} r_k − S rest / (1 + rest)
    m_val = (r_others - total * rest / (1.0 + rest)) * s
    _write_gradient(
        z_row, g_ptr + row * g_stride, w_ptr, m, where, y, total * s / (1.0 + rest),
        smooth * s, (1.0 - epsilon) * w_y * s, m_val, num_classes, HAS_WEIGHT, BLOCK,
    )  # fmt: skip


# --8<-- [end:fused-kernel]


def statistics(z: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per row of z (N, K): z_max, argmax, rest and Σ_k w_k (z_max − z_k), in float32."""
    n, num_classes = z.shape
    if z.stride(1) != 1:
        z = z.contiguous()
    w = None if w is None else w.contiguous()
    out = [torch.empty(n, device=z.device, dtype=torch.float32) for _ in range(3)]
    z_max, rest, gap = out
    argmax = torch.empty(n, device=z.device, dtype=torch.int32)
    block, warps = _config(num_classes)
    if n:
        _statistics_kernel[(n,)](
            z, z.stride(0), z if w is None else w, z_max, argmax, rest, gap, num_classes,
            HAS_WEIGHT=w is not None, BLOCK=block, num_warps=warps,
        )  # fmt: skip
    return z_max, argmax.long(), rest, gap


def gradient(
    z: Tensor,
    w: Tensor | None,
    z_max: Tensor,
    argmax: Tensor,
    y: Tensor,
    coef: Tensor,
    smooth: Tensor,
    true_sub: Tensor,
    m_val: Tensor,
    out: Tensor,
) -> Tensor:
    """Write the gradient of z's rows into ``out`` (which may be z itself); see the module."""
    n, num_classes = z.shape
    block, warps = _config(num_classes)
    w = None if w is None else w.contiguous()
    if n:
        rows = [t.to(torch.float32).contiguous() for t in (z_max, coef, smooth, true_sub, m_val)]
        z_max, coef, smooth, true_sub, m_val = rows
        _gradient_kernel[(n,)](
            z, z.stride(0), out, out.stride(0), z if w is None else w, z_max,
            argmax.to(torch.int32).contiguous(), y.to(torch.int32).contiguous(),
            coef, smooth, true_sub, m_val, num_classes,
            HAS_WEIGHT=w is not None, BLOCK=block, num_warps=warps,
        )  # fmt: skip
    return out


def fused(
    z: Tensor, w: Tensor | None, y: Tensor, scale: Tensor, epsilon: float, out: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`statistics` and :func:`gradient` in one launch; returns the statistics.

    ``y`` holds the true classes (0 on ignored rows), ``scale`` ∂L/∂ℓ_i (0 on ignored rows).
    """
    n, num_classes = z.shape
    w = None if w is None else w.contiguous()
    z_max, rest, gap = (torch.empty(n, device=z.device, dtype=torch.float32) for _ in range(3))
    argmax = torch.empty(n, device=z.device, dtype=torch.int32)
    block, warps = _config(num_classes)
    if n:
        _fused_kernel[(n,)](
            z, z.stride(0), out, out.stride(0), z if w is None else w,
            y.to(torch.int32).contiguous(), scale.to(torch.float32).contiguous(),
            z_max, argmax, rest, gap, num_classes, float(epsilon),
            HAS_WEIGHT=w is not None, BLOCK=block, num_warps=warps,
        )  # fmt: skip
    return z_max, argmax.long(), rest, gap

"""Lesson 09's fused output layer and loss: the (N, K) logits are never held.

:func:`linear_label_smoothing_cross_entropy` is LSCE of ``hidden @ lin_weight.T +
lin_bias``, computed a chunk of rows at a time by :class:`LinearLSCEFunction` (Liger's
FLCE; the NumPy version is :func:`lsce_scratch.fast.linear_lsce`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsce_scratch import chunking
from lsce_scratch.nn.backends import loss_and_gradients, on_numpy
from lsce_scratch.nn.function import Context, compute_dtype
from lsce_scratch.nn.functional import flat_targets, without_autocast
from lsce_scratch.nn.grad_in_forward import gradients_from_forward
from lsce_scratch.nn.reduction import reduce, unit_scales
from lsce_scratch.nn.rows import Rows, rows_without_softmax
from lsce_scratch.nn.validation import nonfinite_rows, validate


# --8<-- [start:linear]
class LinearLSCEFunction(torch.autograd.Function):
    """A linear layer fused with LSCE; the (N, K) logits are never held (Liger's FLCE).

    ``apply(hidden, lin_weight, lin_bias, target, epsilon, weight, ignore_index,
    reduction, kind, chunk_rows)`` with hidden (N, H), lin_weight (K, H), lin_bias (K,)
    or None. The forward walks the rows ``chunk_rows`` at a time: the chunk's logits
    z = h Wᵀ + b, their gradient in place, and at once ∂L/∂h = (∂L/∂z) W,
    ∂L/∂W += (∂L/∂z)ᵀ h, ∂L/∂b += Σ_i ∂L/∂z_i. The backward scales these by grad_output.
    Extra memory: one chunk of logits; the price is time (W is read once per chunk). The
    loss comes back in the compute dtype (float32 for half-precision inputs).
    """

    @staticmethod
    def forward(
        ctx: Context,
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
        dtype = compute_dtype(hidden.dtype)
        rows = Rows.build(
            target, kind, epsilon, weight, ignore_index, num_classes, dtype
        )
        denominator, scale = unit_scales(reduction, rows.valid, rows.w_y, dtype)
        need_h, need_w, need_b, need_t = ctx.needs_input_grad[:4]
        d_hidden = torch.empty_like(hidden) if need_h else None
        # ∂L/∂W and ∂L/∂b add up over chunks: accumulate in the compute dtype
        d_weight = (
            lin_weight.new_zeros(lin_weight.shape, dtype=dtype) if need_w else None
        )
        d_bias = lin_weight.new_zeros(num_classes, dtype=dtype) if need_b else None
        d_target = torch.empty_like(target) if need_t else None
        row_loss = hidden.new_empty(num_rows, dtype=dtype)
        bad = torch.zeros((), dtype=torch.bool, device=hidden.device)
        for a in range(0, num_rows, chunk_rows):
            c = slice(a, min(a + chunk_rows, num_rows))
            h, chunk = hidden[c], rows.take(c)
            # the chunk's logits z = h Wᵀ + b; they become ∂L/∂z in place
            z = (
                h @ lin_weight.T
                if lin_bias is None
                else torch.addmm(lin_bias, h, lin_weight.T)
            )
            result, chunk_d_target = loss_and_gradients(z, chunk, scale[c], z, need_t)
            row_loss[c] = result.loss
            # NaN or +inf logits in a counted row; −inf masks a class
            bad = bad | nonfinite_rows(result.z_max, chunk.valid).any()
            if not on_numpy(z):
                # (the NumPy kernel does this itself) every chunk:
                # a host sync to skip it would stall the GPU
                rows_without_softmax(chunk, result.z_max, z)
            if d_target is not None and chunk_d_target is not None:
                d_target[c] = chunk_d_target
            if d_hidden is not None:
                # ∂L/∂h = (∂L/∂z) W
                torch.matmul(z, lin_weight, out=d_hidden[c])
            if d_weight is not None:
                # ∂L/∂W += (∂L/∂z)ᵀ h
                d_weight.addmm_(z.T.to(dtype), h.to(dtype))
            if d_bias is not None:
                # ∂L/∂b += Σ_i ∂L/∂z_i
                d_bias += z.sum(dim=0, dtype=dtype)
        if bool(bad):
            raise ValueError(
                "the logits hidden @ lin_weightᵀ + lin_bias hold NaN or +inf in a row "
                "that counts: hidden, lin_weight or lin_bias contains NaN or ±inf, or "
                "the product overflows (lin_bias may hold −inf: that masks a class)"
            )
        ctx.grads = (
            d_hidden,
            None if d_weight is None else d_weight.to(lin_weight.dtype),
            None if d_bias is None or lin_bias is None else d_bias.to(lin_bias.dtype),
            d_target,
        )
        return reduce(row_loss, reduction, denominator)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grads = gradients_from_forward(
            ctx,
            grad_output,
            "the fused linear LSCE computes its gradients in the forward; backward can "
            "run once. Run the forward again",
        )
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

    hidden (..., H), lin_weight (K, H), lin_bias (K,) or None; target (...) class
    indices or (..., K) probabilities; the other arguments as in
    :func:`lsce_scratch.nn.functional.label_smoothing_cross_entropy`. Equal to that
    function applied to the logits, with the extra memory of ``chunk_rows`` rows of
    logits instead of all of them. Its gradients are computed in the forward, so 'none'
    (whose upstream gradient is only known later) is not offered, and backward runs
    once. Under ``torch.autocast`` the product runs in autocast's dtype and the loss
    comes back in float32, as with ``F.linear`` followed by ``F.cross_entropy`` (or
    ``F.linear_cross_entropy``).
    """
    for name, t in (("hidden", hidden), ("lin_weight", lin_weight)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(
                f"{name} must be a floating-point tensor; got {type(t).__name__}"
            )
    if (
        hidden.dim() < 1
        or lin_weight.dim() != 2
        or lin_weight.shape[1] != hidden.shape[-1]
    ):
        raise ValueError(
            "hidden must be (..., H) and lin_weight (K, H) with the same H; got "
            f"shapes {tuple(hidden.shape)} and {tuple(lin_weight.shape)}"
        )
    num_classes = lin_weight.shape[0]
    if lin_bias is not None and (
        not isinstance(lin_bias, Tensor) or tuple(lin_bias.shape) != (num_classes,)
    ):
        raise ValueError(
            f"lin_bias must be a tensor of shape ({num_classes},), one per class"
        )
    if reduction == "none":
        raise ValueError(
            "reduction='none' is not offered by the fused linear loss: it computes "
            "the gradients in the forward, before the per-row upstream gradient is "
            "known. Use 'sum' or 'mean', or the unfused label_smoothing_cross_entropy"
        )
    device_type = hidden.device.type
    autocast = torch.is_autocast_enabled(device_type)
    if autocast:
        # as F.linear under autocast: the product in autocast's dtype (float64 stays)
        low = torch.get_autocast_dtype(device_type)
        hidden, lin_weight = (
            t if t.dtype == torch.float64 else t.to(low) for t in (hidden, lin_weight)
        )
        if lin_bias is not None and lin_bias.dtype != torch.float64:
            lin_bias = lin_bias.to(low)
    # validate checks the targets against the logits' shape; a stride-0 view of one
    # zero stands in for the logits, which are never built
    stand_in = hidden.new_zeros(()).expand(hidden.shape[:-1] + (num_classes,))
    kind = validate(stand_in, target, epsilon, reduction, weight, ignore_index)
    flat_target = flat_targets(target, kind, num_classes)
    itemsize = torch.finfo(compute_dtype(hidden.dtype)).bits // 8
    budget = (
        chunking.CUDA_FUSED_CHUNK_BYTES
        if hidden.is_cuda
        else chunking.FUSED_CHUNK_BYTES
    )
    rows = chunk_rows or chunking.rows_per_chunk(num_classes, itemsize, budget)
    with without_autocast(device_type, autocast):
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

"""Lesson 09's opt-ins: the gradient computed in the forward,
and written over the logits.

:class:`LSCEGradInForward` is behind ``label_smoothing_cross_entropy(...,
grad_in_forward=True)`` and ``inplace=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsce_scratch.nn.backends import empty_like, loss_and_gradients
from lsce_scratch.nn.function import Context, compute_dtype, refuse_double_backward
from lsce_scratch.nn.reduction import reduce, unit_scales
from lsce_scratch.nn.rows import Rows, check_values, rows_without_softmax


# --8<-- [start:grad-in-forward]
class LSCEGradInForward(torch.autograd.Function):
    """LSCE whose forward also computes ∂L/∂logits; its backward only scales it.

    ``apply(logits, target, epsilon, weight, ignore_index, reduction, kind, inplace)``.
    One read of the logits and one write of the gradient in all; the gradient (one
    tensor the size of the logits) is held from the forward to the backward, which may
    run once. With ``inplace=True`` the gradient is written over the logits themselves,
    so no memory is added, but the logits' values are gone: any op that saved the logits
    for its own backward would read gradients instead. The write bumps the logits'
    version counter, so autograd raises ("modified by an inplace operation") instead of
    silently computing wrong gradients (the Liger-Kernel #272 bug).
    """

    @staticmethod
    def forward(
        ctx: Context,
        logits: Tensor,
        target: Tensor,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        reduction: str,
        kind: str,
        inplace: bool,
    ) -> Tensor:
        dtype = compute_dtype(logits.dtype)
        rows = Rows.build(
            target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype
        )
        # the gradients for grad_output = 1; the backward multiplies by the real one
        denominator, scale = unit_scales(reduction, rows.valid, rows.w_y, dtype)
        grad = None
        if ctx.needs_input_grad[0]:
            grad = logits.detach() if inplace else empty_like(logits)
        result, grad_target = loss_and_gradients(
            logits, rows, scale, grad, ctx.needs_input_grad[1]
        )
        if inplace and grad is not None:
            # NumPy's and Triton's writes are invisible to autograd: bump the version
            torch.autograd.graph.increment_version(logits)
        # the checks read the row statistics, not the logits (gone if written over)
        if check_values(target, rows, result.stats, ignore_index) and grad is not None:
            rows_without_softmax(rows, result.z_max, grad)
        if grad_target is not None:
            grad_target = grad_target.to(target.dtype)
        ctx.grads = (grad, grad_target)
        return reduce(result.loss, reduction, denominator).to(logits.dtype)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grads = gradients_from_forward(
            ctx,
            grad_output,
            "the gradient computed in the forward (grad_in_forward=True) was already "
            "handed to autograd: backward can run once. Run the forward again, or use "
            "grad_in_forward=False to backward several times (retain_graph=True)",
        )
        return (*grads, None, None, None, None, None, None)


# --8<-- [end:grad-in-forward]


def gradients_from_forward(
    ctx: Context, grad_output: Tensor, again: str
) -> tuple[Tensor | None, ...]:
    """The gradients the forward computed for grad_output = 1, scaled by the real one.
    Autograd gets them once: a second backward raises RuntimeError(``again``)."""
    refuse_double_backward()
    grads, ctx.grads = ctx.grads, None
    if grads is None:
        raise RuntimeError(again)
    # the forward's gradients are for grad_output = 1 (for 'none', 1 on every row)
    if not bool((grad_output == 1).all()):
        upstream = grad_output[:, None] if grad_output.dim() else grad_output
        grads = tuple(None if g is None else g.mul_(upstream) for g in grads)
    return grads

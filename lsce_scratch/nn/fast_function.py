"""Lesson 09's LSCE Function: lesson 06's closed form, in fewer passes over memory.

:class:`FastLSCEFunction` computes what :class:`lsce_scratch.nn.function.LSCEFunction`
computes, with the kernels of :mod:`lsce_scratch.nn.backends`: the forward reads the
logits once (the NumPy kernel on the CPU, Triton on a GPU, torch chunks otherwise), the
backward reads them once and writes the gradient once, and no (N, K) tensor is built
for class-index targets. ``label_smoothing_cross_entropy`` and
``LabelSmoothingCrossEntropy`` run it by default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsce_scratch.nn.backends import backward_pass, empty_like, forward_pass
from lsce_scratch.nn.function import (
    Context,
    compute_dtype,
    refuse_double_backward,
    target_gradient,
)
from lsce_scratch.nn.reduction import mean_denominator, reduce, row_scale
from lsce_scratch.nn.rows import Rows, check_values, rows_without_softmax
from lsce_scratch.row_stats import SoftmaxStats


class FastLSCEFunction(torch.autograd.Function):
    """LSCE on (N, K) logits with the hand-derived backward, on the fast kernels.

    ``apply`` takes LSCEFunction's arguments, ``(logits, target, epsilon, weight,
    ignore_index, reduction, kind)``, and gives the same loss and gradients. It saves
    the logits and three numbers per row (z_max, m and rest), never an (N, K) tensor.
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
    ) -> Tensor:
        dtype = compute_dtype(logits.dtype)
        rows = Rows.build(
            target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype
        )
        # per row: z_max, its index m, rest = Σ_{k≠m} exp(z_k − z_max) and the loss
        # ℓ_i = Σ_k r_ik (z_max − z_ik) + S_i log(1 + rest_i), in one read of the logits
        result = forward_pass(logits, rows)
        ctx.no_softmax = check_values(target, rows, result.stats, ignore_index)
        denominator = mean_denominator(reduction, rows.valid, rows.w_y, dtype)
        ctx.save_for_backward(
            logits,
            target,
            weight,
            result.z_max,
            result.rest,
            result.argmax,
            denominator,
        )
        ctx.options = (epsilon, ignore_index, reduction, kind)
        return reduce(result.loss, reduction, denominator).to(logits.dtype)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        refuse_double_backward()
        logits, target, weight, z_max, rest, argmax, denominator = ctx.saved_tensors
        epsilon, ignore_index, reduction, kind = ctx.options
        dtype = compute_dtype(logits.dtype)
        rows = Rows.build(
            target, kind, epsilon, weight, ignore_index, logits.shape[-1], dtype
        )
        # chain rule through the reduction: 'mean' divides by Σ w_{y_i};
        # ignored rows get 0
        scale = row_scale(grad_output.to(dtype), denominator, rows.valid)
        grad = grad_target = None
        if ctx.needs_input_grad[0]:
            # ∂ℓ/∂z = S p − r, rebuilt from the saved row statistics straight into the
            # gradient buffer; one read of the logits, one write
            grad = empty_like(logits)
            backward_pass(logits, rows, SoftmaxStats(z_max, argmax, rest), scale, grad)
            if ctx.no_softmax:
                rows_without_softmax(rows, z_max, grad)
        if ctx.needs_input_grad[1]:
            # probability targets: ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik
            grad_target = target_gradient(
                logits.to(dtype), z_max, rest, epsilon, rows.w, scale
            ).to(target.dtype)
        return grad, grad_target, None, None, None, None, None

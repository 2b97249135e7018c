"""Lesson 06: label-smoothing cross-entropy as a torch.autograd.Function,
in plain torch ops.

With p = softmax(z), q = (1 − ε)·onehot(y) + ε/K (or (1 − ε)·t + ε/K for probability
targets t), class weights w, r = w ⊙ q and S = Σ_k r_k, one row's loss and gradient are

    ℓ = −Σ_k r_k log p_k,   ∂ℓ/∂z_j = S p_j − r_j,

and :class:`LSCEFunction`'s backward is that closed form, scaled through the reduction,
not autograd through the forward's ops. The forward saves the logits (alive anyway) and
three numbers per row; the backward rebuilds p from them. The same code runs on every
device; lesson 09's fast paths give the same numbers in fewer passes over memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lsce_scratch.nn.reduction import mean_denominator, reduce, row_scale
from lsce_scratch.nn.validation import nonfinite_error, nonfinite_rows

# autograd's context object: save_for_backward, saved_tensors, needs_input_grad, and the
# attributes a Function sets on it to pass things from its forward to its backward
Context = Any


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays; float16, bfloat16 and float32 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# --8<-- [start:targets]
class Targets(NamedTuple):
    """Every row's smoothed, weighted target."""

    r: Tensor  # (N, K): r = w ⊙ q, zero on ignored rows
    valid: Tensor  # (N,): the rows that count (target ≠ ignore_index)
    y: (
        Tensor | None
    )  # (N,): the true class of index targets, 0 on ignored rows; None for
    # probability targets


def smoothed_targets(
    target: Tensor, kind: str, epsilon: float, w: Tensor, ignore_index: int
) -> Targets:
    """r = w ⊙ q for index targets (N,) or probability targets (N, K);
    w has K entries."""
    num_rows, num_classes = len(target), len(w)
    if kind == "index":
        valid = target != ignore_index
        y = torch.where(valid, target, 0)
        # q = (1 − ε)·onehot(y) + ε/K
        q = (1.0 - epsilon) * F.one_hot(y, num_classes).to(
            w.dtype
        ) + epsilon / num_classes
    else:
        valid, y = torch.ones(num_rows, dtype=torch.bool, device=target.device), None
        # probability targets are smoothed the same way: q = (1 − ε)·t + ε/K
        q = (1.0 - epsilon) * target.to(w.dtype) + epsilon / num_classes
    # r = w ⊙ q: PyTorch weights every class term
    return Targets(torch.where(valid[:, None], w * q, 0.0), valid, y)


# --8<-- [end:targets]


# --8<-- [start:row-losses]
def row_losses(log_p: Tensor, targets: Targets, epsilon: float, w: Tensor) -> Tensor:
    """ℓ_i = −Σ_k r_ik log p_ik for every row, 0 where ignored.

    The terms are added up as PyTorch adds them, so that a masked class (z_k = −inf, so
    log p_k = −inf) gives PyTorch's inf or NaN there.
    """
    if targets.y is None:
        # term by term: a masked class costs r_k·∞, NaN where r_k = 0 (0·log 0)
        loss = -(targets.r * log_p).sum(dim=-1)
    else:
        y = targets.y
        # (1 − ε) w_y (−log p_y): inf when the true class is masked
        loss = (1.0 - epsilon) * w[y] * -log_p.gather(1, y[:, None])[:, 0]
        if epsilon > 0:
            # + (ε/K) Σ_k w_k (−log p_k), a sum of terms ≥ 0;
            # PyTorch leaves it out at ε = 0
            loss = loss + epsilon / len(w) * -(log_p * w).sum(dim=-1)
    return torch.where(targets.valid, loss, 0.0)


# --8<-- [end:row-losses]


# --8<-- [start:target-gradient]
def target_gradient(
    z: Tensor,
    z_max: Tensor,
    rest: Tensor,
    epsilon: float,
    w: Tensor | None,
    scale: Tensor,
) -> Tensor:
    """∂L/∂t for probability targets t, from the row statistics, for row scales s."""
    # log p = (z − z_max) − log(1 + rest): −inf at a masked class,
    # NaN on an all-masked row
    log_p = (z - z_max[:, None]).sub_(torch.log1p(rest)[:, None])
    # r = w ⊙ ((1 − ε) t + ε/K), so ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik, times s_i
    grad = log_p.mul_((-(1.0 - epsilon) * scale)[:, None])
    return grad if w is None else grad.mul_(w)


# --8<-- [end:target-gradient]


def refuse_double_backward() -> None:
    """Raise in a backward asked to build a graph of itself (create_graph=True)."""
    if torch.is_grad_enabled():
        # create_graph=True: autograd would differentiate this closed form as if it were
        # the function, giving a wrong second derivative. Refuse instead.
        raise RuntimeError(
            "LSCEFunction does not support double backward (create_graph=True): its "
            "backward is a hand-derived closed form. For second derivatives use "
            "torch.nn.functional.cross_entropy(..., label_smoothing=epsilon)"
        )


class LSCEFunction(torch.autograd.Function):
    """LSCE on (N, K) logits with the hand-derived backward, in plain torch ops.

    ``LSCEFunction.apply(logits, target, epsilon, weight, ignore_index, reduction,
    kind)`` takes 2-D logits, flat index targets (N,) or probabilities (N, K) (``kind``
    'index' or 'soft'), and returns the reduced loss (a scalar, or (N,) for 'none'). It
    checks none of its arguments but the logits' values: call it through
    ``label_smoothing_cross_entropy(..., fast=False)``, which does. Probability targets
    that require grad get ∂L/∂t as well.
    """

    # --8<-- [start:forward]
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
        z = logits.to(compute_dtype(logits.dtype))
        w = z.new_ones(z.shape[-1]) if weight is None else weight.to(z.dtype)
        targets = smoothed_targets(target, kind, epsilon, w, ignore_index)
        # m = argmax_k z_k and z_max = z_m, the shift that keeps every exponent ≤ 0
        z_max, argmax = z.max(dim=-1)
        bad = nonfinite_rows(z_max, targets.valid)
        if bool(bad.any()):
            raise nonfinite_error(bad, z_max, argmax)
        # rest = Σ_{k≠m} exp(z_k − z_max): the max term (exactly 1) is left out
        rest = (
            torch.exp(z - z_max[:, None]).scatter(1, argmax[:, None], 0.0).sum(dim=-1)
        )
        # log p = (z − z_max) − log(1 + rest), accurate even as p_m → 1
        log_p = z - z_max[:, None] - torch.log1p(rest)[:, None]
        # 'mean' divides by Σ_i w_{y_i} over the rows that count
        # (by N for probabilities)
        w_y = None if targets.y is None else w[targets.y]
        denominator = mean_denominator(reduction, targets.valid, w_y, z.dtype)
        ctx.save_for_backward(logits, target, weight, z_max, rest, argmax, denominator)
        ctx.options = (epsilon, ignore_index, reduction, kind)
        loss = reduce(row_losses(log_p, targets, epsilon, w), reduction, denominator)
        return loss.to(logits.dtype)

    # --8<-- [end:forward]

    # --8<-- [start:backward]
    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        refuse_double_backward()
        logits, target, weight, z_max, rest, argmax, denominator = ctx.saved_tensors
        epsilon, ignore_index, reduction, kind = ctx.options
        z = logits.to(z_max.dtype)
        w = z.new_ones(z.shape[-1]) if weight is None else weight.to(z.dtype)
        targets = smoothed_targets(target, kind, epsilon, w, ignore_index)
        # p = exp(z − z_max) / (1 + rest), from the saved row statistics
        p_m = 1.0 / (1.0 + rest)
        p = torch.exp(z - z_max[:, None]) * p_m[:, None]
        # S_i = Σ_k r_ik
        total = targets.r.sum(dim=-1)
        # ∂ℓ_i/∂z_ij = S_i p_ij − r_ij
        grad = total[:, None] * p - targets.r
        # At m, where p_m > 1/2 (rest < 1), S p_m − r_m cancels as p_m → 1. Take it from
        # the other classes there: Σ_{k≠m} r_k − S (1 − p_m), with 1 − p_m = rest·p_m
        m = argmax[:, None]
        r_others = targets.r.scatter(1, m, 0.0).sum(dim=-1)
        at_m = torch.where(
            rest < 1.0, r_others - total * rest * p_m, grad.gather(1, m)[:, 0]
        )
        grad.scatter_(1, m, at_m[:, None])
        # the chain rule through the reduction: s_i = ∂L/∂ℓ_i
        scale = row_scale(grad_output.to(z.dtype), denominator, targets.valid)
        # an ignored row gets exactly 0, whatever its logits (0·NaN would be NaN)
        grad = torch.where(targets.valid[:, None], grad * scale[:, None], 0.0)
        grad_target = None
        if ctx.needs_input_grad[1]:
            # probability targets: ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik
            # (see target_gradient)
            grad_target = target_gradient(z, z_max, rest, epsilon, w, scale).to(
                target.dtype
            )
        return grad.to(logits.dtype), grad_target, None, None, None, None, None

    # --8<-- [end:backward]

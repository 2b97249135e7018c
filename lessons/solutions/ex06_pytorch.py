"""Lesson 06 exercise, solved: the backward of our torch.autograd.Function.

The forward is lsce_scratch.nn.LSCEFunction's (inherited); you write the backward, the
closed form of lesson 05 in torch. Notation: z (N, K) logits, p = softmax(z),
q = (1 − ε)·onehot(y) + ε/K (or (1 − ε)·t + ε/K for probability targets t), r = w ⊙ q,
S = Σ_k r_k, and per row ∂ℓ/∂z_j = S·p_j − r_j.
"""

import torch
from torch import Tensor

from lsce_scratch import nn as reference


class LSCEFunction(reference.LSCEFunction):
    """LSCE on (N, K) logits: the reference forward, your backward."""

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        """Return (∂L/∂logits, None, None, None, None, None, None): one entry per
        input of forward, None for all but the logits (the library's backward
        also gives probability targets that require grad a gradient; that is not
        part of this exercise).

        What the forward saved for you:
            logits, target, weight, z_max, rest, argmax, denominator = ctx.saved_tensors
            epsilon, ignore_index, reduction, kind = ctx.options
        logits (N, K); target (N,) int64 indices (kind == "index") or (N, K)
        probabilities (kind == "soft"); weight (K,) or None; z_max (N,) the row maxima
        and rest (N,) = Σ_{k≠m} exp(z_k − z_max), so that lse = z_max + log(1 + rest);
        argmax (N,) = m, the class of the maximum (you need not use it); denominator the
        'mean' divisor, Σ_i w_{y_i} over the counted rows for index targets and N for
        probability targets (None for 'sum' and 'none'). Rows whose index target equals
        ignore_index (read it from ctx.options: it need not be -100) get a zero
        gradient. grad_output is a scalar for 'mean'/'sum' and (N,) for 'none'. Compute
        in float32 or float64 (not float16) and return the gradient in the logits' dtype
        and shape: float32 in, float32 out.
        """
        logits, target, weight, z_max, rest, argmax, denominator = ctx.saved_tensors
        epsilon, ignore_index, reduction, kind = ctx.options
        # float64 stays float64; float32 (and float16) logits are computed in float32
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        num_rows, num_classes = logits.shape
        # p = exp(z − lse) with lse = z_max + log(1 + rest),
        # from the saved row statistics
        lse = (z_max + torch.log1p(rest)).to(dtype)
        p = torch.exp(logits.to(dtype) - lse[:, None])
        if weight is None:
            w = torch.ones(num_classes, dtype=dtype, device=logits.device)
        else:
            w = weight.to(dtype)
        if kind == "index":
            valid = target != ignore_index
            y = torch.where(
                valid, target, 0
            )  # ignored rows point at class 0, zeroed below
            # q = (1 − ε)·onehot(y) + ε/K
            q = torch.full_like(p, epsilon / num_classes)
            q[torch.arange(num_rows, device=logits.device), y] += 1 - epsilon
        else:
            valid = torch.ones(num_rows, dtype=torch.bool, device=logits.device)
            # q = (1 − ε)·t + ε/K
            q = (1 - epsilon) * target.to(dtype) + epsilon / num_classes
        # r = w ⊙ q;  S = Σ_k r_k
        r = w * q
        total = r.sum(dim=-1, keepdim=True)
        # ∂ℓ_i/∂z_ij = S_i p_ij − r_ij, and 0 on the ignored rows
        grad = torch.where(valid[:, None], total * p - r, 0.0)
        upstream = grad_output.to(dtype)
        if reduction == "mean":
            # L = Σ_i ℓ_i / denominator
            grad = grad * upstream / denominator
        elif reduction == "sum":
            grad = grad * upstream
        else:
            # 'none': row i is scaled by its own grad_output[i]
            grad = grad * upstream[:, None]
        return grad.to(logits.dtype), None, None, None, None, None, None

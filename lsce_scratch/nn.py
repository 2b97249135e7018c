"""Label-smoothing cross-entropy inside PyTorch's autograd, with our own backward (lesson 06).

:class:`LSCEFunction` computes the loss and, in ``backward``, the closed form derived in
lesson 05 instead of letting autograd differentiate a chain of ops:

    ∂ℓ_i/∂z_ij = S_i p_ij − r_ij,   r_i = w ⊙ q_i,   S_i = Σ_k r_ik.

It saves only the logits (which are alive anyway) and three numbers per row — never an
(N, K) log-probability tensor. Notation as in :mod:`lsce_scratch.losses`; classes sit on
the last axis, as in the article's module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from lsce_scratch import _validation as check


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
) -> str:
    """The checks of the NumPy core, on tensors; returns the target kind ('index'/'soft')."""
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
        bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
        if bool(bad.any()):
            check.check_index_values(target[bad].tolist(), num_classes, ignore_index)
    else:
        finite = bool(torch.isfinite(target).all())
        minimum = float(target.min()) if target.numel() else 0.0
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
            float(weight.min()) if weight.numel() else 0.0,
            bool(torch.isfinite(weight).all()),
        )
    return kind


def _check_finite_rows(logits: Tensor, row_stats: Tensor) -> None:
    """Raise the NaN/inf error if a row statistic is not finite (one host sync per call).

    NaN or +inf anywhere in a row makes its max or log-sum-exp non-finite, and −inf makes
    its sum of shifted logits −inf, so checking the O(N) row statistics finds them all.
    """
    if not bool(torch.isfinite(row_stats).all()):
        bad = torch.nonzero(~torch.isfinite(logits))
        raise check.nonfinite_logits_error(len(bad), bad[0].tolist())


def _row_targets(
    target: Tensor, epsilon: float, weight: Tensor | None, num_classes: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """For probability targets: r = w ⊙ ((1 − ε)·t + ε/K) and S = Σ_k r_k, per row."""
    # q = (1 − ε)·t + ε/K
    r = target.to(dtype) * (1.0 - epsilon) + epsilon / num_classes
    if weight is not None:
        # r_k = w_k q_k (PyTorch weights every class term)
        r = r * weight.to(dtype)
    return r, r.sum(dim=-1)


class LSCEFunction(torch.autograd.Function):
    """LSCE on (N, K) logits with the hand-derived backward.

    ``LSCEFunction.apply(logits, target, epsilon, weight, ignore_index, reduction, kind)``
    takes 2-D logits, flat index targets (N,) or probabilities (N, K), and returns the
    reduced loss (a scalar, or (N,) for 'none'). The functional and the module below
    validate arguments and handle any leading shape; call those instead.
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
    ) -> Tensor:
        num_classes = logits.shape[-1]
        dtype = _compute_dtype(logits.dtype)
        z = logits.to(dtype)
        # m_i = argmax_k z_ik and z_max = z_im; shifted = z − z_max ≤ 0, exactly 0 at m
        z_max, argmax = z.max(dim=-1)
        shifted = z - z_max[:, None]
        # Σ_k w_k (z_max − z_k) ≥ 0: the smoothing term without cancellation
        spread = -(shifted @ weight.to(dtype) if weight is not None else shifted.sum(dim=-1))
        if kind == "soft":
            r, total = _row_targets(target, epsilon, weight, num_classes, dtype)
            # Σ_k r_k (z_max − z_k)
            gap_term = -(shifted * r).sum(dim=-1)
            valid = torch.ones_like(total, dtype=torch.bool)
        else:
            valid = target != ignore_index
            safe = torch.where(valid, target, 0)
            w_y = weight.to(dtype)[safe] if weight is not None else torch.ones_like(z_max)
            w_sum = weight.to(dtype).sum() if weight is not None else float(num_classes)
            # S = (1 − ε) w_y + (ε/K) Σ_k w_k
            total = (1.0 - epsilon) * w_y + epsilon / num_classes * w_sum
            # Σ_k r_k (z_max − z_k) = (1 − ε) w_y (z_max − z_y) + (ε/K) Σ_k w_k (z_max − z_k)
            gap_y = -shifted.gather(1, safe[:, None])[:, 0]
            gap_term = (1.0 - epsilon) * w_y * gap_y + epsilon / num_classes * spread
        # rest = Σ_{k≠m} exp(z_k − z_max): the max term (exactly 1) is left out, so that
        # lse = z_max + log1p(rest) and 1 − p_m = rest / (1 + rest) keep every digit
        exp_shifted = shifted.exp_()
        exp_shifted.scatter_(1, argmax[:, None], 0.0)
        rest = exp_shifted.sum(dim=-1)
        log1p_rest = torch.log1p(rest)
        _check_finite_rows(logits, torch.stack([z_max, log1p_rest, spread]))
        # ℓ_i = Σ_k r_ik (lse_i − z_ik) = Σ_k r_ik (z_max − z_ik) + S_i log1p(rest_i)
        row_loss = torch.where(valid, gap_term + total * log1p_rest, 0.0)
        if reduction == "none":
            loss, denominator = row_loss, None
        elif reduction == "sum":
            loss, denominator = row_loss.sum(), None
        else:
            # mean: Σ_i w_{y_i} over non-ignored rows for index targets (0/0 = NaN when
            # all are ignored), the number of rows for probability targets
            denominator = (
                torch.where(valid, w_y, 0.0).sum()
                if kind == "index"
                else torch.tensor(float(len(row_loss)), dtype=dtype, device=z.device)
            )
            # a zero denominator makes the mean undefined: NaN, as in PyTorch
            denominator = torch.where(denominator == 0, torch.nan, denominator)
            loss = row_loss.sum() / denominator
        ctx.save_for_backward(logits, target, weight, z_max, log1p_rest, rest, argmax, denominator)
        ctx.options = (epsilon, ignore_index, reduction, kind)
        return loss.to(logits.dtype)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            # create_graph=True: autograd would differentiate this closed form as if it were
            # the function, giving a wrong second derivative. Refuse instead.
            raise RuntimeError(
                "LSCEFunction does not support double backward (create_graph=True): its "
                "backward is a hand-derived closed form. For second derivatives use "
                "torch.nn.functional.cross_entropy(..., label_smoothing=epsilon)"
            )
        logits, target, weight, z_max, log1p_rest, rest, argmax, denominator = ctx.saved_tensors
        epsilon, ignore_index, reduction, kind = ctx.options
        num_classes = logits.shape[-1]
        dtype = _compute_dtype(logits.dtype)
        rows = torch.arange(len(logits), device=logits.device)
        # p = exp(z − z_max − log1p(rest)), written straight into the gradient buffer
        grad = (logits.to(dtype) - z_max[:, None] - log1p_rest[:, None]).exp_()
        w = weight.to(dtype) if weight is not None else None
        if kind == "soft":
            r, total = _row_targets(target, epsilon, weight, num_classes, dtype)
            valid = torch.ones_like(total, dtype=torch.bool)
            # Σ_{k≠m} r_k, summed without r_m so that nothing cancels
            r_others = r.scatter(1, argmax[:, None], 0.0).sum(dim=-1)
            # ∂ℓ/∂z = S p − r
            grad.mul_(total[:, None]).sub_(r)
        else:
            valid = target != ignore_index
            safe = torch.where(valid, target, 0)
            w_y = w[safe] if w is not None else torch.ones_like(z_max)
            w_sum = w.sum() if w is not None else float(num_classes)
            w_m = w[argmax] if w is not None else 1.0
            total = (1.0 - epsilon) * w_y + epsilon / num_classes * w_sum
            # Σ_{k≠m} r_k = (1 − ε) w_y [y ≠ m] + (ε/K)(Σ_k w_k − w_m)
            r_others = (1.0 - epsilon) * w_y * (safe != argmax) + epsilon / num_classes * (
                w_sum - w_m
            )
            # ∂ℓ/∂z = S p − r, with r = (ε/K) w + (1 − ε) w_y onehot(y)
            grad.mul_(total[:, None])
            grad.sub_(epsilon / num_classes * (w if w is not None else 1.0))
            grad[rows, safe] -= (1.0 - epsilon) * w_y
        # at the most likely class m: S p_m − r_m = Σ_{k≠m} r_k − S (1 − p_m), with
        # 1 − p_m = rest / (1 + rest) from the other classes (no float32 cancellation)
        grad[rows, argmax] = r_others - total * (rest / (1.0 + rest))
        # chain rule through the reduction; ignored rows get exactly 0
        scale = grad_output.to(dtype)
        if reduction == "mean":
            scale = scale / denominator
        scale = torch.where(valid, scale, 0.0)
        grad.mul_(scale[:, None])
        return grad.to(logits.dtype), None, None, None, None, None, None


def label_smoothing_cross_entropy(
    logits: Tensor,
    target: Tensor,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """LSCE with classes on the last axis: logits (..., K), target (...) indices or (..., K).

    Equals ``F.cross_entropy(movedim(logits, -1, 1), target, weight, ignore_index=...,
    reduction=..., label_smoothing=epsilon)``; the backward is our closed form.
    """
    kind = _validate(logits, target, epsilon, reduction, weight, ignore_index)
    num_classes = logits.shape[-1]
    leading = logits.shape[:-1]
    flat_target = target.reshape(-1).long() if kind == "index" else target.reshape(-1, num_classes)
    loss = LSCEFunction.apply(
        logits.reshape(-1, num_classes),
        flat_target,
        float(epsilon),
        weight,
        int(ignore_index),
        reduction,
        kind,
    )
    return loss.reshape(leading) if reduction == "none" else loss


class LabelSmoothingCrossEntropy(nn.Module):
    """The article's module, with our backward: ``LabelSmoothingCrossEntropy(epsilon=0.1)``.

    Adds PyTorch's ``weight`` and ``ignore_index``; classes on the last axis.
    """

    def __init__(
        self,
        epsilon: float = 0.1,
        reduction: str = "mean",
        weight: Tensor | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.epsilon = check.check_epsilon(epsilon)
        self.reduction = check.check_reduction(reduction)
        self.ignore_index = check.check_ignore_index(ignore_index)
        self.register_buffer("weight", weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(
            logits,
            target,
            self.epsilon,
            reduction=self.reduction,
            weight=self.weight,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, reduction={self.reduction!r}"


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

"""The reductions 'none', 'sum' and 'mean', forward and backward,
for every torch Function.

'mean' over class indices divides by Σ_i w_y_i (each row's true-class weight) over the
rows that count, over probability targets by the number of rows N, as PyTorch does; an
all-ignored 'mean' is NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor


# --8<-- [start:reduction]
def mean_denominator(
    reduction: str, valid: Tensor, w_y: Tensor | None, dtype: torch.dtype
) -> Tensor | None:
    """The denominator of 'mean': Σ_i w_y_i over the rows that count (index targets, w_y
    their true classes' weights), or N (probability targets, w_y None); NaN when it is
    0, as in PyTorch. None for 'sum' and 'none'."""
    if reduction != "mean":
        return None
    if w_y is None:
        total = torch.tensor(float(len(valid)), dtype=dtype, device=valid.device)
    else:
        total = torch.where(valid, w_y, 0.0).sum()
    return torch.where(total == 0, torch.nan, total)


def reduce(row_loss: Tensor, reduction: str, denominator: Tensor | None) -> Tensor:
    """L from the ℓ_i: all of them ('none'), their sum,
    or their sum / the denominator."""
    if reduction == "none":
        return row_loss
    return row_loss.sum() if denominator is None else row_loss.sum() / denominator


def row_scale(grad_output: Tensor, denominator: Tensor | None, valid: Tensor) -> Tensor:
    """s_i = ∂L/∂ℓ_i for every row:
    grad_output through the reduction, 0 on ignored rows.

    'mean' divides by the denominator; 'sum' passes grad_output on;
    'none' has one per row.
    """
    scale = grad_output if denominator is None else grad_output / denominator
    return torch.where(valid, scale, 0.0)


# --8<-- [end:reduction]


def unit_scales(
    reduction: str, valid: Tensor, w_y: Tensor | None, dtype: torch.dtype
) -> tuple[Tensor | None, Tensor]:
    """The 'mean' denominator and every row's s_i for grad_output = 1: what a forward
    that computes the gradients itself scales them by (its backward then multiplies by
    the real grad_output)."""
    denominator = mean_denominator(reduction, valid, w_y, dtype)
    one = torch.ones((), dtype=dtype, device=valid.device)
    return denominator, row_scale(one, denominator, valid)

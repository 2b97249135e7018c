"""The article's formulation, written from its formula,
with autograd doing the backward.

The baseline that lesson 06 checks ours against and the benchmarks measure: it keeps
``log_softmax``'s (N, K) output for the backward.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lsce_scratch import _validation as check


# --8<-- [start:composite]
class CompositeLabelSmoothingCrossEntropy(nn.Module):
    """The article's formulation, written from its formula: autograd does the backward.

    ℓ = ε·mean_k(−log p_k) + (1 − ε)·(−log p_y), reduced by mean or sum. Like
    the article's module it has no class weights and no ignore_index; it
    accepts any leading shape.
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

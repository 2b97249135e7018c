"""Label-smoothing cross-entropy inside PyTorch's autograd, with our own backward.

The autograd Functions compute the loss and, in ``backward``, the closed form derived in
lesson 05 instead of letting autograd differentiate a chain of ops:

    ∂ℓ_i/∂z_ij = S_i p_ij − r_ij,   r_i = w ⊙ q_i,   S_i = Σ_k r_ik.

Notation as in :mod:`lsce_scratch.losses`; classes sit on the last axis, as in the
article's module. One module per concept:

- :mod:`lsce_scratch.nn.functional`: :func:`label_smoothing_cross_entropy` and
  :class:`LabelSmoothingCrossEntropy`, the API (validation, any leading shape,
  autocast);
- :mod:`lsce_scratch.nn.function`: :class:`LSCEFunction`, lesson 06's Function in plain
  torch ops;
- :mod:`lsce_scratch.nn.fast_function`: :class:`FastLSCEFunction`, the same in fewer
  passes over memory (lesson 09), the default;
- :mod:`lsce_scratch.nn.grad_in_forward`: :class:`LSCEGradInForward`, the gradient in
  the forward and written over the logits (lesson 09's opt-ins);
- :mod:`lsce_scratch.nn.fused_linear`: :func:`linear_label_smoothing_cross_entropy`, the
  output layer fused with the loss;
- :mod:`lsce_scratch.nn.composite`: :class:`CompositeLabelSmoothingCrossEntropy`, the
  article's formulation with autograd's backward, the baseline;
- internals of the fast path: :mod:`lsce_scratch.nn.backends` (which kernel runs),
  :mod:`lsce_scratch.nn.torch_chunks` (the torch-ops kernel),
  :mod:`lsce_scratch.nn.triton_lsce` (the Triton kernels), :mod:`lsce_scratch.nn.rows`
  (the per-row record), :mod:`lsce_scratch.nn.reduction` and
  :mod:`lsce_scratch.nn.validation`.
"""

from lsce_scratch.nn.composite import CompositeLabelSmoothingCrossEntropy
from lsce_scratch.nn.fast_function import FastLSCEFunction
from lsce_scratch.nn.function import LSCEFunction
from lsce_scratch.nn.functional import (
    LabelSmoothingCrossEntropy,
    label_smoothing_cross_entropy,
)
from lsce_scratch.nn.fused_linear import (
    LinearLSCEFunction,
    linear_label_smoothing_cross_entropy,
)
from lsce_scratch.nn.grad_in_forward import LSCEGradInForward

__all__ = [
    "CompositeLabelSmoothingCrossEntropy",
    "FastLSCEFunction",
    "LSCEFunction",
    "LSCEGradInForward",
    "LabelSmoothingCrossEntropy",
    "LinearLSCEFunction",
    "label_smoothing_cross_entropy",
    "linear_label_smoothing_cross_entropy",
]

"""The PyTorch API: ``label_smoothing_cross_entropy`` and the article's module with it.

Both validate their arguments (the NumPy core's errors and messages), take any leading
shape with the classes on the last axis, and hand rows of K classes to one of three
autograd Functions, all with the closed-form backward of lesson 06:

- :class:`lsce_scratch.nn.fast_function.FastLSCEFunction`, the default (lesson 09's
  fast kernels);
- :class:`lsce_scratch.nn.grad_in_forward.LSCEGradInForward` for ``grad_in_forward``
  and ``inplace``;
- :class:`lsce_scratch.nn.function.LSCEFunction`, lesson 06's plain one, for
  ``fast=False``.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from lsce_scratch import _validation as check
from lsce_scratch.nn.fast_function import FastLSCEFunction
from lsce_scratch.nn.function import LSCEFunction
from lsce_scratch.nn.grad_in_forward import LSCEGradInForward
from lsce_scratch.nn.validation import validate


# torch.compile treats the loss as one opaque call (a graph break): it syncs
# with the host to check its inputs and runs NumPy or Triton kernels, none of
# which a graph can hold
@torch.compiler.disable
def label_smoothing_cross_entropy(
    logits: Tensor,
    target: Tensor,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    grad_in_forward: bool = False,
    inplace: bool = False,
    fast: bool = True,
) -> Tensor:
    """LSCE with classes on the last axis: logits (..., K), target (...) indices or
    (..., K).

    Equals ``F.cross_entropy(movedim(logits, -1, 1), target, weight, ignore_index=...,
    reduction=..., label_smoothing=epsilon)``; the backward is our closed form.

    ``grad_in_forward=True`` computes the gradient during the forward
    (:class:`lsce_scratch.nn.grad_in_forward.LSCEGradInForward`): the backward is then
    free, but the gradient is held until it runs, and it may run only once.
    ``inplace=True`` (implies grad_in_forward) writes that gradient over ``logits``: use
    it only when nothing else needs the logits after the loss. Logits that are a leaf
    requiring grad, or whose entries share memory (an expanded view), are refused.
    ``fast=False`` runs lesson 06's plain :class:`lsce_scratch.nn.function.LSCEFunction`
    instead of the fast kernels: the same numbers, more passes over memory. Under
    ``torch.autocast`` the loss is computed from float32 logits and returned in float32,
    as ``F.cross_entropy`` does there.
    """
    if not fast and (grad_in_forward or inplace):
        raise ValueError(
            "grad_in_forward and inplace are options of the fast kernels "
            "(lesson 09); with fast=False the plain LSCEFunction computes "
            "the gradient in its backward"
        )
    # on a GPU the fast kernels check the class indices after the pass (one host sync)
    defer = fast and isinstance(logits, Tensor) and logits.is_cuda
    kind = validate(logits, target, epsilon, reduction, weight, ignore_index, defer)
    if inplace and logits.is_leaf and logits.requires_grad:
        raise ValueError(
            "inplace=True would overwrite logits that are a leaf tensor requiring "
            "grad (a parameter, or an input you asked gradients for) with their "
            "gradient; pass logits computed by the model, or use inplace=False"
        )
    device_type = logits.device.type
    autocast = torch.is_autocast_enabled(device_type)
    if autocast:
        # autocast runs cross-entropy in float32 (float64 stays): the same inputs for us
        logits, target = _autocast_float32(logits), _autocast_float32(target)
        weight = None if weight is None else _autocast_float32(weight)
    num_classes = logits.shape[-1]
    leading = logits.shape[:-1]
    flat = logits.reshape(-1, num_classes)
    if inplace and _entries_share_memory(flat):
        raise ValueError(
            "inplace=True would write the gradient over logits whose entries share "
            f"memory (strides {tuple(logits.stride())}: an expanded or overlapping "
            "view), so one entry would receive the gradients of several; pass "
            "logits.contiguous(), or use inplace=False"
        )
    flat_target = flat_targets(target, kind, num_classes)
    args = (
        flat,
        flat_target,
        float(epsilon),
        weight,
        int(ignore_index),
        reduction,
        kind,
    )
    with without_autocast(device_type, autocast):
        if not fast:
            loss = LSCEFunction.apply(*args)
        elif grad_in_forward or inplace:
            loss = LSCEGradInForward.apply(*args, bool(inplace))
        else:
            loss = FastLSCEFunction.apply(*args)
    return loss.reshape(leading) if reduction == "none" else loss


def flat_targets(target: Tensor, kind: str, num_classes: int) -> Tensor:
    """The targets one row of logits each: (N,) int64 class indices, or (N, K)
    probabilities."""
    if kind == "index":
        return target.reshape(-1).long()
    return target.reshape(-1, num_classes)


def without_autocast(device_type: str, autocast: bool) -> AbstractContextManager:
    """Where autocast is on, a context in which it is off: our ops must run in the
    dtypes the caller chose for them, not in autocast's."""
    if autocast:
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _autocast_float32(t: Tensor) -> Tensor:
    """What autocast gives a float32 op:
    floating tensors in float32, float64 left alone."""
    if not t.is_floating_point() or t.dtype == torch.float64:
        return t
    return t.float()


def _entries_share_memory(t: Tensor) -> bool:
    """Whether two entries of t may occupy the same memory
    (stride 0, overlapping strides).

    Dimensions in order of stride:
    each must step past everything the smaller ones reach.
    """
    reach = 1  # one past the largest offset the dimensions so far reach
    for stride, size in sorted(
        (st, n) for st, n in zip(t.stride(), t.shape, strict=True) if n > 1
    ):
        if stride < reach:
            return True
        reach += (size - 1) * stride
    return False


class LabelSmoothingCrossEntropy(nn.Module):
    """The article's module, with our backward:
    ``LabelSmoothingCrossEntropy(epsilon=0.1)``.

    Adds PyTorch's ``weight`` and ``ignore_index``, and lesson 09's ``grad_in_forward``
    and ``inplace`` (see :func:`label_smoothing_cross_entropy`); classes on the last
    axis. It runs the fast kernels
    (:class:`lsce_scratch.nn.fast_function.FastLSCEFunction`); ``fast=False`` runs
    lesson 06's plain ``LSCEFunction``, with the same numbers.
    """

    def __init__(
        self,
        epsilon: float = 0.1,
        reduction: str = "mean",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        grad_in_forward: bool = False,
        inplace: bool = False,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.epsilon = check.check_epsilon(epsilon)
        self.reduction = check.check_reduction(reduction)
        self.ignore_index = check.check_ignore_index(ignore_index)
        self.grad_in_forward = bool(grad_in_forward)
        self.inplace = bool(inplace)
        self.fast = bool(fast)
        self.weight: Tensor | None
        self.register_buffer("weight", weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(
            logits,
            target,
            self.epsilon,
            reduction=self.reduction,
            weight=self.weight,
            ignore_index=self.ignore_index,
            grad_in_forward=self.grad_in_forward,
            inplace=self.inplace,
            fast=self.fast,
        )

    def extra_repr(self) -> str:
        text = f"epsilon={self.epsilon}, reduction={self.reduction!r}"
        if self.grad_in_forward or self.inplace:
            text += f", grad_in_forward=True, inplace={self.inplace}"
        if not self.fast:
            text += ", fast=False"
        return text

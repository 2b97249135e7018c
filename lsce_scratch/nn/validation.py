"""The argument checks of the NumPy core, on tensors: the same errors,
the same messages.

:mod:`lsce_scratch._validation` holds the checks themselves; this module computes the
facts they take (shapes, dtype names, a few reduced numbers) from torch tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsce_scratch import _validation as check


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' rather than 'torch.float32',
    so messages read as the NumPy core's do."""
    return str(dtype).removeprefix("torch.")


def _is_integer(t: Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def validate(
    logits: Tensor,
    target: Tensor,
    epsilon: float,
    reduction: str,
    weight: Tensor | None,
    ignore_index: int,
    defer_index_check: bool = False,
) -> str:
    """Check the arguments of an LSCE call; return the target kind ('index' or 'soft').

    With ``defer_index_check`` the class indices are checked after the forward pass
    instead (see :func:`lsce_scratch.nn.rows.check_values`), so that a GPU training step
    waits for the device only once.
    """
    check.check_epsilon(epsilon)
    check.check_reduction(reduction)
    check.check_ignore_index(ignore_index)
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"logits and target must be torch tensors; got {type(logits).__name__} and "
            f"{type(target).__name__}. For NumPy arrays use lsce_scratch.lsce_forward"
        )
    num_classes = check.check_logits(
        logits.shape,
        dtype_name(logits.dtype),
        logits.is_floating_point(),
        "logits.float()",
    )
    kind = check.target_kind(
        logits.shape,
        target.shape,
        dtype_name(target.dtype),
        target.is_floating_point(),
        _is_integer(target),
    )
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but logits are on {logits.device}; "
            f"move it with target.to(logits.device)"
        )
    if kind == "index":
        if not defer_index_check:
            check_index_range(target, num_classes, ignore_index)
    else:
        # detached: a target that requires grad must not warn about
        # float() of a graph node
        probabilities = target.detach()
        finite = bool(torch.isfinite(probabilities).all())
        minimum = float(probabilities.min()) if target.numel() else 0.0
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
            float(weight.detach().min()) if weight.numel() else 0.0,
            bool(torch.isfinite(weight.detach()).all()),
        )
    return kind


def check_index_range(target: Tensor, num_classes: int, ignore_index: int) -> None:
    """Raise if a class index other than ignore_index lies outside [0, K − 1]."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        check.check_index_values(target[bad].tolist(), num_classes, ignore_index)


def nonfinite_rows(z_max: Tensor, valid: Tensor) -> Tensor:
    """The rows that count and hold NaN or +inf: exactly those whose maximum
    is NaN or +inf (NaN compares False, so NaN and +inf fail z_max < inf;
    finite and −inf pass)."""
    return valid & ~(z_max < torch.inf)


def nonfinite_error(bad: Tensor, z_max: Tensor, argmax: Tensor) -> ValueError:
    """The NaN/+inf error for the ``bad`` rows, naming the maximum of the first one."""
    first = int(torch.nonzero(bad)[0])
    return check.nonfinite_logits_error(
        int(bad.sum()), (first, int(argmax[first])), float(z_max[first])
    )

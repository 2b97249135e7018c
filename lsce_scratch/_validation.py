"""Argument checks shared by the NumPy core and the PyTorch bridge.

Each check takes plain Python facts (shapes, dtype names, a few reduced numbers), so the
NumPy and the torch code compute those facts their own way and then raise the same
error with the same message. Every message names the argument, what was given, what is
allowed, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from numbers import Integral, Real

REDUCTIONS = ("none", "mean", "sum")
SPREADS = ("all", "others")


def check_epsilon(epsilon: object) -> float:
    """Return ε as a float, or raise if it is not a number in [0, 1]."""
    # a Python or NumPy number, or a one-element array or tensor; not a bool or a string
    try:
        if isinstance(epsilon, bool | str | bytes) or not (
            isinstance(epsilon, Real) or getattr(epsilon, "ndim", None) == 0
        ):
            raise TypeError
        value = float(epsilon)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            "epsilon must be a real number in [0, 1] (the probability mass moved off "
            f"the true class); got {type(epsilon).__name__} {epsilon!r}"
        ) from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(
            "epsilon must be in [0, 1] (the probability mass moved off the true "
            f"class); got {value!r}. Typical values are 0.05 to 0.2"
        )
    return value


def check_reduction(reduction: object) -> str:
    """Return the reduction name, or raise if it is not one of none/mean/sum."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            "reduction must be one of "
            f"{', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}"
        )
    return reduction


def check_spread(spread: object) -> str:
    """Return the smoothing spread name, or raise if it is not 'all' or 'others'."""
    if spread not in SPREADS:
        raise ValueError(
            "spread must be 'all' (ε/K to every class, PyTorch's convention) or "
            f"'others' (ε/(K−1) to the wrong classes only); got {spread!r}"
        )
    return spread


def check_ignore_index(ignore_index: object) -> int:
    """Return ignore_index as an int, or raise if it is not an integer."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, Integral):
        raise TypeError(
            f"ignore_index must be an integer class index (default -100); "
            f"got {type(ignore_index).__name__} {ignore_index!r}"
        )
    return int(ignore_index)


def check_logits(
    shape: Sequence[int], dtype: str, is_floating: bool, convert_hint: str
) -> int:
    """Check the logits' shape and dtype; return K, the number of classes
    (last axis)."""
    if len(shape) == 0:
        raise ValueError(
            "logits must have the classes on the last axis, shape (..., K); got a "
            "scalar. For one example pass a vector of K logits"
        )
    if not is_floating:
        raise TypeError(
            "logits must be floating point (float16, bfloat16, float32 or float64); "
            f"got {dtype}. Convert with {convert_hint}"
        )
    num_classes = int(shape[-1])
    if num_classes == 0:
        raise ValueError(
            "logits must have at least one class on the last "
            f"axis; got shape {tuple(shape)}"
        )
    return num_classes


def nonfinite_logits_error(
    bad_rows: int, index: Sequence[int], value: float
) -> ValueError:
    """The error for NaN or +inf logits in rows that count (the caller found them).

    ``index`` is one bad entry of the first bad row and ``value`` what it holds.
    """
    return ValueError(
        f"logits contain NaN or +inf in {bad_rows} row(s) that count, the first with "
        f"{value} at index {tuple(int(i) for i in index)}; the loss is undefined "
        "there. Check the model output (a diverged step, an overflow) before the "
        "loss. A logit of -inf is allowed (it masks a class), and rows whose target "
        "is ignore_index are never checked"
    )


def target_kind(
    logits_shape: Sequence[int],
    target_shape: Sequence[int],
    target_dtype: str,
    target_is_floating: bool,
    target_is_integer: bool,
) -> str:
    """Decide whether target holds class indices ('index') or probabilities ('soft').

    Class indices have the logits' shape without the class axis; probabilities have the
    logits' shape. Anything else, or a dtype that does not fit the shape, is an error.
    """
    logits_shape, target_shape = tuple(logits_shape), tuple(target_shape)
    index_shape = logits_shape[:-1]
    if target_shape == index_shape:
        if target_is_integer:
            return "index"
        if target_is_floating:
            raise TypeError(
                f"target has shape {target_shape}, the shape of class indices, but "
                f"dtype {target_dtype}: class indices must be integers. Convert with "
                "an integer cast (e.g. target.astype(int) or target.long()), or pass "
                f"class probabilities of shape {logits_shape}"
            )
        raise TypeError(
            f"target must hold integer class indices or floating-point probabilities; "
            f"got dtype {target_dtype}"
        )
    if target_shape == logits_shape:
        if target_is_floating:
            return "soft"
        raise TypeError(
            f"target has shape {target_shape}, the shape of class "
            f"probabilities, but dtype {target_dtype}: probabilities must be "
            f"floating point. Pass class indices of shape {index_shape} "
            "instead, or cast the probabilities to float"
        )
    raise ValueError(
        f"target shape {target_shape} does not fit logits shape {logits_shape}: pass "
        f"class indices of shape {index_shape} or class probabilities of shape "
        f"{logits_shape} (classes on the last axis)"
    )


def check_index_values(
    out_of_range: Collection[int], num_classes: int, ignore_index: int | None
) -> None:
    """Raise if any class index (other than ignore_index) lies outside [0, K−1].

    ``ignore_index=None`` is for callers without one (smooth_labels):
    every index must fit.
    """
    if len(out_of_range) == 0:
        return
    shown = ", ".join(str(int(v)) for v in list(out_of_range)[:5])
    if ignore_index is None:
        raise ValueError(
            f"target holds class index {shown} outside [0, {num_classes - 1}] "
            f"(num_classes = {num_classes}); every index must lie in that range"
        )
    raise ValueError(
        f"target holds class index {shown} outside [0, {num_classes - 1}] (logits have "
        f"K = {num_classes} classes on the last axis); only "
        f"ignore_index={ignore_index} may lie outside that range"
    )


def check_soft_values(minimum: float, all_finite: bool, ignore_index: int) -> None:
    """Check probability targets: finite, non-negative, and no ignore_index
    (as in PyTorch)."""
    if not all_finite:
        raise ValueError("target probabilities must be finite; found NaN or ±inf")
    if minimum < 0:
        raise ValueError(
            f"target probabilities must be >= 0; found {minimum!r}. Soft targets are "
            f"per-class probabilities with the classes on the last axis"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} is not supported with probability targets "
            f"(PyTorch refuses it too); leave it at -100, or pass class indices"
        )


def check_weight(
    shape: Sequence[int], num_classes: int, minimum: float, all_finite: bool
) -> None:
    """Check a class-weight vector: shape (K,), finite, non-negative."""
    if tuple(shape) != (num_classes,):
        raise ValueError(
            f"weight must have shape ({num_classes},), one weight per "
            f"class; got {tuple(shape)}"
        )
    if not all_finite:
        raise ValueError("weight must be finite; found NaN or ±inf")
    if minimum < 0:
        raise ValueError(f"weight must be >= 0 for every class; found {minimum!r}")


def check_dloss(shape: Sequence[int], expected: Sequence[int], reduction: str) -> None:
    """Check that the upstream gradient has the loss's shape."""
    if tuple(shape) != tuple(expected):
        what = "a scalar" if len(expected) == 0 else f"shape {tuple(expected)}"
        raise ValueError(
            f"dloss must be {what}, the shape of the loss that lsce_forward returned "
            f"with reduction={reduction!r}; got shape {tuple(shape)}"
        )


def check_num_classes(num_classes: object) -> int:
    """Return K as an int, or raise if it is not a positive integer."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral):
        raise TypeError(f"num_classes must be a positive integer; got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    return int(num_classes)

"""PyTorch as the oracle for the NumPy LSCE, plus the test inputs the oracle tests share.

Import it from any test module (``tests`` is a package) as::

    from tests.oracle import torch_lsce, random_logits, random_soft_targets

:func:`torch_lsce` takes the same arguments as :func:`lsce_scratch.lsce_forward`, in our
conventions (classes on the last axis, class indices of shape ``(...)`` or probabilities of
shape ``(..., K)``), runs ``torch.nn.functional.cross_entropy(..., label_smoothing=ε)`` on
them, back-propagates an upstream gradient and returns NumPy arrays. Compare it with::

    loss, cache = lsce_forward(logits, target, eps, reduction=..., weight=..., ignore_index=...)
    grad = lsce_backward(result.dloss, cache)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from tests.expect import assert_close  # noqa: F401  (the oracle tests' comparison)


class TorchResult(NamedTuple):
    """What :func:`torch_lsce` returns; every field is a NumPy array."""

    loss: np.ndarray  # the loss: 0-d for 'mean'/'sum', the leading shape for 'none'
    grad: np.ndarray  # ∂(Σ dloss · loss)/∂logits, the logits' shape
    dloss: np.ndarray  # the upstream gradient that was used; pass it to lsce_backward


def upstream_gradient(
    reduction: str,
    leading_shape: tuple[int, ...],
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A non-trivial upstream gradient ∂L/∂loss in float64.

    For 'none' a random array of the loss's shape (``leading_shape``), entries in
    [0.5, 1.5) with random signs, so a gradient that ignores dloss, or scales the wrong
    row, is caught. For 'mean'/'sum' the 0-d scalar 0.7 (not 1, so a missing factor shows).
    """
    if reduction == "none":
        rng = np.random.default_rng(1234) if rng is None else rng
        size = rng.uniform(0.5, 1.5, size=leading_shape)
        sign = rng.choice([-1.0, 1.0], size=leading_shape)
        return np.asarray(size * sign, dtype=np.float64)
    return np.asarray(0.7, dtype=np.float64)


def torch_lsce(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    dloss: ArrayLike | None = None,
    dtype: torch.dtype = torch.float64,
) -> TorchResult:
    """PyTorch's label-smoothing cross-entropy and its gradient, for NumPy inputs.

    Args:
        logits: ``(..., K)``, classes on the last axis. A single example is ``(K,)``.
        target: integer class indices of shape ``(...)`` (a Python int or 0-d array for a
            single example), or probabilities of shape ``(..., K)``.
        epsilon, reduction, weight, ignore_index: as in ``lsce_forward``.
        dloss: the upstream gradient ∂L/∂loss; by default :func:`upstream_gradient`
            (random for 'none', 0.7 otherwise).
        dtype: the floating dtype torch computes in (float64 by default: the oracle).

    Returns:
        ``TorchResult(loss, grad, dloss)``: the loss and ``grad`` = ∂(Σ dloss·loss)/∂logits
        as float64 NumPy arrays in our layout (classes last), and the ``dloss`` used.

    It calls ``F.cross_entropy(torch.movedim(logits, -1, 1), movedim'ed target, ...)``:
    torch wants the classes on dim 1, so logits and probability targets of rank ≥ 2 have
    their last axis moved there; a single ``(K,)`` example is passed as it is.
    """
    with single_torch_thread():
        return _torch_lsce(
            logits, target, epsilon, reduction, weight, ignore_index, dloss, dtype
        )


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """One torch thread, restored afterwards. These tensors are tiny, and torch's thread
    pool on a busy 2-core CI machine turns a 0.3 ms call into 10-40 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _torch_lsce(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float,
    reduction: str,
    weight: ArrayLike | None,
    ignore_index: int,
    dloss: ArrayLike | None,
    dtype: torch.dtype,
) -> TorchResult:
    x_np = np.asarray(logits)
    t_np = np.asarray(target)
    soft = t_np.shape == x_np.shape and np.issubdtype(t_np.dtype, np.floating)
    x = torch.tensor(x_np, dtype=dtype, requires_grad=True)
    t = torch.tensor(t_np, dtype=dtype) if soft else torch.tensor(t_np.astype(np.int64))
    if x.ndim >= 2:
        x_in = torch.movedim(x, -1, 1)
        t_in = torch.movedim(t, -1, 1) if soft else t
    else:
        x_in, t_in = x, t
    w = None if weight is None else torch.tensor(np.asarray(weight), dtype=dtype)
    loss = F.cross_entropy(
        x_in, t_in, weight=w, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=float(epsilon),
    )  # fmt: skip
    if dloss is None:
        dloss = upstream_gradient(reduction, tuple(loss.shape))
    dloss = np.asarray(dloss, dtype=np.float64)
    loss.backward(torch.tensor(dloss, dtype=dtype).reshape(loss.shape))
    assert x.grad is not None
    return TorchResult(
        loss.detach().to(torch.float64).numpy(),
        x.grad.to(torch.float64).numpy(),
        dloss,
    )


def random_logits(
    rng: np.random.Generator,
    leading_shape: tuple[int, ...],
    num_classes: int,
    *,
    scale: float = 3.0,
    confident_fraction: float = 0.3,
    dtype: type | np.dtype = np.float64,
) -> np.ndarray:
    """Random logits ``leading_shape + (K,)``, some rows confident.

    Entries are N(0, scale²). In about ``confident_fraction`` of the rows one class gets an
    extra +8 to +16, so p of that class is close to 1 there (the regime where a wrong
    gradient formula or a cancellation shows; plain randn leaves every p small).
    """
    z = rng.standard_normal(leading_shape + (num_classes,)) * scale
    rows = z.reshape(-1, num_classes)
    if rows.shape[0] and num_classes:
        confident = rng.random(rows.shape[0]) < confident_fraction
        confident[0] = True  # always at least one confident row
        winners = rng.integers(0, num_classes, size=rows.shape[0])
        boost = rng.uniform(8.0, 16.0, size=rows.shape[0])
        rows[np.arange(rows.shape[0]), winners] += np.where(confident, boost, 0.0)
    return rows.reshape(z.shape).astype(dtype)


def random_soft_targets(
    rng: np.random.Generator,
    leading_shape: tuple[int, ...],
    num_classes: int,
    *,
    normalised: bool = True,
) -> np.ndarray:
    """Random class probabilities ``leading_shape + (K,)`` in float64, some of them zero.

    Rows sum to 1 when ``normalised``; otherwise each row sums to a random total in
    [0.3, 2) (PyTorch accepts such targets, and the gradient then has S_i = Σ_k r_ik ≠ 1).
    """
    t = rng.dirichlet(np.full(num_classes, 0.5), size=leading_shape)
    t = np.where(rng.random(t.shape) < 0.2, 0.0, t)
    totals = t.sum(axis=-1, keepdims=True)
    t = np.where(totals > 0, t / np.where(totals > 0, totals, 1.0), 1.0 / num_classes)
    if not normalised:
        t = t * rng.uniform(0.3, 2.0, size=leading_shape + (1,))
    return t


def random_index_targets(
    rng: np.random.Generator,
    leading_shape: tuple[int, ...],
    num_classes: int,
) -> np.ndarray:
    """Random int64 class indices in [0, K) of shape ``leading_shape`` (0-d for ``()``)."""
    return np.asarray(rng.integers(0, num_classes, size=leading_shape), dtype=np.int64)


# Every torch test runs on the CPU and, where there is one, on a CUDA GPU.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
        ],
    ),
]


def torch_logits(
    shape: tuple[int, ...],
    seed: int,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Random torch logits N(0, 3²), one class 10 higher in about a third of the rows."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    rows = z.reshape(-1, shape[-1])
    boost = (torch.rand(rows.shape[0], generator=g) < 0.35) * 10.0
    winner = torch.randint(0, shape[-1], (rows.shape[0],), generator=g)
    rows[torch.arange(rows.shape[0]), winner] += boost.to(torch.float64)
    return z.to(device=device, dtype=dtype)

"""Every LSCE implementation of the library behind one call, for the oracle tests.

    from tests.implementations import IMPLEMENTATIONS, run

    result = run("torch-inplace", logits, target, 0.1, reduction="sum", dloss=0.7)

:func:`run` takes NumPy inputs in our layout (classes on the last axis, float64 or
float32 logits, index or probability targets) and returns the loss, ∂(dloss·loss)/∂logits
and, for probability targets, ∂(dloss·loss)/∂target, as float64 arrays. The names:

- ``numpy-simple`` (lesson 05's ``losses``), ``numpy-fast`` (``fast``, the public one),
  ``numpy-chunked`` (``fast.lsce_loss_chunked``, the classes in 3 chunks; loss only) and
  ``numpy-fused`` (``fast.linear_lsce`` with the logits as hidden states and W = I);
- ``torch-plain`` (lesson 06's plain ``LSCEFunction``, ``fast=False``), ``torch`` (the
  default fast path: the NumPy kernel on the CPU), ``torch-ops`` (torch ops instead),
  ``torch-class-chunks`` (torch ops, the classes in 3 chunks: the online merge),
  ``torch-grad-in-forward``, ``torch-inplace`` and ``torch-fused``
  (``linear_label_smoothing_cross_entropy`` with W = I; 'mean' and 'sum' only);
- on a CUDA GPU (:data:`CUDA`, skipped without one): ``cuda-plain``, ``cuda`` (the Triton
  kernels where triton is installed and the targets are class indices),
  ``cuda-ops`` (torch ops, Triton off), ``cuda-grad-in-forward`` and ``cuda-fused``.

The fused ones compute the logits as hidden @ Iᵀ, which is exact for finite logits.
:data:`BACKENDS` is every name, the CUDA ones as pytest params that skip without a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pytest
import torch

from lsce_scratch import chunking, fast, losses
from lsce_scratch import nn as lnn
from lsce_scratch.nn import backends
from tests.oracle import single_torch_thread


class Result(NamedTuple):
    """What :func:`run` returns, in float64; ``None`` where an implementation has none."""

    loss: np.ndarray
    grad: np.ndarray | None  # ∂(Σ dloss·loss)/∂logits
    target_grad: np.ndarray | None  # ∂(Σ dloss·loss)/∂target, probability targets only


NUMPY = ["numpy-simple", "numpy-fast", "numpy-chunked", "numpy-fused"]
TORCH = [
    "torch-plain",
    "torch",
    "torch-ops",
    "torch-class-chunks",
    "torch-grad-in-forward",
    "torch-inplace",
    "torch-fused",
]
IMPLEMENTATIONS = NUMPY + TORCH
# the ones that take any logits, masked (−inf) rows included; the fused ones build
# their logits from hidden @ Wᵀ, where a −inf hidden state would give NaN
ANY_LOGITS = [name for name in IMPLEMENTATIONS if not name.endswith("fused")]
CUDA = ["cuda-plain", "cuda", "cuda-ops", "cuda-grad-in-forward", "cuda-fused"]
_NO_GPU = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]
BACKENDS = [*IMPLEMENTATIONS, *(pytest.param(name, marks=_NO_GPU) for name in CUDA)]


def supports(name: str, reduction: str) -> bool:
    """The torch fused loss offers no 'none' (its gradient is made in the forward)."""
    return not (
        name.endswith("fused") and name != "numpy-fused" and reduction == "none"
    )


def _class_chunk(num_classes: int) -> int:
    """Three chunks of classes (the last one shorter), so that the merges run."""
    return max(1, -(-num_classes // 3))


@contextlib.contextmanager
def _settings(name: str, num_classes: int) -> Iterator[None]:
    """The torch settings an implementation runs with (and one torch thread), restored
    afterwards."""
    saved = backends.NUMPY_ON_CPU, backends.USE_TRITON, chunking.CLASS_CHUNK
    if name in ("torch-ops", "torch-class-chunks"):
        backends.NUMPY_ON_CPU = False
    if name == "cuda-ops":
        backends.USE_TRITON = False
    if name == "torch-class-chunks":
        chunking.CLASS_CHUNK = _class_chunk(num_classes)
    try:
        with single_torch_thread():
            yield
    finally:
        backends.NUMPY_ON_CPU, backends.USE_TRITON, chunking.CLASS_CHUNK = saved


def _float64(t: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        t = t.detach().to(torch.float64).cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def run(
    name: str,
    logits: np.ndarray,
    target: np.ndarray,
    epsilon: float,
    *,
    reduction: str = "mean",
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    dloss: np.ndarray | float = 1.0,
) -> Result:
    """Loss and gradients of implementation ``name`` (see the module docstring)."""
    kwargs = {"reduction": reduction, "weight": weight, "ignore_index": ignore_index}
    dloss = np.asarray(dloss, dtype=np.float64)
    if reduction == "none":
        dloss = np.broadcast_to(dloss, np.shape(logits)[:-1])
    if name.startswith("numpy"):
        return _run_numpy(name, logits, target, epsilon, kwargs, dloss)
    with _settings(name, np.shape(logits)[-1]):
        return _run_torch(name, logits, target, epsilon, kwargs, dloss)


def _run_numpy(name, logits, target, epsilon, kwargs, dloss) -> Result:
    if name == "numpy-chunked":
        chunk = _class_chunk(np.shape(logits)[-1])
        loss = fast.lsce_loss_chunked(logits, target, epsilon, chunk=chunk, **kwargs)
        return Result(_float64(loss), None, None)
    if name == "numpy-fused":
        eye = np.eye(logits.shape[-1], dtype=logits.dtype)
        loss, d_hidden, _, _ = fast.linear_lsce(
            logits, eye, target, epsilon, dloss=dloss, **kwargs
        )
        return Result(_float64(loss), _float64(d_hidden), None)
    module = losses if name == "numpy-simple" else fast
    loss, cache = module.lsce_forward(logits, target, epsilon, **kwargs)
    grad = module.lsce_backward(dloss.astype(np.asarray(logits).dtype), cache)
    return Result(_float64(loss), _float64(grad), None)


def _run_torch(name, logits, target, epsilon, kwargs, dloss) -> Result:
    device = "cuda" if name.startswith("cuda") else "cpu"
    z = torch.tensor(logits, device=device, requires_grad=True)
    soft = np.issubdtype(np.asarray(target).dtype, np.floating)
    t = torch.tensor(target, device=device, requires_grad=soft)
    if kwargs["weight"] is not None:
        kwargs["weight"] = torch.tensor(kwargs["weight"], dtype=z.dtype, device=device)
    if name.endswith("fused"):
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=device)
        loss = lnn.linear_label_smoothing_cross_entropy(z, eye, t, epsilon, **kwargs)
    else:
        options = {
            "grad_in_forward": name.endswith("grad-in-forward"),
            "inplace": name.endswith("inplace"),
            "fast": not name.endswith("plain"),
        }
        # the logits a model hands over: not a leaf (inplace=True refuses leaves)
        loss = lnn.label_smoothing_cross_entropy(
            z * 1.0, t, epsilon, **kwargs, **options
        )
    loss.backward(
        torch.tensor(dloss, dtype=loss.dtype, device=device).reshape(loss.shape)
    )
    return Result(_float64(loss), _float64(z.grad), _float64(t.grad) if soft else None)

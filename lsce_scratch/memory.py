"""Measuring memory: what a loss keeps for its backward (lesson 06), and the peak of the
NumPy buffers a call allocates (lesson 09, the benchmarks). Imports torch."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import torch


def numpy_peak_bytes(fn: Callable[[], object]) -> int:
    """The peak bytes NumPy allocated while ``fn()`` ran (NumPy reports its buffers to
    tracemalloc; torch's CPU allocator does not)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --8<-- [start:saved-bytes]
def extra_saved_bytes(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    target: torch.Tensor,
) -> int:
    """Bytes autograd saves for ``loss_fn(logits, target)``'s backward,
    beyond the logits.

    Every tensor an op saves passes through the pack hook; we add up the distinct
    storages and leave out the logits' own, which the caller holds anyway.
    """
    storages: dict[int, int] = {}

    def pack(saved: torch.Tensor) -> torch.Tensor:
        storages[saved.untyped_storage().data_ptr()] = saved.untyped_storage().nbytes()
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved):
        loss_fn(logits, target)
    storages.pop(logits.untyped_storage().data_ptr(), None)
    return sum(storages.values())


# --8<-- [end:saved-bytes]

"""How the fast LSCE paths cut up their work: one policy for NumPy, torch and Triton
(lesson 09).

Every fast path reads the logits a chunk of rows at a time, so that its few passes over
a chunk hit the cache (on the CPU) or its temporaries stay bounded (on a GPU), and a
long row a block of classes at a time (online softmax). The sizes are written here once,
and :func:`row_chunks` turns a shape and an item size into the chunks. The functions
read the constants when called, so a test may set them smaller.
"""

from __future__ import annotations

# A chunk of rows on the CPU is at most this many bytes:
# a core's L2 (1–2 MiB) holds it and its sums.
CHUNK_BYTES = 1 << 20
# On a CUDA GPU without Triton the chunks only bound the temporaries of the torch ops.
CUDA_CHUNK_BYTES = 1 << 30
# The fused linear loss's chunk of logits: small next to all of them, big enough that
# the matrix products stay efficient and ∂L/∂W is updated only a few times; larger on a
# GPU, where a chunk of a few hundred rows starves the products.
FUSED_CHUNK_BYTES = 64 << 20
CUDA_FUSED_CHUNK_BYTES = 1 << 30
# The torch ops read a row of more classes than this a block of classes at a time.
CLASS_CHUNK = 1 << 15
# At most this many classes per Triton program, and per update of the NumPy fused loss's
# ∂L/∂W (so that no (K, H) temporary is made).
CLASS_BLOCK = 1 << 12


def rows_per_chunk(
    num_classes: int, itemsize: int, chunk_bytes: int | None = None
) -> int:
    """How many rows of ``num_classes`` items of ``itemsize`` bytes fit in
    ``chunk_bytes`` (default :data:`CHUNK_BYTES`); at least one."""
    budget = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    return max(1, budget // max(1, num_classes * itemsize))


def row_chunks(
    num_rows: int, num_classes: int, itemsize: int, chunk_bytes: int | None = None
) -> list[slice]:
    """Row chunks of about ``chunk_bytes`` each (the last one shorter). They depend on
    the shape alone, so results do not depend on how the chunks are shared out."""
    rows = rows_per_chunk(num_classes, itemsize, chunk_bytes)
    return [slice(a, min(a + rows, num_rows)) for a in range(0, num_rows, rows)]

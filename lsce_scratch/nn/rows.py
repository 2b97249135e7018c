"""What the fast torch paths know about each row besides its logits (lesson 09).

The plain :class:`lsce_scratch.nn.function.LSCEFunction` builds the (N, K) matrix
r = w ⊙ q. The fast paths never do for class indices:
r = (ε/K)·w + (1 − ε)·w_y·onehot(y) is a broadcast and one entry per row, so a
:class:`Rows` keeps y, w_y and S per row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from lsce_scratch.nn.validation import (
    check_index_range,
    nonfinite_error,
    nonfinite_rows,
)
from lsce_scratch.row_stats import SoftmaxStats


@dataclass
class Rows:
    """The targets and a few numbers per row, in the compute dtype."""

    kind: str  # "index" or "soft"
    epsilon: float
    num_classes: int
    dtype: torch.dtype  # the compute dtype
    valid: Tensor  # (N,) bool: the rows that count
    total: Tensor  # S_i = Σ_k r_ik
    w: Tensor | None  # class weights
    y: Tensor | None = None  # index targets: the true class (0 on ignored rows)
    w_y: Tensor | None = None  # its class weight (ones without weights)
    soft: Tensor | None = None  # probability targets (N, K)

    @staticmethod
    def build(
        target: Tensor,
        kind: str,
        epsilon: float,
        weight: Tensor | None,
        ignore_index: int,
        num_classes: int,
        dtype: torch.dtype,
    ) -> Rows:
        w = None if weight is None else weight.to(dtype)
        w_sum = num_classes if w is None else w.sum()
        if kind == "soft":
            t = target.to(dtype)
            valid = torch.ones(len(t), dtype=torch.bool, device=t.device)
            # S = Σ_k w_k ((1 − ε) t_k + ε/K) = (1 − ε) Σ_k w_k t_k + (ε/K) Σ_k w_k
            weighted = t.sum(dim=-1) if w is None else t @ w
            total = (1.0 - epsilon) * weighted + epsilon / num_classes * w_sum
            return Rows(kind, epsilon, num_classes, dtype, valid, total, w, soft=t)
        valid = target != ignore_index
        # an out-of-range index (caught later, see check_values)
        # reads class 0, not beyond
        y = torch.where(valid & (target >= 0) & (target < num_classes), target, 0)
        w_y = torch.ones(len(y), dtype=dtype, device=y.device) if w is None else w[y]
        # S = (1 − ε) w_y + (ε/K) Σ_k w_k
        total = (1.0 - epsilon) * w_y + epsilon / num_classes * w_sum
        return Rows(kind, epsilon, num_classes, dtype, valid, total, w, y, w_y)

    def take(self, c: slice) -> Rows:
        """The rows c."""
        per_row = {"valid", "total", "y", "w_y", "soft"}
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Rows(**{
            name: value[c] if name in per_row and value is not None else value
            for name, value in values.items()
        })  # fmt: skip

    def index_targets(self) -> tuple[Tensor, Tensor]:
        """(y, w_y), the true classes and their weights (class-index targets)."""
        assert self.y is not None and self.w_y is not None, "class-index targets only"
        return self.y, self.w_y

    def r(self) -> Tensor:
        """Probability targets: r = w ⊙ ((1 − ε) t + ε/K), shape (N, K)."""
        assert self.soft is not None, "r() is for probability targets"
        r = self.soft * (1.0 - self.epsilon) + self.epsilon / self.num_classes
        return r if self.w is None else r.mul_(self.w)


def check_values(
    target: Tensor, rows: Rows, stats: SoftmaxStats[Tensor], ignore_index: int
) -> bool:
    """Raise for NaN/+inf logits in counted rows or (on a GPU) a class index
    out of range; return whether some row has no softmax (see
    rows_without_softmax). One host sync.

    NaN or +inf in a row makes its maximum NaN or +inf, so the row statistics find them,
    even where an in-place gradient has overwritten the logits. A bad index was read as
    class 0 by the kernels (see Rows.build), never out of bounds.
    """
    bad = nonfinite_rows(stats.z_max, rows.valid)
    flags = [bad.any(), (~torch.isfinite(stats.z_max)).any()]
    if rows.kind == "index" and target.is_cuda:
        out_of_range = (target < 0) | (target >= rows.num_classes)
        flags.append((out_of_range & rows.valid).any())
    has_bad, no_softmax, *bad_index = torch.stack(flags).tolist()
    if any(bad_index):
        check_index_range(target, rows.num_classes, ignore_index)
    if has_bad:
        raise nonfinite_error(bad, stats.z_max, stats.argmax)
    return bool(no_softmax)


def rows_without_softmax(rows: Rows, z_max: Tensor, out: Tensor) -> None:
    """Fix the gradient of rows whose maximum is not finite (NaN, +inf or all masked).

    An ignored row gets exactly 0, whatever its logits (its scale is 0, but 0 · NaN is
    NaN); a counted row with every class masked gets NaN, as in PyTorch.
    """
    fill = torch.where(rows.valid, torch.nan, 0.0).to(out.dtype)
    # in place, one pass, no temporary of out's size
    torch.where(torch.isfinite(z_max)[:, None], out, fill[:, None], out=out)

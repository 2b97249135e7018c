"""Label-smoothing cross-entropy in NumPy with a hand-derived backward (lessons 03–05).

Notation (the same symbols as the docs pages):

- z: logits of shape (N, K), classes on the last axis; p = softmax(z);
  y_i the true class.
- ε: smoothing; q = (1 − ε)·onehot(y) + ε/K (PyTorch's convention, ε/K to every class).
- w: class weights, one per class (default all ones); r_ik = w_k·q_ik, S_i = Σ_k r_ik.
- ℓ_i = −Σ_k r_ik log p_ik, the per-example loss; with w = 1, ℓ_i = CE(q_i, p_i).
- ∂ℓ_i/∂z_ij = S_i p_ij − r_ij, which is p − q for unweighted, normalised targets.

Semantics follow ``torch.nn.functional.cross_entropy(..., label_smoothing=ε)`` exactly:
``mean`` over index targets divides by Σ_i w_y_i (each row's true-class weight) over the
non-ignored rows (NaN if there are none); over probability targets it divides by the
number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from lsce_scratch import _validation as check
from lsce_scratch.softmax import compute_dtype, log_softmax


@dataclass
class Prepared:
    """Validated inputs, flattened to rows:
    what every LSCE implementation starts from."""

    logits: np.ndarray  # (N, K) in the compute dtype
    target: (
        np.ndarray
    )  # (N,) int64 class indices, or (N, K) probabilities in the compute dtype
    kind: str  # "index" or "soft"
    valid: np.ndarray  # (N,) bool: rows that count (False where target == ignore_index)
    weight: np.ndarray | None  # (K,) in the compute dtype, or None
    epsilon: float
    reduction: str
    leading_shape: tuple[int, ...]  # logits.shape[:-1]; the shape of a 'none' loss
    input_dtype: np.dtype  # results are returned in this dtype

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]

    @property
    def safe_target(self) -> np.ndarray:
        """Index targets with ignored rows pointed at class 0, so they can
        be used to index."""
        return np.where(self.valid, self.target, 0)


def prepare(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float,
    reduction: str,
    weight: ArrayLike | None,
    ignore_index: int,
    *,
    check_finite: bool = True,
) -> Prepared:
    """Validate the arguments of an LSCE call and flatten them to rows of K classes.

    ``check_finite=False`` skips the NaN/+inf scan of the logits, for callers that
    find them in their own row maxima (lsce_scratch.fast) instead of paying an
    extra pass. Only rows that count are checked: −inf masks a class, and an
    ignored row may hold anything.
    """
    epsilon = check.check_epsilon(epsilon)
    reduction = check.check_reduction(reduction)
    ignore_index = check.check_ignore_index(ignore_index)
    logits = np.asarray(logits)
    num_classes = check.check_logits(
        logits.shape,
        str(logits.dtype),
        np.issubdtype(logits.dtype, np.floating),
        "logits.astype(np.float32)",
    )
    dtype = compute_dtype(logits.dtype)
    z = logits.astype(dtype, copy=False).reshape(-1, num_classes)

    target = np.asarray(target)
    kind = check.target_kind(
        logits.shape,
        target.shape,
        str(target.dtype),
        np.issubdtype(target.dtype, np.floating),
        np.issubdtype(target.dtype, np.integer),
    )
    # (N,) int64 class indices or (N, K) probabilities in the compute dtype
    t: np.ndarray
    if kind == "index":
        t = target.reshape(-1).astype(np.int64, copy=False)
        valid = t != ignore_index
        check.check_index_values(
            t[valid & ((t < 0) | (t >= num_classes))], num_classes, ignore_index
        )
    else:
        t = target.astype(dtype, copy=False).reshape(-1, num_classes)
        check.check_soft_values(
            float(t.min()) if t.size else 0.0, bool(np.isfinite(t).all()), ignore_index
        )
        valid = np.ones(t.shape[0], dtype=bool)
    if check_finite:
        z_max = np.max(z, axis=-1)
        bad = nonfinite_rows(z_max, valid)
        if bad.any():
            raise nonfinite_error(bad, z_max, np.argmax(z, axis=-1), logits.shape[:-1])

    w = None
    if weight is not None:
        w = np.asarray(weight)
        if not np.issubdtype(w.dtype, np.number) or np.issubdtype(
            w.dtype, np.complexfloating
        ):
            raise TypeError(
                f"weight must be a real-valued array of shape ({num_classes},)"
            )
        w = w.astype(dtype, copy=False)
        check.check_weight(
            w.shape,
            num_classes,
            float(w.min()) if w.size else 0.0,
            bool(np.isfinite(w).all()),
        )
    return Prepared(
        z, t, kind, valid, w, epsilon, reduction, logits.shape[:-1], logits.dtype
    )


def nonfinite_rows(z_max: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The rows that count and hold NaN or +inf:
    exactly those whose maximum is NaN or +inf.

    A maximum is NaN when the row holds one (NumPy's max and argmax take the first NaN);
    −inf, a masked class, leaves it alone unless the whole row is masked.
    """
    # NaN compares False, so NaN and +inf fail z_max < inf, and finite or −inf pass
    return valid & ~(z_max < np.inf)


def nonfinite_error(
    bad: np.ndarray,
    z_max: np.ndarray,
    argmax: np.ndarray,
    leading_shape: tuple[int, ...],
) -> ValueError:
    """The NaN/+inf error for the ``bad`` rows, naming the maximum of the first one."""
    rows = np.flatnonzero(bad)
    first = rows[0]
    index = (*np.unravel_index(first, leading_shape), int(argmax[first]))
    return check.nonfinite_logits_error(len(rows), index, float(z_max[first]))


def normaliser(prep: Prepared) -> np.ndarray:
    """The denominator of reduction='mean': Σ_i w_y_i over counted rows,
    or the row count.

    Zero (every row ignored, or zero weight on every true class) gives NaN: the mean is
    undefined there, and PyTorch returns NaN too.
    """
    if prep.kind == "soft":
        total = np.asarray(prep.logits.shape[0], dtype=prep.logits.dtype)
    elif prep.weight is None:
        total = np.asarray(np.count_nonzero(prep.valid), dtype=prep.logits.dtype)
    else:
        total = np.sum(prep.weight[prep.safe_target] * prep.valid)
    return np.where(total == 0, np.nan, total)


def reduce_rows(row_loss: np.ndarray, prep: Prepared) -> np.ndarray:
    """Apply the reduction to per-row losses; return the result in the input dtype."""
    if prep.reduction == "none":
        out = row_loss.reshape(prep.leading_shape)
    elif prep.reduction == "sum":
        out = np.sum(row_loss)
    else:
        out = np.sum(row_loss) / normaliser(prep)
    return np.asarray(out).astype(prep.input_dtype)[()]


def upstream(dloss: ArrayLike, prep: Prepared) -> np.ndarray:
    """``dloss`` checked against the loss's shape, in the compute dtype: 0-d,
    or (N,) for 'none'."""
    expected = prep.leading_shape if prep.reduction == "none" else ()
    dloss = np.asarray(dloss)
    if not np.issubdtype(dloss.dtype, np.number) or np.issubdtype(
        dloss.dtype, np.complexfloating
    ):
        raise TypeError(
            f"dloss must be a real number or array; got dtype {dloss.dtype}"
        )
    check.check_dloss(dloss.shape, expected, prep.reduction)
    dloss = dloss.astype(prep.logits.dtype)
    return dloss.reshape(-1) if prep.reduction == "none" else dloss


def row_scale(dloss: ArrayLike, prep: Prepared) -> np.ndarray:
    """∂L/∂ℓ_i for every row, shape (N, 1):
    the upstream gradient through the reduction."""
    dloss = upstream(dloss, prep)
    # 'mean' divides by Σ w_{y_i}; 'sum' passes dloss on;
    # for 'none' it is already per row
    scale = dloss / normaliser(prep) if prep.reduction == "mean" else dloss
    # Ignored rows get exactly 0, even when the all-ignored mean is 0/0 (as in PyTorch).
    return np.where(prep.valid, scale, 0.0).astype(prep.logits.dtype)[:, None]


# --8<-- [start:smooth_labels]
def smooth_labels(
    target: ArrayLike, num_classes: int, epsilon: float, *, spread: str = "all"
) -> np.ndarray:
    """Smoothed target distributions q, shape target.shape + (K,), float64.

    ``target`` holds class indices. ``spread="all"`` (PyTorch, Szegedy et al.) gives
    every class ε/K, so the true class gets 1 − ε + ε/K. ``spread="others"`` (fairseq,
    Megatron) gives the K − 1 wrong classes ε/(K − 1) each and the true class exactly
    1 − ε; it equals ``spread="all"`` with ε' = εK/(K − 1).
    """
    epsilon = check.check_epsilon(epsilon)
    spread = check.check_spread(spread)
    num_classes = check.check_num_classes(num_classes)
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(
            f"target must hold integer class indices; got dtype {target.dtype}. "
            f"Convert with target.astype(int)"
        )
    check.check_index_values(
        target[(target < 0) | (target >= num_classes)].reshape(-1),
        num_classes,
        ignore_index=None,
    )
    if spread == "all":
        # q_k = ε/K for every k, plus 1 − ε on the true class
        off, on = epsilon / num_classes, 1.0 - epsilon + epsilon / num_classes
    else:
        if num_classes < 2:
            raise ValueError(
                "spread='others' needs num_classes >= 2: there is no other class"
            )
        # q_k = ε/(K − 1) for k ≠ y, and q_y = 1 − ε
        off, on = epsilon / (num_classes - 1), 1.0 - epsilon
    q = np.full(target.shape + (num_classes,), off)
    np.put_along_axis(q, target[..., None], on, axis=-1)
    return q


# --8<-- [end:smooth_labels]


# --8<-- [start:weighted_targets]
def weighted_targets(prep: Prepared) -> np.ndarray:
    """r_ik = w_k·q_ik for every row (zero rows where ignored), shape (N, K)."""
    eps, num_classes = prep.epsilon, prep.num_classes
    if prep.kind == "index":
        q = smooth_labels(prep.safe_target, num_classes, eps).astype(prep.logits.dtype)
    else:
        # probability targets are smoothed the same way: q = (1 − ε)·t + ε/K
        q = (1.0 - eps) * prep.target + eps / num_classes
    # PyTorch weights every class term (pytorch #104776): r_k = w_k q_k
    r = q if prep.weight is None else q * prep.weight
    return np.where(prep.valid[:, None], r, 0.0)


# --8<-- [end:weighted_targets]


def _sum_except(a: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Σ_{k ≠ column_i} a_ik for each row i, summed without ever adding a_i,column."""
    mask = np.arange(a.shape[-1]) == column[:, None]
    return np.sum(np.where(mask, 0.0, a), axis=-1)


# --8<-- [start:lsce_forward]
def lsce_forward(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, dict]:
    """Label-smoothing cross-entropy, forward pass; returns ``(loss, cache)``.

    ``logits`` has shape (..., K); ``target`` holds class indices of shape (...) or
    probabilities of shape (..., K). The result equals ``F.cross_entropy(movedim(logits,
    -1, 1), target, weight, ignore_index=..., reduction=..., label_smoothing=epsilon)``.
    ``cache`` feeds :func:`lsce_backward`.
    """
    prep = prepare(logits, target, epsilon, reduction, weight, ignore_index)
    # log p = z − lse(z), computed stably (lesson 01)
    log_p = log_softmax(prep.logits)
    # r = w ⊙ q, zero on ignored rows
    r = weighted_targets(prep)
    # ℓ_i = Σ_k r_ik (−log p_ik), a sum of non-negative terms
    row_loss = row_losses(prep, log_p, r)
    cache = {"prep": prep, "p": np.exp(log_p), "r": r}
    return reduce_rows(row_loss, prep), cache


# --8<-- [end:lsce_forward]


# --8<-- [start:row_losses]
@np.errstate(invalid="ignore")
def row_losses(prep: Prepared, log_p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """ℓ_i = Σ_k r_ik (−log p_ik) for every row, 0 where ignored.

    The terms are added up as PyTorch adds them, so that a masked class (z_k = −inf, so
    log p_k = −inf) gives PyTorch's inf or NaN: probability targets term by term, class
    indices as a true-class term and a smoothing term, the second left out at ε = 0.
    """
    if prep.kind == "soft":
        # a masked class costs r_k · ∞: inf, or NaN where r_k = 0 (0 · ∞)
        loss = np.sum(r * -log_p, axis=-1)
    else:
        eps, w, rows = prep.epsilon, prep.weight, np.arange(len(log_p))
        w_y = 1.0 if w is None else w[prep.safe_target]
        # (1 − ε) w_y (−log p_y): inf when the true class is masked
        loss = (1.0 - eps) * (w_y * -log_p[rows, prep.safe_target])
        if eps > 0:
            # + (ε/K) Σ_k w_k (−log p_k): inf as soon as one class is masked
            smooth = -np.sum(log_p if w is None else log_p * w, axis=-1)
            loss = loss + eps / prep.num_classes * smooth
    return np.where(prep.valid, loss, 0.0)


# --8<-- [end:row_losses]


# --8<-- [start:lsce_backward]
def lsce_backward(dloss: ArrayLike, cache: dict) -> np.ndarray:
    """Gradient of the loss with respect to the logits,
    same shape and dtype as the logits.

    ``dloss`` is ∂(something)/∂loss: a scalar for 'mean'/'sum', the loss's shape for
    'none'; ``cache`` is the dict :func:`lsce_forward` returned.
    """
    _check_cache(cache)
    prep, p, r = cache["prep"], cache["p"], cache["r"]
    # S_i = Σ_k r_ik (1 for unweighted smoothed one-hot targets)
    total = np.sum(r, axis=-1, keepdims=True)
    # ∂ℓ_i/∂z_ij = S_i p_ij − r_ij (a masked class has p = 0: its gradient is −r)
    grad = total * p - r
    # At the most likely class m, S p_m − r_m cancels badly when p_m → 1 in float32. Use
    # 1 − p_m = Σ_{k≠m} p_k there: S p_m − r_m = Σ_{k≠m} r_k − S Σ_{k≠m} p_k. That form
    # cancels in turn when p_m is small (both sums near S), so only where p_m > 1/2.
    m = np.argmax(p, axis=-1)
    rows = np.arange(p.shape[0])
    confident = p[rows, m] > 0.5
    grad[rows, m] = np.where(
        confident, _sum_except(r, m) - total[:, 0] * _sum_except(p, m), grad[rows, m]
    )
    # chain rule through the reduction: mean divides by Σ w_{y_i}, none scales row by
    # row; an ignored row gets exactly 0, whatever its logits (0 · NaN would be NaN)
    grad = np.where(prep.valid[:, None], grad * row_scale(dloss, prep), 0.0)
    return grad.reshape(prep.leading_shape + (prep.num_classes,)).astype(
        prep.input_dtype
    )


# --8<-- [end:lsce_backward]


def _check_cache(cache: object) -> None:
    """Refuse a cache that is not a dict like lsce_forward's,
    naming where it belongs."""
    if isinstance(cache, dict):
        return
    # fast imports this module, so it is imported here, when the check fails
    from lsce_scratch.fast import FastCache

    if isinstance(cache, FastCache):
        raise TypeError(
            "this cache comes from lsce_scratch.lsce_forward (the fast version, "
            "lsce_scratch.fast); pass it to lsce_scratch.lsce_backward, or use "
            "lsce_scratch.losses.lsce_forward with lsce_scratch.losses.lsce_backward"
        )
    raise TypeError(
        f"cache must be the dict that lsce_scratch.losses.lsce_forward returned; got "
        f"{type(cache).__name__}"
    )


# --8<-- [start:optimal_logit_gap]
def optimal_logit_gap(num_classes: int, epsilon: float) -> float:
    """The logit gap z_y − z_k (k ≠ y) that minimises LSCE: ln(1 + K(1 − ε)/ε);
    inf at ε = 0.

    At the optimum softmax(z) = q, so
    z_y − z_k = ln(q_y / q_k) = ln((1 − ε + ε/K)/(ε/K)).
    """
    epsilon = check.check_epsilon(epsilon)
    num_classes = check.check_num_classes(num_classes)
    if epsilon == 0.0:
        return float("inf")
    # d* = ln(1 + K(1 − ε)/ε)
    return float(np.log1p(num_classes * (1.0 - epsilon) / epsilon))


# --8<-- [end:optimal_logit_gap]


# --8<-- [start:label_smoothing_cross_entropy]
def label_smoothing_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    epsilon: float = 0.1,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    """The LSCE loss alone (see :func:`lsce_forward` for the arguments)."""
    loss, _ = lsce_forward(
        logits,
        target,
        epsilon,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
    )
    return loss


# --8<-- [end:label_smoothing_cross_entropy]


# --8<-- [start:cross_entropy_forward]
def cross_entropy_forward(
    logits: ArrayLike, target: ArrayLike
) -> tuple[np.ndarray, dict]:
    """Plain cross-entropy, mean over rows: LSCE with ε = 0 (lesson 03)."""
    return lsce_forward(logits, target, epsilon=0.0)


# --8<-- [end:cross_entropy_forward]


# --8<-- [start:cross_entropy_backward]
def cross_entropy_backward(dloss: ArrayLike, cache: dict) -> np.ndarray:
    """Gradient of :func:`cross_entropy_forward`: (p − onehot(y)) / N."""
    return lsce_backward(dloss, cache)


# --8<-- [end:cross_entropy_backward]

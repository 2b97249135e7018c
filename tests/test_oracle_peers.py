"""The peers' test scenarios, run on our implementations: Liger-Kernel, timm, and torch's
own fused ``F.linear_cross_entropy``.

- Liger-Kernel test/transformers/test_cross_entropy.py, its float32 grid: V = 32000,
  randn logits, reductions, ignore_index (2, −123), smoothing (0.1; 0.2 with −300), class
  weights torch.rand(V), weights with ignore_index and smoothing, the loss not in the last
  layer (× 3): 38 cases, at Liger's float32 tolerances (atol 1e-8, rtol 1e-6) against
  torch's float32 CrossEntropyLoss, as Liger checks itself. Its B·T rows (8192 and 1269)
  are cut to 16 and 21; z-loss and softcap are Liger's own features and are left out.
- Liger-Kernel test_fused_linear_cross_entropy.py, test_correctness: shapes (4·47, 31,
  123) and (2·64, 256, 4096) (cut from 8·128, 1024), W and b from torch.rand, bias or
  not, (no weight, ε = 0, ignore −100) and (weights, ε = 0.1, ignore 42), at its float32
  tolerances per reduction (mean 1e-5/5e-4, sum and none 1e-3/5e-2). Its test_amp is in
  tests/test_autocast_compile.py.
- timm (timm/loss/cross_entropy.py and the mixup target of timm/data/mixup.py; timm's
  own tests have no loss tests): LabelSmoothingCrossEntropy, and SoftTargetCrossEntropy
  on mixed-up smoothed targets, in float64 to 1e-10.
- torch's F.linear_cross_entropy (torch ≥ 2.13) against our fused losses, float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import fast
from lsce_scratch.nn import linear_label_smoothing_cross_entropy
from tests.implementations import ANY_LOGITS, IMPLEMENTATIONS, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Liger's cross-entropy grid, float32. A case: (rows, reduction, ignore_index, ε, weighted,
# upstream factor); rows 16 and 21 stand for Liger's (2, 4096) and (3, 423).
V = 32_000
SHAPES = [16, 21]
LIGER_CE = [
    # test_correctness
    *[(n, r, None, 0.0, False, 1.0) for n, r in itertools.product(SHAPES, ["sum", "mean", "none"])],
    # test_correctness_with_ignore_index
    *[(n, r, i, 0.0, False, 1.0)
      for (n, i), r in itertools.product([(16, 2), (21, -123)], ["sum", "mean", "none"])],
    # test_correctness_with_label_smoothing_once
    *[(n, "mean", None, 0.1, False, 1.0) for n in SHAPES],
    # test_correctness_with_label_smoothing_with_ignore_index_once
    (16, "mean", 1, 0.1, False, 1.0),
    (21, "mean", -300, 0.2, False, 1.0),
    # test_correctness_with_weight_once
    *[(n, r, None, 0.0, True, 1.0) for n, r in itertools.product(SHAPES, ["sum", "mean", "none"])],
    # test_correctness_with_weight_with_other_params_once (without z-loss and softcap)
    *[(n, r, i, eps, True, 1.0)
      for n, r, (i, eps) in itertools.product(SHAPES, ["sum", "mean", "none"],
                                              [(-100, 0.1), (42, 0.2)])],
    # test_correctness_not_last_layer
    *[(n, r, None, 0.0, False, 3.0) for n, r in itertools.product(SHAPES, ["sum", "mean"])],
]  # fmt: skip


def test_liger_cross_entropy_grid_count():
    assert len(LIGER_CE) == 38


def liger_ce_case(index: int, rows, ignore_index):
    """Liger's inputs: randn logits, randint targets, 1 to rows/2 of them ignored."""
    g = torch.Generator().manual_seed(index)
    logits = torch.randn(rows, V, generator=g)
    target = torch.randint(0, V, (rows,), generator=g)
    if ignore_index is not None:
        count = int(torch.randint(1, rows // 2, (1,), generator=g))
        target[torch.randperm(rows, generator=g)[:count]] = ignore_index
    weight = torch.rand(V, generator=g)
    return logits, target, weight


@pytest.mark.parametrize("name", ANY_LOGITS)
def test_liger_cross_entropy_float32_grid(name):
    failures = []
    for index, (rows, reduction, ignore, eps, weighted, factor) in enumerate(LIGER_CE):
        logits, target, weight = liger_ce_case(index, rows, ignore)
        ignore_index = -100 if ignore is None else ignore
        w = weight if weighted else None
        x = logits.clone().requires_grad_(True)
        theirs = F.cross_entropy(x, target, weight=w, ignore_index=ignore_index,
                                 reduction=reduction, label_smoothing=eps)  # fmt: skip
        # Liger backpropagates ones (× 3 for the loss that is not the last layer)
        (theirs * factor).backward(torch.ones_like(theirs))
        got = run(name, logits.numpy(), target.numpy(), eps, reduction=reduction,
                  weight=None if w is None else w.numpy(), ignore_index=ignore_index,
                  dloss=factor)  # fmt: skip
        ok = np.allclose(got.loss, theirs.detach().numpy(), atol=1e-8, rtol=1e-6)
        if got.grad is not None:
            ok &= np.allclose(got.grad, x.grad.numpy(), atol=1e-8, rtol=1e-6)
        if not ok:
            failures.append((rows, reduction, ignore, eps, weighted, factor))
    assert not failures, (
        f"{name}: {len(failures)} of {len(LIGER_CE)} cases fail: {failures}"
    )


# Liger's fused linear grid, float32: (rows, H, V), reductions with their tolerances.
LIGER_FLCE_SHAPES = [(4 * 47, 31, 123), (2 * 64, 256, 4096)]
LIGER_FLCE_TOLERANCES = {
    "mean": (1e-5, 5e-4),
    "sum": (1e-3, 5e-2),
    "none": (1e-3, 5e-2),
}
LIGER_FLCE_PARAMS = [
    (False, 0.0, -100),
    (True, 0.1, 42),
]  # (class weights, ε, ignore_index)


def liger_flce_case(rows, h, k, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, h, generator=g)
    lin_weight = torch.rand(k, h, generator=g)
    lin_bias = torch.rand(k, generator=g)
    target = torch.randint(0, k, (rows,), generator=g)
    weight = torch.rand(k, generator=g)
    return hidden, lin_weight, lin_bias, target, weight


@pytest.mark.parametrize("rows, h, k", LIGER_FLCE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "params", LIGER_FLCE_PARAMS, ids=["plain", "weights-smoothing-ignore"]
)
def test_liger_fused_linear_float32_grid(rows, h, k, reduction, bias, params):
    weighted, eps, ignore_index = params
    hidden, lin_weight, lin_bias, target, weight = liger_flce_case(rows, h, k, rows + k)
    g = torch.Generator().manual_seed(rows)
    count = int(torch.randint(1, rows // 2, (1,), generator=g))
    target[torch.randperm(rows, generator=g)[:count]] = ignore_index
    b = lin_bias if bias else None
    w = weight if weighted else None
    atol, rtol = LIGER_FLCE_TOLERANCES[reduction]
    # Liger's TorchLMHeadCE: lin(x).float(), then F.cross_entropy
    leaves = [
        None if t is None else t.clone().requires_grad_(True)
        for t in (hidden, lin_weight, b)
    ]
    theirs = F.cross_entropy(
        F.linear(*leaves).float(), target, weight=w, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=eps,
    )  # fmt: skip
    theirs.backward(torch.ones_like(theirs))
    want = [theirs.detach()] + [t.grad for t in leaves if t is not None]
    numpy = fast.linear_lsce(
        hidden.numpy(), lin_weight.numpy(), target.numpy(), eps,
        lin_bias=None if b is None else b.numpy(), reduction=reduction,
        weight=None if w is None else w.numpy(), ignore_index=ignore_index,
    )  # fmt: skip
    for got, expected in zip([x for x in numpy if x is not None], want, strict=True):
        torch.testing.assert_close(torch.as_tensor(got), expected, atol=atol, rtol=rtol)
    if reduction == "none":
        return  # the torch fused loss has no 'none'
    mine = [
        None if t is None else t.clone().requires_grad_(True)
        for t in (hidden, lin_weight, b)
    ]
    ours = linear_label_smoothing_cross_entropy(
        mine[0], mine[1], target, eps, lin_bias=mine[2], reduction=reduction, weight=w,
        ignore_index=ignore_index, chunk_rows=rows // 3,
    )  # fmt: skip
    ours.backward()
    for got, expected in zip([ours.detach()] + [t.grad for t in mine if t is not None], want,
                             strict=True):  # fmt: skip
        torch.testing.assert_close(got, expected, atol=atol, rtol=rtol)


# timm


def timm_label_smoothing_cross_entropy(
    x: torch.Tensor, target: torch.Tensor, smoothing: float
):
    """timm.loss.LabelSmoothingCrossEntropy, from its definition: the batch mean of
    (1 − ε)·nll + ε·mean_k(−log p_k)."""
    log_p = F.log_softmax(x, dim=-1)
    nll = -log_p.gather(dim=-1, index=target[:, None])[:, 0]
    return ((1.0 - smoothing) * nll + smoothing * -log_p.mean(dim=-1)).mean()


def timm_mixup_target(
    target: torch.Tensor, num_classes: int, lam: float, smoothing: float
):
    """timm.data.mixup.mixup_target: smoothed one-hots (ε/K off, 1 − ε + ε/K on) mixed with
    those of the batch in reverse order, by λ."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = torch.full((len(target), num_classes), off, dtype=torch.float64)
    y1[torch.arange(len(target)), target] = on
    return y1 * lam + y1.flip(0) * (1.0 - lam)


def timm_soft_target_cross_entropy(x: torch.Tensor, target: torch.Tensor):
    """timm.loss.SoftTargetCrossEntropy: the batch mean of Σ_k −t_k log p_k."""
    return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


def timm_case(seed: int, n: int, k: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=g, dtype=torch.float64) * 3
    x[::3, 0] += 10  # confident rows
    return x, torch.randint(0, k, (n,), generator=g)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("k", [10, 1000])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_timm_label_smoothing_cross_entropy(name, k, smoothing):
    x, target = timm_case(k, 12, k)
    leaf = x.clone().requires_grad_(True)
    want = timm_label_smoothing_cross_entropy(leaf, target, smoothing)
    want.backward()
    got = run(name, x.numpy(), target.numpy(), smoothing)
    np.testing.assert_allclose(got.loss, want.item(), rtol=1e-10)
    if got.grad is not None:
        np.testing.assert_allclose(got.grad, leaf.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("lam", [1.0, 0.7, 0.5])
def test_timm_soft_target_cross_entropy_on_mixup_targets(name, lam):
    """Mixup's targets are probabilities, the smoothing already inside them (ε = 0 here);
    at λ = 1 they equal a smoothed index target."""
    x, target = timm_case(int(lam * 10), 12, 37)
    soft = timm_mixup_target(target, 37, lam, 0.1)
    leaf, soft_leaf = x.clone().requires_grad_(True), soft.clone().requires_grad_(True)
    want = timm_soft_target_cross_entropy(leaf, soft_leaf)
    want.backward()
    got = run(name, x.numpy(), soft.numpy(), 0.0)
    np.testing.assert_allclose(got.loss, want.item(), rtol=1e-10)
    if got.grad is not None:
        np.testing.assert_allclose(got.grad, leaf.grad.numpy(), rtol=1e-10, atol=1e-14)
    if got.target_grad is not None:
        np.testing.assert_allclose(got.target_grad, soft_leaf.grad.numpy(), rtol=1e-10)
    if lam == 1.0:
        np.testing.assert_allclose(run(name, x.numpy(), target.numpy(), 0.1).loss, want.item(),
                                   rtol=1e-10)  # fmt: skip


# torch's F.linear_cross_entropy


@pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"), reason="torch < 2.13")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_fused_losses_equal_torch_linear_cross_entropy(reduction, eps):
    g = torch.Generator().manual_seed(10)
    hidden = torch.randn(15, 8, generator=g, dtype=torch.float64)
    lin_weight = torch.randn(30, 8, generator=g, dtype=torch.float64)
    lin_bias = torch.randn(30, generator=g, dtype=torch.float64)
    target = torch.randint(0, 30, (15,), generator=g)
    target[::3] = 7
    weight = torch.rand(30, generator=g, dtype=torch.float64) + 0.5
    for w, ignore_index in itertools.product([None, weight], [-100, 7]):
        leaves = [
            t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)
        ]
        theirs = F.linear_cross_entropy(
            leaves[0], leaves[1], target, linear_bias=leaves[2], weight=w, reduction=reduction,
            ignore_index=ignore_index, label_smoothing=eps,
        )  # fmt: skip
        upstream = torch.rand_like(theirs) + 0.5
        theirs.backward(upstream)
        numpy = fast.linear_lsce(
            hidden.numpy(), lin_weight.numpy(), target.numpy(), eps, lin_bias=lin_bias.numpy(),
            reduction=reduction, weight=None if w is None else w.numpy(),
            ignore_index=ignore_index, dloss=upstream.numpy(), chunk_rows=4,
        )  # fmt: skip
        want = [theirs.detach()] + [t.grad for t in leaves]
        for got, expected in zip(numpy, want, strict=True):
            torch.testing.assert_close(
                torch.as_tensor(got), expected, rtol=1e-10, atol=1e-12
            )
        if reduction == "none":
            continue
        mine = [t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)]
        ours = linear_label_smoothing_cross_entropy(
            mine[0], mine[1], target, eps, lin_bias=mine[2], weight=w, reduction=reduction,
            ignore_index=ignore_index, chunk_rows=4,
        )  # fmt: skip
        ours.backward(upstream)
        for got, expected in zip(
            [ours.detach()] + [t.grad for t in mine], want, strict=True
        ):
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)

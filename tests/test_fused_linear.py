"""Fused linear + LSCE (NumPy and torch) against the unfused path.

The unfused path builds the logits z = h Wᵀ + b, takes the LSCE of them and back-propagates
through the linear layer by hand (NumPy) or by autograd over F.cross_entropy (torch). The
fused one never holds z; loss and all gradients must agree (float64 to 1e-12, float32 to
1e-5 relative), for every chunking of the rows.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import fast
from lsce_scratch.memory import numpy_peak_bytes
from lsce_scratch.nn import linear_label_smoothing_cross_entropy
from tests.oracle import DEVICES, assert_close, random_soft_targets, upstream_gradient


def rng_for(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def make_case(rng, n: int, h: int, k: int, kind: str, dtype=np.float64):
    """hidden (n, h), lin_weight (k, h), lin_bias (k,) scaled so some rows are confident."""
    hidden = rng.standard_normal((n, h)).astype(dtype)
    lin_weight = (rng.standard_normal((k, h)) * 3 / np.sqrt(h)).astype(dtype)
    lin_bias = rng.standard_normal(k).astype(dtype)
    if kind == "soft":
        target = random_soft_targets(rng, (n,), k)
    else:
        target = rng.integers(0, k, size=n)
        if kind == "ignored":
            target[::3] = -100
    return hidden, lin_weight, lin_bias, target


def unfused_numpy(hidden, lin_weight, lin_bias, target, eps, reduction, weight, dloss):
    """Loss and gradients through materialised logits and the chain rule."""
    z = hidden @ lin_weight.T + (0 if lin_bias is None else lin_bias)
    loss, cache = fast.lsce_forward(z, target, eps, reduction=reduction, weight=weight)
    dz = fast.lsce_backward(dloss, cache)
    return loss, dz @ lin_weight, dz.T @ hidden, dz.sum(axis=0)


@pytest.mark.parametrize("chunk_rows", [1, 4, 9, 10, 64])
@pytest.mark.parametrize("kind", ["index", "ignored", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_numpy_fused_matches_unfused(chunk_rows, kind, reduction):
    """Chunks of 1 row, not dividing N = 10, exactly N, more than N."""
    rng = rng_for("numpy", chunk_rows, kind, reduction)
    hidden, lin_weight, lin_bias, target = make_case(rng, 10, 6, 37, kind)
    dloss = upstream_gradient(reduction, (10,), rng)
    for weighted, with_bias in itertools.product((False, True), (False, True)):
        weight = rng.uniform(0.2, 3.0, size=37) if weighted else None
        b = lin_bias if with_bias else None
        want = unfused_numpy(
            hidden, lin_weight, b, target, 0.1, reduction, weight, dloss
        )
        got = fast.linear_lsce(
            hidden, lin_weight, target, 0.1, lin_bias=b, reduction=reduction,
            weight=weight, dloss=dloss, chunk_rows=chunk_rows,
        )  # fmt: skip
        case = f"weighted={weighted}, bias={with_bias}"
        for name, ours, theirs in zip(
            ("loss", "d_hidden", "d_weight"), got, want, strict=False
        ):
            assert_close(ours, theirs, 1e-12, f"{name}, {case}")
        if with_bias:
            assert_close(got[3], want[3], 1e-12, f"d_bias, {case}")
        else:
            assert got[3] is None


def test_numpy_fused_float32_and_leading_shape():
    """K = 9000 spans three of d_weight's class blocks (4096), the last one partial."""
    rng = rng_for("numpy float32")
    hidden, lin_weight, lin_bias, target = make_case(
        rng, 24, 16, 9000, "index", np.float32
    )
    got = fast.linear_lsce(
        hidden.reshape(4, 6, 16), lin_weight, target.reshape(4, 6), 0.1,
        lin_bias=lin_bias, chunk_rows=5,
    )  # fmt: skip
    want = unfused_numpy(
        hidden.astype(np.float64), lin_weight.astype(np.float64),
        lin_bias.astype(np.float64), target, 0.1, "mean", None, 1.0,
    )  # fmt: skip
    assert got[1].shape == (4, 6, 16) and got[1].dtype == np.float32
    assert_close(got[0], want[0], 1e-5, "loss")
    assert_close(got[1].reshape(24, 16), want[1], 1e-5, "d_hidden")
    assert_close(got[2], want[2], 1e-5, "d_weight")
    assert_close(got[3], want[3], 1e-5, "d_bias")


def test_numpy_fused_never_holds_the_logits():
    """Working memory beyond the returned gradients: one chunk of logits, not N × K."""
    rng = rng_for("numpy memory")
    hidden, lin_weight, _, target = make_case(rng, 512, 32, 20_000, "index", np.float32)
    logits_bytes = 512 * 20_000 * 4
    results = []
    peak = numpy_peak_bytes(
        lambda: results.append(
            fast.linear_lsce(hidden, lin_weight, target, chunk_rows=32)
        )
    )
    _, d_hidden, d_weight, _ = results[0]
    assert peak - d_hidden.nbytes - d_weight.nbytes <= 0.25 * logits_bytes


def test_numpy_fused_bad_inputs():
    hidden, lin_weight = np.zeros((3, 4)), np.zeros((5, 4))
    target = np.array([0, 1, 2])
    with pytest.raises(
        ValueError, match=r"hidden must be \(\.\.\., H\) and lin_weight \(K, H\)"
    ):
        fast.linear_lsce(hidden, np.zeros((5, 3)), target)
    with pytest.raises(TypeError, match="hidden must be floating point"):
        fast.linear_lsce(np.zeros((3, 4), dtype=int), lin_weight, target)
    with pytest.raises(
        ValueError, match=r"lin_bias must be a floating-point array of shape \(5,\)"
    ):
        fast.linear_lsce(hidden, lin_weight, target, lin_bias=np.zeros(4))
    with pytest.raises(ValueError, match=r"class index 7 outside \[0, 4\]"):
        fast.linear_lsce(hidden, lin_weight, np.array([0, 1, 7]))
    bad = hidden.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="hidden contains NaN"):
        fast.linear_lsce(bad, lin_weight, target)


def unfused_torch(hidden, lin_weight, lin_bias, target, eps, reduction, weight):
    """Autograd through materialised logits and F.cross_entropy: (loss, grads)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (hidden, lin_weight)]
    if lin_bias is not None:
        leaves.append(lin_bias.detach().clone().requires_grad_(True))
    z = leaves[0] @ leaves[1].T + (0 if lin_bias is None else leaves[2])
    loss = F.cross_entropy(
        z, target, weight=weight, reduction=reduction, label_smoothing=eps
    )
    (loss * 0.7).backward()
    return loss.detach(), [t.grad for t in leaves]


def fused_torch(
    hidden, lin_weight, lin_bias, target, eps, reduction, weight, chunk_rows
):
    leaves = [t.detach().clone().requires_grad_(True) for t in (hidden, lin_weight)]
    if lin_bias is not None:
        leaves.append(lin_bias.detach().clone().requires_grad_(True))
    loss = linear_label_smoothing_cross_entropy(
        leaves[0], leaves[1], target, eps, lin_bias=None if lin_bias is None else leaves[2],
        reduction=reduction, weight=weight, chunk_rows=chunk_rows,
    )  # fmt: skip
    (loss * 0.7).backward()
    return loss.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk_rows", [1, 3, 10, None])
@pytest.mark.parametrize("kind", ["index", "ignored", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_fused_matches_autograd_through_cross_entropy(
    device, chunk_rows, kind, reduction
):
    rng = rng_for("torch", chunk_rows, kind, reduction)
    arrays = make_case(rng, 10, 6, 37, kind)
    hidden, lin_weight, lin_bias = (torch.tensor(a, device=device) for a in arrays[:3])
    target = torch.tensor(arrays[3], device=device)
    for weighted, with_bias in itertools.product((False, True), (False, True)):
        weight = (
            torch.tensor(rng.uniform(0.2, 3.0, size=37), device=device)
            if weighted
            else None
        )
        b = lin_bias if with_bias else None
        want = unfused_torch(hidden, lin_weight, b, target, 0.2, reduction, weight)
        got = fused_torch(
            hidden, lin_weight, b, target, 0.2, reduction, weight, chunk_rows
        )
        case = f"weighted={weighted}, bias={with_bias}"
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-14, msg=case)
        for ours, theirs in zip(got[1], want[1], strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13, msg=case)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_fused_float32_large_vocabulary_chunks(device):
    """K larger than a class chunk, many row chunks: float32 agrees to 1e-5."""
    rng = rng_for("torch float32")
    arrays = make_case(rng, 64, 32, 40_000, "ignored", np.float32)
    hidden, lin_weight, lin_bias = (torch.tensor(a, device=device) for a in arrays[:3])
    target = torch.tensor(arrays[3], device=device)
    want = unfused_torch(hidden.double(), lin_weight.double(), lin_bias.double(), target, 0.1,
                         "mean", None)  # fmt: skip
    got = fused_torch(hidden, lin_weight, lin_bias, target, 0.1, "mean", None, 16)
    torch.testing.assert_close(got[0].double(), want[0], rtol=1e-5, atol=0)
    for ours, theirs in zip(got[1], want[1], strict=True):
        scale = theirs.abs().max()
        assert (ours.double() - theirs).abs().max() <= 1e-5 * scale


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_torch_fused_bfloat16_on_cuda():
    rng = rng_for("torch bf16")
    arrays = make_case(rng, 256, 64, 5000, "index", np.float32)
    hidden, lin_weight = (torch.tensor(a, device="cuda") for a in arrays[:2])
    target = torch.tensor(arrays[3], device="cuda")
    want = unfused_torch(
        hidden.double(), lin_weight.double(), None, target, 0.1, "mean", None
    )
    got = fused_torch(hidden.bfloat16(), lin_weight.bfloat16(), None, target, 0.1, "mean", None,
                      64)  # fmt: skip
    assert got[1][0].dtype == torch.bfloat16
    assert abs(float(got[0]) - float(want[0])) <= 2e-2 * abs(float(want[0]))
    for ours, theirs in zip(got[1], want[1], strict=True):
        assert (ours.double() - theirs).abs().max() <= 5e-2 * theirs.abs().max()


def test_torch_fused_frozen_weight_and_errors():
    rng = rng_for("torch frozen")
    arrays = make_case(rng, 6, 4, 9, "index")
    hidden = torch.tensor(arrays[0], requires_grad=True)
    lin_weight, target = torch.tensor(arrays[1]), torch.tensor(arrays[3])
    loss = linear_label_smoothing_cross_entropy(hidden, lin_weight, target, 0.1)
    (grad,) = torch.autograd.grad(loss, hidden, retain_graph=True)
    want = unfused_torch(hidden, lin_weight, None, target, 0.1, "mean", None)[1][0]
    torch.testing.assert_close(grad * 0.7, want)
    with pytest.raises(RuntimeError, match="backward can run once"):
        torch.autograd.grad(loss, hidden)
    with pytest.raises(ValueError, match="reduction='none' is not offered"):
        linear_label_smoothing_cross_entropy(
            hidden, lin_weight, target, reduction="none"
        )
    with pytest.raises(ValueError, match=r"class index 9 outside \[0, 8\]"):
        linear_label_smoothing_cross_entropy(
            hidden, lin_weight, torch.tensor([9, 0, 0, 0, 0, 0])
        )
    with pytest.raises(
        ValueError, match=r"hidden must be \(\.\.\., H\) and lin_weight \(K, H\)"
    ):
        linear_label_smoothing_cross_entropy(hidden, lin_weight.T, target)
    bad = hidden.detach().clone()
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="hold NaN or \\+inf in a row that counts"):
        linear_label_smoothing_cross_entropy(bad, lin_weight, target)


def test_torch_fused_probability_targets_that_require_grad():
    """∂L/∂t of the fused loss equals autograd's through F.linear and F.cross_entropy."""
    rng = rng_for("torch soft grad")
    arrays = make_case(rng, 10, 6, 37, "soft")
    hidden, lin_weight, lin_bias = (torch.tensor(a) for a in arrays[:3])
    target = torch.tensor(random_soft_targets(rng, (10,), 37, normalised=False))
    for reduction, chunk_rows in itertools.product(["mean", "sum"], [3, None]):
        theirs_t = target.clone().requires_grad_(True)
        leaves = [
            t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)
        ]
        want = F.cross_entropy(F.linear(*leaves), theirs_t, reduction=reduction,
                               label_smoothing=0.2)  # fmt: skip
        want.backward()
        ours_t = target.clone().requires_grad_(True)
        mine = [t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)]
        got = linear_label_smoothing_cross_entropy(
            mine[0], mine[1], ours_t, 0.2, lin_bias=mine[2], reduction=reduction,
            chunk_rows=chunk_rows,
        )  # fmt: skip
        got.backward()
        torch.testing.assert_close(ours_t.grad, theirs_t.grad, rtol=1e-10, atol=1e-13)
        for a, b in zip(mine, leaves, strict=True):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-13)

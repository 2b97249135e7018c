"""Lesson 09's torch paths: row and class chunks, the gradient in the forward, the in-place
gradient and its danger, and (on a CUDA GPU with triton) the Triton kernels.

The oracle is F.cross_entropy(label_smoothing=ε), as in tests/test_nn.py, which covers
the default path (FastLSCEFunction) and the plain LSCEFunction over the whole grid.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import chunking
from lsce_scratch.nn import (
    LabelSmoothingCrossEntropy,
    backends,
    label_smoothing_cross_entropy,
)
from tests.oracle import DEVICES, torch_logits


@pytest.fixture(params=["numpy", "torch"])
def cpu_kernel(request, monkeypatch):
    """CPU float32/float64 run through lsce_scratch.fast's NumPy kernel, or torch ops."""
    params = getattr(request.node, "callspec", None)
    if params and params.params.get("device") == "cuda" and request.param == "torch":
        pytest.skip("the CPU kernel choice does not apply on CUDA")
    monkeypatch.setattr(backends, "NUMPY_ON_CPU", request.param == "numpy")
    return request.param


def target_for(kind: str, leading, k: int, seed: int, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "soft":
        t = torch.softmax(
            torch.randn(leading + (k,), generator=g, dtype=torch.float64) * 2, -1
        )
        return t.to(device)
    y = torch.randint(0, k, leading, generator=g)
    if kind == "ignored":
        y.view(-1)[::3] = -100
    return y.to(device)


def builtin(z, target, eps, reduction, weight):
    soft = target.is_floating_point()
    return F.cross_entropy(
        torch.movedim(z, -1, 1), torch.movedim(target, -1, 1) if soft else target,
        weight=weight, reduction=reduction, label_smoothing=eps,
    )  # fmt: skip


def loss_and_grad(fn, z, target, upstream=None, **kwargs):
    """Loss and ∂(upstream·loss)/∂z, with z a non-leaf (as model outputs are)."""
    leaf = z.detach().clone().requires_grad_(True)
    loss = fn(leaf * 1.0, target, **kwargs)
    if upstream is None:
        upstream = (
            torch.full_like(loss, 0.7) if loss.dim() == 0 else torch.randn_like(loss)
        )
    loss.backward(upstream)
    return loss.detach(), leaf.grad, upstream


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "eps, k, reduction",
    list(itertools.product([0.0, 0.1, 1.0], [1, 3, 37, 1000], ["none", "sum", "mean"])),
)
@pytest.mark.parametrize("inplace", [False, True])
def test_gradient_in_forward_matches_builtin(
    cpu_kernel, device, eps, k, reduction, inplace
):
    g = torch.Generator().manual_seed(k)
    weight = (torch.rand(k, generator=g, dtype=torch.float64) + 0.1).to(device)
    for leading, kind, use_weight in itertools.product(
        [(5,), (2, 3)], ["index", "ignored", "soft"], [False, True]
    ):
        z = torch_logits(leading + (k,), k, device)
        target = target_for(kind, leading, k, k + 1, device)
        w = weight if use_weight else None
        want, want_grad, upstream = loss_and_grad(builtin, z, target, None, eps=eps,
                                                  reduction=reduction, weight=w)  # fmt: skip
        got, grad, _ = loss_and_grad(
            label_smoothing_cross_entropy, z, target, upstream, epsilon=eps,
            reduction=reduction, weight=w, grad_in_forward=True, inplace=inplace,
        )  # fmt: skip
        case = f"leading={leading}, target={kind}, weight={use_weight}"
        torch.testing.assert_close(
            got, want, rtol=1e-10, atol=1e-12, equal_nan=True, msg=case
        )
        torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-12, msg=case)


def test_default_and_grad_in_forward_never_touch_the_logits(cpu_kernel):
    """Without inplace=True the logits keep their values and their version."""
    z = torch_logits((6, 11), 1).requires_grad_(True)
    logits = z * 2.0
    before, version = logits.detach().clone(), logits._version
    target = target_for("index", (6,), 11, 2)
    for kwargs in ({}, {"grad_in_forward": True}):
        label_smoothing_cross_entropy(logits, target, 0.1, **kwargs).backward(
            retain_graph=True
        )
        assert torch.equal(logits, before) and logits._version == version, kwargs


def test_inplace_overwrites_the_logits_with_the_gradient(cpu_kernel):
    """The documented trade: no extra memory, and the logits are gone afterwards."""
    x = torch_logits((6, 11), 3).requires_grad_(True)
    target = target_for("index", (6,), 11, 4)
    logits = x * 1.0
    loss = label_smoothing_cross_entropy(logits, target, 0.1, inplace=True)
    loss.backward()
    want_loss, want_grad, _ = loss_and_grad(builtin, x, target, torch.tensor(1.0), eps=0.1,
                                            reduction="mean", weight=None)  # fmt: skip
    torch.testing.assert_close(loss.detach(), want_loss)
    torch.testing.assert_close(x.grad, want_grad)  # d(x·1)/dx = 1: the same gradient
    torch.testing.assert_close(logits.detach(), want_grad)  # the logits now hold it


def test_inplace_is_caught_when_an_upstream_op_saved_the_logits(cpu_kernel):
    """Liger-Kernel #272: exp saves its output; overwriting it must not go unnoticed."""
    x = torch_logits((4, 7), 5).requires_grad_(True)
    target = target_for("index", (4,), 7, 6)
    logits = torch.exp(x / 4)  # exp's backward needs exp's output: the logits
    loss = label_smoothing_cross_entropy(logits, target, 0.1, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    # the default path leaves them alone, and the gradient through exp is right
    safe = label_smoothing_cross_entropy(torch.exp(x / 4), target, 0.1)
    (ours,) = torch.autograd.grad(safe, x)
    (theirs,) = torch.autograd.grad(
        F.cross_entropy(torch.exp(x / 4), target, label_smoothing=0.1), x
    )
    torch.testing.assert_close(ours, theirs)


def test_inplace_refuses_a_leaf_and_spares_logits_that_need_no_gradient():
    leaf = torch_logits((3, 5), 7).requires_grad_(True)
    target = target_for("index", (3,), 5, 8)
    with pytest.raises(
        ValueError, match="inplace=True would overwrite logits that are a leaf"
    ):
        label_smoothing_cross_entropy(leaf, target, inplace=True)
    frozen = torch_logits((3, 5), 7)
    before = frozen.clone()
    with torch.no_grad():
        label_smoothing_cross_entropy(frozen * 1.0, target, inplace=True)
    label_smoothing_cross_entropy(frozen, target, inplace=True)
    assert torch.equal(frozen, before)


def test_gradient_in_forward_runs_backward_once_and_refuses_double_backward():
    z = torch_logits((4, 6), 9).requires_grad_(True)
    target = target_for("index", (4,), 6, 10)
    loss = label_smoothing_cross_entropy(z * 1.0, target, grad_in_forward=True)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward can run once"):
        loss.backward()
    loss = label_smoothing_cross_entropy(z * 1.0, target, grad_in_forward=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(loss, z, create_graph=True)
    # the default path can run backward twice
    loss = label_smoothing_cross_entropy(z * 1.0, target)
    first = torch.autograd.grad(loss, z, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(loss, z)[0], first)


def test_module_passes_the_options_on():
    module = LabelSmoothingCrossEntropy(0.1, grad_in_forward=True)
    assert "grad_in_forward=True" in repr(module)
    z = torch_logits((4, 6), 11)
    target = target_for("index", (4,), 6, 12)
    got = loss_and_grad(module, z, target, torch.tensor(1.0))
    want = loss_and_grad(builtin, z, target, torch.tensor(1.0), eps=0.1, reduction="mean",
                         weight=None)  # fmt: skip
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.parametrize("grad_in_forward", [False, True])
@pytest.mark.parametrize("kind", ["index", "ignored", "soft"])
def test_row_and_class_chunks_do_not_change_results(
    cpu_kernel, monkeypatch, grad_in_forward, kind
):
    """Chunks of 3 rows (N = 10, float64) and of 7 classes (K = 37, ties across chunks)."""
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 3 * 37 * 8)
    monkeypatch.setattr(chunking, "CLASS_CHUNK", 7)
    z = torch_logits((10, 37), 13)
    z[0, [3, 17, 30]] = z[0].max() + 1.0  # the max three times, in three class chunks
    target = target_for(kind, (10,), 37, 14)
    weight = torch.rand(37, dtype=torch.float64) + 0.1
    for reduction, w in itertools.product(["none", "mean"], [None, weight]):
        want = loss_and_grad(
            builtin, z, target, None, eps=0.1, reduction=reduction, weight=w
        )
        got = loss_and_grad(
            label_smoothing_cross_entropy, z, target, want[2], epsilon=0.1,
            reduction=reduction, weight=w, grad_in_forward=grad_in_forward,
        )  # fmt: skip
        torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got[1], want[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_chunks_go_through_float32_scratch(monkeypatch, dtype):
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 4 * 50 * 4)
    z = torch_logits((10, 50), 15, dtype=dtype)
    target = target_for("ignored", (10,), 50, 16)
    for grad_in_forward in (False, True):
        got = loss_and_grad(label_smoothing_cross_entropy, z, target, torch.tensor(1.0),
                            grad_in_forward=grad_in_forward)  # fmt: skip
        want = loss_and_grad(builtin, z.double(), target, torch.tensor(1.0), eps=0.1,
                             reduction="mean", weight=None)  # fmt: skip
        assert got[1].dtype == dtype
        torch.testing.assert_close(got[1].double(), want[1], rtol=2e-2, atol=1e-4)


# On a CUDA GPU: the Triton kernels (when triton is installed) and the torch fallback.


@pytest.fixture(params=["triton", "torch"])
def cuda_path(request, monkeypatch):
    if request.param == "triton" and backends.triton_kernels() is None:
        pytest.skip("triton is not installed")
    monkeypatch.setattr(backends, "USE_TRITON", request.param == "triton")
    return request.param


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("k", [37, 20_000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_paths_match_builtin(cuda_path, k, dtype):
    """K = 20 000 spans three Triton blocks: the online merge is exercised. (Few shapes
    and dtypes: every new one compiles the kernels again.)"""
    tol = {torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    weight = torch.rand(k, device="cuda", dtype=torch.float64) + 0.1
    for kind, w, reduction, gif in itertools.product(
        ["index", "ignored"], [None, weight], ["none", "mean", "sum"], [False, True]
    ):
        z = torch_logits((33, k), k, "cuda", dtype)
        z[1, k // 2] = z[1].max() + 20  # a confident row; its max in a later block
        target = target_for(kind, (33,), k, k + 2, "cuda")
        want = loss_and_grad(builtin, z.double(), target, None, eps=0.1, reduction=reduction,
                             weight=w)  # fmt: skip
        got = loss_and_grad(
            label_smoothing_cross_entropy, z, target, want[2].to(dtype), epsilon=0.1,
            reduction=reduction, weight=None if w is None else w.float(), grad_in_forward=gif,
        )  # fmt: skip
        case = (
            f"{cuda_path}, K={k}, {dtype}, {kind}, weight={w is not None}, {reduction}"
        )
        assert got[1].dtype == dtype, case
        scale = want[0].abs().max().clamp(min=1e-6)
        assert (got[0].double() - want[0]).abs().max() <= tol * scale, case
        g_scale = want[1].abs().max().clamp(min=1e-12)
        assert (got[1].double() - want[1]).abs().max() <= tol * g_scale, case


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_inplace_bumps_the_version_even_through_triton(cuda_path):
    """A Triton write is invisible to autograd; we bump the version counter by hand."""
    x = torch_logits((8, 3000), 17, "cuda", torch.float32).requires_grad_(True)
    target = target_for("index", (8,), 3000, 18, "cuda")
    logits = torch.exp(x / 8)
    loss = label_smoothing_cross_entropy(logits, target, 0.1, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    logits = x * 1.0
    loss = label_smoothing_cross_entropy(logits, target, 0.1, inplace=True)
    loss.backward()
    want = loss_and_grad(builtin, x.detach(), target, torch.tensor(1.0, device="cuda"),
                         eps=0.1, reduction="mean", weight=None)  # fmt: skip
    torch.testing.assert_close(x.grad, want[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logits.detach(), want[1], rtol=1e-5, atol=1e-7)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("delta", [1e-5, 1e-6])
def test_cuda_float32_true_class_gradient_when_p_is_almost_one(cuda_path, delta):
    n, k = 4, 50_000
    target = torch.tensor([0, 3, 40_000, 5])
    z = torch.zeros(n, k, dtype=torch.float64)
    z[torch.arange(n), target] = float(
        torch.log(torch.tensor((1 - delta) * (k - 1) / delta))
    )
    got = loss_and_grad(label_smoothing_cross_entropy, z.float().cuda(), target.cuda(),
                        torch.tensor(1.0, device="cuda"), epsilon=0.0, reduction="sum")  # fmt: skip
    want = loss_and_grad(builtin, z, target, torch.tensor(1.0), eps=0.0, reduction="sum",
                         weight=None)  # fmt: skip
    rows = torch.arange(n)
    ours, theirs = got[1].double().cpu()[rows, target], want[1][rows, target]
    assert ((ours - theirs).abs() / theirs.abs()).max() < 1e-3
    assert abs(float(got[0]) - float(want[0])) < 1e-3 * float(want[0])


# Expanded logits and inplace=True: a stride-0 view has one memory cell for many entries,
# so an in-place gradient would add up the rows' gradients in it, past autograd's checks.


def test_inplace_refuses_logits_whose_entries_share_memory(cpu_kernel):
    base = torch_logits((1, 5), 19).requires_grad_(True)
    target = target_for("index", (4,), 5, 20)
    with pytest.raises(ValueError, match=r"entries share memory \(strides \(0, 1\)"):
        label_smoothing_cross_entropy(
            (base * 1.0).expand(4, 5), target, 0.1, inplace=True
        )
    # the other paths give PyTorch's gradient on the same view, and so does a copy in place
    want = torch.autograd.grad(F.cross_entropy(base.expand(4, 5), target, label_smoothing=0.1),
                               base)[0]  # fmt: skip
    for kwargs, logits in [
        ({}, lambda: (base * 1.0).expand(4, 5)),
        ({"grad_in_forward": True}, lambda: (base * 1.0).expand(4, 5)),
        ({"inplace": True}, lambda: (base * 1.0).expand(4, 5).contiguous()),
    ]:
        loss = label_smoothing_cross_entropy(logits(), target, 0.1, **kwargs)
        (got,) = torch.autograd.grad(loss, base)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14, msg=str(kwargs))


def test_inplace_takes_strided_views_that_do_not_overlap(cpu_kernel):
    """A transposed or sliced view is not contiguous, but no two entries share memory."""
    x = torch_logits((7, 12), 21).requires_grad_(True)
    target = target_for("index", (6,), 7, 22)
    for view in (lambda t: t.T[::2], lambda t: t.T[1:7]):
        want = torch.autograd.grad(
            F.cross_entropy(view(x), target, label_smoothing=0.1), x
        )[0]
        loss = label_smoothing_cross_entropy(view(x * 1.0), target, 0.1, inplace=True)
        torch.testing.assert_close(
            torch.autograd.grad(loss, x)[0], want, rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_nan_and_plus_inf_are_refused_before_or_after_an_inplace_gradient(
    cpu_kernel, bad, grad_in_forward
):
    """The check reads the row statistics, not the logits, which inplace=True overwrote."""
    x = torch_logits((4, 6), 23).requires_grad_(True)
    target = target_for("index", (4,), 6, 24)
    logits = x * 1.0
    with torch.no_grad():
        logits[2, 3] = bad
    shown = "nan" if bad != bad else "inf"
    pattern = rf"NaN or \+inf in 1 row\(s\) that count, the first with {shown} at index \(2, 3\)"
    for inplace in (False, True):
        with pytest.raises(ValueError, match=pattern):
            label_smoothing_cross_entropy(
                logits.clone(),
                target,
                0.1,
                grad_in_forward=grad_in_forward,
                inplace=inplace,
            )

"""Our losses inside torch.autocast and under torch.compile.

Autocast runs cross-entropy in float32: ``F.cross_entropy`` casts its inputs up and returns
a float32 loss, and ``F.linear_cross_entropy`` runs the product in the autocast dtype and
the loss in float32. Ours must work there and return the same (dtype included), on the
CPU (bfloat16, float16) and on CUDA. The fused scenarios are Liger-Kernel's test_amp
(test_fused_linear_cross_entropy.py: its shapes, weights drawn from torch.rand, backward
inside autocast, atol 5e-3, rtol 5e-2).

torch.compile: a training step that uses our module compiles (our loss is one opaque call,
a graph break) and gives the eager step's gradients.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from lsce_scratch.nn import (
    LabelSmoothingCrossEntropy,
    label_smoothing_cross_entropy,
    linear_label_smoothing_cross_entropy,
)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
AUTOCASTS = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cpu", torch.float16, id="cpu-float16"),
    pytest.param(
        "cuda", torch.bfloat16, id="cuda-bfloat16", marks=[pytest.mark.cuda, CUDA]
    ),
    pytest.param(
        "cuda", torch.float16, id="cuda-float16", marks=[pytest.mark.cuda, CUDA]
    ),
]


def head(device: str, n: int, h: int, k: int, seed: int, bias: bool = True):
    """hidden (n, h) and an output layer (k, h) + bias, float32 leaves."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g)
    lin_weight = torch.randn(k, h, generator=g) * 2 / h**0.5
    lin_bias = torch.randn(k, generator=g) if bias else None
    return [None if t is None else t.to(device).requires_grad_(True)
            for t in (hidden, lin_weight, lin_bias)]  # fmt: skip


def grads(tensors):
    return [None if t is None else t.grad for t in tensors]


@pytest.mark.parametrize("device, dtype", AUTOCASTS)
@pytest.mark.parametrize("mode", ["default", "grad_in_forward", "inplace"])
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_unfused_loss_under_autocast_returns_what_cross_entropy_returns(device, dtype, mode,
                                                                         kind):  # fmt: skip
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 37, (24,), generator=g).to(device)
    if kind == "soft":
        target = torch.softmax(torch.randn(24, 37, generator=g), -1).to(device)
    weight = (torch.rand(37, generator=g) + 0.5).to(device)
    options = {"grad_in_forward": mode != "default", "inplace": mode == "inplace"}
    results = []
    for loss_fn in (F.cross_entropy, label_smoothing_cross_entropy):
        leaves = head(device, 24, 16, 37, seed=2)
        with torch.autocast(device, dtype=dtype):
            logits = F.linear(*leaves)
            assert logits.dtype == dtype
            extra = options if loss_fn is label_smoothing_cross_entropy else {}
            loss = loss_fn(logits, target, weight=weight, label_smoothing=0.1, **extra) \
                if loss_fn is F.cross_entropy else loss_fn(logits, target, 0.1, weight=weight,
                                                           **extra)  # fmt: skip
        loss.backward()
        results.append((loss, grads(leaves)))
    (theirs, their_grads), (ours, our_grads) = results
    assert ours.dtype == theirs.dtype == torch.float32
    # the same float32 math on the same low-precision logits
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    for a, b in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]
)
def test_float64_stays_float64_under_autocast(device):
    z = torch.randn(5, 4, dtype=torch.float64, device=device)
    target = torch.tensor([0, 1, 2, 3, 0], device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        ours = label_smoothing_cross_entropy(z, target, 0.1)
        theirs = F.cross_entropy(z, target, label_smoothing=0.1)
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


def lm_head_reference(hidden, lin_weight, lin_bias, target, eps, weight, ignore_index):
    """Liger's TorchLMHeadCE: logits = lin(x).float(), then F.cross_entropy ('mean')."""
    logits = F.linear(hidden, lin_weight, lin_bias).float()
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                           label_smoothing=eps)  # fmt: skip


# Liger's test_amp shapes (B, T, H, V): (4, 47, 31, 123), and (8, 128, 1024, 4096) scaled
# down to (2, 64, 256, 4096) to keep the CPU test fast
AMP_SHAPES = [(4 * 47, 31, 123), (2 * 64, 256, 4096)]


@pytest.mark.parametrize("device, dtype", AUTOCASTS)
@pytest.mark.parametrize("rows, h, k", AMP_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_under_autocast_as_liger_test_amp(device, dtype, rows, h, k, bias):
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(rows, h, generator=g)
    lin_weight = torch.rand(k, h, generator=g)  # Liger's weights: torch.rand(V, H)
    lin_bias = torch.rand(k, generator=g) if bias else None
    target = torch.randint(0, k, (rows,), generator=g)
    inputs = [
        None if t is None else t.to(device) for t in (hidden, lin_weight, lin_bias)
    ]
    target = target.to(device)
    results = []
    for fused in (False, True):
        leaves = [None if t is None else t.clone().requires_grad_(True) for t in inputs]
        with torch.autocast(device, dtype=dtype):
            if fused:
                loss = linear_label_smoothing_cross_entropy(leaves[0], leaves[1], target, 0.0,
                                                            lin_bias=leaves[2])  # fmt: skip
            else:
                loss = lm_head_reference(*leaves, target, 0.0, None, -100)
            loss.backward()  # inside autocast, as test_amp does
        results.append((loss, grads(leaves)))
    (theirs, their_grads), (ours, our_grads) = results
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=5e-3, rtol=5e-2)
    for a, b in zip(our_grads, their_grads, strict=True):
        if b is not None:
            assert a.dtype == b.dtype == torch.float32
            torch.testing.assert_close(a, b, atol=5e-3, rtol=5e-2)


@pytest.mark.parametrize("device, dtype", AUTOCASTS)
def test_fused_linear_under_autocast_returns_what_linear_cross_entropy_returns(
    device, dtype
):
    """F.linear_cross_entropy (torch ≥ 2.13), with weights, smoothing and ignored rows."""
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("torch has no F.linear_cross_entropy")
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 50, (40,), generator=g)
    target[::5] = -100
    weight = torch.rand(50, generator=g) + 0.5
    target, weight = target.to(device), weight.to(device)
    for eps, reduction in itertools.product([0.0, 0.1], ["mean", "sum"]):
        results = []
        for fused in (linear_label_smoothing_cross_entropy, F.linear_cross_entropy):
            hidden, lin_weight, lin_bias = head(device, 40, 12, 50, seed=5)
            kwargs = {"reduction": reduction, "weight": weight}
            with torch.autocast(device, dtype=dtype):
                if fused is F.linear_cross_entropy:
                    loss = fused(hidden, lin_weight, target, linear_bias=lin_bias,
                                 label_smoothing=eps, **kwargs)  # fmt: skip
                else:
                    loss = fused(
                        hidden, lin_weight, target, eps, lin_bias=lin_bias, **kwargs
                    )
            loss.backward()
            results.append((loss, grads((hidden, lin_weight, lin_bias))))
        (ours, our_grads), (theirs, their_grads) = results
        assert ours.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, atol=5e-3, rtol=5e-2)
        for a, b in zip(our_grads, their_grads, strict=True):
            torch.testing.assert_close(a, b, atol=5e-3, rtol=5e-2)


def train_steps(model, loss_fn, batches, compile_backend=None):
    """Two SGD steps; the gradients of each step and the final parameters."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    run = (
        step
        if compile_backend is None
        else torch.compile(step, backend=compile_backend)
    )
    seen = []
    for x, y in batches:
        loss = run(x, y)
        seen.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        optimizer.step()
    return seen


def _batches():
    g = torch.Generator().manual_seed(6)
    return [(torch.randn(32, 16, generator=g), torch.randint(0, 10, (32,), generator=g))
            for _ in range(2)]  # fmt: skip


def _model():
    torch.manual_seed(7)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 24), torch.nn.ReLU(), torch.nn.Linear(24, 10)
    )


@pytest.mark.slow
def test_a_compiled_training_step_with_our_module_gives_the_eager_gradients():
    """torch.compile with its default backend (inductor): compiling takes seconds."""
    batches = _batches()
    eager = train_steps(_model(), lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
                        batches)  # fmt: skip
    compiled = train_steps(
        _model(), LabelSmoothingCrossEntropy(0.1), batches, "inductor"
    )
    for (loss, grad), (want_loss, want_grad) in zip(compiled, eager, strict=True):
        torch.testing.assert_close(loss, want_loss)
        for a, b in zip(grad, want_grad, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "loss_fn",
    [
        pytest.param(
            LabelSmoothingCrossEntropy(0.1, grad_in_forward=True), id="grad_in_forward"
        ),
        pytest.param(LabelSmoothingCrossEntropy(0.1, inplace=True), id="inplace"),
    ],
)
def test_compiled_steps_with_the_gradient_in_the_forward(loss_fn):
    """The graph capture and autograd of torch.compile (backend aot_eager, no codegen)."""
    batches = _batches()
    eager = train_steps(_model(), lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
                        batches)  # fmt: skip
    compiled = train_steps(_model(), loss_fn, batches, "aot_eager")
    for (loss, grad), (want_loss, want_grad) in zip(compiled, eager, strict=True):
        torch.testing.assert_close(loss, want_loss)
        for a, b in zip(grad, want_grad, strict=True):
            torch.testing.assert_close(a, b)


def test_a_compiled_step_with_the_fused_linear_loss():
    g = torch.Generator().manual_seed(8)
    hidden = torch.randn(32, 16, generator=g)
    target = torch.randint(0, 40, (32,), generator=g)
    results = []
    for fused, backend in ((False, None), (True, "aot_eager")):
        torch.manual_seed(9)
        body = torch.nn.Linear(16, 16)
        out = torch.nn.Linear(16, 40)

        def step(x, y, fused=fused, body=body, out=out):
            h = torch.relu(body(x))
            if fused:
                return linear_label_smoothing_cross_entropy(h, out.weight, y, 0.1,
                                                            lin_bias=out.bias)  # fmt: skip
            return F.cross_entropy(out(h), y, label_smoothing=0.1)

        run = step if backend is None else torch.compile(step, backend=backend)
        loss = run(hidden, target)
        loss.backward()
        results.append(
            (loss.detach(), [p.grad for p in (*body.parameters(), *out.parameters())])
        )
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)

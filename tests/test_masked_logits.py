"""Masked classes (logits of −inf) follow PyTorch, in every implementation.

PyTorch's answers, which each implementation must give as well (loss and gradient):

- ε = 0: a finite loss, and a gradient that is 0 at the masked classes;
- ε > 0: an infinite loss (each masked class holds ε/K of the target), a finite gradient;
- the true class masked: an infinite loss;
- a row with every class masked: NaN;
- a class weight of 0 on a masked class (with ε > 0), or a probability target of 0 there
  at ε = 0: NaN, PyTorch's 0 · log 0;
- anything in an ignored row (−inf, NaN, +inf): no error and no effect on the loss.

One deliberate difference: an ignored row's gradient is 0 here whatever its logits, where
PyTorch's is NaN for a row without a softmax (NaN, +inf, or nothing but −inf). NaN and +inf
in a row that counts are still refused with a clear error.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import fast
from lsce_scratch.nn import (
    label_smoothing_cross_entropy,
    linear_label_smoothing_cross_entropy,
)
from tests.implementations import ANY_LOGITS, IMPLEMENTATIONS, run
from tests.oracle import DEVICES, assert_close, torch_lsce

K = 7


def masked_batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Six rows of K logits, some classes masked; targets where the comments say."""
    z = rng.normal(size=(6, K)) * 3
    z[0, 4] += 12  # a confident row
    z[0, 2] = -np.inf  # one masked class
    z[1, [0, 3]] = -np.inf  # ... two, one of them the target
    z[2, :] = -np.inf  # every class masked
    z[3, 5] = -np.inf  # the target masked
    z[4, 1:6] = -np.inf  # all but two
    y = np.array([4, 3, 1, 5, 6, 0])
    return z, y


def expected(logits, target, eps, reduction, weight, ignored_rows=()):
    """PyTorch's loss and gradient (float64), the gradient of ignored rows set to 0."""
    want = torch_lsce(logits, target, eps, reduction=reduction, weight=weight)
    grad = want.grad.copy()
    grad[list(ignored_rows)] = 0.0
    return want.loss, grad, want.dloss


def assert_same(got, loss, grad, case) -> None:
    """Equal to 1e-10 of the largest finite value; NaN and ±inf in the same places."""
    assert_close(got.loss, loss, 1e-10, f"loss, {case}")
    if got.grad is not None:
        assert_close(got.grad, grad, 1e-10, f"gradient, {case}")


WEIGHTS = {
    "none": None,
    "positive": np.linspace(0.5, 2.0, K),
    "zero on a masked class": np.array([1.0, 0.5, 0.0, 2.0, 1.0, 1.5, 0.7]),
}


@pytest.mark.parametrize("name", ANY_LOGITS)
def test_index_targets_with_masked_classes_match_pytorch(name):
    rng = np.random.default_rng(0)
    for eps, reduction, (wname, weight), ignore in itertools.product(
        [0.0, 0.1, 1.0], ["none", "sum", "mean"], WEIGHTS.items(), [False, True]
    ):
        z, y = masked_batch(rng)
        ignored = ()
        if ignore:
            # ignored rows may hold anything: all −inf, NaN, +inf
            y[[2, 5]] = -100
            z[5, 1], z[5, 3] = np.nan, np.inf
            ignored = (2, 5)
        loss, grad, dloss = expected(z, y, eps, reduction, weight, ignored)
        got = run(name, z, y, eps, reduction=reduction, weight=weight, dloss=dloss)
        assert_same(
            got, loss, grad, f"{name}, ε={eps}, {reduction}, weight {wname}, {ignored}"
        )


@pytest.mark.parametrize("name", ANY_LOGITS)
def test_probability_targets_with_masked_classes_match_pytorch(name):
    rng = np.random.default_rng(1)
    for eps, reduction, (wname, weight) in itertools.product(
        [0.0, 0.1], ["none", "sum", "mean"], WEIGHTS.items()
    ):
        z, _ = masked_batch(rng)
        t = rng.dirichlet(np.ones(K), size=6)
        t[0, 2] = 0.0  # no target mass on the masked class: 0 · log 0
        t[3] = np.where(np.isinf(z[3]), 0.0, t[3])
        t[3] /= t[3].sum()
        loss, grad, dloss = expected(z, t, eps, reduction, weight)
        got = run(name, z, t, eps, reduction=reduction, weight=weight, dloss=dloss)
        assert_same(got, loss, grad, f"{name}, ε={eps}, {reduction}, weight {wname}")
        if got.target_grad is not None:
            x = torch.tensor(z, requires_grad=True)
            target = torch.tensor(t, requires_grad=True)
            w = None if weight is None else torch.tensor(weight)
            theirs = F.cross_entropy(
                x, target, w, reduction=reduction, label_smoothing=eps
            )
            theirs.backward(torch.tensor(dloss).expand(theirs.shape))
            assert_close(
                got.target_grad, target.grad.numpy(), 1e-10, f"∂/∂target, {name}"
            )


def test_the_cases_pytorch_documents_by_their_values():
    """The list in the module docstring, value by value (unweighted, 'none')."""
    z, y = masked_batch(np.random.default_rng(2))
    for name in ANY_LOGITS:
        plain = run(name, z, y, 0.0, reduction="none")
        smoothed = run(name, z, y, 0.1, reduction="none")
        assert np.isfinite(
            plain.loss[[0, 4]]
        ).all()  # ε = 0: finite where y is not masked
        assert np.isinf(plain.loss[[1, 3]]).all()  # the true class masked: inf
        assert np.isinf(smoothed.loss[[0, 1, 3, 4]]).all()  # ε > 0: inf
        assert np.isnan(plain.loss[2]) and np.isnan(smoothed.loss[2])  # all masked: NaN
        if plain.grad is not None:
            assert (
                plain.grad[0, 2] == 0.0 and np.isfinite(plain.grad[[0, 1, 3, 4]]).all()
            )
            assert np.isfinite(smoothed.grad[[0, 1, 3, 4]]).all()
            # ε > 0: a masked class is pushed by −ε/K·dloss, the share of the target it holds
            np.testing.assert_allclose(smoothed.grad[0, 2], -0.1 / K)
            assert np.isnan(plain.grad[2]).all()


@pytest.mark.parametrize("name", ANY_LOGITS)
def test_a_whole_chunk_of_masked_classes(name):
    """Classes 9..35 masked: the class-chunked implementations see whole masked chunks
    (3 chunks of 14), whose own maximum is −inf."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 40)) * 2
    z[:, 9:36] = -np.inf
    z[3, :] = -np.inf
    y = np.array([0, 36, 39, 5])
    for eps, reduction in itertools.product([0.0, 0.1], ["none", "mean"]):
        loss, grad, dloss = expected(z, y, eps, reduction, None)
        assert_same(
            run(name, z, y, eps, reduction=reduction, dloss=dloss), loss, grad, name
        )


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_nan_and_plus_inf_in_a_counted_row_are_still_refused(name):
    z, y = masked_batch(np.random.default_rng(4))
    z[5, 2] = np.nan
    message = r"NaN or \+inf in 1 row|hidden contains NaN|hold NaN or \+inf"
    if name.endswith("fused"):
        z = np.where(np.isinf(z), 0.0, z)  # the fused ones take finite hidden states
    with pytest.raises(ValueError, match=message):
        run(name, z, y, 0.1)


def test_the_error_names_the_bad_entry_not_a_masked_one():
    z = np.zeros((3, 5))
    z[0, 1] = -np.inf
    z[2, 3] = np.inf
    with pytest.raises(
        ValueError, match=r"1 row\(s\) that count, the first with inf at index \(2, 3\)"
    ):
        fast.lsce_forward(z, np.array([0, 1, 2]))


def padded_vocabulary(rng, dtype=torch.float64):
    """A language-model head over a vocabulary padded from 13 to 16 classes: the padding
    classes get a bias of −inf, so no row ever predicts them."""
    hidden = torch.tensor(rng.normal(size=(12, 6)), dtype=dtype)
    lin_weight = torch.tensor(rng.normal(size=(16, 6)), dtype=dtype)
    lin_bias = torch.tensor(rng.normal(size=16), dtype=dtype)
    lin_bias[13:] = -torch.inf
    target = torch.tensor(rng.integers(0, 13, size=12))
    target[::4] = -100
    return hidden, lin_weight, lin_bias, target


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_linear_with_a_padded_vocabulary(eps, reduction):
    rng = np.random.default_rng(5)
    hidden, lin_weight, lin_bias, target = padded_vocabulary(rng)
    weight = torch.tensor(rng.uniform(0.5, 2.0, size=16))
    leaves = [t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)]
    theirs = F.cross_entropy(F.linear(*leaves), target, weight, reduction=reduction,
                             label_smoothing=eps)  # fmt: skip
    theirs.backward()
    mine = [t.clone().requires_grad_(True) for t in (hidden, lin_weight, lin_bias)]
    ours = linear_label_smoothing_cross_entropy(
        mine[0], mine[1], target, eps, lin_bias=mine[2], reduction=reduction, weight=weight,
        chunk_rows=5,
    )  # fmt: skip
    ours.backward()
    numpy = fast.linear_lsce(
        hidden.numpy(), lin_weight.numpy(), target.numpy(), eps, lin_bias=lin_bias.numpy(),
        reduction=reduction, weight=weight.numpy(), chunk_rows=5,
    )  # fmt: skip
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(numpy[0], theirs.item(), rtol=1e-12)
    for a, b, c in zip(mine, leaves, numpy[1:], strict=True):
        assert torch.isfinite(b.grad).all()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c, b.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_masked_logits_on_every_device(device, grad_in_forward):
    """CPU, and on a GPU the Triton kernels (index targets, float32): K = 9000 spans three
    Triton blocks, the middle one fully masked on row 1."""
    rng = np.random.default_rng(6)
    z = rng.normal(size=(5, 9000)) * 2
    z[0, :50] = -np.inf
    z[1, 4096:8192] = -np.inf
    z[2, :] = -np.inf
    y = np.array([60, 1, 3, 4, 5])
    y[4] = -100
    z[4, 7] = np.nan
    for eps in (0.0, 0.1):
        loss, grad, dloss = expected(z, y, eps, "sum", None, ignored_rows=(4,))
        x = torch.tensor(z, dtype=torch.float32, device=device, requires_grad=True)
        ours = label_smoothing_cross_entropy(
            x * 1.0, torch.tensor(y, device=device), eps, reduction="sum",
            grad_in_forward=grad_in_forward,
        )  # fmt: skip
        ours.backward(torch.tensor(float(dloss), device=device))
        np.testing.assert_allclose(ours.item(), loss, rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(x.grad.cpu().double().numpy(), grad, rtol=1e-4, atol=1e-6,
                                   equal_nan=True)  # fmt: skip

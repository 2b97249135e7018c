"""Exercise 6.1: the backward of LSCEFunction, by gradcheck and against PyTorch."""

import pytest
import torch
import torch.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _logits(seed: int, n: int = 5, k: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * 2
    z[0, 1] += 6.0  # one confident row
    return z.requires_grad_(True)


def _apply(function, z, target, kind, reduction, weight=None, epsilon=0.1):
    return function.apply(z, target, epsilon, weight, -100, reduction, kind)


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_index_targets(impl, reduction):
    function = impl()
    z, y = _logits(61), torch.tensor([1, 0, 3, 2, 2])
    assert torch.autograd.gradcheck(lambda x: _apply(function, x, y, "index", reduction), (z,))


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_weights_and_ignore_index(impl, reduction):
    function = impl()
    z, y = _logits(62), torch.tensor([1, -100, 3, 2, -100])
    w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: _apply(function, x, y, "index", reduction, w), (z,))


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_probability_targets(impl, reduction):
    function = impl()
    z = _logits(63)
    t = torch.softmax(torch.randn(5, 4, dtype=torch.float64), dim=-1)
    w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: _apply(function, x, t, "soft", reduction, w), (z,))


@pytest.mark.ex6_1
def test_gradient_matches_cross_entropy(impl):
    function = impl()
    z, y = _logits(64), torch.tensor([1, 0, 3, -100, 2])
    w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    (ours,) = torch.autograd.grad(_apply(function, z, y, "index", "mean", w, 0.2) * 0.7, z)
    loss = F.cross_entropy(z, y, weight=w, label_smoothing=0.2) * 0.7
    (theirs,) = torch.autograd.grad(loss, z)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)

"""Exercises 7.1–7.3: a linear layer's backward, one Adam step, the logit gap."""

import numpy as np
import pytest
import torch

from lsce_scratch.gradcheck import numerical_gradient_wrt, rel_error
from lsce_scratch.losses import lsce_backward, lsce_forward
from lsce_scratch.mlp import MLP


def _layer(linear, seed: int):
    rng = np.random.default_rng(seed)
    layer = linear(5, 3, rng)  # not square, so a transpose in the wrong place fails
    layer.b = rng.standard_normal(3)
    return layer, rng.standard_normal((4, 5)), rng.standard_normal((4, 3))


@pytest.mark.ex7_1
def test_linear_backward_matches_central_differences(impl):
    layer, x, upstream = _layer(impl(), 71)

    def loss() -> float:
        # L = Σ h ⊙ G, so ∂L/∂h = G
        return float(np.sum(layer.forward(x)[0] * upstream))

    _, cache = layer.forward(x)
    dx = layer.backward(upstream, cache)
    for name, analytic, param in [
        ("dx", dx, x),
        ("dW", layer.dW, layer.W),
        ("db", layer.db, layer.b),
    ]:
        numeric = numerical_gradient_wrt(loss, param)
        assert np.shape(analytic) == numeric.shape, f"{name} has shape {np.shape(analytic)}"
        error = rel_error(analytic, numeric)
        assert error < 1e-7, f"{name}: rel_error {error:.1e} against central differences"


@pytest.mark.ex7_1
def test_linear_backward_matches_torch_autograd(impl):
    layer, x, upstream = _layer(impl(), 72)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, layer.W, layer.b))
    (tx @ tw + tb).backward(torch.tensor(upstream))
    dx = layer.backward(upstream, layer.forward(x)[1])
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, err_msg="dx = dout Wᵀ")
    np.testing.assert_allclose(layer.dW, tw.grad.numpy(), rtol=1e-12, err_msg="dW = xᵀ dout")
    np.testing.assert_allclose(layer.db, tb.grad.numpy(), rtol=1e-12, err_msg="db = Σ_i dout_i")


@pytest.mark.ex7_1
def test_an_mlp_of_your_layers_backpropagates_lsce(impl):
    rng = np.random.default_rng(73)
    model = MLP((6, 5, 3), rng, linear=impl())
    x, y = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)

    def loss() -> float:
        return float(lsce_forward(model.forward(x)[0], y, 0.1)[0])

    logits, caches = model.forward(x)
    model.backward(lsce_backward(1.0, lsce_forward(logits, y, 0.1)[1]), caches)
    for param, grad in zip(model.params(), model.grads(), strict=True):
        assert rel_error(grad, numerical_gradient_wrt(loss, param)) < 1e-7


def _torch_adam_run(adam_class, steps: int, lr: float = 0.01):
    rng = np.random.default_rng(74)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = adam_class([p.copy() for p in start], lr=lr, beta1=0.8, beta2=0.99, eps=1e-6)
    theirs = [torch.tensor(p, requires_grad=True) for p in start]
    optimiser = torch.optim.Adam(theirs, lr=lr, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape) * rng.uniform(0.1, 5) for p in start]
        ours.step(grads)
        for tensor, grad in zip(theirs, grads, strict=True):
            tensor.grad = torch.tensor(grad)
        optimiser.step()
    return ours, [t.detach().numpy() for t in theirs]


@pytest.mark.ex7_2
@pytest.mark.parametrize("steps", [1, 2, 10])
def test_adam_matches_torch(impl, steps):
    ours, theirs = _torch_adam_run(impl(), steps)
    for mine, expected in zip(ours.params, theirs, strict=True):
        np.testing.assert_allclose(
            mine, expected, rtol=1e-12, atol=1e-14, err_msg=f"after {steps} step(s)"
        )
    assert ours.t == steps, f"self.t should count the steps: {ours.t} after {steps}"


@pytest.mark.ex7_2
def test_adam_first_step_moves_every_coordinate_by_lr(impl):
    # with bias correction the first step is lr·g/(|g| + eps) ≈ ±lr, whatever the scale of g
    params = [np.zeros(5)]
    adam = impl()(params, lr=0.01)
    adam.step([np.array([1e-3, -2.0, 50.0, -0.3, 7.0])])
    np.testing.assert_allclose(
        params[0], [-0.01, 0.01, -0.01, 0.01, -0.01], rtol=1e-4, err_msg="the first Adam step"
    )


@pytest.mark.ex7_3
def test_logit_gap_by_hand(impl):
    logit_gap = impl()
    z = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0], [1.0, 1.0, 0.0], [-4.0, -9.0, -7.0]])
    got = logit_gap(z, np.array([0, 2, 1, 0]))
    np.testing.assert_array_equal(got, [1.0, -6.0, 0.0, 3.0])


@pytest.mark.ex7_3
def test_logit_gap_random_and_leaves_logits_alone(impl):
    logit_gap = impl()
    rng = np.random.default_rng(75)
    z = rng.standard_normal((50, 7)) * 5
    y = rng.integers(0, 7, 50)
    before = z.copy()
    got = logit_gap(z, y)
    np.testing.assert_array_equal(z, before, err_msg="logit_gap modified its input")
    expected = [z[i, y[i]] - np.delete(z[i], y[i]).max() for i in range(50)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=0)

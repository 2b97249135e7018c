"""Exercises 7.1–7.3: a linear layer's backward, one Adam step, the logit gap."""

import numpy as np
import pytest
import torch

from lsce_examples.digits_mlp import MLP
from lsce_scratch.gradcheck import numerical_gradient_wrt, rel_error
from lsce_scratch.losses import lsce_backward, lsce_forward
from tests.expect import Diagnosis, assert_close, got_expected, show

# --------------------------------------------------------------------------------------------
# 7.1 Linear.backward


def _layer(linear, seed: int):
    rng = np.random.default_rng(seed)
    layer = linear(5, 3, rng)  # not square, so a transpose in the wrong place shows
    layer.b = rng.standard_normal(3)
    return layer, rng.standard_normal((4, 5)), rng.standard_normal((4, 3))


def _backward(layer, x: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """The learner's backward, checking that it leaves W and b alone and returns dx."""
    w_before, b_before = layer.W.copy(), layer.b.copy()
    dx = layer.backward(dout.copy(), layer.forward(x)[1])
    if not (np.array_equal(layer.W, w_before) and np.array_equal(layer.b, b_before)):
        raise Diagnosis(
            "Linear.backward changed self.W or self.b: it only computes the gradients; the "
            "optimiser updates the parameters"
        )
    if dx is None:
        raise Diagnosis(
            "Linear.backward returned None: return ∂L/∂x = dout Wᵀ (N × D_in)"
        )
    return dx


@pytest.mark.ex7_1
def test_linear_backward_matches_torch_autograd(impl):
    layer, x, dout = _layer(impl(), 72)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, layer.W, layer.b))
    (tx @ tw + tb).backward(torch.tensor(dout))
    dx = _backward(layer, x, dout)
    inputs = {"x": x, "W": layer.W, "dout": dout}
    assert_close(
        layer.dW,
        tw.grad.numpy(),
        1e-12,
        "self.dW after backward(dout, x), W of shape (5, 3)",
        mistakes={
            "dW is transposed: ∂L/∂W = xᵀ dout has W's shape (D_in × D_out)": dout.T
            @ x,
            "dW is divided by the number of rows N: the loss's mean is already in dout": (
                x.T @ dout / len(x)
            ),
        },
        **inputs,
    )
    assert_close(
        layer.db,
        tb.grad.numpy(),
        1e-12,
        "self.db after backward(dout, x)",
        mistakes={
            "db is not summed over the rows: the bias is added to every row, so "
            "∂L/∂b = Σ_i dout_i, of shape (D_out,)": dout,
            "db is the mean over the rows; it is the sum Σ_i dout_i": dout.mean(axis=0),
            "db is summed over the wrong axis: sum over the rows (axis=0)": dout.sum(
                axis=1
            ),
        },
        **inputs,
    )
    assert_close(
        dx,
        tx.grad.numpy(),
        1e-12,
        "the dx that backward(dout, x) returned",
        mistakes={
            "dx is transposed: ∂L/∂x = dout Wᵀ has x's shape (N × D_in)": layer.W
            @ dout.T,
        },
        **inputs,
    )


@pytest.mark.ex7_1
def test_linear_backward_matches_central_differences(impl):
    layer, x, upstream = _layer(impl(), 71)

    def loss() -> float:
        # L = Σ h ⊙ G, so ∂L/∂h = G
        return float(np.sum(layer.forward(x)[0] * upstream))

    dx = _backward(layer, x, upstream)
    for name, analytic, param in [
        ("dx", dx, x),
        ("dW", layer.dW, layer.W),
        ("db", layer.db, layer.b),
    ]:
        numeric = numerical_gradient_wrt(loss, param)
        if np.shape(analytic) != numeric.shape:
            raise Diagnosis(
                f"{name} has shape {np.shape(analytic)}, expected {numeric.shape} (the shape of "
                f"what it is the gradient of)"
            )
        error = rel_error(analytic, numeric)
        assert error < 1e-7, (
            f"{name}: rel_error {error:.1e} against central differences (threshold 1e-7) for "
            f"L = Σ (xW + b) ⊙ G\n"
            + got_expected(analytic, numeric, {"x": x, "G": upstream})
        )


@pytest.mark.ex7_1
def test_a_second_backward_replaces_the_gradients(impl):
    layer, x, dout = _layer(impl(), 76)
    _backward(layer, x, dout)
    first_dw, first_db = np.array(layer.dW, copy=True), np.array(layer.db, copy=True)
    _backward(layer, x, dout)
    for name, first, second in (("dW", first_dw, layer.dW), ("db", first_db, layer.db)):
        if np.allclose(second, 2 * first, rtol=1e-12) and not np.allclose(first, 0):
            raise Diagnosis(
                f"a second backward with the same dout doubled self.{name}: it adds to the "
                f"old gradient (+=); set it (self.{name} = ...), each backward starts afresh"
            )
        assert_close(
            second, first, 1e-12, f"self.{name} after a second, identical backward"
        )


@pytest.mark.ex7_1
def test_an_mlp_of_your_layers_backpropagates_lsce(impl):
    rng = np.random.default_rng(73)
    model = MLP((6, 5, 3), rng, linear=impl())
    x, y = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)

    def loss() -> float:
        return float(lsce_forward(model.forward(x)[0], y, 0.1)[0])

    logits, caches = model.forward(x)
    model.backward(lsce_backward(1.0, lsce_forward(logits, y, 0.1)[1]), caches)
    names = ["W1", "b1", "W2", "b2"]
    for name, param, grad in zip(names, model.params(), model.grads(), strict=True):
        numeric = numerical_gradient_wrt(loss, param)
        error = rel_error(grad, numeric) if np.shape(grad) == numeric.shape else np.inf
        assert error < 1e-7, (
            f"an MLP (6 → 5 → 3) of your Linear layers, LSCE ε = 0.1: the gradient of {name} "
            f"has rel_error {error:.1e} against central differences (threshold 1e-7)\n"
            + got_expected(grad, numeric, {})
        )


# --------------------------------------------------------------------------------------------
# 7.2 Adam.step

LR, BETAS, EPS = 0.01, (0.8, 0.99), 1e-6


def _gradients(steps: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(74)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [
        [rng.standard_normal(p.shape) * rng.uniform(0.1, 5) for p in start]
        for _ in range(steps)
    ]
    return start, grads


def _torch_adam(start, grads) -> list[np.ndarray]:
    theirs = [torch.tensor(p, requires_grad=True) for p in start]
    optimiser = torch.optim.Adam(theirs, lr=LR, betas=BETAS, eps=EPS)
    for step in grads:
        for tensor, grad in zip(theirs, step, strict=True):
            tensor.grad = torch.tensor(grad)
        optimiser.step()
    return [t.detach().numpy() for t in theirs]


def _adam_variant(
    start, grads, *, correct=True, t_fixed=None, moments_kept=True, eps_inside=False
):
    """Adam in NumPy with one piece changed, as a mistake would change it."""
    params = [p.copy() for p in start]
    m = [np.zeros_like(p) for p in start]
    v = [np.zeros_like(p) for p in start]
    b1, b2 = BETAS
    for t, step in enumerate(grads, start=1):
        t = t if t_fixed is None else t_fixed
        for i, (p, g) in enumerate(zip(params, step, strict=True)):
            new_m = b1 * m[i] + (1 - b1) * g
            new_v = b2 * v[i] + (1 - b2) * g**2
            if moments_kept:
                m[i], v[i] = new_m, new_v
            m_hat = new_m / (1 - b1**t) if correct else new_m
            v_hat = new_v / (1 - b2**t) if correct else new_v
            denominator = np.sqrt(v_hat + EPS) if eps_inside else np.sqrt(v_hat) + EPS
            p -= LR * m_hat / denominator
    return params


def _run_yours(adam_class, start, grads):
    """The learner's Adam on copies of ``start``; returns (optimiser, the model's arrays)."""
    arrays = [p.copy() for p in start]  # the model's parameter arrays
    adam = adam_class(list(arrays), lr=LR, beta1=BETAS[0], beta2=BETAS[1], eps=EPS)
    with np.errstate(all="ignore"):
        for step in grads:
            adam.step([g.copy() for g in step])
    return adam, arrays


@pytest.mark.ex7_2
@pytest.mark.parametrize("steps", [1, 2, 10])
def test_adam_matches_torch(impl, steps):
    start, grads = _gradients(steps)
    adam, arrays = _run_yours(impl(), start, grads)
    expected = _torch_adam(start, grads)
    if all(np.array_equal(a, s) for a, s in zip(arrays, start, strict=True)):
        moved = any(
            not np.array_equal(p, s) for p, s in zip(adam.params, start, strict=True)
        )
        how = (
            "you put new arrays into self.params (self.params[i] = ...)"
            if moved
            else "p = p − ... only rebinds the name p"
        )
        raise Diagnosis(
            f"after {steps} Adam steps the model's parameter arrays have not changed: {how}. "
            f"Update each array in place (p -= ...): the model holds the same arrays"
        )
    nonfinite = [i for i, a in enumerate(arrays) if not np.isfinite(a).all()]
    if nonfinite:
        raise Diagnosis(
            f"after {steps} Adam step(s) parameter {nonfinite[0]} holds NaN or inf: with t = 0 "
            f"the bias correction divides by 1 − β⁰ = 0. Increase self.t before using it"
        )
    mistakes = {
        "no bias correction: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ": _adam_variant(
            start, grads, correct=False
        ),
        "eps is inside the square root: θ −= lr · m̂ / (√v̂ + eps)": _adam_variant(
            start, grads, eps_inside=True
        ),
    }
    if steps > 1:
        mistakes[
            "the bias correction always uses t = 1: self.t must grow by one every step"
        ] = _adam_variant(start, grads, t_fixed=1)
        mistakes[
            "self.m and self.v are not updated in place (m = ... rebinds a name): every step "
            "starts from zero moments. Write m[...] = ..."
        ] = _adam_variant(start, grads, moments_kept=False)
    for index, (mine, theirs) in enumerate(zip(arrays, expected, strict=True)):
        assert_close(
            mine,
            theirs,
            1e-12,
            f"parameter {index} after {steps} Adam step(s) (lr={LR}, betas={BETAS}, eps={EPS})",
            mistakes={cause: value[index] for cause, value in mistakes.items()},
            start=start[index],
        )
    assert adam.t == steps, (
        f"self.t is {adam.t} after {steps} step(s): increase it by one in every step"
    )


@pytest.mark.ex7_2
def test_adam_first_step_moves_every_coordinate_by_lr(impl):
    # with bias correction the first step is lr·g/(|g| + eps) ≈ ±lr, whatever the scale of g
    params = [np.zeros(5)]
    g = np.array([1e-3, -2.0, 50.0, -0.3, 7.0])
    adam = impl()(params, lr=0.01)
    with np.errstate(all="ignore"):
        adam.step([g.copy()])
    expected = -0.01 * g / (np.abs(g) + 1e-8)
    assert_close(
        params[0],
        expected,
        1e-9,
        "the first Adam step from θ = 0 (lr = 0.01): −lr·g/(|g| + eps)",
        mistakes={
            "no bias correction on the first step: m̂ = m/(1 − β₁), v̂ = v/(1 − β₂)": (
                -0.01 * 0.1 * g / (np.sqrt(0.001 * g**2) + 1e-8)
            ),
            "the parameters did not change: update them in place (p -= ...), the model holds "
            "the same arrays": np.zeros(5),
            "eps is inside the square root: θ −= lr · m̂ / (√v̂ + eps)": (
                -0.01 * g / np.sqrt(g**2 + 1e-8)
            ),
        },
        g=g,
    )


# --------------------------------------------------------------------------------------------
# 7.3 logit_gap


def _check_gap(logit_gap, z, y, expected, what: str, rtol: float = 1e-12) -> None:
    before = z.copy()
    got = logit_gap(z, y)
    if not np.array_equal(z, before, equal_nan=True):
        raise Diagnosis(
            f"logit_gap modified its input logits (setting the true class to -inf in place?): "
            f"work on a copy (logits.copy())\nbefore {show(before)}\nafter  {show(z)}"
        )
    dtype = getattr(got, "dtype", type(got).__name__)
    if dtype != z.dtype:
        raise Diagnosis(
            f"logit_gap of {z.dtype} logits returned {dtype}: keep the logits' dtype"
        )
    rows = np.arange(len(y))
    mistakes = {
        "the maximum includes the true class: take max over k ≠ y (that is z_y − max_k z_k, "
        "never positive)": z[rows, y] - z.max(axis=1),
        "the sign is flipped: the gap is z_y − max_(k≠y) z_k": -expected,
    }
    assert_close(got, expected, rtol, what, mistakes=mistakes, logits=z, labels=y)


@pytest.mark.ex7_3
def test_logit_gap_by_hand(impl):
    z = np.array(
        [[3.0, 1.0, 2.0], [0.0, 5.0, -1.0], [1.0, 1.0, 0.0], [-4.0, -9.0, -7.0]]
    )
    y = np.array([0, 2, 1, 0])
    _check_gap(
        impl(), z, y, np.array([1.0, -6.0, 0.0, 3.0]), "logit_gap(z, y) (row 3 a tie)"
    )


@pytest.mark.ex7_3
def test_logit_gap_of_random_logits(impl):
    rng = np.random.default_rng(75)
    z = rng.standard_normal((50, 7)) * 5
    y = rng.integers(0, 7, 50)
    expected = np.array([z[i, y[i]] - np.delete(z[i], y[i]).max() for i in range(50)])
    _check_gap(impl(), z, y, expected, "logit_gap(z, y) for 50 × 7 logits")


@pytest.mark.ex7_3
def test_logit_gap_keeps_float32(impl):
    rng = np.random.default_rng(77)
    z = (rng.standard_normal((6, 4)) * 3).astype(np.float32)
    y = rng.integers(0, 4, 6)
    expected = np.array([z[i, y[i]] - np.delete(z[i], y[i]).max() for i in range(6)])
    _check_gap(impl(), z, y, expected, "logit_gap(z, y), float32 logits", rtol=1e-6)

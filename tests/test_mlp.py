"""lsce_examples.digits_mlp: every backward against central differences (float64, rel_error < 1e-7),
Adam against torch.optim.Adam, the logit gap, the digits split and deterministic training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsce_examples.digits_mlp import (
    MLP,
    Adam,
    Linear,
    Recipe,
    ReLU,
    Split,
    digits_recipe,
    digits_split,
    logit_gap,
    train_classifier,
)
from lsce_scratch.gradcheck import numerical_gradient_wrt, rel_error
from lsce_scratch.losses import lsce_backward, lsce_forward


def test_linear_backward_matches_central_differences() -> None:
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, rng)
    layer.b = rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    upstream = rng.standard_normal((4, 3))

    def loss() -> float:
        # L = Σ h ⊙ G, so ∂L/∂h = G
        return float(np.sum(layer.forward(x)[0] * upstream))

    out, cache = layer.forward(x)
    dx = layer.backward(upstream, cache)
    assert rel_error(dx, numerical_gradient_wrt(loss, x)) < 1e-7
    assert rel_error(layer.dW, numerical_gradient_wrt(loss, layer.W)) < 1e-7
    assert rel_error(layer.db, numerical_gradient_wrt(loss, layer.b)) < 1e-7


def test_relu_backward_matches_central_differences_away_from_the_kink() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep every input clear of the kink at 0
    upstream = rng.standard_normal((6, 4))
    relu = ReLU()
    _, cache = relu.forward(x)
    dx = relu.backward(upstream, cache)
    numeric = numerical_gradient_wrt(
        lambda: float(np.sum(relu.forward(x)[0] * upstream)), x
    )
    assert rel_error(dx, numeric) < 1e-7


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_mlp_backward_through_lsce_matches_central_differences(epsilon: float) -> None:
    rng = np.random.default_rng(2)
    model = MLP((6, 5, 4, 3), rng)
    for layer in model.layers:
        if isinstance(layer, Linear):
            layer.b = rng.standard_normal(layer.b.shape) * 0.1
    x = rng.standard_normal((7, 6))
    y = rng.integers(0, 3, 7)

    def loss() -> float:
        return float(lsce_forward(model.forward(x)[0], y, epsilon)[0])

    logits, caches = model.forward(x)
    _, loss_cache = lsce_forward(logits, y, epsilon)
    dx = model.backward(lsce_backward(1.0, loss_cache), caches)
    assert rel_error(dx, numerical_gradient_wrt(loss, x)) < 1e-7
    for param, grad in zip(model.params(), model.grads(), strict=True):
        assert rel_error(grad, numerical_gradient_wrt(loss, param)) < 1e-7


def test_mlp_structure_and_features() -> None:
    model = MLP((8, 16, 12, 5), np.random.default_rng(3))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    x = np.random.default_rng(4).standard_normal((9, 8))
    features = model.features(x)
    assert features.shape == (9, 12) and (features >= 0).all()
    # the logits are the last layer applied to the features
    np.testing.assert_allclose(
        model.forward(x)[0], model.classifier.forward(features)[0]
    )
    assert len(model.params()) == len(model.grads()) == 6


def test_mlp_rejects_too_few_sizes() -> None:
    with pytest.raises(ValueError, match="sizes must list the input size"):
        MLP((4,), np.random.default_rng(0))


def test_adam_matches_torch_for_several_steps() -> None:
    rng = np.random.default_rng(5)
    params = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = Adam([p.copy() for p in params], lr=0.01)
    theirs = [torch.tensor(p, requires_grad=True) for p in params]
    optimiser = torch.optim.Adam(theirs, lr=0.01)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape) * 3 for p in params]
        ours.step(grads)
        for tensor, grad in zip(theirs, grads, strict=True):
            tensor.grad = torch.tensor(grad)
        optimiser.step()
    for mine, tensor in zip(ours.params, theirs, strict=True):
        np.testing.assert_allclose(
            mine, tensor.detach().numpy(), rtol=1e-12, atol=1e-14
        )


def test_adam_updates_the_model_arrays_in_place() -> None:
    model = MLP((3, 2), np.random.default_rng(6))
    adam = Adam(model.params(), lr=0.1)
    before = model.classifier.W.copy()
    adam.step([np.ones_like(p) for p in model.params()])
    # the first bias-corrected step is lr·g/(|g| + eps) ≈ lr in every coordinate
    np.testing.assert_allclose(model.classifier.W, before - 0.1, rtol=1e-6)


def test_logit_gap_is_true_minus_best_other() -> None:
    z = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(logit_gap(z, np.array([0, 2, 1])), [1.0, -6.0, 0.0])


def test_digits_split_is_fixed_disjoint_and_complete() -> None:
    split = digits_split()
    sizes = (len(split.y_train), len(split.y_val), len(split.y_test))
    assert sizes == (1078, 359, 360)
    assert split.num_classes == 10
    assert split.x_train.min() >= 0.0 and split.x_train.max() <= 1.0
    from sklearn.datasets import load_digits

    labels = np.concatenate([split.y_train, split.y_val, split.y_test])
    np.testing.assert_array_equal(
        np.bincount(labels), np.bincount(load_digits().target)
    )
    np.testing.assert_array_equal(split.y_test, digits_split().y_test)


def tiny_split() -> Split:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((60, 4))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return Split(x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:])


def test_training_is_deterministic_and_learns() -> None:
    recipe = Recipe(hidden=(16,), epochs=30, batch_size=8, lr=1e-2, seed=3)
    model_a, history_a = train_classifier(tiny_split(), 0.1, recipe)
    model_b, history_b = train_classifier(tiny_split(), 0.1, recipe)
    for a, b in zip(model_a.params(), model_b.params(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (
        len(history_a.train_loss) == 30 and history_a.train_loss == history_b.train_loss
    )
    assert history_a.train_loss[-1] < 0.6 * history_a.train_loss[0]
    assert history_a.train_accuracy[-1] > 0.9


def test_same_seed_means_same_start_for_every_epsilon() -> None:
    recipe = Recipe(hidden=(8,), epochs=1, batch_size=100, lr=0.0)
    ce, _ = train_classifier(tiny_split(), 0.0, recipe)
    ls, _ = train_classifier(tiny_split(), 0.1, recipe)
    for a, b in zip(ce.params(), ls.params(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_recipes() -> None:
    assert digits_recipe().epochs > digits_recipe(quick=True).epochs
    assert digits_recipe(quick=True).hidden == digits_recipe().hidden

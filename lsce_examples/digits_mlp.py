"""A small MLP in NumPy with hand-written backprop, Adam, and the digits run
(lesson 07).

Layers come in CS231n-style pairs, like the loss: ``forward(x)`` returns ``(out,
cache)`` and ``backward(dout, cache)`` returns ∂L/∂x, storing the parameter gradients on
the layer. Notation (as on the docs page): x the input rows (N × D), h = xW + b, z the
logits, y the labels, ε the smoothing, K classes.

The lesson-07/08 experiment lives here too (:func:`digits_split`, :class:`Recipe`,
:func:`train_classifier`), so lesson 08 re-trains exactly lesson 07's models
without importing lesson 07. The module imports NumPy only; scikit-learn (for its
bundled data) and threadpoolctl (which comes with it) are imported inside the
functions that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lsce_scratch.losses import lsce_backward, lsce_forward
from lsce_scratch.softmax import log_softmax


# --8<-- [start:Linear]
class Linear:
    """A fully connected layer, h = xW + b, with He-initialised W (D_in × D_out)."""

    def __init__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> None:
        # He et al. 2015: Var(W) = 2/fan_in keeps the scale of ReLU
        # activations layer to layer
        self.W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        self.b = np.zeros(fan_out)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """h = xW + b for rows x (N × D_in); the cache is x itself."""
        # h = x W + b
        return x @ self.W + self.b, x

    def backward(self, dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
        """Given dout = ∂L/∂h, set self.dW = ∂L/∂W, self.db = ∂L/∂b and return ∂L/∂x."""
        x = cache
        # ∂L/∂W = xᵀ dout: each weight W_jk sees x_ij times its output's gradient,
        # summed over i
        self.dW = x.T @ dout
        # ∂L/∂b = Σ_i dout_i: the bias is added to every row
        self.db = dout.sum(axis=0)
        # ∂L/∂x = dout Wᵀ
        return dout @ self.W.T

    def params(self) -> list[np.ndarray]:
        """The parameter arrays, updated in place by the optimiser."""
        return [self.W, self.b]

    def grads(self) -> list[np.ndarray]:
        """The gradients of the last backward, in the order of :meth:`params`."""
        return [self.dW, self.db]


# --8<-- [end:Linear]


class ReLU:
    """max(0, x), elementwise; no parameters."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """max(0, x); the cache is x."""
        return np.maximum(x, 0.0), x

    def backward(self, dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
        """∂L/∂x from dout = ∂L/∂max(0, x)."""
        # ∂ max(0, x)/∂x = 1[x > 0] (we take 0 at the kink x = 0)
        return dout * (cache > 0)

    def params(self) -> list[np.ndarray]:
        """No parameters."""
        return []

    def grads(self) -> list[np.ndarray]:
        """No gradients."""
        return []


# --8<-- [start:MLP]
class MLP:
    """Linear → ReLU → … → Linear: ``sizes`` = (D_in, hidden…, K),
    logits on the last layer.

    ``linear`` is the layer class, so a lesson can train with a learner's ``Linear``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        rng: np.random.Generator,
        *,
        linear: type[Linear] = Linear,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError(
                f"sizes must list the input size, any hidden sizes and K; got {sizes}"
            )
        self.layers: list[Linear | ReLU] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.layers += [linear(fan_in, fan_out, rng), ReLU()]
        self.layers.pop()  # no ReLU on the logits

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits z for rows x, and the cache of every layer."""
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, caches

    # --8<-- [end:MLP]
    def backward(self, dz: np.ndarray, caches: list[np.ndarray]) -> np.ndarray:
        """Back-propagate dz = ∂L/∂z through every layer (last first); return ∂L/∂x."""
        # --8<-- [start:mlp_backward]
        for layer, cache in zip(reversed(self.layers), reversed(caches), strict=True):
            dz = layer.backward(dz, cache)
        return dz
        # --8<-- [end:mlp_backward]

    def features(self, x: np.ndarray) -> np.ndarray:
        """The penultimate activations: the input of the last Linear layer
        (its cache)."""
        return self.forward(x)[1][-1]

    @property
    def classifier(self) -> Linear:
        """The last layer; its column W[:, k] is class k's template
        (Müller et al. 2019)."""
        return self.layers[-1]  # type: ignore[return-value]

    def params(self) -> list[np.ndarray]:
        """Every layer's parameter arrays, first layer first."""
        return [p for layer in self.layers for p in layer.params()]

    def grads(self) -> list[np.ndarray]:
        """Every layer's gradients, in the order of :meth:`params`."""
        return [g for layer in self.layers for g in layer.grads()]


# --8<-- [start:Adam]
class Adam:
    """Adam (Kingma and Ba 2015) with bias correction: torch.optim.Adam's update,
    no decay.

    Updates the arrays of ``params`` in place;
    ``step(grads)`` takes their gradients in the same order.
    """

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]  # first moments
        self.v = [np.zeros_like(p) for p in params]  # second moments
        self.t = 0  # steps taken

    def step(self, grads: list[np.ndarray]) -> None:
        """One Adam update of every parameter from its gradient g."""
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            # m ← β₁ m + (1 − β₁) g
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            # v ← β₂ v + (1 − β₂) g²
            v[...] = self.beta2 * v + (1 - self.beta2) * g**2
            # m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ): undo the pull towards the zero start
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            # θ ← θ − lr · m̂ / (√v̂ + eps)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --8<-- [end:Adam]


# --8<-- [start:logit_gap]
def logit_gap(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """z_y − max_{k≠y} z_k for every row: positive when right,
    the margin LSCE bounds."""
    rows = np.arange(logits.shape[0])
    others = logits.copy()
    others[rows, labels] = -np.inf
    # gap_i = z_{i,y_i} − max_{k≠y_i} z_ik
    return logits[rows, labels] - others.max(axis=1)


# --8<-- [end:logit_gap]


# --------------------------------------------------------------------------------------
# the lesson-07/08 experiment


@dataclass(frozen=True, eq=False)
class Split:
    """A fixed train/validation/test split: inputs x (N × D) and labels y (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        """K, from the largest training label."""
        return int(self.y_train.max()) + 1


def digits_split(seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)) -> Split:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes, no download),
    split at random into train/validation/test (60/20/20 % by default), pixels
    scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # pixels are counts 0..16 of the 4×4 blocks the original 32×32
    # bitmaps were summed over
    x, y = digits.data / 16.0, digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_train = int(round(fractions[0] * len(y)))
    n_val = int(round(fractions[1] * len(y)))
    train, val, test = np.split(order, [n_train, n_train + n_val])
    return Split(x[train], y[train], x[val], y[val], x[test], y[test])


@dataclass(frozen=True)
class Recipe:
    """Everything that fixes a training run,
    so that two lessons train identical models."""

    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 200
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


def digits_recipe(quick: bool = False) -> Recipe:
    """The recipe of lessons 07 and 08: 200 epochs, or 20 in quick mode
    (the test suite)."""
    return Recipe(epochs=20) if quick else Recipe()


@dataclass
class History:
    """Per-epoch measurements of a training run (after each epoch)."""

    train_loss: list[float] = field(default_factory=list)  # the objective (LSCE with ε)
    val_loss: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)  # plain CE, comparable across ε
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    train_gap: list[float] = field(
        default_factory=list
    )  # mean logit gap on training rows


def _record(history: History, model: MLP, split: Split, epsilon: float) -> None:
    z_train, z_val = model.forward(split.x_train)[0], model.forward(split.x_val)[0]
    history.train_loss.append(float(lsce_forward(z_train, split.y_train, epsilon)[0]))
    history.val_loss.append(float(lsce_forward(z_val, split.y_val, epsilon)[0]))
    # NLL = −(1/N) Σ_i log p_{i,y_i}
    log_p = log_softmax(z_val)
    history.val_nll.append(
        float(-np.mean(log_p[np.arange(len(split.y_val)), split.y_val]))
    )
    history.train_accuracy.append(
        float(np.mean(z_train.argmax(axis=1) == split.y_train))
    )
    history.val_accuracy.append(float(np.mean(z_val.argmax(axis=1) == split.y_val)))
    history.train_gap.append(float(np.mean(logit_gap(z_train, split.y_train))))


def train_classifier(
    split: Split,
    epsilon: float,
    recipe: Recipe,
    *,
    linear: type[Linear] = Linear,
    optimiser: type[Adam] = Adam,
) -> tuple[MLP, History]:
    """Train an MLP on ``split`` with LSCE(ε) (ε = 0 is plain CE) by minibatch Adam.

    Deterministic: the seed fixes the initial weights and the order of the minibatches,
    so runs with different ε start from the same network and see the same batches.
    """
    # One BLAS thread: on matrices this small, extra OpenBLAS threads only spin, and on
    # a busy machine that makes training several times slower.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _train(split, epsilon, recipe, linear, optimiser)


# --8<-- [start:training_loop]
def _train(
    split: Split,
    epsilon: float,
    recipe: Recipe,
    linear: type[Linear],
    optimiser: type[Adam],
) -> tuple[MLP, History]:
    """The minibatch loop of :func:`train_classifier`."""
    rng = np.random.default_rng(recipe.seed)
    sizes = (split.x_train.shape[1], *recipe.hidden, split.num_classes)
    model = MLP(sizes, rng, linear=linear)
    adam = optimiser(model.params(), lr=recipe.lr)
    history = History()
    n = len(split.y_train)
    for _ in range(recipe.epochs):
        order = rng.permutation(n)
        for start in range(0, n, recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            logits, caches = model.forward(split.x_train[batch])
            _, loss_cache = lsce_forward(logits, split.y_train[batch], epsilon)
            # ∂L/∂z from the loss (lesson 05), then back through the layers
            model.backward(lsce_backward(1.0, loss_cache), caches)
            adam.step(model.grads())
        _record(history, model, split, epsilon)
    return model, history


# --8<-- [end:training_loop]

"""The worked examples of the docs' Conventions page, checked against PyTorch.

The page shows these sections through snippets, so every number on it is computed and
asserted here; the test suite runs this file (tests/test_docs_site.py). Run it alone with
``python tools/conventions_examples.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lsce_scratch import lsce_backward, lsce_forward, smooth_labels
from lsce_scratch.nn import LabelSmoothingCrossEntropy


def class_axis_last() -> None:
    """Classes on the last axis here; PyTorch wants them on dim 1."""
    rng = np.random.default_rng(0)
    # --8<-- [start:class_axis]
    logits = rng.normal(size=(4, 7, 5))  # (N, T, K): 5 classes on the last axis
    target = rng.integers(0, 5, size=(4, 7))  # (N, T)
    ours, _ = lsce_forward(logits, target, epsilon=0.1)
    theirs = F.cross_entropy(
        torch.movedim(torch.from_numpy(logits), -1, 1),  # (N, K, T) for PyTorch
        torch.from_numpy(target),
        label_smoothing=0.1,
    )
    assert abs(float(ours) - theirs.item()) < 1e-12
    # --8<-- [end:class_axis]


def class_axis_last_torch() -> None:
    """The torch module keeps the article's convention; the built-in needs movedim."""
    torch.manual_seed(0)
    # --8<-- [start:class_axis_torch]
    logits = torch.randn(4, 7, 5, dtype=torch.float64)  # (N, T, K)
    target = torch.randint(0, 5, (4, 7))  # (N, T)
    ours = LabelSmoothingCrossEntropy(epsilon=0.1)(logits, target)  # (1)!
    builtin = F.cross_entropy(torch.movedim(logits, -1, 1), target, label_smoothing=0.1)  # (2)!
    assert torch.allclose(ours, builtin, rtol=1e-12, atol=0)
    # --8<-- [end:class_axis_torch]


def epsilon_conversion() -> None:
    """ε/(K−1) on the wrong classes is ε/K on all classes with ε' = εK/(K−1)."""
    # --8<-- [start:eps_conversion]
    K, eps = 2, 0.1
    others = smooth_labels(np.array([0]), K, eps, spread="others")  # 1 − ε on y
    assert np.allclose(others, [[0.90, 0.10]])
    pytorch_style = smooth_labels(np.array([0]), K, eps, spread="all")  # ε/K everywhere
    assert np.allclose(pytorch_style, [[0.95, 0.05]])  # the same ε means less smoothing
    eps_prime = eps * K / (K - 1)  # 0.2
    assert np.allclose(smooth_labels(np.array([0]), K, eps_prime, spread="all"), others)
    # --8<-- [end:eps_conversion]


def weighted_optimum() -> None:
    """With class weights, PyTorch's loss is minimised at p ∝ w ⊙ q, not at q."""
    # --8<-- [start:weighted_optimum]
    eps, w = 0.1, np.array([1.0, 100.0])
    q = smooth_labels(np.array([0]), 2, eps)[0]  # [0.95, 0.05]: class 0 is true
    p_star = w * q / np.sum(w * q)  # the minimiser of −Σ_k w_k q_k log p_k
    assert np.round(p_star[1], 2) == 0.84  # 84 % on the wrong class
    # the gradient vanishes at log p*, in our loss and in PyTorch's
    z = torch.tensor(np.log(p_star)[None], requires_grad=True)
    F.cross_entropy(z, torch.tensor([0]), weight=torch.tensor(w), label_smoothing=eps).backward()
    _, cache = lsce_forward(np.log(p_star)[None], np.array([0]), eps, weight=w)
    assert np.abs(z.grad.numpy()).max() < 1e-12
    assert np.abs(lsce_backward(1.0, cache)).max() < 1e-12
    # at q itself the weighted loss still pushes towards the heavy class
    _, cache = lsce_forward(np.log(q)[None], np.array([0]), eps, weight=w)
    assert lsce_backward(1.0, cache)[0, 1] < 0  # gradient descent raises z_1
    # --8<-- [end:weighted_optimum]


def mean_denominators() -> None:
    """'mean' divides by Σ w_{y_i} over counted rows for index targets, by N for soft ones."""
    rng = np.random.default_rng(1)
    # --8<-- [start:mean_denominators]
    logits = rng.normal(size=(4, 3))
    target = np.array([0, 2, 2, -100])  # the last row is ignored
    w = np.array([1.0, 2.0, 3.0])
    total, _ = lsce_forward(logits, target, 0.1, weight=w, reduction="sum")
    mean, _ = lsce_forward(logits, target, 0.1, weight=w, reduction="mean")
    assert np.isclose(mean, total / (1.0 + 3.0 + 3.0))  # w_0 + w_2 + w_2, not N = 4

    soft = smooth_labels(target[:3], 3, 0.0)  # the same targets as probabilities
    total, _ = lsce_forward(logits[:3], soft, 0.1, weight=w, reduction="sum")
    mean, _ = lsce_forward(logits[:3], soft, 0.1, weight=w, reduction="mean")
    assert np.isclose(mean, total / 3)  # soft targets: divided by N, weights or not
    z, t = torch.from_numpy(logits[:3]), torch.from_numpy(soft)
    torch_mean = F.cross_entropy(z, t, torch.from_numpy(w), label_smoothing=0.1)
    assert np.isclose(mean, torch_mean.item())
    # --8<-- [end:mean_denominators]


def all_ignored() -> None:
    """An all-ignored 'mean' is 0/0: NaN, as in PyTorch; its gradient is 0."""
    # --8<-- [start:all_ignored]
    logits = np.zeros((3, 4))
    target = np.full(3, -100)  # every row ignored
    loss, cache = lsce_forward(logits, target, 0.1)
    assert np.isnan(loss)
    assert np.isnan(F.cross_entropy(torch.zeros(3, 4), torch.from_numpy(target)).item())
    assert not lsce_backward(1.0, cache).any()  # ignored rows get exactly 0
    # --8<-- [end:all_ignored]


EXAMPLES = (
    class_axis_last,
    class_axis_last_torch,
    epsilon_conversion,
    weighted_optimum,
    mean_denominators,
    all_ignored,
)


def main() -> None:
    for example in EXAMPLES:
        example()
        print(f"ok  {example.__name__}")


if __name__ == "__main__":
    main()

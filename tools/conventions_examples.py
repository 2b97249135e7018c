"""The worked examples of the docs' Conventions page, checked against PyTorch.

The page shows these sections through snippets, so every number on it is computed and
asserted here; the test suite runs this file (tests/test_docs_site.py). Run it alone
with ``python tools/conventions_examples.py``.
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
    builtin = F.cross_entropy(
        torch.movedim(logits, -1, 1), target, label_smoothing=0.1
    )  # (2)!
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
    F.cross_entropy(
        z, torch.tensor([0]), weight=torch.tensor(w), label_smoothing=eps
    ).backward()
    _, cache = lsce_forward(np.log(p_star)[None], np.array([0]), eps, weight=w)
    assert np.abs(z.grad.numpy()).max() < 1e-12
    assert np.abs(lsce_backward(1.0, cache)).max() < 1e-12
    # at q itself the weighted loss still pushes towards the heavy class
    _, cache = lsce_forward(np.log(q)[None], np.array([0]), eps, weight=w)
    assert lsce_backward(1.0, cache)[0, 1] < 0  # gradient descent raises z_1
    # --8<-- [end:weighted_optimum]


def mean_denominators() -> None:
    """'mean' divides by Σ w_{y_i} over counted rows for index targets,
    by N for soft ones."""
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


def masked_classes() -> None:
    """−inf logits (masked classes) give PyTorch's numbers;
    smoothing makes the loss inf."""
    # --8<-- [start:masked_classes]
    logits = torch.tensor(
        [[2.0, 0.5, -torch.inf, 1.0]], requires_grad=True
    )  # class 2 masked
    target = torch.tensor([0])
    plain = LabelSmoothingCrossEntropy(epsilon=0.0)(logits, target)
    assert torch.isfinite(plain)  # ε = 0: the masked class plays no part
    smoothed = LabelSmoothingCrossEntropy(epsilon=0.1)(logits, target)
    assert smoothed.item() == float("inf")  # its ε/K of target mass meets log p = −inf
    builtin = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert builtin.item() == float("inf")  # PyTorch's answer too
    smoothed.backward()
    assert torch.isfinite(logits.grad).all()  # the gradient p − q stays finite:
    assert np.isclose(logits.grad[0, 2].item(), -0.1 / 4)  # −ε/K at the masked class
    # --8<-- [end:masked_classes]


def masking_with_smoothing() -> None:
    """Smoothing over the allowed classes only:
    a very negative logit and soft targets."""
    rng = np.random.default_rng(2)
    # --8<-- [start:masking_with_smoothing]
    K, eps = 6, 0.1
    logits = torch.tensor(rng.normal(size=(2, K)))
    allowed = torch.tensor([[1, 1, 1, 0, 1, 1], [0, 1, 1, 1, 0, 1]], dtype=torch.bool)
    target = torch.tensor([4, 2])
    # a finite mask value: p = 0 there, and a target mass of 0 costs 0 (0 · −inf is NaN)
    masked = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    # (1 − ε) on the true class, ε spread over the row's allowed classes only
    share = allowed / allowed.sum(-1, keepdim=True, dtype=torch.float64)
    q = (1 - eps) * F.one_hot(target, K).to(share.dtype) + eps * share
    loss = LabelSmoothingCrossEntropy(epsilon=0.0, reduction="none")(masked, q)
    # the same as smoothing each row over its own allowed classes, K' = 5 and K' = 4
    for row in range(2):
        kept = logits[row, allowed[row]]
        y = int(allowed[row, : target[row]].sum())  # the true class among the kept ones
        alone = F.cross_entropy(kept[None], torch.tensor([y]), label_smoothing=eps)
        assert torch.isclose(loss[row], alone, rtol=1e-12, atol=0)
    # --8<-- [end:masking_with_smoothing]


def deliberate_differences() -> None:
    """What PyTorch does with the inputs we refuse (the table on the page)."""
    # --8<-- [start:deliberate_differences]
    g = torch.Generator().manual_seed(3)
    z, y = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2])
    probabilities = torch.softmax(
        torch.randn(3, 4, generator=g, dtype=torch.float64), -1
    )
    w = torch.ones(4, dtype=torch.float64)
    # ε < 0 and NaN: PyTorch smooths nothing, as at ε = 0
    for eps in (-0.1, float("nan")):
        assert F.cross_entropy(z, y, label_smoothing=eps) == F.cross_entropy(z, y)
    # negative "probabilities" give a number; NaN ones NaN
    assert torch.isfinite(F.cross_entropy(z, probabilities - 0.5))
    assert torch.isnan(F.cross_entropy(z, probabilities * torch.nan))
    # a negative class weight gives a number, a NaN or infinite one NaN
    assert torch.isfinite(F.cross_entropy(z, y, weight=w - 2))
    for bad in (torch.nan, torch.inf):
        assert torch.isnan(
            F.cross_entropy(z, y, weight=w.index_fill(0, torch.tensor(1), bad))
        )
    # NaN or +inf in a row that counts: a NaN loss
    for bad in (torch.nan, torch.inf):
        logits = z.clone()
        logits[1, 2] = bad
        assert torch.isnan(F.cross_entropy(logits, y))
    # an ignored row without a softmax (NaN, +inf, or all −inf) gets a NaN gradient
    x = z.clone()
    x[2] = -torch.inf
    x.requires_grad_(True)
    F.cross_entropy(x, torch.tensor([0, 1, -100])).backward()
    assert torch.isnan(x.grad[2]).all() and torch.isfinite(x.grad[:2]).all()
    # zero classes: a NaN mean
    assert torch.isnan(F.cross_entropy(torch.zeros(5, 0), torch.zeros(5, 0)))
    # --8<-- [end:deliberate_differences]


EXAMPLES = (
    class_axis_last,
    class_axis_last_torch,
    epsilon_conversion,
    weighted_optimum,
    mean_denominators,
    all_ignored,
    masked_classes,
    masking_with_smoothing,
    deliberate_differences,
)


def main() -> None:
    for example in EXAMPLES:
        example()
        print(f"ok  {example.__name__}")


if __name__ == "__main__":
    main()

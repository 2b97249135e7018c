"""The PyTorch bridge: the functional, the module, the composite module, and the two
Functions behind them: lesson 06's plain LSCEFunction (``fast=False``) and the default
FastLSCEFunction.

The oracle is ``F.cross_entropy(movedim(logits, -1, 1), ..., label_smoothing=ε)``. Every
test runs on the CPU and, when a GPU is present, on CUDA.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import fast, lsce_backward, lsce_forward
from lsce_scratch.memory import extra_saved_bytes
from lsce_scratch.nn import (
    CompositeLabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropy,
    LSCEFunction,
    label_smoothing_cross_entropy,
    torch_chunks,
)
from tests.oracle import DEVICES, torch_logits

# lesson 06's plain LSCEFunction, and the default fast one
FUNCTIONS = [pytest.param(False, id="plain"), pytest.param(True, id="fast")]


def _builtin(z, target, epsilon, reduction, weight, ignore_index=-100):
    """PyTorch's loss with the classes moved to dim 1 (the oracle)."""
    soft = target.is_floating_point()
    if z.dim() >= 2:
        z = torch.movedim(z, -1, 1)
        target = torch.movedim(target, -1, 1) if soft else target
    return F.cross_entropy(
        z, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=epsilon,
    )  # fmt: skip


def _loss_and_grad(fn, z, *args, upstream=None, **kwargs):
    z = z.detach().clone().requires_grad_(True)
    loss = fn(z, *args, **kwargs)
    if upstream is None:
        upstream = (
            torch.full_like(loss, 0.7) if loss.dim() == 0 else torch.randn_like(loss)
        )
    loss.backward(upstream)
    return loss.detach(), z.grad, upstream


GRID = list(
    itertools.product(
        [0.0, 0.05, 0.1, 0.5, 1.0],  # epsilon
        [1, 2, 3, 37, 1000],  # K
        ["none", "sum", "mean"],
    )
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("epsilon, num_classes, reduction", GRID)
def test_matches_builtin_over_the_grid(device, epsilon, num_classes, reduction):
    seed = hash((epsilon, num_classes, reduction)) % 10_000
    g = torch.Generator().manual_seed(seed)
    weight = (torch.rand(num_classes, generator=g, dtype=torch.float64) + 0.1).to(
        device
    )
    for leading, use_weight, kind in itertools.product(
        [(), (6,), (3, 4)], [False, True], ["index", "ignored", "all-ignored", "soft"]
    ):
        if kind == "soft":
            target = torch.softmax(
                torch.randn(leading + (num_classes,), generator=g), -1
            )
            target = target.to(device=device, dtype=torch.float64)
        else:
            target = torch.randint(0, num_classes, leading, generator=g).to(device)
            if kind == "ignored" and target.numel() > 1:
                target.view(-1)[::3] = -100
            if kind == "all-ignored":
                target.fill_(-100)
        w = weight if use_weight else None
        z = torch_logits(leading + (num_classes,), seed, device)
        # the oracle runs on the CPU: on an H200 with torch 2.11, CUDA's F.cross_entropy gave
        # a different value from the CPU's documented NaN for the mean over one ignored (K,)
        # example with ε = 0
        theirs, their_grad, upstream = _loss_and_grad(
            _builtin,
            z.cpu(),
            target.cpu(),
            epsilon,
            reduction,
            None if w is None else w.cpu(),
        )
        ours, our_grad, _ = _loss_and_grad(
            label_smoothing_cross_entropy, z, target, epsilon,
            upstream=upstream.to(device), reduction=reduction, weight=w,
        )  # fmt: skip
        ours, our_grad = ours.cpu(), our_grad.cpu()
        case = f"leading={leading}, weight={use_weight}, target={kind}"
        assert ours.shape == theirs.shape, case
        torch.testing.assert_close(
            ours, theirs, rtol=1e-10, atol=1e-12, equal_nan=True, msg=case
        )
        torch.testing.assert_close(
            our_grad, their_grad, rtol=1e-10, atol=1e-12, equal_nan=True, msg=case
        )


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("variant", ["unweighted", "weight", "ignore_index", "soft"])
def test_gradcheck(device, reduction, variant, fast):
    z = torch_logits((5, 4), 7, device).requires_grad_(True)
    target = torch.tensor([1, 0, 3, 2, 2], device=device)
    weight = None
    if variant == "weight":
        weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64, device=device)
    if variant == "ignore_index":
        target[[1, 3]] = 2
    if variant == "soft":
        target = torch.softmax(torch.randn(5, 4, dtype=torch.float64), -1).to(device)
    ignore = 2 if variant == "ignore_index" else -100

    def loss(x: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            x,
            target,
            0.1,
            reduction=reduction,
            weight=weight,
            ignore_index=ignore,
            fast=fast,
        )

    assert torch.autograd.gradcheck(loss, (z,))


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_composite_module_agrees(device, reduction, fast):
    z = torch_logits((4, 3, 9), 11, device)
    target = torch.randint(0, 9, (4, 3), generator=torch.Generator().manual_seed(1)).to(
        device
    )
    composite = CompositeLabelSmoothingCrossEntropy(0.2, reduction)
    ours = LabelSmoothingCrossEntropy(0.2, reduction, fast=fast)
    theirs, their_grad, upstream = _loss_and_grad(composite, z, target)
    mine, my_grad, _ = _loss_and_grad(ours, z, target, upstream=upstream)
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(my_grad, their_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("device", DEVICES)
def test_agrees_with_the_numpy_core(device, fast):
    z = torch_logits((6, 7), 13, device)
    target = torch.tensor([0, 6, -100, 3, 3, 1], device=device)
    weight = torch.linspace(0.5, 2.0, 7, dtype=torch.float64, device=device)
    loss, grad, upstream = _loss_and_grad(
        label_smoothing_cross_entropy, z, target, 0.15, reduction="none", weight=weight,
        fast=fast,
    )  # fmt: skip
    np_loss, cache = lsce_forward(
        z.cpu().numpy(),
        target.cpu().numpy(),
        0.15,
        reduction="none",
        weight=weight.cpu().numpy(),
    )
    np.testing.assert_allclose(loss.cpu().numpy(), np_loss, rtol=1e-12)
    np.testing.assert_allclose(
        grad.cpu().numpy(),
        lsce_backward(upstream.cpu().numpy(), cache),
        rtol=1e-10,
        atol=1e-14,
    )


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "dtype, tolerance", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)]
)
@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_half_precision_with_confident_logits(device, dtype, tolerance, epsilon, fast):
    """Computed in float32 inside, rounded to the input dtype once.

    The reference is float64 on the same (already rounded) logits, so the only error left
    is ours. With p_y between 0.999 and 0.99995 the true-class gradient p_y − q_y is tiny;
    rounding p_y to the input dtype first and then subtracting (a naive kernel) loses it.
    ('sum' keeps the gradients inside float16's normal range.)
    """
    n, k = 64, 50
    g = torch.Generator().manual_seed(5)
    target = torch.randint(0, k, (n,), generator=g)
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    rows = torch.arange(n)
    p_wanted = torch.linspace(0.999, 0.99995, n, dtype=torch.float64)
    others = torch.logsumexp(z.scatter(1, target[:, None], -torch.inf), dim=-1)
    # softmax(z)_y = p  ⇔  z_y = log(p / (1 − p)) + log Σ_{j≠y} exp(z_j)
    z[rows, target] = torch.log(p_wanted / (1 - p_wanted)) + others
    z, target = z.to(dtype).to(device), target.to(device)
    rows = rows.to(device)
    p_true = torch.softmax(z.double(), -1)[rows, target]
    assert p_true.min() >= 0.998
    loss, grad, _ = _loss_and_grad(
        label_smoothing_cross_entropy, z, target, epsilon, reduction="sum", fast=fast
    )
    ref_loss, ref_grad, _ = _loss_and_grad(
        _builtin, z.double(), target, epsilon, "sum", None
    )
    assert grad.dtype == dtype and loss.dtype == dtype
    assert abs(loss.double() - ref_loss) <= tolerance * abs(ref_loss)
    true_ours, true_ref = grad.double()[rows, target], ref_grad[rows, target]
    assert ((true_ours - true_ref).abs() / true_ref.abs()).max() <= tolerance
    torch.testing.assert_close(grad.double(), ref_grad, rtol=tolerance, atol=1e-7)
    if epsilon == 0.0:
        # the naive kernel, p rounded to the input dtype and then p_y − 1, fails this test
        p_rounded = torch.softmax(z.double(), -1).to(dtype).double()[rows, target]
        naive_error = (0.7 * (p_rounded - 1.0) - true_ref).abs() / true_ref.abs()
        assert naive_error.max() > 10 * tolerance


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("delta", [1e-5, 1e-6, 1e-7])
def test_float32_true_class_gradient_when_p_is_almost_one(device, delta, fast):
    """Lesson 05's cancellation: p_y = 1 − δ in float32 leaves p_y − 1 with few digits."""
    n, k = 4, 10
    target = torch.tensor([0, 3, 9, 5])
    z = torch.zeros(n, k, dtype=torch.float64)
    # softmax(z)_y = 1 − δ when z_y = log((1 − δ)(K − 1)/δ) and the other logits are 0
    z[torch.arange(n), target] = float(np.log((1 - delta) * (k - 1) / delta))
    ours = _loss_and_grad(
        label_smoothing_cross_entropy,
        z.float().to(device),
        target.to(device),
        0.0,
        reduction="sum",
        upstream=torch.tensor(1.0, device=device),
        fast=fast,
    )[1]
    ref = _loss_and_grad(
        _builtin, z, target, 0.0, "sum", None, upstream=torch.tensor(1.0)
    )[1]
    rows = torch.arange(n)
    true_ours, true_ref = ours.double().cpu()[rows, target], ref[rows, target]
    assert ((true_ours - true_ref).abs() / true_ref.abs()).max() < 1e-3


@pytest.mark.parametrize("fast", FUNCTIONS)
def test_saves_only_the_logits_and_a_few_numbers_per_row(fast):
    n, k = 512, 1000
    z = torch_logits((n, k), 3, "cpu", torch.float32).requires_grad_(True)
    target = torch.randint(0, k, (n,))
    budget = 64 * n  # O(N): a few numbers per row, never an (N, K) tensor
    ours = extra_saved_bytes(LabelSmoothingCrossEntropy(0.1, fast=fast), z, target)
    assert ours <= budget, (
        f"saved {ours} bytes beyond the logits for backward; budget {budget}"
    )
    # the same measurement catches autograd over log_softmax, which saves an (N, K) tensor
    composite = extra_saved_bytes(CompositeLabelSmoothingCrossEntropy(0.1), z, target)
    assert composite >= z.numel() * z.element_size()


@pytest.mark.parametrize("fast", FUNCTIONS)
def test_double_backward_raises_a_clear_error(fast):
    z = torch_logits((3, 4), 2, "cpu").requires_grad_(True)
    loss = label_smoothing_cross_entropy(z, torch.tensor([0, 1, 2]), fast=fast)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(loss, z, create_graph=True)


@pytest.mark.parametrize(
    "kwargs, target, error, match",
    [
        ({"epsilon": 1.5}, [0, 1], ValueError, "epsilon must be in"),
        ({"reduction": "avg"}, [0, 1], ValueError, "reduction must be one of"),
        ({}, [0, 7], ValueError, r"class index 7 outside \[0, 3\]"),
        ({}, [0.0, 1.0], TypeError, "class indices must be integers"),
        (
            {},
            [0],
            ValueError,
            r"target shape \(1,\) does not fit logits shape \(2, 4\)",
        ),
        ({"weight": [1.0, 2.0]}, [0, 1], ValueError, r"weight must have shape \(4,\)"),
        ({"weight": [1.0, -2.0, 1.0, 1.0]}, [0, 1], ValueError, "weight must be >= 0"),
    ],
)
@pytest.mark.parametrize("fast", FUNCTIONS)
def test_bad_input_gets_the_same_message_as_the_numpy_core(
    kwargs, target, error, match, fast
):
    z = np.random.default_rng(0).normal(size=(2, 4))
    numpy_kwargs = dict(kwargs)
    torch_kwargs = {
        key: torch.tensor(value, dtype=torch.float64) if key == "weight" else value
        for key, value in kwargs.items()
    }
    with pytest.raises(error, match=match) as numpy_error:
        lsce_forward(z, np.array(target), **numpy_kwargs)
    with pytest.raises(error, match=match) as torch_error:
        label_smoothing_cross_entropy(
            torch.tensor(z), torch.tensor(np.array(target)), **torch_kwargs, fast=fast
        )
    assert str(numpy_error.value) == str(torch_error.value)


@pytest.mark.parametrize("fast", FUNCTIONS)
def test_non_finite_and_integer_logits_are_refused(fast):
    with pytest.raises(
        ValueError, match=r"NaN or \+inf in 1 row\(s\).*nan at index \(1, 2\)"
    ):
        z = torch.zeros(2, 3)
        z[1, 2] = float("nan")
        label_smoothing_cross_entropy(z, torch.tensor([0, 1]), fast=fast)
    with pytest.raises(
        TypeError, match=r"logits must be floating point.*logits.float\(\)"
    ):
        label_smoothing_cross_entropy(
            torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1])
        )


def test_module_carries_its_weight_to_the_device_and_prints_its_settings():
    module = LabelSmoothingCrossEntropy(0.2, "sum", weight=torch.ones(3))
    assert "epsilon=0.2" in repr(module) and "reduction='sum'" in repr(module)
    assert "weight" in dict(module.named_buffers())
    with pytest.raises(ValueError, match="epsilon must be in"):
        LabelSmoothingCrossEntropy(epsilon=2.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_bad_values_are_caught_on_every_device(device, grad_in_forward):
    """On a GPU the index check runs after the kernels (one sync per call); same errors."""
    z = torch_logits((3, 4), 1, device, torch.float32).requires_grad_(True)
    with pytest.raises(ValueError, match=r"class index 7 outside \[0, 3\]"):
        label_smoothing_cross_entropy(
            z,
            torch.tensor([0, 7, -100], device=device),
            grad_in_forward=grad_in_forward,
        )
    with pytest.raises(
        ValueError, match=r"NaN or \+inf in 1 row\(s\).*inf at index \(1, 2\)"
    ):
        bad = z.detach().clone()
        bad[1, 2] = float("inf")
        label_smoothing_cross_entropy(
            bad, torch.tensor([0, 1, 2], device=device), grad_in_forward=grad_in_forward
        )


# Probability targets that require grad: PyTorch gives ∂L/∂t, and so must we. With
# r = w ⊙ ((1 − ε) t + ε/K), ∂ℓ_i/∂t_ik = −(1 − ε) w_k log p_ik, times the reduction's scale.


def _soft_case(device, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch_logits((6, 5), seed, device)
    # unnormalised and with zeros, as PyTorch's OpInfo samples are
    t = torch.rand(6, 5, generator=g, dtype=torch.float64) * (
        torch.rand(6, 5, generator=g) > 0.2
    )
    weight = torch.rand(5, generator=g, dtype=torch.float64) + 0.2
    return z, t.to(device), weight.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("mode", ["plain", "default", "grad_in_forward", "inplace"])
def test_probability_targets_that_require_grad_get_their_gradient(
    device, reduction, mode
):
    z, t, weight = _soft_case(device, 31)
    for w in (None, weight):
        x = z.clone().requires_grad_(True)
        target = t.clone().requires_grad_(True)
        want = _builtin(x, target, 0.2, reduction, w)
        upstream = torch.rand_like(want) + 0.5
        theirs = torch.autograd.grad(want, (x, target), upstream)
        options = {
            "grad_in_forward": mode in ("grad_in_forward", "inplace"),
            "inplace": mode == "inplace",
            "fast": mode != "plain",
        }
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning about float() of a graph node
            x = z.clone().requires_grad_(True)
            target = t.clone().requires_grad_(True)
            loss = label_smoothing_cross_entropy(
                x * 1.0, target, 0.2, reduction=reduction, weight=w, **options
            )
            loss.backward(upstream)
        assert target.grad is not None, "∂L/∂target missing"
        torch.testing.assert_close(target.grad, theirs[1], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(x.grad, theirs[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_only_the_target_requires_grad(device):
    z, t, _ = _soft_case(device, 32)
    target = t.clone().requires_grad_(True)
    for grad_in_forward in (False, True):
        (ours,) = torch.autograd.grad(
            label_smoothing_cross_entropy(
                z, target, 0.1, grad_in_forward=grad_in_forward
            ),
            target,
        )
        (theirs,) = torch.autograd.grad(_builtin(z, target, 0.1, "mean", None), target)
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fast", FUNCTIONS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_with_respect_to_logits_and_probability_targets(
    reduction, weighted, fast
):
    z, t, weight = _soft_case("cpu", 33)
    z.requires_grad_(True)
    t = (t + 0.05).requires_grad_(True)

    def loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            x,
            target,
            0.15,
            reduction=reduction,
            weight=weight if weighted else None,
            fast=fast,
        )

    assert torch.autograd.gradcheck(loss, (z, t))


# Finite float32 logits near ±3e38: their differences overflow, and ε = 0 multiplied
# the infinite smoothing sum by 0 (NaN). PyTorch gives a number.


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_logits_near_the_float32_limit_give_pytorchs_numbers(device, grad_in_forward):
    z = torch.tensor([[3e38, -3e38, 0.0], [1.0, -3e38, 2.0]], device=device)
    target = torch.tensor([0, 2], device=device)
    for eps in (0.0, 0.1):
        ours, our_grad, upstream = _loss_and_grad(
            label_smoothing_cross_entropy, z, target, eps, reduction="none",
            grad_in_forward=grad_in_forward,
        )  # fmt: skip
        theirs, their_grad, _ = _loss_and_grad(
            _builtin, z, target, eps, "none", None, upstream=upstream
        )
        torch.testing.assert_close(ours, theirs, equal_nan=False)
        torch.testing.assert_close(our_grad, their_grad)


# Lesson 06's LSCEFunction is plain torch: the code the lesson runs and the page shows.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_plain_function_runs_none_of_the_fast_kernels(monkeypatch, dtype):
    def refuse(*args, **kwargs):
        raise AssertionError("a fast kernel ran")

    for module, name in [
        (fast, "lsce_rows"),
        (fast, "gradient_rows"),
        (torch_chunks, "statistics"),
        (torch_chunks, "gradient"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    z = torch_logits((5, 7), 41, dtype=dtype).requires_grad_(True)
    target = torch.tensor([0, 6, -100, 3, 1])
    weight = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
    loss = LSCEFunction.apply(z, target, 0.1, weight, -100, "mean", "index")
    loss.backward()
    x = z.detach().double().requires_grad_(True)
    F.cross_entropy(x, target, weight, label_smoothing=0.1).backward()
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(
        z.grad.double(), x.grad, rtol=tolerance, atol=tolerance * 1e-2
    )
    with pytest.raises(AssertionError, match="a fast kernel ran"):
        label_smoothing_cross_entropy(z, target, 0.1)


def test_the_fast_options_are_refused_with_the_plain_function():
    z = torch_logits((3, 4), 43).requires_grad_(True)
    for option in ("grad_in_forward", "inplace"):
        with pytest.raises(ValueError, match="options of the fast kernels"):
            label_smoothing_cross_entropy(
                z * 1.0, torch.tensor([0, 1, 2]), fast=False, **{option: True}
            )
    assert "fast=False" in repr(LabelSmoothingCrossEntropy(0.1, fast=False))

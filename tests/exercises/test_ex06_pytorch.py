"""Exercise 6.1: the backward of LSCEFunction, against PyTorch's autograd of F.cross_entropy.

The learner's backward is called directly (``loss.grad_fn.apply``, what autograd calls), so
the test sees what it returns before autograd checks and casts it: the number of gradients,
their dtype and their values. The wrong values typical mistakes give are computed by
``_closed_form`` with one piece left out.
"""

import pytest
import torch
import torch.nn.functional as F

from tests.expect import Diagnosis, assert_close, describe_inputs, show

REDUCTIONS = ["mean", "sum", "none"]
K = 5
WEIGHT = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25], dtype=torch.float64)


def _logits(seed: int, n: int = 6, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, K, generator=g, dtype=torch.float64) * 2
    z[0, 1] += 8.0  # a confident row
    z[2, 4] += 5.0
    return z.to(dtype)


def _soft_targets(seed: int, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(
        torch.randn(n, K, generator=g, dtype=torch.float64) * 2, dim=-1
    )


def _upstream(reduction: str, n: int = 6) -> torch.Tensor:
    """∂L_total/∂L: 0.7 for a scalar loss, a different number per row for 'none'."""
    if reduction == "none":
        return torch.linspace(-1.0, 2.0, n, dtype=torch.float64)
    return torch.tensor(0.7, dtype=torch.float64)


def _kind(target: torch.Tensor) -> str:
    return "soft" if target.is_floating_point() else "index"


def _your_gradient(
    function, z, target, epsilon, weight, ignore_index, reduction, upstream
):
    """Run the forward, then call the learner's backward as autograd would; check what it
    returns (a tuple of 7, None but the first, the logits' dtype and shape)."""
    z = z.detach().clone().requires_grad_(True)
    loss = function.apply(
        z, target, epsilon, weight, ignore_index, reduction, _kind(target)
    )
    with torch.no_grad():
        grads = loss.grad_fn.apply(upstream.to(loss.dtype))
    if not isinstance(grads, tuple) or len(grads) != 7:
        got = (
            f"a tuple of {len(grads)}"
            if isinstance(grads, tuple)
            else type(grads).__name__
        )
        raise Diagnosis(
            f"backward returned {got}: it must return one gradient per input of forward, "
            f"(∂L/∂logits, None, None, None, None, None, None)"
        )
    if not isinstance(grads[0], torch.Tensor):
        raise Diagnosis(
            f"backward's first gradient is {type(grads[0]).__name__}, not a tensor"
        )
    extra = [i for i, g in enumerate(grads[1:], start=1) if g is not None]
    if extra:
        raise Diagnosis(
            f"backward returned a gradient at position {extra[0]}: only the logits (position 0) "
            f"get one here; return None for target, epsilon, weight, ignore_index, reduction "
            f"and kind"
        )
    grad = grads[0]
    if grad.dtype != z.dtype:
        raise Diagnosis(
            f"backward returned a {str(grad.dtype).removeprefix('torch.')} gradient for "
            f"{str(z.dtype).removeprefix('torch.')} logits: return it in the logits' dtype "
            f"(grad.to(logits.dtype)); autograd would cast it silently"
        )
    if grad.shape != z.shape:
        raise Diagnosis(
            f"backward returned a gradient of shape {tuple(grad.shape)} for logits of shape "
            f"{tuple(z.shape)}: it must have the logits' shape"
        )
    return grad.detach().double()


def _torch_gradient(z, target, epsilon, weight, ignore_index, reduction, upstream):
    """∂(upstream · L)/∂z by autograd through F.cross_entropy, in float64."""
    z = z.detach().double().requires_grad_(True)
    loss = F.cross_entropy(
        z,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=epsilon,
    )
    (grad,) = torch.autograd.grad(loss, z, upstream)
    return grad


def _closed_form(
    z,
    target,
    epsilon,
    weight,
    ignore_index,
    reduction,
    upstream,
    *,
    weighted=True,
    times_total=True,
    smooth_soft=True,
    divisor=None,
):
    """(S·p − r) through the reduction; the keywords leave a piece out, as a mistake would."""
    z = z.detach().double()
    p = torch.softmax(z, dim=-1)
    w = (
        weight
        if weight is not None and weighted
        else torch.ones(K, dtype=torch.float64)
    )
    if _kind(target) == "index":
        valid = target != ignore_index
        y = torch.where(valid, target, 0)
        q = epsilon / K + (1 - epsilon) * F.one_hot(y, K).double()
        denominator = (w[y] * valid).sum()
    else:
        valid = torch.ones(len(z), dtype=torch.bool)
        q = (1 - epsilon) * target + epsilon / K if smooth_soft else target
        denominator = torch.tensor(float(len(z)), dtype=torch.float64)
    r = w * q
    total = r.sum(dim=-1, keepdim=True) if times_total else 1.0
    grad = torch.where(valid[:, None], total * p - r, 0.0)
    if reduction == "none":
        return grad * upstream[:, None]
    if reduction == "mean":
        return grad * upstream / (denominator if divisor is None else divisor)
    return grad * upstream


def _check(
    function, z, target, epsilon=0.1, weight=None, ignore_index=-100, reduction="mean"
):
    """Compare the learner's gradient with PyTorch's, naming the mistakes it matches."""
    upstream = _upstream(reduction, len(z))
    got = _your_gradient(
        function, z, target, epsilon, weight, ignore_index, reduction, upstream
    )
    expected = _torch_gradient(
        z, target, epsilon, weight, ignore_index, reduction, upstream
    )
    inputs = {"logits": z, "target": target, "grad_output": upstream}
    if weight is not None:
        inputs["weight"] = weight
    call = (
        f"∂L/∂logits of LSCEFunction (ε={epsilon}, weight={'None' if weight is None else 'w'}, "
        f"ignore_index={ignore_index}, reduction={reduction!r}, kind={_kind(target)!r})"
    )
    index = _kind(target) == "index"
    if index:
        ignored = target == ignore_index
        if ignored.any() and got[ignored].abs().max() > 0:
            row = int(torch.nonzero(ignored)[0])
            as_minus_100 = _closed_form(
                z, target, epsilon, weight, -100, reduction, upstream
            )
            if ignore_index != -100 and torch.allclose(got, as_minus_100, rtol=1e-10):
                raise Diagnosis(
                    f"{call}: ignore_index is taken as -100: read it from ctx.options (here "
                    f"{ignore_index}, so row {row} is ignored)\n"
                    + describe_inputs({k: v.numpy() for k, v in inputs.items()})
                )
            raise Diagnosis(
                f"{call}: row {row} has target == ignore_index = {ignore_index} but a non-zero "
                f"gradient {show(got[row].numpy())}: ignored rows get exactly 0\n"
                + describe_inputs({k: v.numpy() for k, v in inputs.items()})
            )
    args = (z, target, epsilon, weight, ignore_index, reduction, upstream)
    mistakes = {}
    if reduction == "mean":
        mistakes[
            "the 'mean' is not divided by the saved denominator (that is the 'sum')"
        ] = _closed_form(*args[:5], "sum", upstream)
    mistakes[
        "grad_output is ignored: scale the gradient by it (row by row for 'none')"
    ] = _closed_form(*args[:6], torch.ones_like(upstream))
    if epsilon > 0 and index:
        mistakes["ε is ignored: that is the gradient of plain cross-entropy"] = (
            _torch_gradient(z, target, 0.0, weight, ignore_index, reduction, upstream)
        )
    if weight is not None:
        mistakes[
            "that is p − r: with class weights S = Σ_k r_k ≠ 1, and the gradient is S·p − r"
        ] = _closed_form(*args, times_total=False)
        mistakes["the class weights are ignored: r = w ⊙ q, not q"] = _closed_form(
            *args,
            weighted=False,
            divisor=_denominator(target, weight, ignore_index) if index else None,
        )
        mistakes[
            "the class weights are ignored (in r and in the mean's denominator)"
        ] = _closed_form(*args, weighted=False)
        if reduction == "mean" and index:
            counted = int((target != ignore_index).sum())
            mistakes[
                f"'mean' divides by the number of rows N = {len(z)}: it divides by Σ_i w_(y_i) "
                f"over the counted rows (the saved denominator)"
            ] = _closed_form(*args, divisor=len(z))
            mistakes[
                f"'mean' divides by the {counted} counted rows: it divides by Σ_i w_(y_i) over "
                f"them (the saved denominator)"
            ] = _closed_form(*args, divisor=counted)
    if not index and epsilon > 0:
        mistakes[
            "probability targets are smoothed too: r = w ⊙ ((1 − ε)·t + ε/K), not w ⊙ t"
        ] = _closed_form(*args, smooth_soft=False)
    assert_close(
        got.numpy(),
        expected.numpy(),
        1e-10,
        call,
        mistakes={cause: value.numpy() for cause, value in mistakes.items()},
        **{k: v.numpy() for k, v in inputs.items()},
    )


def _denominator(target, weight, ignore_index):
    valid = target != ignore_index
    return (weight[torch.where(valid, target, 0)] * valid).sum()


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_of_index_targets_matches_torch(impl, reduction):
    _check(impl(), _logits(61), torch.tensor([1, 0, 3, 2, 2, 4]), reduction=reduction)


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_with_class_weights_and_ignored_rows(impl, reduction):
    target = torch.tensor([1, -100, 3, 2, -100, 0])
    _check(impl(), _logits(62), target, 0.25, WEIGHT, reduction=reduction)


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_of_probability_targets(impl, reduction):
    _check(impl(), _logits(63), _soft_targets(64), 0.2, WEIGHT, reduction=reduction)


@pytest.mark.ex6_1
def test_gradient_of_probability_targets_without_weights(impl):
    _check(impl(), _logits(65), _soft_targets(66), 0.1, reduction="sum")


@pytest.mark.ex6_1
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ignore_index_comes_from_the_options(impl, reduction):
    # ignore_index = 3 is a real class: rows of class 3 are the ignored ones
    target = torch.tensor([1, 3, 0, 3, 2, 4])
    _check(
        impl(), _logits(67), target, 0.1, WEIGHT, ignore_index=3, reduction=reduction
    )


@pytest.mark.ex6_1
def test_without_smoothing_it_is_cross_entropy(impl):
    _check(impl(), _logits(68), torch.tensor([4, 0, 3, -100, 2, 1]), 0.0, WEIGHT)


@pytest.mark.ex6_1
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_low_precision_logits_get_a_gradient_of_their_dtype(impl, dtype, reduction):
    function = impl()
    z = _logits(69, dtype=dtype)
    target = torch.tensor([1, 0, -100, 2, 2, 4])
    upstream = _upstream(reduction)
    got = _your_gradient(function, z, target, 0.1, None, -100, reduction, upstream)
    expected = _torch_gradient(z, target, 0.1, None, -100, reduction, upstream)
    name = str(dtype).removeprefix("torch.")
    assert_close(
        got.numpy(),
        expected.numpy(),
        1e-5 if dtype == torch.float32 else 1e-3,
        f"∂L/∂logits of LSCEFunction for {name} logits, reduction={reduction!r}",
        logits=z.double().numpy(),
        target=target.numpy(),
    )


@pytest.mark.ex6_1
def test_loss_backward_fills_the_logits_grad(impl):
    # the same gradient through autograd itself: loss.backward() on a loss that uses it twice
    function = impl()
    z = _logits(70).requires_grad_(True)
    target = torch.tensor([1, 0, 3, -100, 2, 2])
    loss = function.apply(z, target, 0.2, WEIGHT, -100, "mean", "index")
    (loss * 0.5 + loss**2).backward()
    expected = F.cross_entropy(z, target, weight=WEIGHT, label_smoothing=0.2)
    (expected_grad,) = torch.autograd.grad(expected * 0.5 + expected**2, z)
    assert_close(
        z.grad.numpy(),
        expected_grad.numpy(),
        1e-10,
        "z.grad after (0.5·L + L²).backward(), L = LSCEFunction.apply(z, ..., 'mean')",
        logits=z.detach().numpy(),
        target=target.numpy(),
    )

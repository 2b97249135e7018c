"""One grid of scenarios on every backend, and PyTorch's own cross-entropy test scenarios,
run on every implementation of ours.

The grid (:func:`test_the_oracle_grid_on_every_backend`): every reduction, with and
without class weights, class indices with some or all rows ignored and probability
targets, ε = 0, 0.1 and 1, K = 1, 3 and 37, a third of the rows confident, float64 and
float32, on the NumPy taught and fast versions, the plain torch Function, the torch fast
paths and, on a CUDA GPU, the CUDA ones (Triton among them).

Ported (our code; PyTorch's inputs, shapes and tolerances):

- ``module_inputs_torch_nn_CrossEntropyLoss`` (torch/testing/_internal/common_modules.py):
  3 reductions × 5 settings × 4 index-target shapes, plus 4 probability-target shapes
  and the unbatched input for the settings without ignore_index: 105 cases;
- ``sample_inputs_cross_entropy`` (common_methods_invocations.py): 21 cases, among them
  unnormalised probability targets that require grad;
- the label-smoothing and probability-target tests of test/test_nn.py (consistency of
  index and smoothed one-hot targets, manual smoothing of probabilities, ignored rows
  and the mean's denominator with weights, unit weights, one-hot targets, the unbatched
  probability target, the ε > 1 error).

The oracle is ``F.cross_entropy`` in float64 on the same values, in PyTorch's layout
(classes on dim 1; ours sit on the last axis). Results are compared at the default
tolerances of ``torch.testing.assert_close`` for the input dtype, what PyTorch's module
and OpInfo tests use. Where a scenario uses an input we refuse on purpose (negative class
weights, negative "probabilities"), we take its absolute value; the refusals themselves
are tested at the end, against the Conventions page that lists them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsce_scratch import fast, losses
from lsce_scratch import nn as lnn
from tests.implementations import BACKENDS, IMPLEMENTATIONS, run, supports
from tests.oracle import random_logits, random_soft_targets

ROOT = Path(__file__).resolve().parents[1]
# torch.testing.assert_close's defaults: what PyTorch's own tests compare with
TOLERANCES = {np.float64: (1e-7, 1e-7), np.float32: (1.3e-6, 1e-5)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def oracle(x, target, epsilon, reduction, weight, ignore_index, dloss):
    """F.cross_entropy in float64, PyTorch layout: (loss, ∂/∂x, ∂/∂target or None)."""
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    soft = np.issubdtype(np.asarray(target).dtype, np.floating)
    t = torch.tensor(
        target, dtype=torch.float64 if soft else torch.long, requires_grad=soft
    )
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    loss = F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=epsilon)  # fmt: skip
    loss.backward(torch.tensor(dloss, dtype=torch.float64).expand(loss.shape))
    return loss.detach().numpy(), x.grad.numpy(), t.grad.numpy() if soft else None


def classes_last(a: np.ndarray) -> np.ndarray:
    """PyTorch's (N, C, d...) as our (N, d..., C); an unbatched (C,) stays."""
    return np.moveaxis(a, 1, -1) if a.ndim >= 2 else a


def classes_first(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 1) if a.ndim >= 2 else a


def check_case(name, x, target, epsilon=0.0, reduction="mean", weight=None, ignore_index=-100,
               dtype=np.float64, seed=0) -> None:  # fmt: skip
    """Ours (implementation ``name``, inputs in ``dtype``) against the float64 oracle.

    ``x`` and a probability ``target`` come in PyTorch's layout, as the scenarios write them.
    """
    if not supports(name, reduction):
        return
    x = np.asarray(x, dtype=dtype).astype(np.float64)  # the values ours will see
    soft = np.issubdtype(np.asarray(target).dtype, np.floating)
    if soft:
        target = np.asarray(target, dtype=dtype).astype(np.float64)
    rng = np.random.default_rng(seed)
    # 'none' gives one loss per row: every position of (N, d...), or one for a (C,) input
    leading = np.shape(classes_last(x))[:-1]
    dloss = rng.uniform(0.5, 1.5, size=leading) if reduction == "none" else 0.7
    want = oracle(x, target, epsilon, reduction, weight, ignore_index, dloss)
    ours_target = classes_last(target).astype(dtype) if soft else np.asarray(target)
    got = run(name, classes_last(x).astype(dtype), ours_target, epsilon, reduction=reduction,
              weight=weight, ignore_index=ignore_index, dloss=dloss)  # fmt: skip
    rtol, atol = TOLERANCES[dtype]
    case = f"{name}, {dtype.__name__}, ε={epsilon}, {reduction}, weight={weight is not None}"
    np.testing.assert_allclose(
        got.loss, want[0], rtol=rtol, atol=atol, err_msg=f"loss, {case}"
    )
    if got.grad is not None:
        np.testing.assert_allclose(classes_first(got.grad), want[1], rtol=rtol, atol=atol,
                                   err_msg=f"∂/∂logits, {case}")  # fmt: skip
    if soft and not name.startswith("numpy"):
        assert got.target_grad is not None, f"no ∂/∂target, {case}"
        np.testing.assert_allclose(classes_first(got.target_grad), want[2], rtol=rtol,
                                   atol=atol, err_msg=f"∂/∂target, {case}")  # fmt: skip


# the grid: (ε, reduction, weighted, target kind, K); leading shapes (6,) and (2, 3)
GRID = list(
    itertools.product(
        [0.0, 0.1, 1.0],
        ["none", "sum", "mean"],
        [False, True],
        ["index", "ignored", "all-ignored", "soft"],
        [1, 3, 37],
    )
)
GRID_TOLERANCES = {np.float64: (1e-10, 1e-12), np.float32: (1.3e-6, 1e-5)}


def grid_case(seed: int, leading: tuple[int, ...], kind: str, num_classes: int):
    """Our-layout logits (a third of the rows confident) and targets of one grid case."""
    rng = np.random.default_rng(seed)
    x = random_logits(rng, leading, num_classes)
    if kind == "soft":
        # unnormalised, some entries 0: S = Σ_k r_k ≠ 1
        return x, random_soft_targets(rng, leading, num_classes, normalised=False)
    target = rng.integers(0, num_classes, size=leading)
    if kind == "ignored":
        target.reshape(-1)[::3] = -100
    if kind == "all-ignored":
        target[...] = -100
    return x, target


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", BACKENDS)
def test_the_oracle_grid_on_every_backend(name, dtype):
    rtol, atol = GRID_TOLERANCES[dtype]
    for i, (eps, reduction, weighted, kind, k) in enumerate(GRID):
        if not supports(name, reduction):
            continue
        weight = np.linspace(0.5, 2.0, k) if weighted else None
        for leading in [(6,), (2, 3)]:
            x, target = grid_case(i, leading, kind, k)
            soft = kind == "soft"
            # the values ours will see, in float64 for the oracle
            x = x.astype(dtype).astype(np.float64)
            target = target.astype(dtype).astype(np.float64) if soft else target
            dloss = np.linspace(0.5, 1.5, np.prod(leading)).reshape(leading)
            dloss = dloss if reduction == "none" else 0.7
            theirs = classes_first(target) if soft else target
            want = oracle(classes_first(x), theirs, eps, reduction, weight, -100, dloss)
            ours = target.astype(dtype) if soft else target
            kwargs = {"reduction": reduction, "weight": weight, "dloss": dloss}
            got = run(name, x.astype(dtype), ours, eps, **kwargs)
            case = f"{name}, ε={eps}, {reduction}, weight={weighted}, {kind}, K={k}, {leading}"
            close = {"rtol": rtol, "atol": atol}
            np.testing.assert_allclose(
                got.loss, want[0], **close, err_msg=f"loss, {case}"
            )
            if got.grad is not None:
                grad = classes_last(want[1])
                np.testing.assert_allclose(
                    got.grad, grad, **close, err_msg=f"∂/∂z, {case}"
                )
            if soft and not name.startswith("numpy"):
                target_grad = classes_last(want[2])
                assert got.target_grad is not None, f"no ∂/∂target, {case}"
                np.testing.assert_allclose(
                    got.target_grad, target_grad, **close, err_msg=f"∂/∂target, {case}"
                )


def make_input(gen: torch.Generator, shape, low=-9.0, high=9.0) -> np.ndarray:
    """make_tensor's default for floats: uniform in [-9, 9) (so many rows are confident)."""
    return (
        torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low
    ).numpy()


def make_target(gen: torch.Generator, shape, num_classes: int) -> np.ndarray:
    return torch.randint(0, num_classes, shape, generator=gen).numpy()


def positive_weight(gen: torch.Generator, num_classes: int) -> np.ndarray:
    """PyTorch draws weights in [-9, 9); we refuse negative ones, so [0.5, 2) as in its
    linear_cross_entropy samples ("strictly positive class weights only")."""
    return make_input(gen, (num_classes,), 0.5, 2.0)


def module_inputs() -> list[dict]:
    """module_inputs_torch_nn_CrossEntropyLoss: its settings, shapes and targets (K = 3)."""
    gen = torch.Generator().manual_seed(0)
    settings = [
        {},
        {"weight": positive_weight(gen, 3)},
        {"ignore_index": 1},
        {"epsilon": 0.15},
        {"ignore_index": 1, "epsilon": 0.15},
    ]
    index_shapes = [(2, 3, 5, 5), (2, 3, 5), (2, 3), (2, 3, 5, 5, 2, 2)]
    soft_shapes = [(5, 3, 4, 2), (5, 3, 4), (5, 3), (2, 3, 5, 5, 2, 2)]
    cases = []
    for reduction, setting in itertools.product(["mean", "sum", "none"], settings):
        for shape in index_shapes:
            target = make_target(gen, shape[:1] + shape[2:], 3)
            cases.append({"x": make_input(gen, shape), "target": target, "reduction": reduction,
                          **setting})  # fmt: skip
        if "ignore_index" in setting:
            continue
        for shape in soft_shapes:
            target = torch.softmax(torch.tensor(make_input(gen, shape)), dim=1).numpy()
            cases.append({"x": make_input(gen, shape), "target": target, "reduction": reduction,
                          **setting})  # fmt: skip
        cases.append({"x": make_input(gen, (3,)), "target": make_target(gen, (), 3),
                      "reduction": reduction, **setting})  # fmt: skip
    return cases


MODULE_INPUTS = module_inputs()


def test_module_inputs_count():
    assert len(MODULE_INPUTS) == 105


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_module_inputs_of_cross_entropy_loss(name, dtype):
    for i, case in enumerate(MODULE_INPUTS):
        check_case(name, dtype=dtype, seed=i, **case)


def sample_inputs() -> list[dict]:
    """sample_inputs_cross_entropy: (2, 3) and k-dimensional inputs; probability targets
    uniform in [0, 1) (unnormalised), which require grad there."""
    gen = torch.Generator().manual_seed(1)
    shape = (2, 3)
    settings = [
        (shape, {}),
        ((*shape, 1), {}),
        ((*shape, 1, 2), {}),
        ((*shape, 1, 2, 3), {}),
        *[(shape, {"reduction": r}) for r in ("mean", "sum", "none")],
        *[
            (shape, {"weight": positive_weight(gen, 3), "reduction": r})
            for r in ("mean", "sum", "none")
        ],  # fmt: skip
        (shape, {"ignore_index": 1}),
    ]
    cases = []
    for (input_shape, kwargs), soft in itertools.product(settings, (False, True)):
        if soft and "ignore_index" in kwargs:
            continue  # PyTorch refuses ignore_index with probability targets
        x = make_input(gen, input_shape)
        if soft:
            target = make_input(gen, input_shape, 0.0, 1.0)
        else:
            target = make_target(gen, (2, *input_shape[2:]), 3)
            target.flat[0] = 0  # at least one row is not ignored
        cases.append({"x": x, "target": target, **kwargs})
    return cases


SAMPLE_INPUTS = sample_inputs()


def test_sample_inputs_count():
    assert len(SAMPLE_INPUTS) == 21


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_sample_inputs_of_cross_entropy(name, dtype):
    for i, case in enumerate(SAMPLE_INPUTS):
        check_case(name, dtype=dtype, seed=i, **case)


# test/test_nn.py


def k_dimensional(gen: torch.Generator, k: int, n: int, c: int) -> tuple[int, ...]:
    """(N, C, d1..dk) with each d in [2, 5), as test_nn's k-dimensional loss tests."""
    return (n, c, *(int(d) for d in torch.randint(2, 5, (k,), generator=gen)))


def ours(name, x, target, epsilon=0.0, **kwargs):
    """Our loss (and gradients) for PyTorch-layout inputs."""
    soft = np.issubdtype(np.asarray(target).dtype, np.floating)
    return run(
        name,
        classes_last(x),
        classes_last(target) if soft else target,
        epsilon,
        **kwargs,
    )


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_smoothed_index_target_equals_its_smoothed_one_hot_probabilities(name):
    """test_cross_entropy_label_smoothing_consistent_index_target_and_probs, at its
    rtol=1e-7, atol=1e-5."""
    gen = torch.Generator().manual_seed(2)
    for k, reduction, eps in itertools.product(
        range(5), ["none", "mean", "sum"], [0.05, 0.15]
    ):
        if not supports(name, reduction):
            continue
        shape = k_dimensional(gen, k, 10, 4)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
        target = make_target(gen, shape[:1] + shape[2:], 4)
        # q = (1 − ε)·onehot + ε/K, with the classes on dim 1
        one_hot = classes_first(np.eye(4)[target])
        probabilities = one_hot * (1 - eps) + eps / 4
        with_index = ours(name, x, target, eps, reduction=reduction)
        with_probabilities = ours(name, x, probabilities, 0.0, reduction=reduction)
        np.testing.assert_allclose(
            with_index.loss, with_probabilities.loss, rtol=1e-7, atol=1e-5
        )
        if with_index.grad is not None:
            np.testing.assert_allclose(with_index.grad, with_probabilities.grad, rtol=1e-7,
                                       atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_smoothing_probabilities_equals_smoothing_them_by_hand(name):
    """test_cross_entropy_label_smoothing_with_probs. Its targets are log-probabilities,
    negative numbers we refuse (see the last tests); here they are probabilities."""
    gen = torch.Generator().manual_seed(3)
    for k, eps in itertools.product(range(5), [0.05, 0.15]):
        shape = k_dimensional(gen, k, 10, 4)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
        target = torch.softmax(
            torch.randn(shape, generator=gen, dtype=torch.float64), 1
        ).numpy()
        for reduction in ["none", "mean", "sum"]:
            if not supports(name, reduction):
                continue
            smoothed = ours(name, x, target, eps, reduction=reduction)
            by_hand = ours(
                name, x, target * (1 - eps) + eps / 4, 0.0, reduction=reduction
            )
            np.testing.assert_allclose(
                smoothed.loss, by_hand.loss, rtol=1e-7, atol=1e-7
            )


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_ignored_rows_count_nowhere_with_weights_and_smoothing(name):
    """test_cross_entropy_label_smoothing_weight_ignore_indices: the ignored first row may
    hold anything, and the mean's denominator leaves it out (default, negative and
    out-of-range positive ignore_index)."""
    weight = np.array([0.3, 0.6])
    inp1 = np.array([[0.3, 0.4], [1.0, 2.0]])
    inp2 = np.array([[0.3, 0.6], [1.0, 2.0]])
    for reduction, eps, w, ignore in itertools.product(
        ["none", "sum", "mean"], [0.05, 0.15], [None, weight], [-100, -2, 2]
    ):
        if not supports(name, reduction):
            continue
        target = np.array([ignore, 1])
        kwargs = {"reduction": reduction, "weight": w, "ignore_index": ignore}
        first = ours(name, inp1, target, eps, **kwargs)
        np.testing.assert_allclose(
            first.loss, ours(name, inp2, target, eps, **kwargs).loss
        )
        if reduction != "none":
            rest = ours(name, inp2[1:], target[1:], eps, **kwargs)
            np.testing.assert_allclose(first.loss, rest.loss, rtol=1e-12)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_unit_weights_change_nothing(name):
    """test_cross_entropy_loss_{prob,index}_target_unit_weights."""
    gen = torch.Generator().manual_seed(4)
    for k, soft, reduction in itertools.product(
        range(5), [False, True], ["none", "mean", "sum"]
    ):
        if not supports(name, reduction):
            continue
        shape = k_dimensional(gen, k, 5, 4)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
        if soft:
            target = (
                torch.randn(shape, generator=gen, dtype=torch.float64).abs().numpy()
            )
        else:
            target = make_target(gen, shape[:1] + shape[2:], 4)
        plain = ours(name, x, target, reduction=reduction)
        unit = ours(name, x, target, reduction=reduction, weight=np.ones(4))
        np.testing.assert_allclose(plain.loss, unit.loss, rtol=1e-12)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_probability_targets_that_require_grad_over_all_reductions(name):
    """test_cross_entropy_loss_prob_target_all_reductions: k-dimensional inputs, weights,
    targets that require grad (its randn targets, made non-negative)."""
    gen = torch.Generator().manual_seed(5)
    for k in range(5):
        shape = k_dimensional(gen, k, 5, 4)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
        target = torch.randn(shape, generator=gen, dtype=torch.float64).abs().numpy()
        weight = torch.randn(4, generator=gen, dtype=torch.float64).abs().numpy()
        for reduction, w in itertools.product(["none", "mean", "sum"], [None, weight]):
            check_case(name, x, target, reduction=reduction, weight=w, seed=k)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_unbatched_probability_target(name):
    """test_cross_entropy_loss_prob_target_no_batch_dim: (C,) equals (1, C)."""
    gen = torch.Generator().manual_seed(6)
    x = torch.log_softmax(
        torch.randn(5, generator=gen, dtype=torch.float64), -1
    ).numpy()
    target = torch.softmax(
        torch.randn(5, generator=gen, dtype=torch.float64), -1
    ).numpy()
    weight = torch.rand(5, generator=gen, dtype=torch.float64).numpy() + 0.1
    for reduction, w in itertools.product(["none", "mean", "sum"], [None, weight]):
        if not supports(name, reduction):
            continue
        alone = ours(name, x, target, reduction=reduction, weight=w).loss
        batched = ours(name, x[None], target[None], reduction=reduction, weight=w).loss
        np.testing.assert_allclose(alone, batched.reshape(alone.shape), rtol=1e-12)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_one_hot_probabilities_equal_class_indices(name):
    """test_cross_entropy_loss_one_hot_target. Except for a weighted mean: index targets
    divide by Σ w_y, probabilities by N (pytorch#61309; the Conventions page has it)."""
    gen = torch.Generator().manual_seed(7)
    for k in range(5):
        shape = k_dimensional(gen, k, 5, 4)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
        target = make_target(gen, shape[:1] + shape[2:], 4)
        one_hot = classes_first(np.eye(4)[target])
        weight = torch.randn(4, generator=gen, dtype=torch.float64).abs().numpy()
        for reduction, w in itertools.product(["none", "mean", "sum"], [None, weight]):
            if not supports(name, reduction):
                continue
            index = ours(name, x, target, reduction=reduction, weight=w).loss
            probabilities = ours(name, x, one_hot, reduction=reduction, weight=w).loss
            if reduction == "mean" and w is not None:
                assert not np.isclose(index, probabilities)
            else:
                np.testing.assert_allclose(index, probabilities, rtol=1e-12)


@pytest.mark.parametrize("soft", [False, True], ids=["index", "probabilities"])
def test_epsilon_above_one_is_an_error_as_in_pytorch(soft):
    """test_cross_entropy_label_smoothing_errors."""
    x = np.random.default_rng(8).normal(size=(3, 4))
    target = np.abs(x) if soft else np.arange(3)
    with pytest.raises(RuntimeError, match=r"label_smoothing must be between 0\.0"):
        F.cross_entropy(torch.tensor(x), torch.tensor(target), label_smoothing=1.2)
    for name in IMPLEMENTATIONS:
        with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
            run(name, x, target, 1.2)


# Where we refuse what PyTorch accepts: each case, PyTorch's answer, and the Conventions
# page that must list it (its table of deliberate differences).
REFUSALS = {
    "negative probabilities": (
        {"target": "negative"},
        "target probabilities must be >= 0",
    ),
    "NaN probabilities": ({"target": "nan"}, "target probabilities must be finite"),
    "negative class weight": ({"weight": -1.0}, "weight must be >= 0"),
    "NaN class weight": ({"weight": np.nan}, "weight must be finite"),
    "infinite class weight": ({"weight": np.inf}, "weight must be finite"),
    "negative ε": ({"epsilon": -0.1}, r"epsilon must be in \[0, 1\]"),
    "NaN ε": ({"epsilon": np.nan}, r"epsilon must be in \[0, 1\]"),
    "NaN logit": (
        {"logit": np.nan},
        "NaN or \\+inf in 1 row|hidden contains NaN|hold NaN",
    ),
    "+inf logit": (
        {"logit": np.inf},
        "NaN or \\+inf in 1 row|hidden contains NaN|hold NaN",
    ),
}


def refused_inputs(
    change: dict,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    """Logits (4, 3), a target and ε, weight with one entry made bad as ``change`` says."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 3))
    target = np.array([0, 2, 1, 1])
    weight = None
    if change.get("target") == "negative":
        target = rng.dirichlet(np.ones(3), size=4) - 0.2
    elif change.get("target") == "nan":
        target = rng.dirichlet(np.ones(3), size=4)
        target[1, 1] = np.nan
    if "weight" in change:
        weight = np.array([1.0, change["weight"], 0.5])
    if "logit" in change:
        x[2, 1] = change["logit"]
    return x, target, change.get("epsilon", 0.1), weight


@pytest.mark.parametrize("case", list(REFUSALS))
def test_deliberate_refusals_pytorch_accepts(case):
    change, message = REFUSALS[case]
    x, target, eps, weight = refused_inputs(change)
    w = None if weight is None else torch.tensor(weight)
    # PyTorch computes something (a number, NaN or inf) and raises nothing
    F.cross_entropy(
        torch.tensor(x), torch.tensor(target), weight=w, label_smoothing=eps
    )
    for name in IMPLEMENTATIONS:
        with pytest.raises(ValueError, match=message):
            run(name, x, target, eps, weight=weight)


def test_the_conventions_page_lists_every_deliberate_difference():
    """Its table of deliberate differences names each refusal, and the ignored rows'
    gradient (0 here; NaN in PyTorch where such a row has no softmax)."""
    page = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    table = page[page.index("## Where we differ from PyTorch") :]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    text = "\n".join(rows).lower()
    for needle in [
        "negative",
        "nan",
        "class weight",
        "ε < 0",
        "+inf",
        "ignored row",
        "k = 0",
    ]:
        assert needle in text, f"the differences table does not mention {needle!r}"
    assert len(rows) >= 2 + 7, "one row per difference, plus the header"


def test_zero_classes_pytorch_gives_nan_we_refuse():
    """K = 0 with probability targets: PyTorch's mean is NaN; ours raises."""
    assert torch.isnan(F.cross_entropy(torch.zeros(5, 0), torch.zeros(5, 0)))
    for module in (losses, fast):
        with pytest.raises(ValueError, match="at least one class"):
            module.lsce_forward(np.zeros((5, 0)), np.zeros((5, 0)))
    with pytest.raises(ValueError, match="at least one class"):
        lnn.label_smoothing_cross_entropy(torch.zeros(5, 0), torch.zeros(5, 0))


def test_the_readme_says_where_we_refuse():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("Both equal", 1)[1].split("\n\n", 1)[0]
    assert "exactly" in paragraph
    assert "Conventions" in paragraph and "refuse" in paragraph

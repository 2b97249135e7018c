"""The package exposes its documented names with their signatures, and ``lsce_backward``
returns the logits' shape and dtype."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import lsce_scratch
from tests.oracle import random_index_targets, random_logits, upstream_gradient

P = inspect.Parameter
POS = P.POSITIONAL_OR_KEYWORD
KW = P.KEYWORD_ONLY
EMPTY = P.empty

# name -> [(parameter, kind, default)], as the API reference documents them
SIGNATURES = {
    "logsumexp": [("x", POS, EMPTY), ("axis", POS, -1)],
    "softmax": [("x", POS, EMPTY), ("axis", POS, -1)],
    "log_softmax": [("x", POS, EMPTY), ("axis", POS, -1)],
    "smooth_labels": [
        ("target", POS, EMPTY),
        ("num_classes", POS, EMPTY),
        ("epsilon", POS, EMPTY),
        ("spread", KW, "all"),
    ],
    "lsce_forward": [
        ("logits", POS, EMPTY),
        ("target", POS, EMPTY),
        ("epsilon", POS, 0.1),
        ("reduction", KW, "mean"),
        ("weight", KW, None),
        ("ignore_index", KW, -100),
    ],
    "lsce_backward": [("dloss", POS, EMPTY), ("cache", POS, EMPTY)],
    "label_smoothing_cross_entropy": [
        ("logits", POS, EMPTY),
        ("target", POS, EMPTY),
        ("epsilon", POS, 0.1),
        ("reduction", KW, "mean"),
        ("weight", KW, None),
        ("ignore_index", KW, -100),
    ],
    "numerical_gradient": [("f", POS, EMPTY), ("x", POS, EMPTY), ("h", POS, 1e-5)],
    "rel_error": [("a", POS, EMPTY), ("b", POS, EMPTY)],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_public_name_has_the_documented_signature(name: str) -> None:
    assert name in lsce_scratch.__all__
    func = getattr(lsce_scratch, name)
    assert callable(func)
    params = inspect.signature(func).parameters
    got = [(p.name, p.kind, p.default) for p in params.values()]
    assert got == SIGNATURES[name]


def test_public_functions_have_docstrings() -> None:
    for name in SIGNATURES:
        assert inspect.getdoc(getattr(lsce_scratch, name)), f"{name} has no docstring"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("leading", [(), (5,), (2, 3)], ids=["unbatched", "N", "NxT"])
def test_lsce_backward_returns_logits_shape_and_dtype(
    dtype: type, reduction: str, leading: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(7)
    logits = random_logits(rng, leading, 6, dtype=dtype)
    target = random_index_targets(rng, leading, 6)
    loss, cache = lsce_scratch.lsce_forward(logits, target, 0.1, reduction=reduction)
    assert loss.dtype == dtype
    assert np.shape(loss) == (leading if reduction == "none" else ())
    grad = lsce_scratch.lsce_backward(upstream_gradient(reduction, leading), cache)
    assert grad.shape == logits.shape
    assert grad.dtype == dtype
    assert np.all(np.isfinite(grad))
    assert np.any(grad != 0)

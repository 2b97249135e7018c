"""numerical_gradient, rel_error and check_gradient (lesson 02)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from lsce_scratch import check_gradient, numerical_gradient, rel_error
from lsce_scratch.gradcheck import numerical_gradient_wrt


def cubes(x: np.ndarray) -> float:
    return float(np.sum(x**3))


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)], ids=str)
def test_numerical_gradient_of_a_linear_function_is_its_coefficients(
    shape: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(0)
    c = rng.standard_normal(shape)
    x = rng.standard_normal(shape)
    grad = numerical_gradient(lambda v: float(np.sum(c * v)), x)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, c, rtol=1e-9, atol=1e-9)


def test_numerical_gradient_non_square_matrix_function() -> None:
    """f(X) = Σ (A X)², a (2, 5) x through a (3, 2) matrix: ∂f/∂X = 2 Aᵀ A X."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 2))
    x = rng.standard_normal((2, 5))
    grad = numerical_gradient(lambda v: float(np.sum((a @ v) ** 2)), x)
    np.testing.assert_allclose(grad, 2 * a.T @ a @ x, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_is_a_central_difference_with_step_h() -> None:
    """For f = Σ x³ a central difference gives exactly 3x² + h² (forward: 3x² + 3xh + h²)."""
    x = np.array([[0.5, -1.0, 2.0], [1.5, -0.25, 3.0]])
    for h in (1e-1, 1e-2):
        grad = numerical_gradient(cubes, x, h=h)
        np.testing.assert_allclose(grad, 3 * x**2 + h**2, rtol=1e-9)


def test_numerical_gradient_default_h_is_1e_5() -> None:
    x = np.array([0.3, -1.2, 2.5])
    np.testing.assert_allclose(
        numerical_gradient(cubes, x), 3 * x**2 + 1e-10, rtol=1e-8
    )
    # the default step is accurate; a large step visibly is not
    assert not np.allclose(numerical_gradient(cubes, x, h=0.1), 3 * x**2, rtol=1e-4)


def test_numerical_gradient_does_not_modify_x_and_sees_one_nudge_at_a_time() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4))
    before = x.copy()
    seen: list[np.ndarray] = []

    def f(v: np.ndarray) -> float:
        seen.append(v.copy())
        return cubes(v)

    numerical_gradient(f, x, h=1e-3)
    np.testing.assert_array_equal(x, before)
    assert len(seen) == 2 * x.size
    for v in seen:  # every call sees x with exactly one coordinate nudged by ±h
        changed = np.flatnonzero(v != before)
        assert changed.size == 1
        np.testing.assert_allclose(
            abs(v.flat[changed[0]] - before.flat[changed[0]]), 1e-3
        )


def test_numerical_gradient_rejects_integer_x() -> None:
    with pytest.raises(TypeError, match=r"x must be a floating-point array"):
        numerical_gradient(cubes, np.array([1, 2, 3]))


def test_rel_error_definition() -> None:
    # max over entries of |a − b| / max(1e-8, |a| + |b|)
    a = np.array([1.0, 2.0, -3.0])
    b = np.array([1.0, 2.2, -3.0])
    assert rel_error(a, b) == pytest.approx(0.2 / 4.2, rel=1e-15)
    assert rel_error(b, a) == rel_error(a, b)
    assert rel_error(a, a) == 0.0
    # opposite signs: |1 − (−1)| / 2 = 1
    assert rel_error(1.0, -1.0) == pytest.approx(1.0)


def test_rel_error_is_a_max_over_entries_not_a_norm() -> None:
    a = np.array([[1e3, 1e-3], [5.0, 6.0]])
    b = np.array([[1e3, 2e-3], [5.0, 6.0]])
    # the small entry is off by a factor of 2: 1e-3 / 3e-3
    assert rel_error(a, b) == pytest.approx(1 / 3, rel=1e-12)


def test_rel_error_floor_of_1e_minus_8() -> None:
    assert rel_error(0.0, 0.0) == 0.0
    # |a| + |b| = 1e-10 < 1e-8: divide by the floor
    assert rel_error(0.0, 1e-10) == pytest.approx(1e-2, rel=1e-12)
    assert rel_error(np.zeros(3), np.array([0.0, 3e-9, 0.0])) == pytest.approx(
        0.3, rel=1e-12
    )
    # above the floor it is the plain relative error
    assert rel_error(0.0, 1e-6) == pytest.approx(1.0)


@pytest.mark.parametrize(("a", "b"), [((3,), (4,)), ((3,), (1, 3)), ((2, 3), (3, 2))])
def test_rel_error_rejects_different_shapes(a: tuple, b: tuple) -> None:
    with pytest.raises(ValueError, match=r"a and b must have the same shape"):
        rel_error(np.ones(a), np.ones(b))


def test_rel_error_of_empty_arrays_is_zero() -> None:
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def run_check(delta: float, **kwargs: object) -> tuple[object, str]:
    """check_gradient of f = Σ c·x with analytic = c·(1 + delta); return (result, table)."""
    rng = np.random.default_rng(3)
    c = rng.uniform(1.0, 2.0, size=(2, 3))
    x = rng.standard_normal((2, 3))
    out = io.StringIO()
    result = check_gradient(
        lambda v: float(np.sum(c * v)), x, c * (1 + delta), file=out, **kwargs
    )
    return result, out.getvalue()


@pytest.mark.parametrize(
    ("delta", "verdict"),
    [
        (0.0, "pass"),
        (1e-9, "pass"),
        (1e-6, "suspicious"),
        (1e-5, "suspicious"),
        (1e-2, "fail"),
    ],
)
def test_check_gradient_verdicts(delta: float, verdict: str) -> None:
    result, table = run_check(delta)
    # rel_error of c(1+δ) against c is δ/(2+δ)
    assert result.rel_error == pytest.approx(delta / (2 + delta), rel=1e-3, abs=1e-10)
    assert result.verdict == verdict
    assert result.ok == (verdict == "pass")
    assert verdict in table


def test_check_gradient_thresholds_are_1e_7_and_1e_4() -> None:
    # just inside / outside each threshold (rel_error = δ/(2+δ) ≈ δ/2)
    assert run_check(1.9e-7)[0].verdict == "pass"
    assert run_check(2.1e-7)[0].verdict == "suspicious"
    assert run_check(1.9e-4)[0].verdict == "suspicious"
    assert run_check(2.1e-4)[0].verdict == "fail"


def test_check_gradient_prints_one_line() -> None:
    result, table = run_check(1e-2, name="my layer", h=1e-4)
    assert result.name == "my layer"
    assert "gradient check my layer" in table
    assert "h = 0.0001" in table
    assert "float64" in table
    assert "rel_error" in table
    assert f"{result.rel_error:.2e}" in table
    assert f"{result.max_abs_diff:.2e}" in table
    assert "fail" in table


def test_check_gradient_max_abs_diff() -> None:
    result, _ = run_check(1e-3)
    rng = np.random.default_rng(3)
    c = rng.uniform(1.0, 2.0, size=(2, 3))
    assert result.max_abs_diff == pytest.approx(float(np.max(c)) * 1e-3, rel=1e-5)


def test_check_gradient_rejects_an_analytic_gradient_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"analytic gradient has shape \(3, 2\)"):
        check_gradient(cubes, np.ones((2, 3)), np.ones((3, 2)), file=io.StringIO())


def test_check_gradient_catches_a_wrong_lsce_gradient() -> None:
    """The intended use: a gradient off by a factor of 2 fails, the right one passes."""
    from lsce_scratch import lsce_backward, lsce_forward

    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 5)) * 3
    y = rng.integers(0, 5, size=4)
    _, cache = lsce_forward(x, y, 0.1)
    grad = lsce_backward(1.0, cache)
    quiet = io.StringIO()

    def loss(v: np.ndarray) -> float:
        return float(lsce_forward(v, y, 0.1)[0])

    assert check_gradient(loss, x, grad, file=quiet).verdict == "pass"
    assert check_gradient(loss, x, 2 * grad, file=quiet).verdict == "fail"


def test_numerical_gradient_wrt_nudges_the_parameter_in_place_and_restores_it() -> None:
    rng = np.random.default_rng(3)
    weights, x = rng.normal(size=(3, 2)), rng.normal(size=3)
    before = weights.copy()

    def loss() -> float:
        # reads `weights` itself, as a model's loss reads its parameters
        return float(np.sum((x @ weights) ** 2))

    numeric = numerical_gradient_wrt(loss, weights)
    analytic = 2 * np.outer(x, x @ weights)
    assert rel_error(numeric, analytic) < 1e-8
    np.testing.assert_array_equal(weights, before)

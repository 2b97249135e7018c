"""Exercises 2.1 and 2.2: the relative error and central differences."""

import numpy as np
import pytest


@pytest.mark.ex2_1
def test_rel_error_is_the_largest_elementwise_ratio(impl):
    rel_error = impl()
    a = np.array([1.0, 2.0, 1e-3])
    b = np.array([1.0, 2.2, 2e-3])
    # |a−b|/(|a|+|b|): 0, 0.2/4.2, 1e-3/3e-3; the maximum is 1/3
    got = rel_error(a, b)
    assert abs(got - 1 / 3) < 1e-12, f"rel_error({a}, {b}): expected 1/3, got {got}"


@pytest.mark.ex2_1
def test_rel_error_floors_the_denominator(impl):
    rel_error = impl()
    got = rel_error(np.zeros(3), np.array([0.0, 0.0, 1e-12]))
    assert abs(got - 1e-4) < 1e-16, f"expected 1e-12 / 1e-8 = 1e-4 (the 1e-8 floor), got {got}"


@pytest.mark.ex2_1
def test_rel_error_refuses_different_shapes(impl):
    rel_error = impl()
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.ones(3), np.ones(4))


def _cubic(x: np.ndarray) -> float:
    return float(np.sum(x**3 * np.arange(1, x.size + 1).reshape(x.shape)))


@pytest.mark.ex2_2
def test_numerical_gradient_of_a_cubic(impl):
    numerical_gradient = impl()
    x = np.random.default_rng(21).normal(size=(3, 4))
    expected = 3 * x**2 * np.arange(1, 13).reshape(3, 4)
    got = numerical_gradient(_cubic, x)
    assert got.shape == x.shape, f"expected shape {x.shape}, got {got.shape}"
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-9, err_msg="d/dx Σ c x³")


@pytest.mark.ex2_2
def test_numerical_gradient_is_central_not_one_sided(impl):
    numerical_gradient = impl()
    x = np.array([0.3, 1.1, -0.7])
    got = numerical_gradient(lambda v: float(np.sum(np.sin(v))), x, h=1e-3)
    # central differences are off by ~h²/6 ≈ 2e-7; one-sided ones by ~h/2 ≈ 5e-4
    np.testing.assert_allclose(got, np.cos(x), atol=1e-6, err_msg="use (f(x+h) − f(x−h)) / 2h")


@pytest.mark.ex2_2
def test_numerical_gradient_leaves_x_unchanged(impl):
    numerical_gradient = impl()
    x = np.random.default_rng(22).normal(size=(2, 3))
    before = x.copy()
    numerical_gradient(_cubic, x)
    np.testing.assert_array_equal(x, before, err_msg="numerical_gradient modified its input x")

"""Exercises 2.1 and 2.2: the relative error and central differences."""

import numpy as np
import pytest

from tests.expect import Diagnosis, assert_close


@pytest.mark.ex2_1
def test_rel_error_is_the_largest_elementwise_ratio(impl):
    rel_error = impl()
    a = np.array([1.0, 2.0, 1e-3])
    b = np.array([1.0, 2.2, 2e-3])
    # |a−b|/(|a|+|b|): 0, 0.2/4.2, 1e-3/3e-3; the maximum is 1/3
    got = rel_error(a, b)
    assert_close(
        got,
        1 / 3,
        1e-12,
        "rel_error(a, b)",
        mistakes={
            "that is the mean of the ratios, not their maximum": np.mean(
                [0, 0.2 / 4.2, 1 / 3]
            ),
            "that is max|a − b| / max(|a| + |b|), not the largest ratio": 0.2 / 4.2,
            "the denominator should be |a| + |b|, not |b|": 0.5,
        },
        a=a,
        b=b,
    )


@pytest.mark.ex2_1
def test_rel_error_floors_the_denominator(impl):
    rel_error = impl()
    a, b = np.zeros(3), np.array([0.0, 0.0, 1e-12])
    with np.errstate(all="ignore"):
        got = rel_error(a, b)
    if np.isnan(got):
        raise Diagnosis("rel_error(0, 0) gave NaN (0/0): floor the denominator at 1e-8")
    assert_close(got, 1e-4, 1e-12, "rel_error(a, b), 1e-12 / the 1e-8 floor", a=a, b=b)


@pytest.mark.ex2_1
def test_rel_error_compares_arrays_of_any_shape(impl):
    rel_error = impl()
    a = np.array([[1.0, -2.0], [0.5, 4.0]])
    b = np.array([[1.0, -2.0], [0.5, 3.0]])
    got = rel_error(a, b)
    assert isinstance(got, float), (
        f"rel_error must return a float; got {type(got).__name__}"
    )
    assert_close(got, 1 / 7, 1e-12, "rel_error(a, b) of 2 × 2 arrays", a=a, b=b)


@pytest.mark.ex2_1
def test_rel_error_of_empty_arrays_is_zero(impl):
    rel_error = impl()
    try:
        got = rel_error(np.zeros((0, 3)), np.zeros((0, 3)))
    except ValueError as error:  # np.max of an empty array
        raise Diagnosis(
            f"rel_error of two empty arrays raised ValueError ({error}); return 0.0"
        ) from None
    assert got == 0.0, f"rel_error of two empty arrays must be 0.0; got {got}"


@pytest.mark.ex2_1
def test_rel_error_refuses_different_shapes(impl):
    rel_error = impl()
    with pytest.raises(ValueError, match="shape"):
        got = rel_error(
            np.ones(3), np.ones((2, 3))
        )  # these would broadcast without a check
        raise Diagnosis(
            f"rel_error(ones(3), ones((2, 3))) returned {got}: it must raise ValueError naming "
            f"the shapes, since arrays of different shapes are not two versions of one gradient"
        )


def _cubic(x: np.ndarray) -> float:
    return float(np.sum(x**3 * np.arange(1, x.size + 1).reshape(x.shape)))


def _one_sided(f, x: np.ndarray, h: float) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    base = f(x)
    for i in np.ndindex(x.shape):
        nudged = x.copy()
        nudged[i] += h
        grad[i] = (f(nudged) - base) / h
    return grad


@pytest.mark.ex2_2
def test_numerical_gradient_of_a_cubic(impl):
    numerical_gradient = impl()
    x = np.random.default_rng(21).normal(size=(3, 4))
    expected = 3 * x**2 * np.arange(1, 13).reshape(3, 4)
    got = numerical_gradient(_cubic, x.copy())
    assert_close(
        got,
        expected,
        1e-8,
        "numerical_gradient(f, x) of f(x) = Σ c·x³",
        mistakes={
            "that is a one-sided difference (f(x+h) − f(x)) / h": _one_sided(
                _cubic, x, 1e-5
            )
        },
        x=x,
    )


@pytest.mark.ex2_2
def test_numerical_gradient_is_central_not_one_sided(impl):
    numerical_gradient = impl()
    x = np.array([0.3, 1.1, -0.7])

    def f(v: np.ndarray) -> float:
        return float(np.sum(np.sin(v)))

    got = numerical_gradient(f, x.copy(), h=1e-3)
    # central differences are off by ~h²/6 ≈ 2e-7; one-sided ones by ~h/2 ≈ 5e-4
    assert_close(
        got,
        np.cos(x),
        1e-6,
        "numerical_gradient(Σ sin, x, h=1e-3)",
        mistakes={
            "that is a one-sided difference (f(x+h) − f(x)) / h: use (f(x+h) − f(x−h)) / 2h": (
                _one_sided(f, x, 1e-3)
            ),
            "the step h is ignored (it uses h = 1e-5)": np.cos(x),
        },
        x=x,
    )


@pytest.mark.ex2_2
def test_numerical_gradient_uses_the_given_h(impl):
    numerical_gradient = impl()
    x = np.array([0.5, -1.5])
    # for f = Σ x⁴ the central difference is 4x³ + 4x·h² exactly: h shows in the answer
    got = numerical_gradient(lambda v: float(np.sum(v**4)), x.copy(), h=0.1)
    expected = 4 * x**3 + 4 * x * 0.1**2
    assert_close(
        got,
        expected,
        1e-9,
        "numerical_gradient(Σ x⁴, x, h=0.1)",
        mistakes={
            "the step h is ignored: use the h you are given": 4 * x**3 + 4 * x * 1e-10
        },
        x=x,
    )


@pytest.mark.ex2_2
def test_numerical_gradient_leaves_x_unchanged(impl):
    numerical_gradient = impl()
    x = np.random.default_rng(22).normal(size=(2, 3))
    before = x.copy()
    numerical_gradient(_cubic, x)
    if not np.array_equal(x, before):
        change = np.abs(x - before)
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(change), x.shape))
        raise Diagnosis(
            "numerical_gradient modified its input x: work on a copy "
            "(np.array(x, dtype=np.float64)) and put each entry back after nudging it\n"
            f"x[{worst}] changed by {change[worst]:.3g}, and {int((change > 0).sum())} of "
            f"{x.size} entries changed"
        )

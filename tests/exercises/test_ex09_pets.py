"""Exercises 9.1–9.2: fastai's one-cycle schedule and the reflection of sampling coordinates."""

import math

import pytest
import torch

# ---------------------------------------------------------------------------------------------
# 9.1 one_cycle


@pytest.mark.ex9_1
def test_lesson_one_schedule(impl):
    # fit_one_cycle(4) on 92 batches an epoch: 110 warm-up batches (fact sheet §3.2)
    one_cycle = impl()
    lr, beta1 = one_cycle(0, 368, 3e-3)
    assert lr == pytest.approx(1.2e-4, rel=1e-12), "batch 0 gets max_lr / div_factor"
    assert beta1 == pytest.approx(0.95, rel=1e-12), "β1 starts at moms[0]"
    lr, beta1 = one_cycle(110, 368, 3e-3)
    assert lr == pytest.approx(3e-3, rel=1e-12), "batch n1 = int(368 · 0.3) = 110 gets max_lr"
    assert beta1 == pytest.approx(0.85, rel=1e-12)


@pytest.mark.ex9_1
def test_cosine_not_linear(impl):
    one_cycle = impl()
    # n1 = 44: half-way (pct 0.5) cosine and line agree; a quarter of the way they do not
    lr, _ = one_cycle(22, 88, 1.0, div_factor=10.0, pct_start=0.5)
    assert lr == pytest.approx(0.55, rel=1e-12)
    lr, _ = one_cycle(11, 88, 1.0, div_factor=10.0, pct_start=0.5)
    expected = 1.0 + (0.1 - 1.0) / 2 * (math.cos(math.pi * 0.25) + 1)
    assert lr == pytest.approx(expected, rel=1e-12), "use fastai's annealing_cos, not a line"


@pytest.mark.ex9_1
def test_annealing_phase_and_final_div(impl):
    one_cycle = impl()
    n, n1 = 200, 60
    lr, beta1 = one_cycle(199, n, 2e-3)
    pct = (199 - n1) / (n - n1)
    end = 2e-3 / (25.0 * 1e4)
    assert lr == pytest.approx(end + (2e-3 - end) / 2 * (math.cos(math.pi * pct) + 1), rel=1e-10)
    assert beta1 == pytest.approx(0.95 + (0.85 - 0.95) / 2 * (math.cos(math.pi * pct) + 1))
    lr, _ = one_cycle(130, n, 2e-3, final_div=100.0)
    pct = (130 - n1) / (n - n1)
    assert lr == pytest.approx(2e-5 + (2e-3 - 2e-5) / 2 * (math.cos(math.pi * pct) + 1))


@pytest.mark.ex9_1
def test_shape_of_the_whole_cycle(impl):
    one_cycle = impl()
    values = [one_cycle(s, 368, 3e-3, moms=(0.9, 0.8)) for s in range(368)]
    rates = [v[0] for v in values]
    betas = [v[1] for v in values]
    assert rates.index(max(rates)) == 110 and betas.index(min(betas)) == 110
    assert all(a < b for a, b in zip(rates[:110], rates[1:111], strict=True))
    assert all(a > b for a, b in zip(rates[110:-1], rates[111:], strict=True))
    assert betas[0] == pytest.approx(0.9) and max(betas) <= 0.9 + 1e-12


@pytest.mark.ex9_1
def test_close_to_torch_one_cycle_lr(impl):
    # PyTorch's OneCycleLR follows fastai, with its peak at step 0.3·n − 1 instead of int(0.3·n)
    one_cycle = impl()
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1e-3, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, total_steps=500, pct_start=0.25, final_div_factor=1e4
    )
    for step in range(499):
        lr, _ = one_cycle(step, 500, 1e-3, pct_start=0.25)
        assert abs(lr - optimizer.param_groups[0]["lr"]) < 0.01 * 1e-3, step
        optimizer.step()
        schedule.step()


# ---------------------------------------------------------------------------------------------
# 9.2 reflect


@pytest.mark.ex9_2
def test_reflect_by_hand(impl):
    reflect = impl()
    t = torch.tensor(
        [-1.0, -0.25, 0.0, 0.6, 1.0, 1.2, -1.3, 2.5, 3.0, 4.5, -3.5], dtype=torch.float64
    )
    expected = torch.tensor(
        [-1.0, -0.25, 0, 0.6, 1, 0.8, -0.7, -0.5, -1, 0.5, 0.5], dtype=torch.float64
    )
    torch.testing.assert_close(reflect(t), expected, rtol=0, atol=1e-12)


@pytest.mark.ex9_2
def test_reflect_is_a_mirror_not_a_clamp(impl):
    reflect = impl()
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(4000, generator=g, dtype=torch.float64) - 0.5) * 20
    folded = reflect(t)
    assert folded.shape == t.shape and folded.dtype == t.dtype
    assert float(folded.abs().max()) <= 1 + 1e-12
    torch.testing.assert_close(reflect(t + 4), folded, rtol=0, atol=1e-9)  # period 4
    torch.testing.assert_close(reflect(2 - t), reflect(t), rtol=0, atol=1e-9)  # mirror at 1
    torch.testing.assert_close(reflect(-t), -folded, rtol=0, atol=1e-9)  # and at −1
    inside = t.abs() <= 1
    torch.testing.assert_close(folded[inside], t[inside], rtol=0, atol=0)
    # a clamp would pile every outside point on ±1
    assert float((folded.abs() > 0.999).double().mean()) < 0.01


@pytest.mark.ex9_2
def test_reflect_keeps_grids_float32(impl):
    reflect = impl()
    grid = torch.linspace(-3, 3, 64).view(1, 8, 4, 2)
    folded = reflect(grid)
    assert folded.shape == grid.shape and folded.dtype == torch.float32

"""Exercises 10.1–10.2: fastai's one-cycle schedule and the reflection of sampling coordinates.

The wrong values typical mistakes give are computed here (``_schedule`` with one choice
changed, ``_fold`` variants), so a message names a mistake only when the learner's numbers
are that mistake's numbers.
"""

import math

import numpy as np
import pytest
import torch

from tests.expect import Diagnosis, assert_close, show

# ---------------------------------------------------------------------------------------------
# 10.1 one_cycle


def _schedule(
    total: int,
    max_lr: float,
    *,
    div_factor: float = 25.0,
    final_div: float | None = None,
    pct_start: float = 0.3,
    moms: tuple[float, float] = (0.95, 0.85),
    shape: str = "cosine",
    peak: str = "fastai",
    momentum_back: bool = True,
    honour_final_div: bool = True,
    default_final_div: str = "div_factor·1e4",
) -> np.ndarray:
    """(lr, β1) of every batch, shape (total, 2), with one choice changed as a mistake would."""
    if final_div is None or not honour_final_div:
        final_div = {"div_factor·1e4": div_factor * 1e4, "div_factor": div_factor}[
            default_final_div
        ]

    def anneal(start: float, end: float, pct: float) -> float:
        if shape == "linear":
            return start + (end - start) * pct
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    n1 = {"fastai": int(total * pct_start), "float": total * pct_start}.get(peak)
    rows = []
    for step in range(total):
        if peak == "torch":
            # torch's OneCycleLR: the peak at pct_start·n − 1, the end at n − 1
            up = total * pct_start - 1
            phase_up = step <= up
            pct = step / up if phase_up else (step - up) / (total - 1 - up)
        else:
            phase_up = step <= n1
            pct = (step / n1 if n1 else 1.0) if phase_up else (step - n1) / (total - n1)
        if phase_up:
            lr = anneal(max_lr / div_factor, max_lr, pct)
            beta = anneal(moms[0], moms[1], pct)
        else:
            lr = anneal(max_lr, max_lr / final_div, pct)
            beta = anneal(moms[1], moms[0], pct) if momentum_back else moms[1]
        rows.append((lr, beta))
    return np.array(rows)


def _one_cycle_mistakes(total: int, max_lr: float, **options) -> dict:
    mistakes = {
        "that is a straight line: each phase is fastai's annealing_cos, "
        "end + (start − end)/2 · (cos(π·pct) + 1)": _schedule(
            total, max_lr, shape="linear", **options
        ),
        "that is PyTorch's OneCycleLR (peak at pct_start·n − 1, end at n − 1): fastai's peak "
        "is batch n1 = int(total_steps · pct_start), and the last phase runs to total_steps": (
            _schedule(total, max_lr, peak="torch", **options)
        ),
        "n1 = total_steps · pct_start is not rounded down: n1 = int(total_steps · pct_start)": (
            _schedule(total, max_lr, peak="float", **options)
        ),
        "β1 does not climb back after the warm-up: it goes from moms[1] back up to moms[0]": (
            _schedule(total, max_lr, momentum_back=False, **options)
        ),
        "final_div is ignored: the schedule ends at max_lr / final_div": _schedule(
            total, max_lr, honour_final_div=False, **options
        ),
        "final_div defaults to div_factor · 1e4, not div_factor": _schedule(
            total, max_lr, default_final_div="div_factor", **options
        ),
    }
    if options.get("final_div") is not None:
        del mistakes["final_div defaults to div_factor · 1e4, not div_factor"]
    return mistakes


def _yours(one_cycle, total: int, max_lr: float, **options) -> np.ndarray:
    values = []
    for step in range(total):
        got = one_cycle(step, total, max_lr, **options)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Diagnosis(
                f"one_cycle({step}, {total}, {max_lr}) returned {got!r}: it must return a pair "
                f"(learning rate, β1)"
            )
        values.append([float(got[0]), float(got[1])])
    return np.array(values)


def _check_cycle(one_cycle, total: int, max_lr: float, **options) -> None:
    got = _yours(one_cycle, total, max_lr, **options)
    expected = _schedule(total, max_lr, **options)
    mistakes = _one_cycle_mistakes(total, max_lr, **options)
    call = ", ".join(
        [f"step, {total}, {max_lr}"] + [f"{k}={v}" for k, v in options.items()]
    )
    for column, name in ((0, "learning rate"), (1, "β1")):
        assert_close(
            got[:, column],
            expected[:, column],
            1e-10,
            f"the {name} of every batch, one_cycle({call})[{column}] for step = 0..{total - 1}",
            mistakes={cause: value[:, column] for cause, value in mistakes.items()},
        )


@pytest.mark.ex10_1
def test_lesson_one_schedule(impl):
    # fit_one_cycle(4) on 92 batches an epoch: 110 warm-up batches (fact sheet §3.2)
    one_cycle = impl()
    for step, expected in ((0, (1.2e-4, 0.95)), (110, (3e-3, 0.85))):
        got = one_cycle(step, 368, 3e-3)
        assert_close(
            np.array(got, dtype=float),
            np.array(expected),
            1e-12,
            f"one_cycle({step}, 368, 3e-3) = (lr, β1): batch 0 gets (max_lr / div_factor, "
            f"moms[0]), batch n1 = int(368 · 0.3) = 110 gets (max_lr, moms[1])",
        )


@pytest.mark.ex10_1
def test_every_batch_of_the_lesson_schedule(impl):
    _check_cycle(impl(), 368, 3e-3)


@pytest.mark.ex10_1
def test_every_batch_with_other_options(impl):
    # n1 = int(90 · 0.45) = 40 (90 · 0.45 = 40.5 is not a whole batch)
    _check_cycle(impl(), 90, 1.0, div_factor=10.0, pct_start=0.45, moms=(0.9, 0.8))


@pytest.mark.ex10_1
def test_final_div_sets_the_last_learning_rate(impl):
    _check_cycle(impl(), 200, 2e-3, final_div=100.0)


@pytest.mark.ex10_1
def test_without_warm_up_batches_the_first_gets_max_lr(impl):
    # int(3 · 0.3) = 0: there is no warm-up, batch 0 is batch n1 and gets max_lr
    try:
        _check_cycle(impl(), 3, 1.0)
    except ZeroDivisionError:
        raise Diagnosis(
            "one_cycle(0, 3, 1.0) raised ZeroDivisionError: n1 = int(3 · 0.3) = 0, so "
            "step / n1 divides by zero. Batch n1 = 0 is the peak: give it pct = 1 (max_lr, "
            "moms[1])"
        ) from None


@pytest.mark.ex10_1
def test_close_to_torch_one_cycle_lr(impl):
    # PyTorch's OneCycleLR follows fastai, with its peak at step 0.3·n − 1 instead of int(0.3·n)
    one_cycle = impl()
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1e-3, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, total_steps=500, pct_start=0.25, final_div_factor=1e4
    )
    theirs = []
    for _ in range(499):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    ours = [one_cycle(step, 500, 1e-3, pct_start=0.25)[0] for step in range(499)]
    worst = int(np.argmax(np.abs(np.array(ours) - theirs)))
    assert abs(ours[worst] - theirs[worst]) < 0.01 * 1e-3, (
        f"one_cycle(step, 500, 1e-3, pct_start=0.25) is {ours[worst]:.6g} at step {worst}, "
        f"PyTorch's OneCycleLR {theirs[worst]:.6g}: they should differ by under 1% of max_lr"
    )


# ---------------------------------------------------------------------------------------------
# 10.2 reflect


def _fold_mistakes(t: torch.Tensor) -> dict:
    s = torch.fmod(t + 1, 4)
    once = torch.where(t > 1, 2 - t, torch.where(t < -1, -2 - t, t))
    mistakes = {
        "that is a clamp: a point past an edge comes back inside by as much as it went out "
        "(1.2 → 0.8), it does not stop at the edge": t.clamp(-1, 1),
        "torch.fmod keeps the sign of t + 1, so points below −1 fold wrong: use "
        "torch.remainder, which is never negative": torch.where(s > 2, 3 - s, s - 1),
        "that mirrors only once: a point beyond ±3 must bounce again (the pattern repeats "
        "every 4)": once,
        "that wraps around (period 2, like a torus) instead of mirroring: 1.2 → 0.8, not −0.8": (
            torch.remainder(t + 1, 2) - 1
        ),
    }
    return {cause: value.numpy() for cause, value in mistakes.items()}


def _check_fold(reflect, t: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    before = t.clone()
    got = reflect(t)
    if not torch.equal(t, before):
        raise Diagnosis(
            f"reflect modified its input t in place (t += 1, t.remainder_(...)?): return a new "
            f"tensor\nbefore {show(before.numpy())}\nafter  {show(t.numpy())}"
        )
    if not isinstance(got, torch.Tensor):
        raise Diagnosis(
            f"reflect returned {type(got).__name__}: return a tensor like t"
        )
    if got.dtype != t.dtype:
        raise Diagnosis(
            f"reflect of a {str(t.dtype).removeprefix('torch.')} tensor returned "
            f"{str(got.dtype).removeprefix('torch.')}: keep t's dtype (grids are float32)"
        )
    assert_close(
        got.double().numpy(),
        expected.double().numpy(),
        1e-6 if t.dtype == torch.float32 else 1e-12,
        what,
        mistakes=_fold_mistakes(t),
        t=t.numpy(),
    )


@pytest.mark.ex10_2
def test_reflect_by_hand(impl):
    t = torch.tensor(
        [-1.0, -0.25, 0.0, 0.6, 1.0, 1.2, -1.3, 2.5, 3.0, 4.5, -3.5, -5.2],
        dtype=torch.float64,
    )
    expected = torch.tensor(
        [-1.0, -0.25, 0, 0.6, 1, 0.8, -0.7, -0.5, -1, 0.5, 0.5, -0.8],
        dtype=torch.float64,
    )
    _check_fold(impl(), t, expected, "reflect(t)")


def _reference_fold(t: torch.Tensor) -> torch.Tensor:
    """Fold in float64 by counting the bounces: k = round(t / 2) mirrors, each at an edge."""
    t = t.double()
    k = torch.round(t / 2)
    return torch.where(k.remainder(2) == 0, t - 2 * k, 2 * k - t)


@pytest.mark.ex10_2
def test_reflect_of_random_coordinates(impl):
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(4000, generator=g, dtype=torch.float64) - 0.5) * 20
    _check_fold(impl(), t, _reference_fold(t), "reflect(t), 4000 t in [−10, 10]")


@pytest.mark.ex10_2
def test_reflect_keeps_grids_float32_and_their_shape(impl):
    grid = torch.linspace(-3, 3, 64).view(1, 8, 4, 2)
    _check_fold(
        impl(),
        grid,
        _reference_fold(grid).float(),
        "reflect(grid), a (1, 8, 4, 2) grid",
    )

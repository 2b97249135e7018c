"""Lesson 10 exercises, solved: two small pieces of the pets pipeline.

10.1 fastai's one-cycle schedule (the learning rate and Adam's β1 of each batch); 10.2
the reflection that fills whatever a rotated or warped crop reads outside the image.
"""

import math

import torch


def one_cycle(
    step: int,
    total_steps: int,
    max_lr: float,
    *,
    div_factor: float = 25.0,
    final_div: float | None = None,
    pct_start: float = 0.3,
    moms: tuple[float, float] = (0.95, 0.85),
) -> tuple[float, float]:
    """fastai v1's one-cycle schedule: (learning rate, β1) for batch
    ``step`` of ``total_steps``.

    Warm-up for n1 = int(total_steps · pct_start) batches: cosine from
    max_lr/div_factor up to max_lr while β1 goes from moms[0] down to moms[1]. Then
    cosine from max_lr down to max_lr/final_div (final_div defaults to
    div_factor · 1e4) while β1 goes back up. Batch n1 gets exactly max_lr; batch 0
    exactly max_lr/div_factor, unless n1 = 0 (fewer than 1/pct_start batches): then
    there is no warm-up and batch 0, being batch n1, gets max_lr.
    """
    if final_div is None:
        final_div = div_factor * 1e4
    # the warm-up ends at batch n1, which belongs to it (pct = 1 there)
    n1 = int(total_steps * pct_start)

    def annealing_cos(start: float, end: float, pct: float) -> float:
        # from start (pct 0) to end (pct 1): end + (start − end)/2 · (cos(π·pct) + 1)
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= n1:
        # pct = step/n1; with n1 = 0 batch 0 is the peak itself
        pct = step / n1 if n1 > 0 else 1.0
        lr = annealing_cos(max_lr / div_factor, max_lr, pct)
        beta1 = annealing_cos(moms[0], moms[1], pct)
    else:
        # pct = (step − n1)/(n − n1)
        pct = (step - n1) / (total_steps - n1)
        lr = annealing_cos(max_lr, max_lr / final_div, pct)
        beta1 = annealing_cos(moms[1], moms[0], pct)
    return lr, beta1


def reflect(t: torch.Tensor) -> torch.Tensor:
    """Fold coordinates into [−1, 1] by mirroring at ±1, like light between two mirrors.

    t in [−1, 1] stays; 1.2 → 0.8; −1.3 → −0.7; 2.5 → −0.5; 3 → −1; the pattern repeats
    every 4. Same shape and dtype as ``t``; ``t`` itself is left unchanged.
    """
    # s = (t + 1) mod 4 ∈ [0, 4): torch.remainder is never negative, unlike torch.fmod
    s = torch.remainder(t + 1, 4)
    # fold(t) = s − 1 on [0, 2] (inside), 3 − s on (2, 4) (the mirrored copy)
    return torch.where(s > 2, 3 - s, s - 1)

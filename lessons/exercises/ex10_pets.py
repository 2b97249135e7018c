"""Lesson 10 exercises: two small pieces of the pets pipeline.

10.1 fastai's one-cycle schedule (the learning rate and Adam's β1 of each batch); 10.2
the reflection that fills whatever a rotated or warped crop reads outside the image.
"""

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
    # annealing_cos(a, b, pct) = b + (a − b)/2 · (cos(π·pct) + 1),
    #   from a (pct 0) to b (pct 1)
    # step ≤ n1: pct = step/n1;  lr = cos(max_lr/div, max_lr, pct);
    #            β1 = cos(moms[0], moms[1], pct)
    # step > n1: pct = (step − n1)/(n − n1);  lr = cos(max_lr, max_lr/final_div, pct);
    #            β1 = cos(moms[1], moms[0], pct)
    raise NotImplementedError(
        "Exercise 10.1 (one_cycle): run `lsce hint 10.1`, then `lsce check 10.1`"
    )


def reflect(t: torch.Tensor) -> torch.Tensor:
    """Fold coordinates into [−1, 1] by mirroring at ±1, like light between two mirrors.

    t in [−1, 1] stays; 1.2 → 0.8; −1.3 → −0.7; 2.5 → −0.5; 3 → −1; the pattern repeats
    every 4. Same shape and dtype as ``t``; ``t`` itself is left unchanged.
    """
    # s = (t + 1) mod 4 ∈ [0, 4);  fold(t) = s − 1 for s ≤ 2, 3 − s for s > 2
    raise NotImplementedError(
        "Exercise 10.2 (reflect): run `lsce hint 10.2`, then `lsce check 10.2`"
    )

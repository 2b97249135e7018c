"""Lesson 04 · Label smoothing: the target q, the article's code and prose, the loss
floor H(q) and the optimal logit gap. Its narrative is the page
docs/lessons/04-label-smoothing.md."""

# %%
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lsce_course import exercises
from lsce_course.report import (
    CheckTable,
    console,
    quick_mode,
    save_figure,
    save_run_output,
)
from lsce_scratch.losses import label_smoothing_cross_entropy as reference_loss
from lsce_scratch.losses import lsce_backward, lsce_forward, optimal_logit_gap
from lsce_scratch.losses import smooth_labels as reference_smooth_labels
from lsce_scratch.softmax import log_softmax, softmax

rng = np.random.default_rng(4)
table = CheckTable("Lesson 04: label smoothing")

# yours once you have started the exercise, else the library's; a check that runs yours
# says uses="4.1", and if it fails the table names your function and `lsce check`
smooth_labels = exercises.choose("4.1", console)
label_smoothing_cross_entropy = exercises.choose("4.2", console)

# %% The smoothed target
table.step("1. The smoothed target")
# --8<-- [start:targets]
K, eps = 5, 0.1
y = np.array([0, 3, 1])
q = smooth_labels(y, K, eps)
print(q)
# q_y = 1 − ε + ε/K = 0.92 and q_k = ε/K = 0.02 for k ≠ y
# --8<-- [end:targets]

by_hand = np.full((3, K), eps / K)
by_hand[np.arange(3), y] = 1 - eps + eps / K
table.compare("q = (1−ε)·onehot + ε/K, by hand", q, by_hand, rtol=1e-15, uses="4.1")
table.compare("rows of q sum to 1", q.sum(axis=-1), np.ones(3), rtol=1e-15, uses="4.1")

logits = rng.normal(size=(3, K)) * 3
# --8<-- [start:targets-torch]
# PyTorch's label_smoothing=ε equals plain cross-entropy against our q as a soft target
z_t = torch.from_numpy(logits)
torch_ls = F.cross_entropy(z_t, torch.from_numpy(y), label_smoothing=eps)
torch_soft = F.cross_entropy(z_t, torch.from_numpy(q))
# --8<-- [end:targets-torch]
table.compare(
    "F.cross_entropy(label_smoothing=ε) = CE against q",
    torch_ls.numpy(),
    torch_soft.numpy(),
    rtol=1e-14,
    uses="4.1",
)
if smooth_labels is not reference_smooth_labels:
    table.compare(
        "your smooth_labels vs lsce_scratch",
        q,
        reference_smooth_labels(y, K, eps),
        rtol=1e-15,
        uses="4.1",
    )

# %% The article's module, as published (only reformatted)
table.step("2. The article's code computes CE(q, p)")


# --8<-- [start:article]
def linear_combination(x, y, epsilon):
    return epsilon * x + (1 - epsilon) * y


def reduce_loss(loss, reduction="mean"):
    return (
        loss.mean()
        if reduction == "mean"
        else loss.sum()
        if reduction == "sum"
        else loss
    )


class LabelSmoothingCrossEntropy(nn.Module):
    def __init__(self, epsilon: float = 0.1, reduction="mean"):
        super().__init__()
        self.epsilon = epsilon
        self.reduction = reduction

    def forward(self, preds, target):
        n = preds.size()[-1]
        log_preds = F.log_softmax(preds, dim=-1)
        loss = reduce_loss(-log_preds.sum(dim=-1), self.reduction)
        nll = F.nll_loss(log_preds, target, reduction=self.reduction)
        return linear_combination(loss / n, nll, self.epsilon)


# --8<-- [end:article]

# %% The article's module against −Σ q log p, PyTorch and label_smoothing_cross_entropy
# --8<-- [start:article-check]
N, K, eps = 16, 37, 0.1
z = rng.normal(size=(N, K)) * rng.choice([0.3, 1.0, 3.0, 10.0], size=(N, 1))  # float64
y = rng.integers(0, K, size=N)
z_t, y_t = torch.from_numpy(z), torch.from_numpy(y)
for reduction in ("mean", "sum", "none"):
    article = LabelSmoothingCrossEntropy(eps, reduction)(z_t, y_t).numpy()
    builtin = F.cross_entropy(
        z_t, y_t, label_smoothing=eps, reduction=reduction
    ).numpy()
    # ℓ_i = −Σ_k q_ik log p_ik, reduced
    per_row = -np.sum(smooth_labels(y, K, eps) * log_softmax(z), axis=-1)
    ours = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    lsce = label_smoothing_cross_entropy(z, y, eps, reduction=reduction)
    # --8<-- [end:article-check]
    table.compare(
        f"article = −Σ q log p ({reduction})", article, ours, rtol=1e-13, uses="4.1"
    )
    table.compare(
        f"article = F.cross_entropy(label_smoothing) ({reduction})",
        article,
        builtin,
        rtol=1e-13,
    )
    table.compare(
        f"label_smoothing_cross_entropy = article ({reduction})",
        lsce,
        article,
        rtol=1e-13,
        uses="4.2",
    )
    if label_smoothing_cross_entropy is not reference_loss:
        table.compare(
            f"your label_smoothing_cross_entropy vs lsce_scratch ({reduction})",
            lsce,
            reference_loss(z, y, eps, reduction=reduction),
            rtol=1e-12,
            uses="4.2",
        )

# %% The prose's target against the code's
table.step("3. Where the article's prose and its code disagree")
# --8<-- [start:prose]
prose = np.where(np.eye(K)[y] == 1, 1 - eps, eps)  # "1 − ε and ε", taken literally
code = smooth_labels(y, K, eps)  # what the article's code trains against
print(f"K = {K}, ε = {eps}")
print(
    f"prose: true class {1 - eps:.4f}, others {eps:.4f}, row sum {prose[0].sum():.4f}"
)
print(
    f"code:  true class {code[0, y[0]]:.4f}, others {eps / K:.4f}, "
    f"row sum {code[0].sum():.4f}"
)
# --8<-- [end:prose]

table.compare(
    "prose target sums to 1 + (K−2)ε, not 1",
    prose.sum(axis=-1),
    np.full(N, 1 + (K - 2) * eps),
    rtol=1e-14,
)
table.claim(
    "code gives the true class 1 − ε + ε/K, not 1 − ε",
    bool(np.allclose(code[np.arange(N), y], 1 - eps + eps / K, rtol=1e-15, atol=0)),
    f"{1 - eps + eps / K:.6f} vs prose {1 - eps:.6f}",
    uses="4.1",
)
table.claim(
    "code gives the others ε/K, not ε",
    bool(np.allclose(code[np.eye(K)[y] == 0], eps / K, rtol=1e-15, atol=0)),
    f"{eps / K:.6f} vs prose {eps:.6f}",
    uses="4.1",
)
# Even renormalised, the prose's target is not the code's: its loss differs.
prose_loss = -np.sum(
    prose / prose.sum(axis=-1, keepdims=True) * log_softmax(z), axis=-1
).mean()
article_loss = LabelSmoothingCrossEntropy(eps)(z_t, y_t).item()
table.claim(
    "article's loss ≠ CE against the (renormalised) prose target",
    abs(prose_loss - article_loss) > 0.1,
    f"{article_loss:.4f} vs {prose_loss:.4f}",
)

# %% fairseq's ε/(K − 1) is PyTorch's ε/K with ε' = εK/(K − 1)
table.step("4. The other convention: ε/(K − 1) on the wrong classes only")
# --8<-- [start:conventions]
others = smooth_labels(y, K, eps, spread="others")
# ε' = εK/(K − 1)
eps_prime = eps * K / (K - 1)
rescaled = smooth_labels(y, K, eps_prime, spread="all")
print(f"ε = {eps} spread over the others = ε' = {eps_prime:.6f} spread over all")
print(
    "K = 2, ε = 0.1:",
    smooth_labels(np.array([0]), 2, 0.1, spread="others")[0],
    "(others)",
    smooth_labels(np.array([0]), 2, 0.1)[0],
    "(all)",
)
# fairseq's loss: (1 − ε − ε/(K−1))·nll + ε/(K−1)·Σ_k(−log p_k)
log_p = log_softmax(z)
nll = -log_p[np.arange(N), y]
fairseq = ((1 - eps - eps / (K - 1)) * nll + eps / (K - 1) * -log_p.sum(axis=-1)).mean()
# --8<-- [end:conventions]

table.compare(
    "spread='others' with ε = spread='all' with ε' = εK/(K−1)",
    others,
    rescaled,
    rtol=1e-14,
    uses="4.1",
)
table.compare(
    "fairseq's ε/(K−1) loss = F.cross_entropy(label_smoothing=ε')",
    fairseq,
    F.cross_entropy(z_t, y_t, label_smoothing=eps_prime).numpy(),
    rtol=1e-13,
)
table.compare(
    "K = 2: ε/(K−1) target [0.9, 0.1], ε/K target [0.95, 0.05]",
    np.stack(
        [
            smooth_labels(np.array([0]), 2, 0.1, spread="others")[0],
            smooth_labels(np.array([0]), 2, 0.1)[0],
        ]
    ),
    np.array([[0.9, 0.1], [0.95, 0.05]]),
    rtol=1e-15,
    uses="4.1",
)

# %% CE(q, p) = KL(q‖p) + H(q)
table.step("5. CE(q, p) = KL(q‖p) + H(q): the loss has a floor")
# --8<-- [start:kl]
q = smooth_labels(y, K, eps)
p = softmax(z)
# H(q) = −Σ_k q_k log q_k
entropy = -np.sum(q * np.log(q), axis=-1)
# KL(q‖p) = Σ_k q_k (log q_k − log p_k)
kl = np.sum(q * (np.log(q) - log_softmax(z)), axis=-1)
ce = label_smoothing_cross_entropy(z, y, eps, reduction="none")
# at z = log q the model predicts p = q, KL = 0, and the loss is H(q)
at_floor = label_smoothing_cross_entropy(np.log(q), y, eps, reduction="none")
# --8<-- [end:kl]

table.compare(
    "CE(q, p) = KL(q‖p) + H(q)", ce, kl + entropy, rtol=1e-13, uses=("4.1", "4.2")
)
table.claim(
    "KL(q‖p) ≥ 0, so CE ≥ H(q)", bool(np.all(kl >= 0)), f"min KL {kl.min():.3f}"
)
table.compare(
    "loss at z = log q equals H(q)", at_floor, entropy, rtol=1e-14, uses="4.2"
)
_, floor_cache = lsce_forward(np.log(q), y, eps)
floor_grad = lsce_backward(1.0, floor_cache)
table.claim(
    "gradient p − q vanishes at z = log q",
    float(np.abs(floor_grad).max()) < 1e-17,
    f"max |∂L/∂z| = {np.abs(floor_grad).max():.1e}",
    uses="4.1",
)

# %% The loss against the logit gap d, from the loss values alone
table.step("6. The loss against the logit gap")
# The numbers and the figure from here on must be right:
# yours while it agreed, else the library's.
label_smoothing_cross_entropy = table.trusted(
    "4.2", label_smoothing_cross_entropy, reference_loss
)
smooth_labels = table.trusted("4.1", smooth_labels, reference_smooth_labels)


# --8<-- [start:gap]
def gap_logits(d: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows [d, 0, …, 0]: class 0 (the true class) leads the others by d."""
    rows = np.zeros((np.size(d), num_classes))
    rows[:, 0] = d
    return rows


def loss_at_gap(d: np.ndarray, num_classes: int, epsilon: float) -> np.ndarray:
    """ℓ(d) for each gap, from the loss function itself (reduction='none')."""
    d = np.atleast_1d(d)
    target = np.zeros(d.size, dtype=np.int64)
    return label_smoothing_cross_entropy(
        gap_logits(d, num_classes), target, epsilon, reduction="none"
    )


def golden_section(
    f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-9
) -> float:
    """Minimise a unimodal f on [lo, hi] with loss values only."""
    ratio = (np.sqrt(5) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = f(a), f(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


# --8<-- [end:gap]


def slope_at_gap(d: float, num_classes: int, epsilon: float) -> float:
    """∂ℓ/∂d: the true-class entry of lsce_backward (the other logits are held at 0)."""
    _, cache = lsce_forward(
        gap_logits(d, num_classes), np.array([0]), epsilon, reduction="sum"
    )
    return float(lsce_backward(1.0, cache)[0, 0])


def bisect_slope(
    num_classes: int, epsilon: float, lo: float = 0.0, hi: float = 40.0
) -> float:
    """The zero of ∂ℓ/∂d (negative below d*, positive above) by bisection."""
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slope_at_gap(mid, num_classes, epsilon) < 0 else (lo, mid)
    return (lo + hi) / 2


# %% d* three ways: the formula, golden section on ℓ, bisection on ∂ℓ/∂d
# --8<-- [start:gap-check]
K, eps = 37, 0.1
d_star = optimal_logit_gap(K, eps)
d_golden = golden_section(lambda d: float(loss_at_gap(d, K, eps)[0]), 0.0, 40.0)
d_bisect = bisect_slope(K, eps)
q_y = 1 - eps + eps / K
# H(q) = −q_y log q_y − (K − 1)(ε/K) log(ε/K)
floor = -q_y * np.log(q_y) - (K - 1) * (eps / K) * np.log(eps / K)
print(f"d* = ln(1 + K(1−ε)/ε) = ln {1 + K * (1 - eps) / eps:.0f} = {d_star:.6f}")
print(f"golden section on ℓ: {d_golden:.6f}   bisection on ∂ℓ/∂d: {d_bisect:.10f}")
print(f"ℓ(d*) = {float(loss_at_gap(d_star, K, eps)[0]):.6f}   H(q) = {floor:.6f}")
print(f"p_y(d*) = {softmax(gap_logits(d_star, K))[0, 0]:.6f}   1 − ε + ε/K = {q_y:.6f}")
# --8<-- [end:gap-check]

table.compare(
    "K = 37, ε = 0.1: d* = ln 334 = 5.8111", d_star, np.log(334.0), rtol=1e-15
)
table.claim(
    "golden section on the loss finds d*",
    abs(d_golden - d_star) < 1e-6,
    f"{d_golden:.8f} vs {d_star:.8f}",
    uses="4.2",
)
table.claim(
    "bisection on ∂ℓ/∂d (lsce_backward) finds d*",
    abs(d_bisect - d_star) < 1e-10,
    f"{d_bisect:.12f} vs {d_star:.12f}",
)
table.compare(
    "minimum value ℓ(d*) = H(q) = 0.6678",
    loss_at_gap(d_star, K, eps)[0],
    floor,
    rtol=1e-13,
    uses="4.2",
)
table.claim(
    "H(q) = 0.6678 for K = 37, ε = 0.1", abs(floor - 0.6678) < 5e-5, f"{floor:.6f}"
)
table.compare(
    "max confidence p_y(d*) = 1 − ε + ε/K",
    softmax(gap_logits(d_star, K))[0, 0],
    q_y,
    rtol=1e-14,
)

# %% Left: ℓ(d) for several ε at K = 37. Right: d* against ε for several K
table.step("7. The picture, and d* for other K and ε")
epsilons = (0.0, 0.05, 0.1, 0.2, 0.4)
gaps = np.linspace(-2.0, 16.0, 91 if quick_mode() else 721)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
for i, e in enumerate(epsilons):
    curve = loss_at_gap(gaps, K, e)
    left.plot(gaps, curve, color=f"C{i}", label=f"ε = {e}")
    if e == 0:
        table.claim(
            "ε = 0: ℓ(d) strictly decreases, no minimum",
            bool(np.all(np.diff(curve) < 0)),
            f"ℓ(16) = {curve[-1]:.1e}",
            uses="4.2",
        )
        continue
    d_e = optimal_logit_gap(K, e)
    # floor H(q) with q_y = 1 − ε + ε/K
    q_e = smooth_labels(np.array([0]), K, e)[0]
    floor_e = -np.sum(q_e * np.log(q_e))
    left.plot([d_e], [floor_e], "o", color=f"C{i}")
    left.axhline(floor_e, color=f"C{i}", lw=0.6, ls=":")
    left.annotate(
        f"d* = {d_e:.2f}, H(q) = {floor_e:.2f}",
        (d_e, floor_e),
        xytext=(6, -14),
        textcoords="offset points",
        fontsize=8,
        color=f"C{i}",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
    )
    # the grid minimum is next to d* and no grid value goes below the floor
    table.claim(
        f"ε = {e}: grid minimum next to d* = {d_e:.3f}, never below H(q)",
        abs(gaps[np.argmin(curve)] - d_e) <= gaps[1] - gaps[0]
        and curve.min() >= floor_e - 1e-12,
        f"grid argmin {gaps[np.argmin(curve)]:.3f}, min "
        f"{curve.min():.6f} ≥ H(q) {floor_e:.6f}",
        uses="4.2",
    )
left.set(
    xlabel="logit gap d = z_y − z_other",
    ylabel="ℓ(d)",
    ylim=(0, 4),
    title=f"ℓ(d), K = {K}: minimum at d* = ln(1 + K(1−ε)/ε), value H(q)",
)
left.legend()

eps_line = np.logspace(-3, np.log10(0.95), 200)
eps_marks = (
    (0.01, 0.1, 0.5) if quick_mode() else (0.003, 0.01, 0.03, 0.1, 0.2, 0.5, 0.8)
)
worst = 0.0
for i, k in enumerate((2, 10, 37, 1000)):
    right.semilogx(
        eps_line,
        [optimal_logit_gap(k, e) for e in eps_line],
        color=f"C{i}",
        label=f"K = {k}",
    )
    found = [
        golden_section(
            lambda d, k=k, e=e: float(loss_at_gap(d, k, e)[0]), -5.0, 40.0, 1e-7
        )
        for e in eps_marks
    ]
    right.semilogx(eps_marks, found, "x", color=f"C{i}")
    worst = max(
        worst,
        max(
            abs(f - optimal_logit_gap(k, e))
            for f, e in zip(found, eps_marks, strict=True)
        ),
    )
right.set(
    xlabel="ε",
    ylabel="optimal gap d*",
    title="d* = ln(1 + K(1−ε)/ε): line; minimiser: ×",
)
right.legend()
save_figure(fig, "04_loss_vs_gap.png")
table.claim(
    "golden section = ln(1 + K(1−ε)/ε) for K ∈ {2, 10, 37, 1000}",
    worst < 1e-5,
    f"worst |Δd| {worst:.1e} over {4 * len(eps_marks)} (K, ε) pairs",
    uses="4.2",
)
# the page quotes these numbers of the run
save_run_output(
    "04_results.json",
    {
        "d_golden": d_golden,
        "d_bisect": d_bisect,
        "gap_worst_error": worst,
        "gap_pairs": 4 * len(eps_marks),
    },
)

# %%
raise SystemExit(table.finish())

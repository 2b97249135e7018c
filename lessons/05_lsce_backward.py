# %% [markdown]
# # Lesson 05: the LSCE backward pass
#
# For one row with logits z, p = softmax(z) and a target distribution q (Σ_k q_k = 1):
#
#     ℓ = −Σ_k q_k log p_k,    ∂ℓ/∂z_j = p_j − q_j.
#
# With PyTorch's class weights w the row loss is ℓ = −Σ_k r_k log p_k with r = w ⊙ q, and
# ∂ℓ/∂z_j = S·p_j − r_j, S = Σ_k r_k. This lesson checks that gradient through every
# reduction, with class weights, ignore_index, soft targets and classes on the last axis of
# an N-d input, against PyTorch's autograd and central differences in float64. Then it
# shows why the obvious float32 code loses the true-class gradient of a confident
# prediction, and the fix `lsce_backward` uses. Exercises 5.1–5.4 rebuild `lsce_forward`
# and `lsce_backward` step by step.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.report import CheckTable, console, quick_mode, save_figure
from lsce_scratch.gradcheck import numerical_gradient, rel_error, verdict
from lsce_scratch.losses import lsce_backward as reference_backward
from lsce_scratch.losses import lsce_forward as reference_forward
from lsce_scratch.losses import smooth_labels
from lsce_scratch.softmax import softmax

rng = np.random.default_rng(5)
table = CheckTable("Lesson 05: the LSCE backward pass")

# A backward reads the cache of its own forward: yours with yours, the reference's with its own.
pair = exercises.choose_pair("5.1", "5.2", console)
lsce_forward, lsce_backward, forward_for_backward = (
    pair.forward,
    pair.backward,
    pair.backward_forward,
)
yours_backward = pair.yours_backward


# --8<-- [start:torch-reference]
def torch_reference(
    z: np.ndarray,
    target: np.ndarray,
    epsilon: float,
    reduction: str = "mean",
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    dloss: float | np.ndarray = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and ∂loss/∂z from F.cross_entropy and autograd in float64, classes on the last axis."""
    z_t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    w_t = None if weight is None else torch.from_numpy(np.asarray(weight, dtype=np.float64))
    loss = F.cross_entropy(
        torch.movedim(z_t, -1, 1) if z.ndim > 2 else z_t,
        torch.from_numpy(np.asarray(target)),
        weight=w_t,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=epsilon,
    )
    loss.backward(torch.as_tensor(dloss, dtype=torch.float64))
    return loss.detach().numpy(), z_t.grad.numpy()


# --8<-- [end:torch-reference]


# --8<-- [start:ours]
def ours(
    z: np.ndarray,
    target: np.ndarray,
    epsilon: float,
    dloss: float | np.ndarray = 1.0,
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss from lsce_forward and gradient from lsce_backward (each with its own cache)."""
    loss, _ = lsce_forward(z, target, epsilon, **options)
    _, cache = forward_for_backward(z, target, epsilon, **options)
    return loss, lsce_backward(dloss, cache)


# --8<-- [end:ours]


# %% [markdown]
# ## 1. ∂ℓ/∂z = p − q, checked three ways
#
# N = 6 rows of K = 7 logits, ε = 0.1, reduction "mean": ∂L/∂z_i = (p_i − q_i)/N.

# %%
# --8<-- [start:p-minus-q]
N, K, eps = 6, 7, 0.1
z = rng.normal(size=(N, K)) * np.array([0.3, 1.0, 2.0, 4.0, 8.0, 20.0])[:, None]
y = rng.integers(0, K, size=N)

loss, grad = ours(z, y, eps)
# ∂L/∂z_i = (p_i − q_i) / N
by_hand = (softmax(z) - smooth_labels(y, K, eps)) / N
torch_loss, torch_grad = torch_reference(z, y, eps)
numeric = numerical_gradient(lambda x: float(lsce_forward(x, y, eps)[0]), z)
print(f"rel_error vs numerical: {rel_error(grad, numeric):.1e}")
# --8<-- [end:p-minus-q]

table.compare("loss vs F.cross_entropy", loss, torch_loss, rtol=1e-14, uses="5.1")
# p − q is rounded to a few ulps of 1 (1e-16) where p_k ≈ q_k; lesson 03 explains the atol
table.compare("∂L/∂z = (p − q)/N", grad, by_hand, rtol=1e-12, atol=1e-16, uses="5.2")
table.compare("∂L/∂z vs torch autograd", grad, torch_grad, rtol=1e-12, atol=1e-16, uses="5.2")
table.claim(
    "∂L/∂z vs numerical gradient passes (≤ 1e-7)",
    verdict(rel_error(grad, numeric)) == "pass",
    f"rel_error {rel_error(grad, numeric):.1e}",
    uses="5.2",
)

# %% [markdown]
# ## 2. Reductions: where the 1/N goes
#
# "sum" adds the rows, so row i's gradient is p_i − q_i. "mean" divides by N (without
# weights). "none" returns the N row losses; the upstream gradient is then a vector g of
# N numbers and row i's gradient is g_i·(p_i − q_i). The same holds with classes on the last
# axis of an N-d input: every position is a row.

# %%
# --8<-- [start:reductions]
upstream = {"mean": 1.0, "sum": 1.0, "none": rng.normal(size=N)}
for reduction, g in upstream.items():
    loss, grad = ours(z, y, eps, dloss=g, reduction=reduction)
    torch_loss, torch_grad = torch_reference(z, y, eps, reduction, dloss=g)
    # --8<-- [end:reductions]
    table.compare(f"{reduction}: loss vs torch", loss, torch_loss, rtol=1e-14, uses="5.1")
    table.compare(
        f"{reduction}: gradient vs torch",
        grad,
        torch_grad,
        rtol=1e-12,
        atol=1e-16,
        uses="5.2",
    )

z3 = rng.normal(size=(2, 3, K)) * 4  # (batch, positions, K): classes on the last axis
y3 = rng.integers(0, K, size=(2, 3))
for reduction in ("mean", "none"):
    g = 1.0 if reduction == "mean" else rng.normal(size=(2, 3))
    loss, grad = ours(z3, y3, eps, dloss=g, reduction=reduction)
    torch_loss, torch_grad = torch_reference(z3, y3, eps, reduction, dloss=g)
    table.compare(
        f"(2, 3, K) input, {reduction}: loss and gradient vs torch",
        np.concatenate([np.ravel(loss), grad.ravel()]),
        np.concatenate([np.ravel(torch_loss), torch_grad.ravel()]),
        rtol=1e-12,
        atol=1e-16,
        uses="5.2",
    )

# %% [markdown]
# ## 3. Class weights and ignore_index, PyTorch's way (exercise 5.3)
#
# PyTorch weights every class term of the smoothed loss: ℓ_i = −Σ_k w_k q_ik log p_ik. With
# r = w ⊙ q and S = Σ_k r_k the gradient of a row is S·p − r. "mean" divides by
# Σ_i w_{y_i} over the rows that are not ignored, not by N. Rows whose target is
# ignore_index (−100) contribute nothing, to the loss or the gradient; if every row is
# ignored, the mean is 0/0 = NaN.

# %%
# 5.3 extends the same two functions; this says whose are in use
exercises.choose("5.3", console)
# --8<-- [start:weights]
w = rng.uniform(0.2, 3.0, size=K)
y_ignored = y.copy()
y_ignored[[1, 4]] = -100  # two rows are ignored
for reduction in ("mean", "sum", "none"):
    g = 1.0 if reduction != "none" else rng.normal(size=N)
    loss, grad = ours(z, y_ignored, eps, dloss=g, reduction=reduction, weight=w)
    torch_loss, torch_grad = torch_reference(z, y_ignored, eps, reduction, w, dloss=g)
    # --8<-- [end:weights]
    table.compare(
        f"weight + ignore_index, {reduction}: loss vs torch",
        loss,
        torch_loss,
        rtol=1e-14,
        uses="5.3",
    )
    table.compare(
        f"weight + ignore_index, {reduction}: gradient vs torch",
        grad,
        torch_grad,
        rtol=1e-12,
        atol=1e-16,
        uses="5.3",
    )

# the gradient by hand: rows (S·p − r) / Σ_valid w_y, ignored rows 0
q = smooth_labels(np.where(y_ignored == -100, 0, y_ignored), K, eps)
valid = (y_ignored != -100)[:, None]
# r = w ⊙ q on the rows that count
r = np.where(valid, w * q, 0.0)
# mean: Σ_i w_{y_i} over the rows that count
denominator = w[y_ignored[y_ignored != -100]].sum()
by_hand = (r.sum(axis=-1, keepdims=True) * softmax(z) - r) / denominator
_, grad = ours(z, y_ignored, eps, weight=w)
table.compare("weighted mean: (S·p − r) / Σ w_y", grad, by_hand, rtol=1e-12, atol=1e-16, uses="5.3")
numeric = numerical_gradient(lambda x: float(lsce_forward(x, y_ignored, eps, weight=w)[0]), z)
table.claim(
    "weighted, ignored rows: numerical gradient passes",
    verdict(rel_error(grad, numeric)) == "pass",
    f"rel_error {rel_error(grad, numeric):.1e}",
    uses="5.3",
)
all_ignored = np.full(N, -100)
loss, grad = ours(z, all_ignored, eps, weight=w)
torch_loss, torch_grad = torch_reference(z, all_ignored, eps, "mean", w)
table.compare("all rows ignored: mean is NaN, as in torch", loss, torch_loss, uses="5.3")
table.compare("all rows ignored: gradient as in torch", grad, torch_grad, uses="5.3")

# %% [markdown]
# The weighted loss has a surprising optimum. Its gradient S·p − r vanishes at p* = r/S,
# not at q: K = 2, ε = 0.1, y = 0, w = [1, 100] gives r = [0.95, 5] and p* = [0.16, 0.84],
# so the loss trains the model to put 84 % on the wrong class.

# %%
# --8<-- [start:weighted-optimum]
w2, y2 = np.array([1.0, 100.0]), np.array([0])
# r = w ⊙ q = [1·0.95, 100·0.05]
r2 = w2 * smooth_labels(y2, 2, 0.1)
p_star = r2 / r2.sum()
print(f"p* = r/S = {np.round(p_star[0], 4)}")
_, grad_at_p_star = ours(np.log(p_star), y2, 0.1, weight=w2)
# --8<-- [end:weighted-optimum]
table.compare(
    "K = 2, w = [1, 100]: p* = [0.16, 0.84]", p_star[0], [0.95 / 5.95, 5 / 5.95], rtol=1e-14
)
table.claim(
    "gradient vanishes at z = log p*, not at z = log q",
    float(np.abs(grad_at_p_star).max()) < 1e-15
    and float(np.abs(torch_reference(np.log(p_star), y2, 0.1, weight=w2)[1]).max()) < 1e-15,
    f"max |∂L/∂z| {np.abs(grad_at_p_star).max():.1e} (torch agrees)",
    uses="5.3",
)
if yours_backward:
    loss, grad = ours(z, y_ignored, eps, weight=w)
    _, ref_cache = reference_forward(z, y_ignored, eps, weight=w)
    table.compare(
        "weight + ignore_index: your gradient vs lsce_scratch",
        grad,
        reference_backward(1.0, ref_cache),
        rtol=1e-12,
        atol=1e-16,
        uses="5.3",
    )

# %% [markdown]
# ## 4. Soft targets
#
# A target can be a probability distribution t per row (mixup, distillation). PyTorch
# smooths it too, q = (1 − ε)·t + ε/K, and "mean" divides by N even with class weights.
# The same gradient S·p − r applies. Exercise 5.1 covers index targets only, so this
# section uses the reference `lsce_forward` / `lsce_backward`.

# %%
# --8<-- [start:soft]
t = rng.dirichlet(np.ones(K) * 0.5, size=N)  # (N, K), rows sum to 1
for weight in (None, w):
    loss, cache = reference_forward(z, t, eps, weight=weight)
    grad = reference_backward(1.0, cache)
    torch_loss, torch_grad = torch_reference(z, t, eps, "mean", weight)
    # --8<-- [end:soft]
    name = "soft targets" + ("" if weight is None else " + weight")
    table.compare(f"{name}: loss vs torch", loss, torch_loss, rtol=1e-14)
    table.compare(f"{name}: gradient vs torch", grad, torch_grad, rtol=1e-12, atol=1e-16)
q_soft = (1 - eps) * t + eps / K
table.compare(
    "soft targets: ∂L/∂z = (p − q)/N",
    reference_backward(1.0, reference_forward(z, t, eps)[1]),
    (softmax(z) - q_soft) / N,
    rtol=1e-12,
    atol=1e-16,
)

# %% [markdown]
# ## 5. float32 and a confident prediction (exercise 5.4)
#
# Plain cross-entropy (ε = 0), K = 10, the true logit d ahead of nine zeros, chosen so
# that p_y = 1 − δ. The true-class gradient is p_y − 1 = −δ. In float32, p_y is a number
# next to 1, where the spacing of float32 is 2^−24 ≈ 6e-8: computing p_y and then
# subtracting 1 keeps only the rounding error once δ is that small. The relative error of
# the naive p_y − 1 grows like 6e-8/δ, and once p_y rounds to 1 the gradient is exactly 0.
#
# The fix: 1 − p_y = Σ_{k≠y} p_k, and every p_k of a wrong class is a small number that
# float32 holds to full relative precision. `lsce_backward` does this at the most likely
# class m of every row (with weights and smoothing: S·p_m − r_m = Σ_{k≠m} r_k − S·Σ_{k≠m} p_k),
# where p_m > 1/2; on a flatter row that form cancels instead, and the plain one is kept.

# %%
# 5.4 makes the same lsce_backward robust; this says whose is in use
exercises.choose("5.4", console)
# --8<-- [start:float32]
K = 10
deltas = np.logspace(-1, -8, 15 if quick_mode() else 57)
# p_y = e^d / (e^d + K − 1) = 1 − δ  ⟺  d = ln((K − 1)(1 − δ)/δ)
z32 = np.zeros((len(deltas), K), dtype=np.float32)
z32[:, 0] = np.log((K - 1) * (1 - deltas) / deltas)
y32 = np.zeros(len(deltas), dtype=np.int64)

# float64 truth for the float32 logits: 1 − p_y = (K − 1)/(e^d + K − 1)
d64 = z32[:, 0].astype(np.float64)
exact = -(K - 1) / (np.exp(d64) + K - 1)
# naive float32: p_y − 1
naive = softmax(z32)[:, 0] - np.float32(1.0)
# lsce_backward in float32 (reduction "sum", so the row gradient is p − q itself)
_, cache32 = forward_for_backward(z32, y32, 0.0, reduction="sum")
grad32 = lsce_backward(np.float32(1.0), cache32)
fixed = grad32[:, 0]
# --8<-- [end:float32]

z32_t = torch.tensor(z32, requires_grad=True)
F.cross_entropy(z32_t, torch.from_numpy(y32), reduction="sum").backward()
torch32 = z32_t.grad.numpy()[:, 0]


def relative(a: np.ndarray) -> np.ndarray:
    """|a − exact| / |exact| in float64."""
    return np.abs(a.astype(np.float64) - exact) / np.abs(exact)


for i in range(0, len(deltas), max(1, len(deltas) // 8)):
    console.print(
        f"δ = {deltas[i]:.0e}: naive {relative(naive)[i]:.1e}, lsce_backward "
        f"{relative(fixed)[i]:.1e}, torch float32 {relative(torch32)[i]:.1e}"
    )

_, cache64 = reference_forward(z32.astype(np.float64), y32, 0.0, reduction="sum")
grad64 = reference_backward(1.0, cache64)
down_to_1e6 = deltas >= 1e-6 * (1 - 1e-9)
row_errors = np.array([rel_error(grad32[i], grad64[i]) for i in range(len(deltas))])
table.claim(
    "float32 lsce_backward within 1e-3 of float64 down to δ = 1e-6",
    bool(np.all(row_errors[down_to_1e6] <= 1e-3)),
    f"worst row rel_error {row_errors[down_to_1e6].max():.1e}",
    uses="5.4",
)
table.claim(
    "… and its true-class entry within 1e-5 down to δ = 1e-8",
    bool(np.all(relative(fixed) <= 1e-5)),
    f"worst {relative(fixed).max():.1e}",
    uses="5.4",
)
table.claim(
    "naive float32 p_y − 1: error grows ~1000× from δ = 0.1 to δ = 1e-6",
    relative(naive)[np.argmin(np.abs(deltas - 1e-6))] > 1000 * relative(naive)[0],
    f"{relative(naive)[0]:.1e} → {relative(naive)[np.argmin(np.abs(deltas - 1e-6))]:.1e}",
)
# below δ ≈ 6e-8 (half the float32 spacing above 1), 1 + Σ_{k≠y} e^{z_k − d} rounds to 1
tiny = deltas <= 5e-8
table.claim(
    "naive float32, δ ≤ 5e-8: p_y is exactly 1, the gradient 0 (100 % error)",
    bool(np.all(softmax(z32)[tiny, 0] == 1) and np.all(naive[tiny] == 0)),
    f"{int(tiny.sum())} values of δ; lsce_backward still has {relative(fixed)[tiny].max():.1e}",
)
if yours_backward:
    _, ref_cache32 = reference_forward(z32, y32, 0.0, reduction="sum")
    table.compare(
        "your float32 lsce_backward vs lsce_scratch",
        grad32,
        reference_backward(np.float32(1.0), ref_cache32),
        rtol=1e-5,
        uses="5.4",
    )

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.loglog(deltas, np.maximum(relative(naive), 1e-9), "o-", ms=3, label="naive: p_y − 1 (float32)")
ax.loglog(
    deltas,
    np.maximum(relative(torch32), 1e-9),
    "s-",
    ms=3,
    alpha=0.7,
    label="torch autograd (float32, CPU)",
)
ax.loglog(
    deltas,
    np.maximum(relative(fixed), 1e-9),
    "^-",
    ms=3,
    label="lsce_backward: −Σ p_k over k ≠ y (float32)",
)
u32 = np.finfo(np.float32).eps / 2
ax.loglog(deltas, np.minimum(u32 / deltas, 1.0), "k:", lw=1, label="u/δ, u = 2⁻²⁴")
ax.axvline(1e-6, color="grey", lw=0.6, ls="--")
ax.invert_xaxis()
ax.set(
    xlabel="δ = 1 − p_y  (more confident →)",
    ylabel="relative error of ∂ℓ/∂z_y",
    ylim=(1e-9, 3),
    title="true-class gradient in float32, ε = 0, K = 10",
)
ax.legend(fontsize=8, loc="upper left")
save_figure(fig, "05_float32_cancellation.png")

# %%
raise SystemExit(table.finish())

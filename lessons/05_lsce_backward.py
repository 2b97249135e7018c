"""Lesson 05 · The LSCE backward pass: ∂ℓ/∂z = p − q through every reduction, class
weights, ignore_index and soft targets, and a float32 gradient that survives a confident
prediction. Its narrative is the page docs/lessons/05-lsce-backward.md."""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.report import (
    CheckTable,
    console,
    quick_mode,
    save_figure,
    save_run_output,
)
from lsce_scratch.gradcheck import numerical_gradient, rel_error, verdict
from lsce_scratch.losses import lsce_backward as reference_backward
from lsce_scratch.losses import lsce_forward as reference_forward
from lsce_scratch.losses import smooth_labels
from lsce_scratch.softmax import softmax

rng = np.random.default_rng(5)
table = CheckTable("Lesson 05: the LSCE backward pass")

# Your lsce_backward reads the cache of your lsce_forward, so the two run as a pair:
# yours once you have written both (5.1, 5.2), the library's until then.
pair = exercises.choose_pair("5.1", "5.2", console)
lsce_forward, lsce_backward = pair.forward, pair.backward
# 5.3 (weights, ignore_index) and 5.4 (float32) extend the same two functions
exercises.choose("5.3", console)
exercises.choose("5.4", console)


# %% Our loss and gradient, and PyTorch's
# --8<-- [start:ours]
def ours(
    z: np.ndarray,
    target: np.ndarray,
    epsilon: float,
    dloss: float | np.ndarray = 1.0,
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """The loss of lsce_forward, and the gradient lsce_backward
    computes from its cache."""
    loss, cache = lsce_forward(z, target, epsilon, **options)
    if pair.backward_forward is not lsce_forward:
        # your forward (5.1) without your backward yet: the library's backward reads the
        # library's cache
        _, cache = pair.backward_forward(z, target, epsilon, **options)
    return loss, lsce_backward(dloss, cache)


# --8<-- [end:ours]


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
    """Loss and ∂loss/∂z from F.cross_entropy and autograd in float64, classes
    on the last axis."""
    z_t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    w_t = (
        None
        if weight is None
        else torch.from_numpy(np.asarray(weight, dtype=np.float64))
    )
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


# %% ∂L/∂z = (p − q)/N against the formula, autograd and central differences
table.step("1. ∂ℓ/∂z = p − q")
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
# p − q is rounded to a few ulps of 1 (1e-16) where p_k ≈ q_k;
# lesson 03 explains the atol
table.compare("∂L/∂z = (p − q)/N", grad, by_hand, rtol=1e-12, atol=1e-16, uses="5.2")
table.compare(
    "∂L/∂z vs torch autograd", grad, torch_grad, rtol=1e-12, atol=1e-16, uses="5.2"
)
table.claim(
    "∂L/∂z vs numerical gradient passes (≤ 1e-7)",
    verdict(rel_error(grad, numeric)) == "pass",
    f"rel_error {rel_error(grad, numeric):.1e}",
    uses="5.2",
)

# %% Every reduction, with its upstream gradient g
table.step("2. Reductions: where the 1/N goes")
# --8<-- [start:reductions]
upstream = {"mean": 1.0, "sum": 1.0, "none": rng.normal(size=N)}
for reduction, g in upstream.items():
    loss, grad = ours(z, y, eps, dloss=g, reduction=reduction)
    torch_loss, torch_grad = torch_reference(z, y, eps, reduction, dloss=g)
    # --8<-- [end:reductions]
    table.compare(
        f"{reduction}: loss vs torch", loss, torch_loss, rtol=1e-14, uses="5.1"
    )
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

# %% Class weights and ignored rows, against PyTorch
table.step("3. Class weights and ignore_index, PyTorch's way")
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
table.compare(
    "weighted mean: (S·p − r) / Σ w_y",
    grad,
    by_hand,
    rtol=1e-12,
    atol=1e-16,
    uses="5.3",
)
numeric = numerical_gradient(
    lambda x: float(lsce_forward(x, y_ignored, eps, weight=w)[0]), z
)
table.claim(
    "weighted, ignored rows: numerical gradient passes",
    verdict(rel_error(grad, numeric)) == "pass",
    f"rel_error {rel_error(grad, numeric):.1e}",
    uses="5.3",
)
all_ignored = np.full(N, -100)
loss, grad = ours(z, all_ignored, eps, weight=w)
torch_loss, torch_grad = torch_reference(z, all_ignored, eps, "mean", w)
table.compare(
    "all rows ignored: mean is NaN, as in torch", loss, torch_loss, uses="5.3"
)
table.compare("all rows ignored: gradient as in torch", grad, torch_grad, uses="5.3")

# %% The weighted loss is smallest at p* = r/S, not at q
# --8<-- [start:weighted-optimum]
w2, y2 = np.array([1.0, 100.0]), np.array([0])
# r = w ⊙ q = [1·0.95, 100·0.05]
r2 = w2 * smooth_labels(y2, 2, 0.1)
p_star = r2 / r2.sum()
print(f"p* = r/S = {np.round(p_star[0], 4)}")
_, grad_at_p_star = ours(np.log(p_star), y2, 0.1, weight=w2)
# --8<-- [end:weighted-optimum]
table.compare(
    "K = 2, w = [1, 100]: p* = [0.16, 0.84]",
    p_star[0],
    [0.95 / 5.95, 5 / 5.95],
    rtol=1e-14,
)
table.claim(
    "gradient vanishes at z = log p*, not at z = log q",
    float(np.abs(grad_at_p_star).max()) < 1e-15
    and float(np.abs(torch_reference(np.log(p_star), y2, 0.1, weight=w2)[1]).max())
    < 1e-15,
    f"max |∂L/∂z| {np.abs(grad_at_p_star).max():.1e} (torch agrees)",
    uses="5.3",
)
if pair.yours_backward:
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

# %% Probability targets (the library's pair: exercise 5.1 takes class indices only)
table.step("4. Soft targets")
# --8<-- [start:soft]
t = rng.dirichlet(np.ones(K) * 0.5, size=N)  # (N, K), rows sum to 1
for weight in (None, w):
    loss, cache = reference_forward(z, t, eps, weight=weight)
    grad = reference_backward(1.0, cache)
    torch_loss, torch_grad = torch_reference(z, t, eps, "mean", weight)
    # --8<-- [end:soft]
    name = "soft targets" + ("" if weight is None else " + weight")
    table.compare(f"{name}: loss vs torch", loss, torch_loss, rtol=1e-14)
    table.compare(
        f"{name}: gradient vs torch", grad, torch_grad, rtol=1e-12, atol=1e-16
    )
q_soft = (1 - eps) * t + eps / K
table.compare(
    "soft targets: ∂L/∂z = (p − q)/N",
    reference_backward(1.0, reference_forward(z, t, eps)[1]),
    (softmax(z) - q_soft) / N,
    rtol=1e-12,
    atol=1e-16,
)

# %% The true-class gradient of a confident row in float32
table.step("5. float32 and a confident prediction")
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
_, grad32 = ours(z32, y32, 0.0, dloss=np.float32(1.0), reduction="sum")
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
at_1e6 = np.argmin(np.abs(deltas - 1e-6))
table.claim(
    "naive float32 p_y − 1: error grows ~1000× from δ = 0.1 to δ = 1e-6",
    relative(naive)[at_1e6] > 1000 * relative(naive)[0],
    f"{relative(naive)[0]:.1e} → {relative(naive)[at_1e6]:.1e}",
)
# below δ ≈ 6e-8 (half the float32 spacing above 1), 1 + Σ_{k≠y} e^{z_k − d} rounds to 1
tiny = deltas <= 5e-8
table.claim(
    "naive float32, δ ≤ 5e-8: p_y is exactly 1, the gradient 0 (100 % error)",
    bool(np.all(softmax(z32)[tiny, 0] == 1) and np.all(naive[tiny] == 0)),
    f"{int(tiny.sum())} values of δ; lsce_backward still has "
    f"{relative(fixed)[tiny].max():.1e}",
)
if pair.yours_backward:
    _, ref_cache32 = reference_forward(z32, y32, 0.0, reduction="sum")
    table.compare(
        "your float32 lsce_backward vs lsce_scratch",
        grad32,
        reference_backward(np.float32(1.0), ref_cache32),
        rtol=1e-5,
        uses="5.4",
    )
# the page quotes these numbers of the run
save_run_output(
    "05_results.json",
    {
        "torch_version": torch.__version__,
        "naive_error_delta_1e6": float(relative(naive)[at_1e6]),
        "torch_error_delta_1e6": float(relative(torch32)[at_1e6]),
        "fixed_worst_error": float(relative(fixed).max()),
        "naive_zero_count": int(tiny.sum()),
    },
)

# %% Relative error of the true-class gradient against δ
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.loglog(
    deltas,
    np.maximum(relative(naive), 1e-9),
    "o-",
    ms=3,
    label="naive: p_y − 1 (float32)",
)
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

# Lesson 03 · Cross-entropy: the code and the checks. The narrative is the
# page docs/lessons/03-cross-entropy.md. Run:
# python lessons/03_cross_entropy.py (or lsce run 3).

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
from lsce_scratch.losses import cross_entropy_backward as reference_backward
from lsce_scratch.losses import cross_entropy_forward as reference_forward
from lsce_scratch.softmax import log_softmax, softmax

rng = np.random.default_rng(3)
table = CheckTable("Lesson 03 · Cross-entropy")

# yours once you have started exercises 3.1 and 3.2, else the library's. A backward
# reads the cache of its own forward: yours with yours, the reference's with its own.
pair = exercises.choose_pair("3.1", "3.2", console)
cross_entropy_forward, cross_entropy_backward = pair.forward, pair.backward
forward_for_backward = pair.backward_forward

# %% The forward pass
table.step("1. The forward pass")

# --8<-- [start:forward]
N, K = 8, 5
# rows scaled from 0.1 to 50: some confident, some of those confidently wrong
scales = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 50.0])
z = rng.normal(size=(N, K)) * scales[:, None]  # float64
y = rng.integers(0, K, size=N)

loss, cache = cross_entropy_forward(z, y)
# ℓ_i = −log p_{i,y_i}, picked out of the stable log-softmax
by_hand = -log_softmax(z)[np.arange(N), y]
# --8<-- [end:forward]
# --8<-- [start:forward-torch]
torch_loss = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y))
# --8<-- [end:forward-torch]
print(
    f"loss {float(loss):.6f}   torch {torch_loss.item():.6f}   per "
    f"row {np.round(by_hand, 3)}"
)

table.compare(
    "CE forward vs F.cross_entropy (float64)",
    loss,
    torch_loss.numpy(),
    rtol=1e-14,
    uses="3.1",
)
table.compare(
    "CE forward = mean of −log p_y", loss, by_hand.mean(), rtol=1e-14, uses="3.1"
)

# %% Uniform logits
table.step("2. A sanity check: uniform logits give log K")

# --8<-- [start:uniform]
for k in (2, 5, 10, 37):
    uniform = np.full((4, k), 1.0) * rng.normal(size=(4, 1)) * 100  # each row constant
    sanity, _ = cross_entropy_forward(uniform, rng.integers(0, k, size=4))
    print(f"K = {k:2d}: loss {float(sanity):.6f}   log K = {np.log(k):.6f}")
    table.compare(
        f"uniform logits, K = {k}: loss = log K",
        sanity,
        np.log(k),
        rtol=1e-14,
        uses="3.1",
    )
small_init = rng.normal(size=(64, 10)) * 0.01
first_loss, _ = cross_entropy_forward(small_init, rng.integers(0, 10, size=64))
# --8<-- [end:uniform]
table.claim(
    "small random logits: loss ≈ log 10",
    abs(float(first_loss) - np.log(10)) < 0.02,
    f"{float(first_loss):.4f} vs log 10 = {np.log(10):.4f}",
    uses="3.1",
)

# %% The gradient, one piece at a time
table.step("3. The gradient, one piece at a time")

# --8<-- [start:atomised]
row, target = z[3], y[3]
p = softmax(row)
# J_kj = ∂p_k/∂z_j = p_k (1[k = j] − p_j)
jacobian = np.diag(p) - np.outer(p, p)
# ∂ℓ/∂p_k = −1[k = y] / p_y
dl_dp = np.where(np.arange(K) == target, -1.0 / p[target], 0.0)
# ∂ℓ/∂z_j = Σ_k (∂ℓ/∂p_k) J_kj
atomised = dl_dp @ jacobian
# the fused formula: p − onehot(y)
fused = p - np.eye(K)[target]
# --8<-- [end:atomised]

numeric_jacobian = np.stack(
    [numerical_gradient(lambda x, k=k: softmax(x)[k], row) for k in range(K)]
)
jacobian_error = rel_error(jacobian, numeric_jacobian)
table.claim(
    "softmax Jacobian diag(p) − ppᵀ vs central differences",
    verdict(jacobian_error) == "pass",
    f"rel_error {jacobian_error:.1e}",
)
table.compare("chain rule through J = p − onehot(y)", atomised, fused, rtol=1e-12)

# %% The batch gradient
table.step("4. The batch gradient")

# --8<-- [start:backward]
# the backward reads what its own forward kept in the cache
_, cache = forward_for_backward(z, y)
grad = cross_entropy_backward(1.0, cache)
# ∂L/∂z = (p − onehot(y)) / N
expected = (softmax(z) - np.eye(K)[y]) / N
# --8<-- [end:backward]
# --8<-- [start:backward-torch]
z_t = torch.tensor(z, requires_grad=True)
F.cross_entropy(z_t, torch.from_numpy(y)).backward()
torch_grad = z_t.grad.numpy()
# --8<-- [end:backward-torch]

# --8<-- [start:backward-numerical]
# the five rows with scales up to 4: central differences cannot judge the tiny entries
# (p_k ≈ e^−20 and below) of the confident ones
moderate, y_moderate = z[:5], y[:5]


def mean_ce(logits: np.ndarray) -> float:
    """The mean cross-entropy of the five moderate rows."""
    return float(forward_for_backward(logits, y_moderate)[0])


_, moderate_cache = forward_for_backward(moderate, y_moderate)
moderate_grad = cross_entropy_backward(1.0, moderate_cache)
numeric = numerical_gradient(mean_ce, moderate)
print(f"rel_error vs numerical (rows 0-4): {rel_error(moderate_grad, numeric):.1e}")
# --8<-- [end:backward-numerical]

# Where p_y ≈ 1, p_y − 1 is rounded to a few ulps of 1 (u ≈ 1.1e-16, ÷ N) on
# either side; lesson 05 is about exactly this. So gradients may differ by
# 1e-16 in absolute terms.
table.compare(
    "CE backward = (p − onehot(y)) / N",
    grad,
    expected,
    rtol=1e-12,
    atol=1e-16,
    uses="3.2",
)
table.compare(
    "CE backward vs torch autograd (float64)",
    grad,
    torch_grad,
    rtol=1e-12,
    atol=1e-16,
    uses="3.2",
)
table.claim(
    "CE backward vs numerical gradient passes (≤ 1e-7)",
    verdict(rel_error(moderate_grad, numeric)) == "pass",
    f"rel_error {rel_error(moderate_grad, numeric):.1e}",
    uses="3.2",
)
# p_j − 1[j = y] ∈ [−1, 1], divided by N
table.claim(
    "every gradient entry lies in [−1/N, 1/N]",
    bool(np.all(np.abs(grad) <= 1 / N)),
    f"max |entry| · N = {np.abs(grad).max() * N:.6f}",
    uses="3.2",
)
# Σ_j (p_j − 1[j = y]) = 1 − 1 = 0: adding a constant to a row's logits changes nothing
table.claim(
    "each gradient row sums to 0",
    bool(np.all(np.abs(grad.sum(axis=-1)) < 1e-16)),
    f"max |row sum| {np.abs(grad.sum(axis=-1)).max():.1e}",
    uses="3.2",
)
table.compare(
    "upstream dloss = 2.5 scales the gradient by 2.5",
    cross_entropy_backward(2.5, cache),
    2.5 * grad,
    rtol=1e-14,
    uses="3.2",
)
if pair.yours_forward:
    table.compare(
        "your cross_entropy_forward vs lsce_scratch",
        loss,
        reference_forward(z, y)[0],
        rtol=1e-12,
        uses="3.1",
    )
if pair.yours_backward:
    table.compare(
        "your cross_entropy_backward vs lsce_scratch",
        grad,
        reference_backward(1.0, reference_forward(z, y)[1]),
        rtol=1e-12,
        atol=1e-16,
        uses="3.2",
    )

# %% Cross-entropy keeps pushing
table.step("5. Cross-entropy keeps pushing")

# --8<-- [start:gap]
# one row: the true logit d ahead of K − 1 = 4 others at 0
gaps = np.linspace(-4.0, 16.0, 41 if quick_mode() else 201)
losses, slopes = [], []
for d in gaps:
    logits = np.zeros((1, K))
    logits[0, 0] = d
    value, row_cache = forward_for_backward(logits, np.array([0]))
    losses.append(float(value))
    # ∂ℓ/∂d is the gradient at the true class
    slopes.append(float(cross_entropy_backward(1.0, row_cache)[0, 0]))
losses, slopes = np.array(losses), np.array(slopes)
# --8<-- [end:gap]

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(gaps, losses, label="ℓ(d) = log(1 + (K−1)e^−d)")
ax.plot(gaps, slopes, label="∂ℓ/∂d = p_y − 1")
ax.axhline(0, color="grey", lw=0.8)
ax.set(
    xlabel="logit gap d = z_y − z_other",
    title=f"cross-entropy, K = {K}: no finite minimum",
)
ax.legend()
save_figure(fig, "03_ce_vs_gap.png")

# ℓ(d) = log(1 + (K − 1) e^{−d}), computed without cancellation by log1p; lse − z_y
# carries an absolute rounding error of a few ulps of d, visible once ℓ is tiny.
table.compare(
    "ℓ(d) = log(1 + (K−1)e^−d)",
    losses,
    np.log1p((K - 1) * np.exp(-gaps)),
    rtol=1e-12,
    atol=1e-14,
    uses=("3.1", "3.2"),
)
table.claim(
    "ℓ(d) strictly decreases and ∂ℓ/∂d < 0 for every d",
    bool(np.all(np.diff(losses) < 0) and np.all(slopes < 0)),
    f"ℓ(16) = {losses[-1]:.1e}, ∂ℓ/∂d(16) = {slopes[-1]:.1e}",
    uses=("3.1", "3.2"),
)
# the numbers the page quotes
save_run_output(
    "03_results.json",
    {
        "loss": float(loss),
        "row_loss": {"min": float(by_hand.min()), "max": float(by_hand.max())},
        "small_init_loss": float(first_loss),
        "numerical_rel_error": rel_error(moderate_grad, numeric),
    },
)

# %%
raise SystemExit(table.finish())

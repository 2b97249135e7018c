# Lesson 01 · Softmax and log-sum-exp: the code and the checks. The narrative is the
# page docs/lessons/01-softmax.md. Run: python lessons/01_softmax.py (or lsce run 1).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from lsce_course import exercises
from lsce_course.report import (
    CheckTable,
    console,
    quick_mode,
    save_figure,
    save_run_output,
)
from lsce_scratch.softmax import log_softmax as reference_log_softmax
from lsce_scratch.softmax import logsumexp as reference_logsumexp

rng = np.random.default_rng(1)
table = CheckTable("Lesson 01 · Softmax and log-sum-exp")

# yours once you have started exercises 1.1 and 1.2, else the library's
logsumexp = exercises.choose("1.1", console)
log_softmax = exercises.choose("1.2", console)

# %% The naive softmax
table.step("1. The naive softmax overflows and underflows")


# --8<-- [start:naive]
def naive_softmax(x: np.ndarray) -> np.ndarray:
    """Softmax straight from the definition; breaks for large |x|."""
    e = np.exp(x)
    # p_k = exp(x_k) / Σ_j exp(x_j)
    return e / np.sum(e, axis=-1, keepdims=True)


big = np.array([1000.0, 999.0, 998.0])
small = np.array([-1000.0, -1001.0, -1002.0])
with np.errstate(over="ignore", under="ignore", invalid="ignore"):
    print("exp(big)            ", np.exp(big))  # [inf inf inf]
    print("naive_softmax(big)  ", naive_softmax(big))  # [nan nan nan]
    print("exp(small)          ", np.exp(small))  # [0. 0. 0.]
    print("naive_softmax(small)", naive_softmax(small))  # [nan nan nan]
# --8<-- [end:naive]

with np.errstate(over="ignore", under="ignore", invalid="ignore"):
    table.claim(
        "naive softmax at x ≈ 1000 is NaN",
        bool(np.isnan(naive_softmax(big)).all()),
        "exp overflows to inf; inf/inf = NaN",
    )
    table.claim(
        "naive softmax at x ≈ −1000 is NaN",
        bool(np.isnan(naive_softmax(small)).all()),
        "exp underflows to 0; 0/0 = NaN",
    )

# %% The max-shift
table.step("2. The max-shift")

# --8<-- [start:lse-big]
# lse(x) = m + log Σ_k exp(x_k − m) with m = max_k x_k:
# here the three terms are 1, e⁻¹, e⁻²
print("logsumexp(big)  ", logsumexp(big), "= 1000 + log(1 + e⁻¹ + e⁻²)")
print("logsumexp(small)", logsumexp(small), "= −1000 + log(1 + e⁻¹ + e⁻²)")
# --8<-- [end:lse-big]

lse_by_hand = 1000.0 + np.log(1.0 + np.exp(-1.0) + np.exp(-2.0))
table.compare(
    "logsumexp(big) = 1000 + log(1 + e⁻¹ + e⁻²)",
    logsumexp(big),
    lse_by_hand,
    rtol=1e-15,
    uses="1.1",
)

# %% log_softmax, and softmax from it
table.step("3. log_softmax is z − lse(z), not log(softmax(z))")


# --8<-- [start:stable]
def stable_softmax(x: np.ndarray) -> np.ndarray:
    """softmax through log_softmax: p_k = exp(x_k − lse(x))."""
    # p_k = exp(log p_k), and log p_k = x_k − lse(x) never overflows
    return np.exp(log_softmax(x))


print("stable_softmax(big)  ", stable_softmax(big))
print("stable_softmax(small)", stable_softmax(small))
# --8<-- [end:stable]

# softmax([0, −1, −2]) by hand: the three terms are 1, e⁻¹, e⁻²
by_hand = np.exp([0.0, -1.0, -2.0]) / np.sum(np.exp([0.0, -1.0, -2.0]))
table.compare(
    "softmax(big) = softmax([0, −1, −2])", stable_softmax(big), by_hand, rtol=1e-14
)
table.compare(
    "softmax(small) = softmax([0, −1, −2])", stable_softmax(small), by_hand, rtol=1e-14
)

# %% Against PyTorch
table.step("4. Against PyTorch, in float64")

# rows scaled from 0.3 (spread out) to 1000 (one class far ahead)
scales = np.array([0.3, 1.0, 3.0, 10.0, 100.0, 1000.0])
z = rng.normal(size=(len(scales), 7)) * scales[:, None]  # (N, K) = (6, 7), float64

# --8<-- [start:ours]
ours_lse = logsumexp(z)  # shape (N,)
ours_log_p = log_softmax(z)  # shape (N, K)
# --8<-- [end:ours]
# --8<-- [start:torch]
z_t = torch.from_numpy(z)
torch_lse = torch.logsumexp(z_t, dim=-1).numpy()
torch_log_p = torch.log_softmax(z_t, dim=-1).numpy()
# --8<-- [end:torch]

table.compare(
    "logsumexp vs torch.logsumexp (float64)",
    ours_lse,
    torch_lse,
    rtol=1e-14,
    uses="1.1",
)
# log p_y of a confident row is about −1e-300 and is rounded to a few ulps of
# max|z| = 1000, so we allow an absolute difference of a few 1e-13 there.
table.compare(
    "log_softmax vs torch.log_softmax (float64)",
    ours_log_p,
    torch_log_p,
    rtol=1e-14,
    atol=1e-12,
    uses="1.2",
)
table.compare(
    "softmax rows sum to 1",
    stable_softmax(z).sum(axis=-1),
    np.ones(len(scales)),
    rtol=1e-15,
    uses="1.2",
)
# lse(z + c) = lse(z) + c: the identity the max-shift relies on
shift = rng.normal(size=(len(scales), 1)) * 500
table.compare(
    "logsumexp(z + c) = logsumexp(z) + c",
    logsumexp(z + shift),
    ours_lse + shift[:, 0],
    rtol=1e-14,
    uses="1.1",
)
# A fully masked row (every logit −inf) has lse = log 0 = −inf;
# NaN would poison a batch.
masked = np.full(4, -np.inf)
with np.errstate(divide="ignore"):
    lse_masked = logsumexp(masked)
table.claim(
    "a row of −inf gives lse = −inf, as torch does",
    bool(
        np.isneginf(lse_masked)
        and np.isneginf(torch.logsumexp(torch.tensor(masked), 0))
    ),
    f"logsumexp([−inf]*4) = {lse_masked}",
    uses="1.1",
)
# your functions against the library's as well, once you have written them
if logsumexp is not reference_logsumexp:
    table.compare(
        "your logsumexp vs lsce_scratch",
        logsumexp(z),
        reference_logsumexp(z),
        uses="1.1",
    )
if log_softmax is not reference_log_softmax:
    table.compare(
        "your log_softmax vs lsce_scratch",
        log_softmax(z),
        reference_log_softmax(z),
        atol=1e-12,
        uses="1.2",
    )

# %% float32
table.step("5. float32 against float64")

# --8<-- [start:float32]
x32 = np.array([0.0, -50.0, -120.0], dtype=np.float32)
with np.errstate(divide="ignore", under="ignore"):
    log_of_softmax = np.log(stable_softmax(x32))  # [~0, −50, −inf]
print("log(softmax(x)) float32:", log_of_softmax)
print("log_softmax(x)  float32:", log_softmax(x32))
print("log_softmax(x)  float64:", log_softmax(x32.astype(np.float64)))
# --8<-- [end:float32]

table.claim(
    "float32 log(softmax) gives −inf for a logit 120 below the max",
    bool(np.isneginf(log_of_softmax[-1])),
    f"log(softmax)[-1] = {log_of_softmax[-1]}",
    uses="1.2",
)
table.compare(
    "float32 log_softmax = float64 log_softmax",
    log_softmax(x32),
    reference_log_softmax(x32.astype(np.float64)),
    rtol=1e-7,
    uses="1.2",
)
table.compare(
    "float32 log_softmax vs torch (float32)",
    log_softmax(x32),
    torch.log_softmax(torch.from_numpy(x32), dim=-1).numpy(),
    rtol=1e-7,
    uses="1.2",
)
# float32 carries about 7 significant digits (unit roundoff 2^−24 ≈ 6e-8)
table.compare(
    "float32 logsumexp ≈ float64 to float32 precision",
    logsumexp(z.astype(np.float32)),
    ours_lse,
    rtol=1e-6,
    uses="1.1",
)

# %% Naive against stable, across scales
table.step("6. Naive against stable, across logit scales")

# --8<-- [start:scales]
num_scales = 60 if quick_mode() else 400
s = np.logspace(0, 4, num_scales)
# one row of K = 10 logits whose largest entry is exactly 1, times the scale s
u = rng.uniform(-1.0, 0.5, size=10)
u[0] = 1.0
rows = {dtype: (s[:, None] * u).astype(dtype) for dtype in (np.float32, np.float64)}

with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
    # lse(s·u) = log Σ_k exp(s·u_k), without and with the max-shift
    naive_lse = {d: np.log(np.sum(np.exp(x), axis=-1)) for d, x in rows.items()}
    stable_lse = {d: logsumexp(x) for d, x in rows.items()}
    # log p_min two ways: log of the softmax, and x − lse
    naive_log_pmin = {
        d: np.log(stable_softmax(x))[:, np.argmin(u)] for d, x in rows.items()
    }
    stable_log_pmin = {d: log_softmax(x)[:, np.argmin(u)] for d, x in rows.items()}
# --8<-- [end:scales]

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
styles = {np.float64: ("float64", "C1", 6), np.float32: ("float32", "C0", 3)}
for ax, naive, stable, what in (
    (left, naive_lse, stable_lse, "naive log Σ exp"),
    (right, naive_log_pmin, stable_log_pmin, "−log(softmax)"),
):
    sign = 1 if ax is left else -1
    for d, (name, colour, width) in styles.items():
        ax.loglog(
            s,
            sign * naive[d],
            color=colour,
            lw=width,
            alpha=0.7,
            label=f"{what}, {name}",
        )
        # mark where the naive curve ends: the last finite value before inf / −inf
        last = np.flatnonzero(np.isfinite(naive[d]))[-1]
        ax.plot(s[last], sign * naive[d][last], "x", color="red", ms=10, mew=2)
        ax.annotate(
            f"{name}: {'inf' if ax is left else '−inf'}\nfrom s ≈ {s[last + 1]:.0f}",
            (s[last], sign * naive[d][last]),
            xytext=(8, -28),
            textcoords="offset points",
            fontsize=8,
            color="red",
        )
    stable_name = "max-shifted lse" if ax is left else "−log_softmax = lse − x"
    ax.loglog(s, sign * stable[np.float64], "k--", lw=1, label=stable_name)
    ax.legend(fontsize=8, loc="upper left")
left.set(xlabel="scale s", ylabel="lse(s·u)", title="overflow: naive lse becomes inf")
right.set(
    xlabel="scale s", ylabel="−log p_min", title="underflow: log(softmax) becomes −inf"
)
save_figure(fig, "01_naive_vs_stable.png")

finite32, finite64 = (
    np.isfinite(naive_lse[np.float32]),
    np.isfinite(naive_lse[np.float64]),
)
# exp(s·u_max) overflows once s·u_max = s > ln(largest float);
# the other terms barely matter
for finite, dtype, name in (
    (finite32, np.float32, "float32"),
    (finite64, np.float64, "float64"),
):
    limit = np.log(np.finfo(dtype).max)
    table.claim(
        f"naive {name} lse overflows at s = ln(largest {name})",
        bool(finite[s < 0.99 * limit].all() and not finite[s > 1.01 * limit].any()),
        f"first inf at s = {s[~finite][0]:.2f}; ln(largest {name}) = {limit:.2f}",
    )
table.compare(
    "max-shifted lse: float32 = float64 at every scale",
    stable_lse[np.float32],
    stable_lse[np.float64],
    rtol=1e-6,
    uses="1.1",
)
table.claim(
    "log_softmax stays finite at every scale, float32 and float64",
    bool(all(np.isfinite(v).all() for v in stable_log_pmin.values())),
    "log(softmax) float32 gives −inf from s = "
    f"{s[np.isneginf(naive_log_pmin[np.float32])][0]:.1f}",
    uses="1.2",
)
# the scales at which the naive curves of the figure end, for the page
save_run_output(
    "01_results.json",
    {
        "naive_lse_inf_from": {
            d.__name__: float(s[~np.isfinite(naive_lse[d])][0]) for d in naive_lse
        },
        "log_of_softmax_inf_from": {
            d.__name__: float(s[np.isneginf(naive_log_pmin[d])][0])
            for d in naive_log_pmin
        },
        "smallest_logit": float(u.min()),
    },
)

# %%
raise SystemExit(table.finish())

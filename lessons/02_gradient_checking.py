# %% [markdown]
# # Lesson 02: numerical gradients
#
# Every backward pass in this course is derived by hand, so every one of them needs a
# referee. The referee is the definition of the derivative: nudge one input by ±h, watch
# the output, divide. This lesson builds that referee (central differences), measures how
# the choice of h and the float type decide its accuracy, fixes a pass mark (CS231n's
# relative error, 1e-7 in float64) and shows that it catches plausible wrong gradients.
# Exercises 2.1 (`rel_error`) and 2.2 (`numerical_gradient`) rebuild the two tools.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.report import CheckTable, console, quick_mode, save_figure
from lsce_scratch.gradcheck import KINK_THRESHOLD, PASS_THRESHOLD, verdict
from lsce_scratch.gradcheck import numerical_gradient as reference_numerical_gradient
from lsce_scratch.gradcheck import rel_error as reference_rel_error
from lsce_scratch.losses import label_smoothing_cross_entropy, lsce_backward, lsce_forward
from lsce_scratch.softmax import logsumexp, softmax

rng = np.random.default_rng(2)
table = CheckTable("Lesson 02: numerical gradients")

rel_error = exercises.choose("2.1", console)
numerical_gradient = exercises.choose("2.2", console)
# A check that runs your functions says `uses=`: if it fails, the table names your
# function and `lsce check`, and the lesson exits non-zero.
yours = (
    rel_error is not reference_rel_error or numerical_gradient is not reference_numerical_gradient
)

# %% [markdown]
# ## 1. Forward against central differences, and the choice of h
#
# Take f(z) = lse(z), whose gradient we know exactly from lesson 01: ∇f = softmax(z). Along
# a random unit direction v the derivative is ∇f·v. Two finite-difference estimates:
#
#     forward:  (f(z + h v) − f(z)) / h            error ≈ (h/2)|f''| + u|f|/h
#     central:  (f(z + h v) − f(z − h v)) / 2h     error ≈ (h²/6)|f'''| + u|f|/h
#
# u is the unit roundoff (1.1e-16 in float64, 6e-8 in float32). The first term
# (truncation) shrinks with h, the second (rounding of f, divided by h) grows, so there is
# a best h: about √u for forward differences and about ∛u for central ones.

# %%
# --8<-- [start:forward-central]
z = rng.normal(size=7) * 3.0
v = rng.normal(size=7)
v /= np.linalg.norm(v)
# ∇lse(z)·v = Σ_k softmax(z)_k v_k, in float64: the exact answer
exact = softmax(z) @ v

hs = np.logspace(-13, 0, 27 if quick_mode() else 105)
errors = {}
for dtype in (np.float64, np.float32):
    zd, vd = z.astype(dtype), v.astype(dtype)
    for scheme in ("forward", "central"):
        err = []
        for h in hs.astype(dtype):
            f_plus, f_0, f_minus = logsumexp(zd + h * vd), logsumexp(zd), logsumexp(zd - h * vd)
            # forward: (f(z + hv) − f(z)) / h;  central: (f(z + hv) − f(z − hv)) / 2h
            estimate = (f_plus - f_0) / h if scheme == "forward" else (f_plus - f_minus) / (2 * h)
            err.append(abs(float(estimate) - exact) / abs(exact))
        errors[dtype.__name__, scheme] = np.array(err)
# --8<-- [end:forward-central]

for (dtype, scheme), err in errors.items():
    best = int(np.argmin(err))
    console.print(f"{dtype:8s} {scheme:8s} best h = {hs[best]:.0e}, relative error {err[best]:.1e}")


def error_at(dtype: str, scheme: str, h: float) -> float:
    """The relative error of one scheme at the grid point nearest to h."""
    return float(errors[dtype, scheme][np.argmin(np.abs(np.log(hs / h)))])


table.claim(
    "float64, h = 1e-5: central beats forward by 100×",
    error_at("float64", "central", 1e-5) * 100 < error_at("float64", "forward", 1e-5),
    f"central {error_at('float64', 'central', 1e-5):.1e}, "
    f"forward {error_at('float64', 'forward', 1e-5):.1e}",
)
table.claim(
    "float64 central reaches 1e-9 near h = ∛u ≈ 5e-6",
    min(error_at("float64", "central", h) for h in (1e-6, 1e-5, 1e-4)) < 1e-9,
    f"best {errors['float64', 'central'].min():.1e} at h = "
    f"{hs[np.argmin(errors['float64', 'central'])]:.0e}",
)
table.claim(
    "float32 never gets below 1e-6, whatever h",
    errors["float32", "central"].min() > 1e-6 and errors["float32", "forward"].min() > 1e-6,
    f"best float32: {min(errors['float32', s].min() for s in ('central', 'forward')):.1e}",
)
table.claim(
    "float32, h ≤ 1e-7: z + h·v rounds to z, the estimate is 0",
    bool(np.all(errors["float32", "central"][hs <= 1e-7] == 1.0)),
    "relative error exactly 1 (100 %)",
)

# %% [markdown]
# ## 2. The pass mark: relative error
#
# An absolute difference means nothing on its own: 1e-6 is excellent for a gradient of size
# 1e3 and terrible for one of size 1e-6. CS231n's relative error divides by the sizes,
# entry by entry, and takes the worst entry:
#
#     rel_error(a, b) = max_i |a_i − b_i| / max(1e-8, |a_i| + |b_i|).
#
# The thresholds (CS231n, "Gradient checks"), for a smooth loss in float64:
# rel_error ≤ 1e-7 pass; ≤ 1e-4 suspicious (acceptable only for kinks such as ReLU);
# anything larger fails. Softmax cross-entropy is smooth, so only "pass" is a pass.

# %%
console.print(
    f"pass ≤ {PASS_THRESHOLD:g}, suspicious ≤ {KINK_THRESHOLD:g}, fail above;"
    f" verdict(3e-9) = {verdict(3e-9)!r}, verdict(2e-6) = {verdict(2e-6)!r},"
    f" verdict(0.3) = {verdict(0.3)!r}"
)
# the 1e-8 floor: two entries that are both 0 agree perfectly instead of giving 0/0
table.claim(
    "rel_error of two zero arrays is 0, not NaN",
    rel_error(np.zeros(3), np.zeros(3)) == 0.0,
    f"rel_error(0, 0) = {rel_error(np.zeros(3), np.zeros(3))}",
    uses=("2.1", "2.2"),
)
# scale-free: multiplying both arguments by 1e6 does not change the verdict
a, b = rng.normal(size=5), rng.normal(size=5)
table.compare(
    "rel_error(10⁶a, 10⁶b) = rel_error(a, b)",
    rel_error(1e6 * a, 1e6 * b),
    rel_error(a, b),
    rtol=1e-12,
    uses=("2.1", "2.2"),
)

# %% [markdown]
# ## 3. Checking the label-smoothing gradient
#
# The loss of lessons 04–05: f(z) = LSCE(z, y; ε = 0.1), mean over N = 4 rows of K = 6
# logits, rows scaled so some are confident. Its analytic gradient comes from
# `lsce_backward`. `numerical_gradient` nudges each of the 24 logits in turn.

# %%
# --8<-- [start:check-lsce]
N, K, eps = 4, 6, 0.1
z = rng.normal(size=(N, K)) * np.array([0.5, 2.0, 5.0, 10.0])[:, None]  # float64
y = rng.integers(0, K, size=N)


def f(logits: np.ndarray) -> float:
    """The scalar we differentiate: the mean LSCE of the batch."""
    return float(label_smoothing_cross_entropy(logits, y, eps))


loss, cache = lsce_forward(z, y, eps)
analytic = lsce_backward(1.0, cache)
z_before = z.copy()
numeric = numerical_gradient(f, z, h=1e-5)
error = rel_error(analytic, numeric)
print(f"rel_error = {error:.1e}: {verdict(error)}")
# --8<-- [end:check-lsce]

# PyTorch's autograd on the same loss, in float64, is a second, independent referee
z_t = torch.tensor(z, requires_grad=True)
F.cross_entropy(z_t, torch.from_numpy(y), label_smoothing=eps).backward()
torch_grad = z_t.grad.numpy()

table.claim(
    "LSCE: analytic vs numerical gradient passes (≤ 1e-7)",
    verdict(error) == "pass",
    f"rel_error {error:.1e}",
    uses=("2.1", "2.2"),
)
table.claim(
    "numerical gradient vs torch autograd passes (≤ 1e-7)",
    verdict(rel_error(numeric, torch_grad)) == "pass",
    f"rel_error {rel_error(numeric, torch_grad):.1e}",
    uses=("2.1", "2.2"),
)
table.compare("lsce_backward vs torch autograd", analytic, torch_grad, rtol=1e-12)
table.claim(
    "numerical_gradient leaves its input alone",
    bool(np.array_equal(z, z_before)),
    f"z unchanged after {2 * z.size} nudges",
    uses=("2.1", "2.2"),
)
if yours:
    table.compare(
        "your numerical_gradient vs lsce_scratch",
        numeric,
        reference_numerical_gradient(f, z, h=1e-5),
        rtol=1e-6,
        uses="2.2",
    )
    table.compare(
        "your rel_error vs lsce_scratch",
        rel_error(analytic, numeric),
        reference_rel_error(analytic, numeric),
        rtol=1e-12,
        uses="2.1",
    )

# %% [markdown]
# ## 4. It catches plausible bugs
#
# Four wrong gradients that each look reasonable: the sum instead of the mean (forgot 1/N),
# plain cross-entropy (forgot the smoothing), fairseq's ε/(K−1) instead of PyTorch's ε/K,
# and a flipped sign. Each fails by orders of magnitude. float32 fails too, with the right
# gradient: its rounding error divided by 2h is far above 1e-7 (section 1).

# %%
# --8<-- [start:bugs]
p = softmax(z)
onehot = np.eye(K)[y]
q_others = np.where(onehot == 1, 1 - eps, eps / (K - 1))
wrong = {
    "forgot the 1/N of the mean": analytic * N,
    "forgot the smoothing: p − onehot": (p - onehot) / N,
    "ε/(K−1) instead of ε/K": (p - q_others) / N,
    "sign flipped": -analytic,
}
for name, gradient in wrong.items():
    bug_error = rel_error(gradient, numeric)
    print(f"{name:34s} rel_error {bug_error:.1e}: {verdict(bug_error)}")
    table.claim(f"bug caught: {name}", verdict(bug_error) == "fail", f"rel_error {bug_error:.1e}")

z32 = z.astype(np.float32)
numeric32 = numerical_gradient(lambda x: float(label_smoothing_cross_entropy(x, y, eps)), z32)
error32 = rel_error(analytic, numeric32)
print(f"{'float32, right gradient':34s} rel_error {error32:.1e}: {verdict(error32)}")
# --8<-- [end:bugs]
table.claim(
    "float32 check of the right gradient does not pass",
    verdict(error32) != "pass",
    f"rel_error {error32:.1e}: float64 is the only dtype to check in",
    uses=("2.1", "2.2"),
)

# %% [markdown]
# ## 5. What the check cannot see: tiny entries
#
# Central differences have a noise floor: f itself is rounded to about u·|f|, and that
# error divided by 2h is about 1e-11 in float64 with h = 1e-5. rel_error's floor is 1e-8.
# A gradient entry between the two (a class with p ≈ 1e-9 in a confident row) is compared
# mostly against noise, so a right gradient can come out "suspicious" or worse. With ε > 0
# no entry is that small (∂ℓ/∂z_k = (p_k − ε/K)/N), so we switch smoothing off (ε = 0,
# plain cross-entropy, lesson 03). Check confident logits against autograd, which has no h;
# keep the numerical check for moderate logits, as CS231n advises.

# %%
# --8<-- [start:noise-floor]
confident = z.copy()
confident[-1] *= 5.0  # the scale-10 row becomes a scale-50 row: some p_k ≈ 1e-9 and below
y_t = torch.from_numpy(y)


def f_confident(logits: np.ndarray) -> float:
    """Plain cross-entropy (ε = 0) of the confident batch."""
    return float(label_smoothing_cross_entropy(logits, y, 0.0))


_, confident_cache = lsce_forward(confident, y, 0.0)
confident_grad = lsce_backward(1.0, confident_cache)
noisy_error = rel_error(confident_grad, numerical_gradient(f_confident, confident))
confident_t = torch.tensor(confident, requires_grad=True)
F.cross_entropy(confident_t, y_t).backward()
print(f"confident row, numerical check: rel_error {noisy_error:.1e}: {verdict(noisy_error)}")
# --8<-- [end:noise-floor]
table.claim(
    "a confident row pushes a right gradient out of 'pass'",
    verdict(noisy_error) != "pass",
    f"rel_error {noisy_error:.1e}",
    uses=("2.1", "2.2"),
)
table.compare(
    "… while it matches torch autograd",
    confident_grad,
    confident_t.grad.numpy(),
    rtol=1e-12,
    atol=1e-16,
)

# %% [markdown]
# ## 6. Directional checks: two evaluations instead of 2NK
#
# A full numerical gradient costs two evaluations of f per input entry: fine for 24
# logits, hopeless for a network. A directional check picks a random direction v and
# compares one central difference with the analytic directional derivative:
#
#     (f(z + h v) − f(z − h v)) / 2h   ≈   Σ_ij (∂f/∂z_ij) v_ij.
#
# A wrong gradient is almost never wrong only in directions orthogonal to a random v, so a
# handful of directions catch the same bugs at two evaluations each.


# %%
# --8<-- [start:directional]
def directional_error(gradient: np.ndarray, h: float = 1e-5) -> float:
    """Relative error of gradient·v against a central difference along a random unit v."""
    v = rng.normal(size=z.shape)
    v /= np.linalg.norm(v)
    numeric_dd = (f(z + h * v) - f(z - h * v)) / (2 * h)
    # ∂f/∂v = Σ_ij (∂f/∂z_ij) v_ij
    analytic_dd = float(np.sum(gradient * v))
    return abs(analytic_dd - numeric_dd) / max(1e-8, abs(analytic_dd) + abs(numeric_dd))


num_directions = 5 if quick_mode() else 50
right = max(directional_error(analytic) for _ in range(num_directions))
print(f"right gradient, worst of {num_directions} directions: {right:.1e}")
# --8<-- [end:directional]
table.claim(
    f"directional checks pass ({num_directions} random directions)",
    right <= PASS_THRESHOLD,
    f"worst rel_error {right:.1e}",
)
for name, gradient in wrong.items():
    caught = max(directional_error(gradient) for _ in range(num_directions))
    table.claim(f"directional check catches: {name}", caught > KINK_THRESHOLD, f"{caught:.1e}")

# %% [markdown]
# ## 7. The picture
#
# Left: the relative error of section 1 against h, on log-log axes. The right branch is
# truncation (slope 1 for forward, 2 for central), the left branch rounding (slope −1).
# Right: the full LSCE check of section 3 against h, with the CS231n bands. float64 passes
# only in a window around h = 1e-5; float32 never does.

# %%
check_hs = np.logspace(-10, 0, 11 if quick_mode() else 31)
full_check = {
    name: [rel_error(analytic, numerical_gradient(f, z.astype(dtype), h=h)) for h in check_hs]
    for dtype, name in ((np.float64, "float64"), (np.float32, "float32"))
}

fig, (left, right_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
colours = {"float64": "C0", "float32": "C3"}
for (dtype, scheme), err in errors.items():
    left.loglog(
        hs,
        np.maximum(err, 1e-17),
        color=colours[dtype],
        ls="-" if scheme == "central" else "--",
        label=f"{scheme}, {dtype}",
    )
for dtype, u in (
    ("float64", np.finfo(np.float64).eps / 2),
    ("float32", np.finfo(np.float32).eps / 2),
):
    left.axvline(u ** (1 / 3), color=colours[dtype], lw=0.6, ls=":")
    left.axvline(u ** (1 / 2), color=colours[dtype], lw=0.6, ls="-.")
left.set(
    xlabel="h",
    ylabel="relative error of ∂lse/∂v",
    ylim=(1e-13, 3),
    title="finite differences: ∛u (dotted) and √u (dash-dot)",
)
left.legend(fontsize=8)
right_ax.axhspan(1e-17, PASS_THRESHOLD, color="green", alpha=0.12, label="pass")
right_ax.axhspan(PASS_THRESHOLD, KINK_THRESHOLD, color="orange", alpha=0.12, label="suspicious")
right_ax.axhspan(KINK_THRESHOLD, 10, color="red", alpha=0.08, label="fail")
for name, err in full_check.items():
    right_ax.loglog(check_hs, np.maximum(err, 1e-17), "o-", color=colours[name], label=name)
right_ax.set(
    xlabel="h",
    ylabel="rel_error(analytic, numerical)",
    ylim=(1e-11, 3),
    title="LSCE gradient check against h",
)
right_ax.legend(fontsize=8, loc="lower left")
save_figure(fig, "02_error_vs_h.png")

table.claim(
    "float64 LSCE check passes at h = 1e-5, fails at h = 1e-10 and h = 1",
    verdict(full_check["float64"][np.argmin(np.abs(np.log(check_hs / 1e-5)))]) == "pass"
    and verdict(full_check["float64"][0]) == "fail"
    and verdict(full_check["float64"][-1]) == "fail",
    "too small: rounding; too large: truncation",
    uses=("2.1", "2.2"),
)
table.claim(
    "float32 LSCE check passes at no h",
    all(verdict(e) != "pass" for e in full_check["float32"]),
    f"best {min(full_check['float32']):.1e}",
    uses=("2.1", "2.2"),
)

# %%
raise SystemExit(table.finish())

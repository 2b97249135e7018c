# Lesson 02 · Numerical gradients: the code and the checks. The narrative is the
# page docs/lessons/02-gradient-checking.md. Run:
# python lessons/02_gradient_checking.py (or lsce run 2).

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
from lsce_scratch.gradcheck import KINK_THRESHOLD, PASS_THRESHOLD, verdict
from lsce_scratch.gradcheck import numerical_gradient as reference_numerical_gradient
from lsce_scratch.gradcheck import rel_error as reference_rel_error
from lsce_scratch.losses import (
    label_smoothing_cross_entropy,
    lsce_backward,
    lsce_forward,
)
from lsce_scratch.softmax import logsumexp, softmax

rng = np.random.default_rng(2)
table = CheckTable("Lesson 02 · Numerical gradients")

# yours once you have started exercises 2.1 and 2.2, else the library's
rel_error = exercises.choose("2.1", console)
numerical_gradient = exercises.choose("2.2", console)

# %% Forward and central differences
table.step("1. Forward and central differences")

# --8<-- [start:forward-central]
# f(z) = lse(z) along a random unit direction v
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
            f_plus, f_0, f_minus = (
                logsumexp(zd + h * vd),
                logsumexp(zd),
                logsumexp(zd - h * vd),
            )
            # forward: (f(z + hv) − f(z)) / h;  central: (f(z + hv) − f(z − hv)) / 2h
            estimate = (
                (f_plus - f_0) / h
                if scheme == "forward"
                else (f_plus - f_minus) / (2 * h)
            )
            err.append(abs(float(estimate) - exact) / abs(exact))
        errors[dtype.__name__, scheme] = np.array(err)
# --8<-- [end:forward-central]

best_h = {}
for (dtype, scheme), err in errors.items():
    best = int(np.argmin(err))
    best_h.setdefault(dtype, {})[scheme] = {
        "h": float(hs[best]),
        "error": float(err[best]),
    }
    console.print(
        f"{dtype:8s} {scheme:8s} best h = {hs[best]:.0e}, "
        f"relative error {err[best]:.1e}"
    )


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
    errors["float32", "central"].min() > 1e-6
    and errors["float32", "forward"].min() > 1e-6,
    "best float32: "
    f"{min(errors['float32', s].min() for s in ('central', 'forward')):.1e}",
)
table.claim(
    "float32, h ≤ 1e-7: z + h·v rounds to z, the estimate is 0",
    bool(np.all(errors["float32", "central"][hs <= 1e-7] == 1.0)),
    "relative error exactly 1 (100 %)",
)

# %% The pass mark
table.step("2. The pass mark: relative error")

# --8<-- [start:verdicts]
console.print(
    f"pass ≤ {PASS_THRESHOLD:g}, suspicious ≤ {KINK_THRESHOLD:g}, fail above;"
    f" verdict(3e-9) = {verdict(3e-9)!r}, verdict(2e-6) = {verdict(2e-6)!r},"
    f" verdict(0.3) = {verdict(0.3)!r}"
)
# --8<-- [end:verdicts]
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

# %% Checking the label-smoothing gradient
table.step("3. Checking the label-smoothing gradient")

# --8<-- [start:check-lsce]
N, K, eps = 4, 6, 0.1
# rows scaled from 0.5 to 10: some of them confident
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
# your functions against the library's as well, once you have written them
if numerical_gradient is not reference_numerical_gradient:
    table.compare(
        "your numerical_gradient vs lsce_scratch",
        numeric,
        reference_numerical_gradient(f, z, h=1e-5),
        rtol=1e-6,
        uses="2.2",
    )
if rel_error is not reference_rel_error:
    table.compare(
        "your rel_error vs lsce_scratch",
        rel_error(analytic, numeric),
        reference_rel_error(analytic, numeric),
        rtol=1e-12,
        uses="2.1",
    )

# %% Plausible bugs
table.step("4. It catches plausible bugs")

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
bug_errors = {}
for name, gradient in wrong.items():
    bug_errors[name] = bug_error = rel_error(gradient, numeric)
    print(f"{name:34s} rel_error {bug_error:.1e}: {verdict(bug_error)}")
    table.claim(
        f"bug caught: {name}",
        verdict(bug_error) == "fail",
        f"rel_error {bug_error:.1e}",
    )

z32 = z.astype(np.float32)
numeric32 = numerical_gradient(
    lambda x: float(label_smoothing_cross_entropy(x, y, eps)), z32
)
error32 = rel_error(analytic, numeric32)
print(f"{'float32, right gradient':34s} rel_error {error32:.1e}: {verdict(error32)}")
# --8<-- [end:bugs]
table.claim(
    "float32 check of the right gradient does not pass",
    verdict(error32) != "pass",
    f"rel_error {error32:.1e}: float64 is the only dtype to check in",
    uses=("2.1", "2.2"),
)
# the page's table of this step
checked = {
    "the right gradient": error,
    **bug_errors,
    "the right gradient, in float32": error32,
}
save_run_output(
    "02_bugs.md",
    "| gradient | rel_error against central differences | verdict |\n|---|---|---|\n"
    + "".join(f"| {name} | {e:.1e} | {verdict(e)} |\n" for name, e in checked.items()),
)

# %% Tiny entries
table.step("5. What the check cannot see: tiny entries")

# --8<-- [start:noise-floor]
confident = z.copy()
confident[-1] *= (
    5.0  # the scale-10 row becomes a scale-50 row: some p_k ≈ 1e-9 and below
)
y_t = torch.from_numpy(y)


def f_confident(logits: np.ndarray) -> float:
    """Plain cross-entropy (ε = 0) of the confident batch."""
    return float(label_smoothing_cross_entropy(logits, y, 0.0))


_, confident_cache = lsce_forward(confident, y, 0.0)
confident_grad = lsce_backward(1.0, confident_cache)
noisy_error = rel_error(confident_grad, numerical_gradient(f_confident, confident))
confident_t = torch.tensor(confident, requires_grad=True)
F.cross_entropy(confident_t, y_t).backward()
print(
    "confident row, numerical check: rel_error "
    f"{noisy_error:.1e}: {verdict(noisy_error)}"
)
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

# %% Directional checks
table.step("6. Directional checks: two evaluations instead of 2NK")


# --8<-- [start:directional]
def directional_error(gradient: np.ndarray, h: float = 1e-5) -> float:
    """Relative error of gradient·v against a central difference
    along a random unit v."""
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
    table.claim(
        f"directional check catches: {name}", caught > KINK_THRESHOLD, f"{caught:.1e}"
    )

# %% The error against h
table.step("7. The error against h")

# --8<-- [start:full-check]
# the whole LSCE check of step 3, for h from 1e-10 to 1, in float64 and float32
check_hs = np.logspace(-10, 0, 11 if quick_mode() else 31)
full_check = {
    name: [
        rel_error(analytic, numerical_gradient(f, z.astype(dtype), h=h))
        for h in check_hs
    ]
    for dtype, name in ((np.float64, "float64"), (np.float32, "float32"))
}
# --8<-- [end:full-check]

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
right_ax.axhspan(
    PASS_THRESHOLD, KINK_THRESHOLD, color="orange", alpha=0.12, label="suspicious"
)
right_ax.axhspan(KINK_THRESHOLD, 10, color="red", alpha=0.08, label="fail")
for name, err in full_check.items():
    right_ax.loglog(
        check_hs, np.maximum(err, 1e-17), "o-", color=colours[name], label=name
    )
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
# the numbers the page quotes
save_run_output(
    "02_results.json",
    {
        "best_h": best_h,
        "lsce_rel_error": error,
        "confident_rel_error": noisy_error,
        "directional": {"directions": num_directions, "worst_right": right},
        "float32_best_check": min(full_check["float32"]),
    },
)

# %%
raise SystemExit(table.finish())

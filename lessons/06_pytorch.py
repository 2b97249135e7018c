"""Lesson 06 · Verify against PyTorch: our closed-form backward inside autograd, as a
torch.autograd.Function, held against the article's module, the built-in and gradcheck.
Its narrative is the page docs/lessons/06-pytorch.md."""

# %%
import matplotlib.pyplot as plt
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
from lsce_scratch import losses
from lsce_scratch.memory import extra_saved_bytes
from lsce_scratch.nn import (
    CompositeLabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropy,
    LSCEFunction,
)

table = CheckTable("Lesson 06: our LSCE against PyTorch")
torch.manual_seed(0)

# your LSCEFunction (exercise 6.1: its backward) once you have started it,
# else the library's
Function = exercises.choose("6.1", console)


# %% Three implementations of one loss
table.step("1. Three implementations of one loss")
# --8<-- [start:inputs]
N, K, EPSILON = 64, 37, 0.1
logits = torch.randn(N, K, dtype=torch.float64) * 2
target = torch.randint(0, K, (N,))
confident = torch.rand(N) < 1 / 3
boost = 8 + 6 * torch.rand(int(confident.sum()), dtype=torch.float64)
logits[confident, target[confident]] += boost
# --8<-- [end:inputs]


# --8<-- [start:three-ways]
def ours(z, t, reduction="mean", weight=None, function=Function):
    """Our Function on (N, K) logits; its arguments in the order of forward."""
    kind = "soft" if t.is_floating_point() else "index"
    return function.apply(z, t, EPSILON, weight, -100, reduction, kind)


def loss_and_grad(loss_fn, z, t):
    """Loss and ∂loss/∂logits of one implementation, on a fresh copy of the logits."""
    z = z.detach().clone().requires_grad_(True)
    loss = loss_fn(z, t)
    loss.backward()
    return loss.detach(), z.grad


article = CompositeLabelSmoothingCrossEntropy(EPSILON)
builtin = lambda z, t: F.cross_entropy(z, t, label_smoothing=EPSILON)  # noqa: E731
results = {
    name: loss_and_grad(fn, logits, target)
    for name, fn in [("article", article), ("built-in", builtin), ("ours", ours)]
}
# --8<-- [end:three-ways]

builtin_loss, builtin_grad = results["built-in"]
table.compare(
    "article loss vs built-in", results["article"][0], builtin_loss, rtol=1e-12
)
table.compare(
    "article gradient vs built-in", results["article"][1], builtin_grad, rtol=1e-10
)
table.compare("our loss vs built-in", results["ours"][0], builtin_loss, rtol=1e-12)
table.compare(
    "our gradient vs built-in", results["ours"][1], builtin_grad, rtol=1e-10, uses="6.1"
)
console.print(
    "loss: " + ", ".join(f"{name} {loss:.12f}" for name, (loss, _) in results.items())
)

# %% gradcheck
table.step("2. gradcheck")
# --8<-- [start:gradcheck]
small = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
small_target = torch.tensor([0, 4, 2, -100, 1, 3])
weight = torch.tensor([0.5, 2.0, 1.0, 1.5, 3.0], dtype=torch.float64)
probabilities = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=-1)
for reduction in ("none", "sum", "mean"):
    for variant, t, w in [
        ("weight + ignore_index", small_target, weight),
        ("soft targets", probabilities, None),
    ]:
        loss_fn = lambda z, t=t, r=reduction, w=w: ours(z, t, r, w)  # noqa: E731
        passed = torch.autograd.gradcheck(loss_fn, (small,), raise_exception=False)
        table.claim(
            f"gradcheck ({reduction}, {variant})",
            passed,
            "finite differences agree with the backward",
            uses="6.1",
        )
# probability targets that require grad get ∂ℓ/∂t = −(1 − ε)·w ⊙ log p (the library's
# backward: the exercise leaves it out)
soft = probabilities.clone().requires_grad_(True)
loss_fn = lambda z, t: ours(z, t, weight=weight, function=LSCEFunction)  # noqa: E731
passed = torch.autograd.gradcheck(loss_fn, (small, soft), raise_exception=False)
table.claim("gradcheck (logits and soft targets)", passed, "∂L/∂z and ∂L/∂t both agree")
# --8<-- [end:gradcheck]

# %% The NumPy core agrees too
table.step("3. The NumPy core agrees too")
# --8<-- [start:numpy-core]
numpy_loss, cache = losses.lsce_forward(logits.numpy(), target.numpy(), EPSILON)
numpy_grad = losses.lsce_backward(1.0, cache)
# --8<-- [end:numpy-core]
table.compare("NumPy loss vs ours", numpy_loss, results["ours"][0], rtol=1e-12)
table.compare(
    "NumPy gradient vs ours", numpy_grad, results["ours"][1], rtol=1e-10, uses="6.1"
)

# %% What each one keeps for the backward
table.step("4. What each one keeps for the backward")
# --8<-- [start:saved]
rows = 256
class_counts = [10, 100, 1000] if quick_mode() else [10, 100, 1000, 10_000, 32_000]
implementations = {"article (composite)": article, "built-in": builtin, "ours": ours}
saved = {name: [] for name in implementations}
for k in class_counts:
    z = torch.randn(rows, k, requires_grad=True)
    t = torch.randint(0, k, (rows,))
    for name, fn in implementations.items():
        saved[name].append(extra_saved_bytes(fn, z, t))
# --8<-- [end:saved]
logits_bytes = [rows * k * 4 for k in class_counts]
for name, values in saved.items():
    sizes = ", ".join(
        f"K={k}: {v / 1024:.0f} KiB" for k, v in zip(class_counts, values, strict=True)
    )
    console.print(f"{name:>20}: {sizes}")
table.claim(
    "ours saves O(N) beyond the logits",
    all(v <= 64 * rows for v in saved["ours"]),
    f"{max(saved['ours'])} bytes at most for N = {rows}, whatever K",
)
table.claim(
    "the composite module saves an (N, K) tensor",
    all(
        v >= b for v, b in zip(saved["article (composite)"], logits_bytes, strict=True)
    ),
    "log_softmax's output, as large as the logits",
)

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, values in saved.items():
    ax.plot(class_counts, [max(v, 1) for v in values], marker="o", label=name)
ax.plot(class_counts, logits_bytes, "k--", label="size of the logits")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="classes K",
    ylabel="bytes saved for backward",
    title=f"Saved for backward beyond the logits (N = {rows}, float32)",
)
ax.legend()
save_figure(fig, "06_saved_for_backward.png")
largest = {name: values[-1] for name, values in saved.items()}
save_run_output(
    "06_results.json",
    {
        "rows": rows,
        "classes": class_counts[-1],
        "saved_bytes": {
            "article": largest["article (composite)"],
            "builtin": largest["built-in"],
            "ours": largest["ours"],
        },
        "logits_bytes": logits_bytes[-1],
    },
)

# %% The library's module runs lesson 09's fast Function
table.step("5. The library's module runs lesson 09's fast Function")
# --8<-- [start:module]
module = LabelSmoothingCrossEntropy(EPSILON)
plain = LabelSmoothingCrossEntropy(EPSILON, fast=False)  # this lesson's LSCEFunction
fast_loss, fast_grad = loss_and_grad(module, logits, target)
plain_loss, plain_grad = loss_and_grad(plain, logits, target)
# --8<-- [end:module]
table.compare("module loss vs LSCEFunction", fast_loss, plain_loss, rtol=1e-12)
table.compare("module gradient vs LSCEFunction", fast_grad, plain_grad, rtol=1e-10)

# %% No double backward
table.step("6. No double backward")
# --8<-- [start:double-backward]
loss = ours(small, small_target.clamp(min=0), function=LSCEFunction)
try:
    torch.autograd.grad(loss, small, create_graph=True)
    table.claim("double backward refused", False, "no error was raised")
except RuntimeError as error:
    table.claim(
        "double backward refused",
        "double backward" in str(error),
        str(error)[:60] + "…",
    )
# --8<-- [end:double-backward]

# %%
raise SystemExit(table.finish())

# %% [markdown]
# # Lesson 06 — verify against PyTorch
#
# Lessons 03–05 derived label-smoothing cross-entropy (LSCE) and its gradient by hand and
# checked them in NumPy. Here the same closed form runs inside PyTorch's autograd as a
# `torch.autograd.Function`, and we hold it against three references on the same inputs:
#
# 1. the article's module, written from its formula: `ε·mean_k(−log p_k) + (1−ε)·nll`,
#    with autograd doing the backward (`CompositeLabelSmoothingCrossEntropy`);
# 2. PyTorch's built-in `F.cross_entropy(..., label_smoothing=ε)`;
# 3. our `LabelSmoothingCrossEntropy`, whose backward is ∂ℓ/∂z = S·p − r.
#
# Then `torch.autograd.gradcheck`, agreement with the NumPy core, and what each one keeps
# in memory for its backward.

# %%
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.report import CheckTable, console, quick_mode, save_figure
from lsce_scratch import lsce_backward, lsce_forward
from lsce_scratch.memory import extra_saved_bytes
from lsce_scratch.nn import (
    CompositeLabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropy,
    label_smoothing_cross_entropy,
)

table = CheckTable("Lesson 06: our LSCE against PyTorch")
torch.manual_seed(0)

# %% [markdown]
# ## The same inputs for all three
#
# 64 examples of the article's 37 pet breeds, ε = 0.1, float64 so that any disagreement is
# ours and not rounding. A third of the rows are confident (one logit 8–14 above the
# rest): random logits alone leave every p small, and a wrong true-class gradient hides.

# %%
# --8<-- [start:inputs]
N, K, EPSILON = 64, 37, 0.1
logits = torch.randn(N, K, dtype=torch.float64) * 2
target = torch.randint(0, K, (N,))
confident = torch.rand(N) < 1 / 3
logits[confident, target[confident]] += 8 + 6 * torch.rand(
    int(confident.sum()), dtype=torch.float64
)
# --8<-- [end:inputs]


# %%
# --8<-- [start:three-ways]
def loss_and_grad(loss_fn, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and ∂loss/∂logits of one implementation, on a fresh copy of the logits."""
    z = z.detach().clone().requires_grad_(True)
    loss = loss_fn(z, t)
    loss.backward()
    return loss.detach(), z.grad


article = CompositeLabelSmoothingCrossEntropy(EPSILON)
builtin = lambda z, t: F.cross_entropy(z, t, label_smoothing=EPSILON)  # noqa: E731
ours = LabelSmoothingCrossEntropy(EPSILON)

results = {
    name: loss_and_grad(fn, logits, target)
    for name, fn in [("article", article), ("built-in", builtin), ("ours", ours)]
}
# --8<-- [end:three-ways]

for name in ("article", "ours"):
    loss, grad = results[name]
    table.compare(f"{name} loss vs built-in", loss, results["built-in"][0], rtol=1e-12)
    table.compare(f"{name} gradient vs built-in", grad, results["built-in"][1], rtol=1e-10)
losses = ", ".join(f"{name} {loss:.12f}" for name, (loss, _) in results.items())
console.print(f"loss: {losses}")

# %% [markdown]
# ## gradcheck
#
# `torch.autograd.gradcheck` perturbs every logit by ±1e-6 in float64 and compares the
# finite differences with our backward, to `atol=1e-5, rtol=1e-3` by default. We run it for
# every reduction, with class weights, with an ignored class and with probability targets,
# and once with respect to the probability targets themselves.

# %%
# --8<-- [start:gradcheck]
small = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
small_target = torch.tensor([0, 4, 2, -100, 1, 3])
weight = torch.tensor([0.5, 2.0, 1.0, 1.5, 3.0], dtype=torch.float64)
probabilities = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=-1)
cases = {
    f"{reduction}, {variant}": (reduction, t, w)
    for reduction in ("none", "sum", "mean")
    for variant, t, w in [
        ("weight + ignore_index", small_target, weight),
        ("soft targets", probabilities, None),
    ]
}
for name, (reduction, t, w) in cases.items():
    passed = torch.autograd.gradcheck(
        lambda z, t=t, w=w, r=reduction: label_smoothing_cross_entropy(
            z, t, EPSILON, reduction=r, weight=w
        ),
        (small,),
    )
    table.claim(f"gradcheck ({name})", passed, "finite differences agree with our backward")
# probability targets that require grad get ∂ℓ/∂t = −(1 − ε)·w ⊙ log p, checked the same way
soft = probabilities.clone().requires_grad_(True)
passed = torch.autograd.gradcheck(
    lambda z, t: label_smoothing_cross_entropy(z, t, EPSILON, weight=weight), (small, soft)
)
table.claim("gradcheck (logits and soft targets)", passed, "∂L/∂z and ∂L/∂t both agree")
# --8<-- [end:gradcheck]

# %% [markdown]
# ## The NumPy core agrees too
#
# The NumPy `lsce_forward`/`lsce_backward` of lessons 04–05 and the torch Function are two
# renderings of one formula; on the same float64 inputs they agree to rounding.

# %%
np_loss, cache = lsce_forward(logits.numpy(), target.numpy(), EPSILON)
table.compare("NumPy core loss vs ours (torch)", np_loss, results["ours"][0], rtol=1e-12)
table.compare(
    "NumPy core gradient vs ours (torch)", lsce_backward(1.0, cache), results["ours"][1], rtol=1e-10
)

# %% [markdown]
# ## Your backward (exercise 6.1)
#
# `lessons/exercises/ex06_pytorch.py` subclasses our Function and leaves its backward to
# you. When you have written it, this lesson gradchecks yours as well.

# %%
LearnerFunction = exercises.choose("6.1")
if LearnerFunction is not exercises.reference_object(exercises.get_exercise("6.1")):
    theirs = LearnerFunction.apply(small, small_target, EPSILON, weight, -100, "mean", "index")
    (their_grad,) = torch.autograd.grad(theirs, small)
    reference = label_smoothing_cross_entropy(small, small_target, EPSILON, weight=weight)
    (reference_grad,) = torch.autograd.grad(reference, small)
    table.compare("your 6.1 gradient vs ours", their_grad, reference_grad, rtol=1e-10, uses="6.1")

# %% [markdown]
# ## What each one keeps for the backward
#
# Autograd keeps, for every op, the tensors its backward will need. The composite module
# keeps `log_softmax`'s output, an (N, K) tensor as large as the logits; the built-in
# keeps it too. Our Function keeps the logits (the caller holds them anyway) and three
# numbers per row (z_max, log1p(rest), rest) plus the row's argmax. We count the bytes with
# `torch.autograd.graph.saved_tensors_hooks`, leaving out the logits' own storage.


# %%


rows = 256
class_counts = [10, 100, 1000] if quick_mode() else [10, 100, 1000, 10_000, 32_000]
implementations = {"article (composite)": article, "built-in": builtin, "ours": ours}
saved = {name: [] for name in implementations}
for k in class_counts:
    z = torch.randn(rows, k, requires_grad=True)
    t = torch.randint(0, k, (rows,))
    for name, fn in implementations.items():
        saved[name].append(extra_saved_bytes(fn, z, t))
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
    all(v >= b for v, b in zip(saved["article (composite)"], logits_bytes, strict=True)),
    "log_softmax's output, as large as the logits",
)

# %%
import matplotlib.pyplot as plt

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

# %% [markdown]
# ## No double backward
#
# Our backward is a closed form, not a graph autograd can differentiate again. Asking for a
# second derivative (`create_graph=True`) raises a clear error instead of returning a wrong
# number.

# %%
try:
    torch.autograd.grad(ours(small, small_target.clamp(min=0)), small, create_graph=True)
    table.claim("double backward refused", False, "no error was raised")
except RuntimeError as error:
    table.claim("double backward refused", "double backward" in str(error), str(error)[:60] + "…")

# %%
raise SystemExit(table.finish())

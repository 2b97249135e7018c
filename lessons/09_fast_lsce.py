# %% [markdown]
# # Lesson 09 — fast LSCE
#
# The gradient of label-smoothing cross-entropy is p − q (lesson 05): one pass that reads
# the logits and writes the gradient should be about as fast as a plain softmax, which does
# the same. The straightforward versions are several times slower, and the reason is not
# arithmetic but memory traffic: they write and read back several arrays as large as the
# logits. This lesson measures that, then builds the fast version of the library
# (`lsce_scratch.fast`, and `lsce_scratch.nn` for torch) step by step:
#
# 1. the fused forward + backward: no target matrix, no log-probabilities, the exponentials
#    written straight into the gradient, rows in chunks that stay in the CPU's cache;
# 2. chunking the classes (online softmax) for 100 000-class vocabularies;
# 3. the output layer fused with the loss, so the (N, K) logits are never held;
# 4. the gradient computed in the forward, written over the logits in place, and why that
#    is dangerous.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.report import CheckTable, console, quick_mode, save_figure
from lsce_scratch import fast, losses
from lsce_scratch import nn as lnn
from lsce_scratch.memory import numpy_peak_bytes
from lsce_scratch.softmax import logsumexp

table = CheckTable("Lesson 09: fast LSCE")
rng = np.random.default_rng(10)
QUICK = quick_mode()
EPS = 0.1

online_logsumexp = exercises.choose("9.1", console)
yours = online_logsumexp is not fast.online_logsumexp


def confident_logits(n: int, k: int, dtype=np.float32) -> np.ndarray:
    """N(0, 3²) logits with one class 8–16 above the rest in a third of the rows."""
    z = rng.standard_normal((n, k)) * 3
    rows = rng.random(n) < 1 / 3
    z[rows, rng.integers(0, k, rows.sum())] += rng.uniform(8, 16, rows.sum())
    return z.astype(dtype)


# %% [markdown]
# ## 1. Where the time goes: arrays as large as the logits
#
# A direct translation of the formulas materialises the smoothed target q and the
# log-probabilities, then p and the gradient: four (N, K) arrays, each written once and
# read at least once. At N = 8192 rows of K = 32 000 classes in float32 every one of them
# is a gigabyte, far beyond any cache, so each costs a trip through main memory.


# %%
# --8<-- [start:naive]
def naive_lsce(z: np.ndarray, y: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
    """Mean LSCE and its gradient, the way the formulas read."""
    n, k = z.shape
    q = np.full((n, k), eps / k, dtype=z.dtype)  # (N, K) target
    q[np.arange(n), y] += 1 - eps
    log_p = z - z.max(axis=-1, keepdims=True)  # (N, K) log-probabilities
    log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    loss = -(q * log_p).sum() / n  # and a third (N, K) temporary
    return loss, (np.exp(log_p) - q) / n  # p, then the gradient


# --8<-- [end:naive]


def simple_lsce(z, y):
    _, cache = losses.lsce_forward(z, y, EPS)
    return losses.lsce_backward(1.0, cache)


def fast_lsce(z, y):
    _, cache = fast.lsce_forward(z, y, EPS)
    return fast.lsce_backward(1.0, cache)


n_mem = 512 if QUICK else 2048
memory_classes = [1000, 4000] if QUICK else [1000, 4000, 16_000, 32_000]
memory = {name: [] for name in ("naive", "simple (lesson 05)", "fast", "fast, loss only")}
for k in memory_classes:
    z, y = confident_logits(n_mem, k), rng.integers(0, k, n_mem)
    memory["naive"].append(numpy_peak_bytes(lambda z=z, y=y: naive_lsce(z, y, EPS)) / z.nbytes)
    memory["simple (lesson 05)"].append(
        numpy_peak_bytes(lambda z=z, y=y: simple_lsce(z, y)) / z.nbytes
    )
    memory["fast"].append(numpy_peak_bytes(lambda z=z, y=y: fast_lsce(z, y)) / z.nbytes)
    only = numpy_peak_bytes(lambda z=z, y=y: fast.label_smoothing_cross_entropy(z, y, EPS))
    memory["fast, loss only"].append(only / z.nbytes)
for name, ratios in memory.items():
    console.print(f"{name:>20}: peak " + ", ".join(f"{r:.2f}×" for r in ratios) + " the logits")

table.claim(
    "naive NumPy holds ≥ 3 arrays of the logits' size",
    min(memory["naive"]) >= 3,
    f"peak {min(memory['naive']):.2f}× to {max(memory['naive']):.2f}× the logits",
)
table.claim(
    "fast forward + backward: the gradient and a few chunks",
    max(memory["fast"]) <= 1.25,
    f"peak ≤ {max(memory['fast']):.3f}× the logits (the gradient itself is 1×)",
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, ratios in memory.items():
    ax.plot(memory_classes, ratios, marker="o", label=name)
ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="one array (the gradient)")
ax.set(
    xscale="log",
    xlabel="classes K",
    ylabel="peak memory / size of the logits",
    title=f"NumPy peak memory, forward + backward (N = {n_mem}, float32)",
)
ax.legend(fontsize=8)
save_figure(fig, "09_memory_vs_classes.png")

# %% [markdown]
# ## 2. The fused pass, and the same numbers as before
#
# Per row the fast kernel needs only row sums: the loss is
# ℓ = Σ_k r_k (z_max − z_k) + S·log(1 + rest) with rest = Σ_{k≠m} exp(z_k − z_max), and
# the gradient is S·p − r with p = exp(z − z_max) / (1 + rest). So one chunk of rows at a
# time: subtract the max into the gradient buffer, sum for the smoothing term, exponentiate
# in place, sum for rest, scale in place, subtract r (a broadcast and one entry per row),
# fix the entry at the most likely class. The chunk stays in cache across those passes;
# main memory sees one read of the logits and one write of the gradient. Because the
# gradient is finished in the forward, `lsce_backward` only multiplies by dloss (nothing
# at all when dloss is 1).
#
# It must give the same numbers as lesson 05's simple version and as PyTorch, for every
# option.

# %%
# --8<-- [start:same-numbers]
z = confident_logits(48, 37, np.float64)
cases = {
    "index targets": rng.integers(0, 37, 48),
    "ignored rows": np.where(rng.random(48) < 0.3, -100, rng.integers(0, 37, 48)),
    "soft targets": rng.dirichlet(np.ones(37), 48),
}
weight = rng.uniform(0.2, 3.0, 37)
for name, t in cases.items():
    for reduction in ("mean", "sum", "none"):
        dloss = rng.standard_normal(48) if reduction == "none" else np.float64(0.7)
        kwargs = {"reduction": reduction, "weight": weight}
        loss, cache = fast.lsce_forward(z, t, EPS, **kwargs)
        ref_loss, ref_cache = losses.lsce_forward(z, t, EPS, **kwargs)
        z_t = torch.tensor(z, requires_grad=True)
        t_t = torch.tensor(t)
        torch_loss = F.cross_entropy(z_t, t_t, torch.tensor(weight), reduction=reduction,
                                     label_smoothing=EPS)  # fmt: skip
        torch_loss.backward(torch.tensor(dloss))
        table.compare(f"{name}, {reduction}: loss vs torch", loss, torch_loss.detach(), rtol=1e-10)
        grad = fast.lsce_backward(dloss, cache)
        table.compare(f"{name}, {reduction}: gradient vs torch", grad, z_t.grad, rtol=1e-10)
        table.compare(f"{name}, {reduction}: gradient vs lesson 05", grad,
                      losses.lsce_backward(dloss, ref_cache), rtol=1e-10)  # fmt: skip
# --8<-- [end:same-numbers]

# p_y = 1 − 1e-6 in float32: the loss and the true-class gradient are both ≈ 1e-6
target = np.array([3, 0])
z = np.zeros((2, 1000))
z[[0, 1], target] = np.log((1 - 1e-6) * 999 / 1e-6)
loss32, cache32 = fast.lsce_forward(z.astype(np.float32), target, 0.0, reduction="sum")
loss64, cache64 = fast.lsce_forward(z, target, 0.0, reduction="sum")
g32 = fast.lsce_backward(np.float32(1.0), cache32)[[0, 1], target]
g64 = fast.lsce_backward(1.0, cache64)[[0, 1], target]
table.compare("float32, p_y = 1 − 1e-6: loss", loss32, loss64, rtol=1e-3)
table.compare("float32, p_y = 1 − 1e-6: true-class gradient", g32, g64, rtol=1e-3)

# %% [markdown]
# ## 3. Time against the number of classes
#
# The floor is `torch.softmax` over the same logits: one read and one write, what any LSCE
# must at least do. Everything is measured in this process, interleaved, median of a few
# repeats; on a busy machine the ratios wobble (the `make bench` table is the careful
# version of this figure).


# %%
# --8<-- [start:timing]
def seconds(fn, repeats: int) -> float:
    """Median seconds per call (a first, untimed call warms up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def torch_pass(loss_fn, z: torch.Tensor, y: torch.Tensor):
    leaf = z.clone().requires_grad_(True)

    def run():
        loss_fn(leaf, y).backward()
        leaf.grad = None

    return run


n_time = 256 if QUICK else 2048
time_classes = [256, 2048] if QUICK else [256, 1024, 4096, 16_384]
repeats = 1 if QUICK else 3
contenders = ["naive NumPy", "simple NumPy (lesson 05)", "fast NumPy", "F.cross_entropy",
              "LSCEFunction", "softmax (floor)"]  # fmt: skip
timings = {name: [] for name in contenders}
for k in time_classes:
    z_np, y_np = confident_logits(n_time, k), rng.integers(0, k, n_time)
    z_t, y_t = torch.from_numpy(z_np), torch.from_numpy(y_np)
    runs = {
        "naive NumPy": lambda z=z_np, y=y_np: naive_lsce(z, y, EPS),
        "simple NumPy (lesson 05)": lambda z=z_np, y=y_np: simple_lsce(z, y),
        "fast NumPy": lambda z=z_np, y=y_np: fast_lsce(z, y),
        "F.cross_entropy": torch_pass(
            lambda x, t: F.cross_entropy(x, t, label_smoothing=EPS), z_t, y_t
        ),  # fmt: skip
        "LSCEFunction": torch_pass(lnn.LabelSmoothingCrossEntropy(EPS), z_t, y_t),
        "softmax (floor)": lambda z=z_t: torch.softmax(z, dim=-1),
    }
    for name in contenders:
        timings[name].append(seconds(runs[name], repeats))
# --8<-- [end:timing]

floor = np.array(timings["softmax (floor)"])
for name in contenders:
    ratios = ", ".join(
        f"K={k}: {t / f:.1f}×" for k, t, f in zip(time_classes, timings[name], floor, strict=True)
    )
    console.print(f"{name:>26}: {ratios} the floor")
largest = -1
table.claim(
    "fast NumPy beats the naive translation",
    timings["fast NumPy"][largest] < timings["naive NumPy"][largest],
    f"K = {time_classes[largest]}: {timings['fast NumPy'][largest] * 1e3:.1f} ms vs "
    f"{timings['naive NumPy'][largest] * 1e3:.1f} ms",
    required=False,  # a timing: a busy machine may blur it
)
table.claim(
    "LSCEFunction beats F.cross_entropy",
    timings["LSCEFunction"][largest] < timings["F.cross_entropy"][largest],
    f"K = {time_classes[largest]}: {timings['LSCEFunction'][largest] * 1e3:.1f} ms vs "
    f"{timings['F.cross_entropy'][largest] * 1e3:.1f} ms",
    required=False,
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for name in contenders:
    ax.plot(time_classes, np.array(timings[name]) / floor, marker="o", label=name)
ax.set(
    xscale="log",
    yscale="log",
    xlabel="classes K",
    ylabel="time / softmax time",
    title=f"Forward + backward time over the floor (N = {n_time}, float32)",
)
ax.legend(fontsize=8)
save_figure(fig, "09_time_vs_classes.png")

# %% [markdown]
# ## 4. A hundred thousand classes: chunk the classes too
#
# A row of 128 000 float32 logits is 512 KB; when even a chunk of rows is too large, or the
# classes arrive in pieces (a vocabulary split over devices, a weight matrix read block by
# block), the softmax must be computed without ever seeing the whole row. The online
# softmax keeps a running maximum and a running sum, and rescales the sum whenever the
# maximum grows. `lsce_scratch.fast` keeps the max term out of the sum, as everywhere, and
# merges the states of two blocks of classes in any order:
#
#     rest = rest_hi + (rest_lo + 1)·exp(z_lo − z_hi),
#     gap = gap_hi + gap_lo + mass_lo·(z_hi − z_lo),
#
# where hi is the side with the larger maximum. Exercise 9.1 writes the plain version.

# %%
# --8<-- [start:online]
x = rng.standard_normal((4, 50_000)) * 5
lse_online = online_logsumexp(x, 4096)
table.compare("online logsumexp, chunks of 4096", lse_online, logsumexp(x), rtol=1e-12, uses="9.1")
if yours:
    reference = fast.online_logsumexp(x, 4096)
    table.compare(
        "your online_logsumexp vs lsce_scratch", lse_online, reference, rtol=1e-12, uses="9.1"
    )

n_big, k_big = (256, 20_000) if QUICK else (128, 128_000)
z_big, y_big = confident_logits(n_big, k_big), rng.integers(0, k_big, n_big)
chunked = fast.lsce_loss_chunked(z_big, y_big, EPS, chunk=8192)
plain = fast.label_smoothing_cross_entropy(z_big.astype(np.float64), y_big, EPS)
table.compare(f"K = {k_big}: class-chunked loss (float32) vs float64", chunked, plain, rtol=1e-5)
chunked_peak = numpy_peak_bytes(lambda: fast.lsce_loss_chunked(z_big, y_big, EPS, chunk=8192))
# --8<-- [end:online]
table.claim(
    "the class-chunked loss holds O(N + rows·chunk), not the logits",
    chunked_peak <= 0.25 * z_big.nbytes,
    f"peak {chunked_peak / 2**20:.1f} MiB for {z_big.nbytes / 2**20:.0f} MiB of logits",
)

# %% [markdown]
# ## 5. Never hold the logits: the output layer fused with the loss
#
# In a language model the logits are `hidden @ Wᵀ`, N × K with K the vocabulary. Take the
# rows a chunk at a time: compute the chunk's logits, turn them into their gradient in
# place, use it at once for ∂L/∂hidden = (∂L/∂z) W and ∂L/∂W += (∂L/∂z)ᵀ hidden, and move
# on (Liger-Kernel's fused linear cross-entropy). Only one chunk of logits ever exists;
# the price is time, as W is read once per chunk.

# %%
# --8<-- [start:fused]
n_f, h_f, k_f = (256, 16, 20_000) if QUICK else (512, 64, 50_000)
hidden = rng.standard_normal((n_f, h_f)).astype(np.float32)
w_out = (rng.standard_normal((k_f, h_f)) * 3 / np.sqrt(h_f)).astype(np.float32)
y_f = rng.integers(0, k_f, n_f)
chunk_rows = n_f // 8
loss_f, d_hidden, d_w, _ = fast.linear_lsce(hidden, w_out, y_f, EPS, chunk_rows=chunk_rows)
# the unfused path, in float64: materialise the logits, LSCE, chain rule by hand
h64, w64 = hidden.astype(np.float64), w_out.astype(np.float64)
loss_u, cache_u = fast.lsce_forward(h64 @ w64.T, y_f, EPS)
dz = fast.lsce_backward(1.0, cache_u)
# --8<-- [end:fused]
# float32 against float64: 1e-5 of the largest entry (tiny entries carry rounding only)
for name, ours, exact in [
    ("loss", loss_f, loss_u),
    ("∂L/∂hidden", d_hidden, dz @ w64),
    ("∂L/∂W", d_w, dz.T @ h64),
]:
    scale = float(np.max(np.abs(exact)))
    table.compare(f"fused linear + LSCE (float32): {name} vs unfused (float64)", ours, exact,
                  rtol=1e-5, atol=1e-5 * scale)  # fmt: skip
fused_results = []
fused_peak = numpy_peak_bytes(
    lambda: fused_results.append(fast.linear_lsce(hidden, w_out, y_f, EPS, chunk_rows=chunk_rows))
)
_, d_hidden, d_w, _ = fused_results[0]
working = fused_peak - d_hidden.nbytes - d_w.nbytes
logits_bytes = n_f * k_f * 4
table.claim(
    "fused: working memory ≤ 0.25× the logits it never builds",
    working <= 0.25 * logits_bytes,
    f"{working / logits_bytes:.3f}× ({working / 2**20:.1f} MiB beyond the two gradients)",
)

# %% [markdown]
# ## 6. The gradient in the forward, in place — and the danger
#
# `label_smoothing_cross_entropy(..., grad_in_forward=True)` computes ∂L/∂logits during the
# forward; the backward only scales it. `inplace=True` goes further and writes it over the
# logits, so it costs no memory at all. That is exactly what an op upstream must not see:
# if it saved the logits for its own backward (exp, tanh, softmax, a scaled copy...), it now
# reads gradients instead. Liger-Kernel's Triton kernel did this without telling autograd
# (issue #272) and produced wrong gradients silently. Ours bumps the tensor's version
# counter, so autograd raises instead.

# %%
# --8<-- [start:inplace]
x = torch.tensor(rng.standard_normal((8, 50)), requires_grad=True)
y = torch.tensor(rng.integers(0, 50, 8))


def grad_of_x(**options) -> torch.Tensor:
    """∂L/∂x where the logits are exp(x / 4): exp saves its output, the logits."""
    x.grad = None
    lnn.label_smoothing_cross_entropy(torch.exp(x / 4), y, EPS, **options).backward()
    return x.grad.clone()


reference = grad_of_x()
table.compare("grad_in_forward=True: same gradient", grad_of_x(grad_in_forward=True),
              reference, rtol=1e-12)  # fmt: skip
try:
    grad_of_x(inplace=True)
    caught = "no error"
except RuntimeError as error:
    caught = str(error).split(":")[0]
table.claim("inplace=True under exp: autograd raises", "modified by an inplace" in caught,
            caught)  # fmt: skip

# what an invisible in-place write does: the same overwrite through .data, which does not
# bump the version counter, gives a wrong gradient and no error
x.grad = None
logits = torch.exp(x / 4)
loss = lnn.label_smoothing_cross_entropy(logits, y, EPS)
logits.data.copy_(torch.autograd.grad(loss, logits, retain_graph=True)[0])
loss.backward()
# --8<-- [end:inplace]
silent_error = float((x.grad - reference).abs().max() / reference.abs().max())
table.claim("an invisible overwrite corrupts the gradient silently", silent_error > 0.5,
            f"relative error {silent_error:.2f}, and nothing raised")  # fmt: skip

# %% [markdown]
# ## 7. On a GPU
#
# On CUDA with triton installed, `LSCEFunction` runs Triton kernels
# (`lsce_scratch/nn/triton_lsce.py`), one program per row and block of classes: one kernel
# reads each block once for its statistics, the other reads it again and writes the
# gradient. The benchmark page has the measurements.

# %%
if torch.cuda.is_available() and lnn._triton() is not None:
    z_gpu = torch.tensor(confident_logits(256, 50_000), device="cuda").to(torch.bfloat16)
    y_gpu = torch.tensor(rng.integers(0, 50_000, 256), device="cuda")
    ours_gpu = torch_pass(lnn.LabelSmoothingCrossEntropy(EPS), z_gpu, y_gpu)
    leaf = z_gpu.clone().requires_grad_(True)
    lnn.label_smoothing_cross_entropy(leaf, y_gpu, EPS).backward()
    ref = z_gpu.double().requires_grad_(True)
    F.cross_entropy(ref, y_gpu, label_smoothing=EPS).backward()
    table.compare("Triton (bf16) gradient vs float64 built-in", leaf.grad.double(), ref.grad,
                  rtol=2e-2)  # fmt: skip
else:
    console.print("no CUDA GPU with triton here: the Triton kernels are not run")

# %%
raise SystemExit(table.finish())

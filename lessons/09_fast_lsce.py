# Lesson 09 · Fast LSCE: the checks of the library's fast code (lsce_scratch.fast, and
# FastLSCEFunction in lsce_scratch.nn) and its figures. The narrative is the page
# docs/lessons/09-fast-lsce.md. Run: python lessons/09_fast_lsce.py (or lsce run 9).

# %%
import importlib.util
import json
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from lsce_course import exercises
from lsce_course.exercises import find_root
from lsce_course.report import (
    CheckTable,
    console,
    quick_mode,
    save_figure,
    save_run_output,
)
from lsce_scratch import fast, losses
from lsce_scratch import nn as lnn
from lsce_scratch.memory import numpy_peak_bytes
from lsce_scratch.softmax import logsumexp

table = CheckTable("Lesson 09 · Fast LSCE")
rng = np.random.default_rng(10)
QUICK = quick_mode()
EPS = 0.1

# yours once you have started exercise 9.1, else the library's
online_logsumexp = exercises.choose("9.1", console)


def confident_logits(n: int, k: int, dtype=np.float32) -> np.ndarray:
    """N(0, 3²) logits with one class 8–16 above the rest in a third of the rows."""
    z = rng.standard_normal((n, k)) * 3
    rows = rng.random(n) < 1 / 3
    z[rows, rng.integers(0, k, rows.sum())] += rng.uniform(8, 16, rows.sum())
    return z.astype(dtype)


# %% Where the time goes
table.step("1. Where the time goes")


# --8<-- [start:naive]
def naive_lsce(z: np.ndarray, y: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
    """Mean LSCE and its gradient, the way the formulas read."""
    n, k = z.shape
    # q = (1 − ε)·onehot(y) + ε/K: an (N, K) target
    q = np.full((n, k), eps / k, dtype=z.dtype)
    q[np.arange(n), y] += 1 - eps
    # log p = z − z_max − log Σ_k exp(z_k − z_max): a second (N, K) array
    log_p = z - z.max(axis=-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    # ℓ = −Σ_k q_k log p_k, through a third (N, K) temporary
    loss = -(q * log_p).sum() / n
    # ∂L/∂z = (p − q) / N: p, then the gradient
    return loss, (np.exp(log_p) - q) / n


# --8<-- [end:naive]


def simple_lsce(z, y):
    _, cache = losses.lsce_forward(z, y, EPS)
    return losses.lsce_backward(1.0, cache)


def fast_lsce(z, y):
    _, cache = fast.lsce_forward(z, y, EPS)
    return fast.lsce_backward(1.0, cache)


# tracemalloc sees NumPy's buffers: the peak of each call, in units of the logits' size
n_mem = 512 if QUICK else 2048
memory_classes = [1000, 4000] if QUICK else [1000, 4000, 16_000, 32_000]
memory = {
    name: [] for name in ("naive", "simple (lesson 05)", "fast", "fast, loss only")
}
for k in memory_classes:
    z, y = confident_logits(n_mem, k), rng.integers(0, k, n_mem)
    runs = {
        "naive": lambda z=z, y=y: naive_lsce(z, y, EPS),
        "simple (lesson 05)": lambda z=z, y=y: simple_lsce(z, y),
        "fast": lambda z=z, y=y: fast_lsce(z, y),
        "fast, loss only": lambda z=z, y=y: fast.label_smoothing_cross_entropy(
            z, y, EPS
        ),
    }
    for name, run in runs.items():
        memory[name].append(numpy_peak_bytes(run) / z.nbytes)
for name, ratios in memory.items():
    console.print(
        f"{name:>20}: peak " + ", ".join(f"{r:.2f}×" for r in ratios) + " the logits"
    )

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

# the figure: peaks against K
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, ratios in memory.items():
    ax.plot(memory_classes, ratios, marker="o", label=name)
ax.axhline(
    1.0, color="k", linestyle="--", linewidth=1, label="one array (the gradient)"
)
ax.set(
    xscale="log",
    xlabel="classes K",
    ylabel="peak memory / size of the logits",
    title=f"NumPy peak memory, forward + backward (N = {n_mem}, float32)",
)
ax.legend(fontsize=8)
save_figure(fig, "09_memory_vs_classes.png")

# the page's memory numbers: the peaks at the largest K
results = {
    "memory": {
        "n": n_mem,
        "k": memory_classes[-1],
        "naive": memory["naive"][-1],
        "simple": memory["simple (lesson 05)"][-1],
        "fast": memory["fast"][-1],
        "loss_only": memory["fast, loss only"][-1],
    }
}

# %% The fused pass gives the same numbers
table.step("2. One pass: the fused forward and backward")

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
        options = {"reduction": reduction, "weight": weight}
        loss, cache = fast.lsce_forward(z, t, EPS, **options)
        ref_loss, ref_cache = losses.lsce_forward(z, t, EPS, **options)
        z_t = torch.tensor(z, requires_grad=True)
        torch_loss = F.cross_entropy(
            z_t,
            torch.tensor(t),
            torch.tensor(weight),
            reduction=reduction,
            label_smoothing=EPS,
        )
        torch_loss.backward(torch.tensor(dloss))
        grad = fast.lsce_backward(dloss, cache)
        ref_grad = losses.lsce_backward(dloss, ref_cache)
        table.compare(
            f"{name}, {reduction}: loss vs torch", loss, torch_loss.detach(), rtol=1e-10
        )
        table.compare(
            f"{name}, {reduction}: gradient vs torch", grad, z_t.grad, rtol=1e-10
        )
        table.compare(
            f"{name}, {reduction}: gradient vs lesson 05", grad, ref_grad, rtol=1e-10
        )
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

# %% Time against the number of classes
table.step("3. Time against the number of classes")


# a timing of this run, as a check only (the figure below is make bench's)
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
    """Forward + backward of loss_fn on a leaf copy of z."""
    leaf = z.clone().requires_grad_(True)

    def run():
        loss_fn(leaf, y).backward()
        leaf.grad = None

    return run


n_time, k_time = (256, 2048) if QUICK else (2048, 16_384)
repeats = 1 if QUICK else 3
z_np, y_np = confident_logits(n_time, k_time), rng.integers(0, k_time, n_time)
z_t, y_t = torch.from_numpy(z_np), torch.from_numpy(y_np)
builtin = torch_pass(lambda x, t: F.cross_entropy(x, t, label_smoothing=EPS), z_t, y_t)
timings = {
    "naive NumPy": seconds(lambda: naive_lsce(z_np, y_np, EPS), repeats),
    "fast NumPy": seconds(lambda: fast_lsce(z_np, y_np), repeats),
    "F.cross_entropy": seconds(builtin, repeats),
    "LabelSmoothingCrossEntropy": seconds(
        torch_pass(lnn.LabelSmoothingCrossEntropy(EPS), z_t, y_t), repeats
    ),
}
# a timing: a busy machine may blur it, so these two checks are not required
table.claim(
    "fast NumPy beats the naive translation",
    timings["fast NumPy"] < timings["naive NumPy"],
    f"K = {k_time}: {timings['fast NumPy'] * 1e3:.1f} ms vs "
    f"{timings['naive NumPy'] * 1e3:.1f} ms",
    required=False,
)
table.claim(
    "LabelSmoothingCrossEntropy beats F.cross_entropy",
    timings["LabelSmoothingCrossEntropy"] < timings["F.cross_entropy"],
    f"K = {k_time}: {timings['LabelSmoothingCrossEntropy'] * 1e3:.1f} ms vs "
    f"{timings['F.cross_entropy'] * 1e3:.1f} ms",
    required=False,
)

# %% The committed benchmark

# --8<-- [start:bench]
# the figure is make bench's committed measurement, never a timing of this run
bench_dir = find_root() / "docs" / "benchmarks"
bench = {
    device: json.loads(path.read_text())
    for device in ("cpu", "cuda")
    if (path := bench_dir / f"{device}.json").is_file()
}
if "cpu" not in bench:
    raise FileNotFoundError(f"{bench_dir / 'cpu.json'} is missing: run make bench")
# make bench's implementation names → the figure's labels and the
# make bench's row names (as measured) → the figure's label and the key in
# 09_results.json; the rows named LSCEFunction measured the module's fast Function
SHOWN = {
    "NumPy naive": ("naive NumPy", "naive"),
    "NumPy simple (losses)": ("simple NumPy (lesson 05)", "simple"),
    "NumPy fast": ("fast NumPy", "fast"),
    "F.cross_entropy": ("F.cross_entropy", "builtin"),
    "composite module": ("composite module (lesson 06)", "composite"),
    "LSCEFunction": ("FastLSCEFunction", "lsce_function"),
    "LSCEFunction grad_in_forward": (
        "FastLSCEFunction, grad_in_forward",
        "grad_in_forward",
    ),
    "LSCEFunction inplace": ("FastLSCEFunction, inplace", "inplace"),
    "LSCEFunction torch ops": (
        "FastLSCEFunction, torch ops (no Triton)",
        "torch_ops",
    ),
}


def where(machine: dict) -> str:
    """The machine a bench run names: its GPU, else its CPU and cores."""
    return machine.get("gpu") or f"{machine['cpu']}, {machine['cores']} cores"


def ratios_at(rows: dict, size: tuple[int, int]) -> dict:
    """Each shown implementation's time over the floor's and over F.cross_entropy's."""
    shown = [(impl, key) for impl, (_, key) in SHOWN.items() if impl in rows]
    ratios = {
        c: {key: rows[impl][c] for impl, key in shown}
        for c in ("vs_floor", "vs_builtin")
    }
    return {"n": size[0], "k": size[1], **ratios}


fig, axes = plt.subplots(1, len(bench), figsize=(6 * len(bench), 4), squeeze=False)
results["bench"] = {}
for ax, (device, data) in zip(axes[0], bench.items(), strict=True):
    sizes = sorted(
        {tuple(r["size"]) for r in data["results"]}, key=lambda s: s[0] * s[1]
    )
    rows = {
        s: {r["impl"]: r for r in data["results"] if tuple(r["size"]) == s}
        for s in sizes
    }
    for colour, (impl, (label, _)) in enumerate(SHOWN.items()):
        measured = [
            s for s in sizes if rows[s].get(impl, {}).get("vs_floor") is not None
        ]
        ratios = [rows[s][impl]["vs_floor"] for s in measured]
        if measured:
            ax.plot(
                [k for _, k in measured], ratios, "o-", color=f"C{colour}", label=label
            )
    floor = "a copy of the logits" if device == "cuda" else "torch.softmax"
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label=f"the floor: {floor}")
    ax.set(xscale="log", yscale="log", xlabel="N × K", ylabel="time / floor time")
    ax.set_xticks([k for _, k in sizes], [f"{n} × {k}" for n, k in sizes], minor=False)
    ax.minorticks_off()
    ax.margins(x=0.15)
    machine, dtype = data["machine"], data["results"][0]["dtype"]
    ax.set_title(
        f"{where(machine)}, {dtype} (make bench, {machine['date'][:10]})", fontsize=9
    )
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
        frameon=False,
    )
    # the page's numbers: the ratios at the smallest and at the largest size
    results["bench"][device] = {
        "machine": where(machine),
        "date": machine["date"],
        "dtype": dtype,
        "smallest": ratios_at(rows[sizes[0]], sizes[0]),
        "largest": ratios_at(rows[sizes[-1]], sizes[-1]),
    }
fig.suptitle("Forward + backward time over the floor (N×K logits)", fontsize=10)
save_figure(fig, "09_time_vs_classes.png")
# --8<-- [end:bench]


# %% A hundred thousand classes
table.step("4. A hundred thousand classes: chunk the classes")

# --8<-- [start:online]
x = rng.standard_normal((4, 50_000)) * 5
lse_online = online_logsumexp(x, 4096)
table.compare(
    "online logsumexp, chunks of 4096", lse_online, logsumexp(x), rtol=1e-12, uses="9.1"
)
# your function against the library's as well, once you have written it
if online_logsumexp is not fast.online_logsumexp:
    reference = fast.online_logsumexp(x, 4096)
    table.compare(
        "your online_logsumexp vs lsce_scratch",
        lse_online,
        reference,
        rtol=1e-12,
        uses="9.1",
    )

n_big, k_big = (256, 20_000) if QUICK else (128, 128_000)
z_big, y_big = confident_logits(n_big, k_big), rng.integers(0, k_big, n_big)
chunked = fast.lsce_loss_chunked(z_big, y_big, EPS, chunk=8192)
plain = fast.label_smoothing_cross_entropy(z_big.astype(np.float64), y_big, EPS)
table.compare(
    f"K = {k_big}: class-chunked loss (float32) vs float64", chunked, plain, rtol=1e-5
)
chunked_peak = numpy_peak_bytes(
    lambda: fast.lsce_loss_chunked(z_big, y_big, EPS, chunk=8192)
)
# --8<-- [end:online]
table.claim(
    "the class-chunked loss holds O(N + rows·chunk), not the logits",
    chunked_peak <= 0.25 * z_big.nbytes,
    f"peak {chunked_peak / 2**20:.1f} MiB for {z_big.nbytes / 2**20:.0f} MiB of logits",
)
results["chunked"] = {
    "n": n_big,
    "k": k_big,
    "peak_mib": chunked_peak / 2**20,
    "logits_mib": z_big.nbytes / 2**20,
    "peak_vs_logits": chunked_peak / z_big.nbytes,
}

# %% The output layer fused with the loss
table.step("5. Never hold the logits: the output layer fused with the loss")

# --8<-- [start:fused]
n_f, h_f, k_f = (256, 16, 20_000) if QUICK else (512, 64, 50_000)
hidden = rng.standard_normal((n_f, h_f)).astype(np.float32)
w_out = (rng.standard_normal((k_f, h_f)) * 3 / np.sqrt(h_f)).astype(np.float32)
y_f = rng.integers(0, k_f, n_f)
chunk_rows = n_f // 8
loss_f, d_hidden, d_w, _ = fast.linear_lsce(
    hidden, w_out, y_f, EPS, chunk_rows=chunk_rows
)
# the unfused path, in float64: materialise Z = H Wᵀ, LSCE, then the chain rule by hand
h64, w64 = hidden.astype(np.float64), w_out.astype(np.float64)
loss_u, cache_u = fast.lsce_forward(h64 @ w64.T, y_f, EPS)
dz = fast.lsce_backward(1.0, cache_u)
# ∂L/∂H = (∂L/∂Z) W and ∂L/∂W = (∂L/∂Z)ᵀ H
unfused = {"loss": loss_u, "∂L/∂hidden": dz @ w64, "∂L/∂W": dz.T @ h64}
# --8<-- [end:fused]
# float32 against float64: 1e-5 of the largest entry (tiny entries carry rounding only)
for (name, exact), ours in zip(unfused.items(), (loss_f, d_hidden, d_w), strict=True):
    scale = float(np.max(np.abs(exact)))
    table.compare(
        f"fused linear + LSCE (float32): {name} vs unfused (float64)",
        ours,
        exact,
        rtol=1e-5,
        atol=1e-5 * scale,
    )
fused_results = []
fused_peak = numpy_peak_bytes(
    lambda: fused_results.append(
        fast.linear_lsce(hidden, w_out, y_f, EPS, chunk_rows=chunk_rows)
    )
)
_, d_hidden, d_w, _ = fused_results[0]
# the two gradients it returns are the output;
# what it needs beyond them is the working set
working = fused_peak - d_hidden.nbytes - d_w.nbytes
logits_bytes = n_f * k_f * 4
table.claim(
    "fused: working memory ≤ 0.25× the logits it never builds",
    working <= 0.25 * logits_bytes,
    f"{working / logits_bytes:.3f}× ({working / 2**20:.1f} MiB "
    "beyond the two gradients)",
)
results["fused"] = {
    "n": n_f,
    "h": h_f,
    "k": k_f,
    "working_vs_logits": working / logits_bytes,
    "logits_mib": logits_bytes / 2**20,
}

# %% The gradient in the forward, in place
table.step("6. The gradient in the forward, and in place")

# --8<-- [start:inplace]
x = torch.tensor(rng.standard_normal((8, 50)), requires_grad=True)
y = torch.tensor(rng.integers(0, 50, 8))


def grad_of_x(**options) -> torch.Tensor:
    """∂L/∂x where the logits are exp(x / 4): exp saves its output, the logits."""
    x.grad = None
    lnn.label_smoothing_cross_entropy(torch.exp(x / 4), y, EPS, **options).backward()
    return x.grad.clone()


reference = grad_of_x()
in_forward = grad_of_x(grad_in_forward=True)
table.compare("grad_in_forward=True: same gradient", in_forward, reference, rtol=1e-12)
try:
    grad_of_x(inplace=True)
    caught = "no error"
except RuntimeError as error:
    caught = str(error).split(":")[0]
table.claim(
    "inplace=True under exp: autograd raises",
    "modified by an inplace" in caught,
    caught,
)

# an invisible in-place write: the same overwrite through .data, which does not bump the
# version counter, gives a wrong gradient and no error
x.grad = None
logits = torch.exp(x / 4)
loss = lnn.label_smoothing_cross_entropy(logits, y, EPS)
logits.data.copy_(torch.autograd.grad(loss, logits, retain_graph=True)[0])
loss.backward()
# --8<-- [end:inplace]
silent_error = float((x.grad - reference).abs().max() / reference.abs().max())
table.claim(
    "an invisible overwrite corrupts the gradient silently",
    silent_error > 0.5,
    f"relative error {silent_error:.2f}, and nothing raised",
)

# %% On a GPU
table.step("7. On a GPU: Triton kernels")

if torch.cuda.is_available() and importlib.util.find_spec("triton") is not None:
    z_gpu = torch.tensor(confident_logits(256, 50_000), device="cuda").to(
        torch.bfloat16
    )
    y_gpu = torch.tensor(rng.integers(0, 50_000, 256), device="cuda")
    leaf = z_gpu.clone().requires_grad_(True)
    lnn.label_smoothing_cross_entropy(leaf, y_gpu, EPS).backward()
    ref = z_gpu.double().requires_grad_(True)
    F.cross_entropy(ref, y_gpu, label_smoothing=EPS).backward()
    table.compare(
        "Triton (bf16) gradient vs float64 built-in",
        leaf.grad.double(),
        ref.grad,
        rtol=2e-2,
    )
else:
    console.print("no CUDA GPU with triton here: the Triton kernels are not run")

# %%
save_run_output("09_results.json", results)
raise SystemExit(table.finish())

"""The benchmark command (``make bench``): LSCE implementations, forward + backward, in one run.

Every implementation gets the same logits in the same process; the repeats interleave the
implementations (in a rotating order), and a table reports the median time, its ratio to
the built-in ``F.cross_entropy(label_smoothing=0.1)`` and to a floor measured in the same
run (``torch.softmax`` over the logits on the CPU, a device-to-device copy on a GPU), and
the peak extra memory (tracemalloc for NumPy, ``torch.cuda.max_memory_allocated`` on a
GPU). Then the fused linear + LSCE against the unfused path, and the issue's targets with
pass/fail. Results go to JSON (``--out``) and to a Markdown table next to it (same name,
``.txt``) that the Benchmarks docs page includes.

    python benchmarks/bench.py                      # CPU, writes build/bench.json
    python benchmarks/bench.py --device cuda --out docs/benchmarks/cuda.json
    python benchmarks/bench.py --quick              # tiny sizes, a few seconds
    python benchmarks/bench.py --render docs/benchmarks/cpu.json   # re-render the table

Absolute CPU times say little (quote ratios); a busy machine makes every ratio noisy, so
the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsce_scratch import fast, losses  # noqa: E402
from lsce_scratch import nn as lnn  # noqa: E402
from lsce_scratch.memory import numpy_peak_bytes  # noqa: E402

EPSILON = 0.1
CPU_SIZES = [(64, 37), (4096, 1000), (8192, 32000)]
CUDA_SIZES = [(8192, 32000), (8192, 128000)]
QUICK_SIZES = [(64, 37), (512, 1000)]
FUSED_CPU = (2048, 512, 128000)  # N, H, K
FUSED_CUDA = (8192, 4096, 128256)
FUSED_QUICK = (128, 32, 5000)
FLOOR, BUILTIN = "floor", "F.cross_entropy"

console = Console(highlight=False)


@dataclass
class Impl:
    """One implementation: ``make(z)`` returns a function doing forward + backward."""

    name: str
    kind: str  # "numpy", "torch" or "floor"
    make: Callable[[object, object], Callable[[], object]]
    slow: bool = False  # timed in the first repeat only (the materialising baselines)


def naive_numpy(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """A direct translation: the (N, K) target q and log-probabilities, both materialised."""
    n, k = z.shape
    q = np.full((n, k), EPSILON / k, dtype=z.dtype)
    q[np.arange(n), y] += 1 - EPSILON
    log_p = z - z.max(axis=-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    loss = -(q * log_p).sum() / n
    return loss, (np.exp(log_p) - q) / n


def numpy_pair(module) -> Callable:
    def make(z, y):
        def run():
            _, cache = module.lsce_forward(z, y, EPSILON)
            return module.lsce_backward(1.0, cache)

        return run

    return make


def torch_loss(loss_fn: Callable, inplace: bool = False) -> Callable:
    """Forward + backward of ``loss_fn(logits, target)`` on a leaf; the gradient is dropped."""

    def make(z, y):
        leaf = z.detach().clone().requires_grad_(True)

        def run():
            # in place needs non-leaf logits: a view stands in for a model's output (the
            # gradient then overwrites the leaf's values, which changes no timing)
            logits = leaf.view_as(leaf) if inplace else leaf
            loss_fn(logits, y).backward()
            grad, leaf.grad = leaf.grad, None
            return grad

        return run

    return make


def implementations(device: str) -> list[Impl]:
    """The contenders, the built-in and the floor, in table order."""
    if device == "cuda":
        floor = Impl(FLOOR, "floor", lambda z, y: _copy(z))
    else:
        floor = Impl(FLOOR, "floor", lambda z, y: lambda: torch.softmax(z, dim=-1))
    builtin = torch_loss(lambda x, t: F.cross_entropy(x, t, label_smoothing=EPSILON))
    impls = [
        floor,
        Impl(BUILTIN, "torch", builtin),
        Impl("composite module", "torch",
             torch_loss(lnn.CompositeLabelSmoothingCrossEntropy(EPSILON))),
        Impl("LSCEFunction", "torch", torch_loss(lnn.LabelSmoothingCrossEntropy(EPSILON))),
        Impl("LSCEFunction grad_in_forward", "torch",
             torch_loss(lnn.LabelSmoothingCrossEntropy(EPSILON, grad_in_forward=True))),
    ]  # fmt: skip
    if device == "cuda":
        impls.append(
            Impl("LSCEFunction inplace", "torch",
                 torch_loss(lnn.LabelSmoothingCrossEntropy(EPSILON, inplace=True), inplace=True))
        )  # fmt: skip
        impls.append(Impl("LSCEFunction torch ops", "torch", _torch_ops))
        return impls
    return impls + [
        Impl("NumPy naive", "numpy", lambda z, y: lambda: naive_numpy(z, y), slow=True),
        Impl("NumPy simple (losses)", "numpy", numpy_pair(losses), slow=True),
        Impl("NumPy fast", "numpy", numpy_pair(fast)),
    ]


def _copy(z: torch.Tensor) -> Callable[[], torch.Tensor]:
    out = torch.empty_like(z)
    return lambda: out.copy_(z)


def _torch_ops(z, y):
    """LSCEFunction with the Triton kernels switched off: the torch-ops fallback."""
    run = torch_loss(lnn.LabelSmoothingCrossEntropy(EPSILON))(z, y)

    def without_triton():
        lnn.USE_TRITON = False
        try:
            return run()
        finally:
            lnn.USE_TRITON = True

    return without_triton


def make_inputs(n: int, k: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits N(0, 3²) with a confident class in a third of the rows, and class indices."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g) * 3
    winners = torch.randint(0, k, (n,), generator=g)
    rows = torch.arange(n)
    z[rows, winners] += (torch.rand(n, generator=g) < 0.3) * 10.0
    y = torch.where(torch.rand(n, generator=g) < 0.5, winners, torch.randint(0, k, (n,)))
    return z.to(device=device, dtype=dtype), y.to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def per_call(fn: Callable, device: str, min_time: float) -> float:
    """Seconds per call: calls are repeated until they take min_time in all."""
    calls, elapsed = 0, 0.0
    sync(device)
    start = time.perf_counter()
    while calls == 0 or elapsed < min_time:
        fn()
        calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
    return elapsed / calls


def peak_extra_bytes(fn: Callable, impl: Impl, device: str) -> int | None:
    """Peak bytes allocated during one call beyond what was allocated before it."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    if impl.kind != "numpy":
        return None  # tracemalloc does not see torch's CPU allocator
    return numpy_peak_bytes(fn)


def bench_size(n: int, k: int, impls: list[Impl], device: str, repeats: int, dtype) -> list[dict]:
    z, y = make_inputs(n, k, dtype, device)
    logits_bytes = z.numel() * z.element_size()
    small = n * k < 1 << 22
    # a GPU call takes milliseconds: time loops of them; big CPU calls take seconds
    min_time = 0.05 if device == "cuda" else 0.2 if small else 0.0
    runs, times, peaks, errors = {}, {impl.name: [] for impl in impls}, {}, {}
    for impl in impls:
        inputs = (z.numpy(), y.numpy()) if impl.kind == "numpy" else (z, y)
        try:
            runs[impl.name] = impl.make(*inputs)
            # the first call warms up (page faults, kernel compilation) and measures memory
            peaks[impl.name] = peak_extra_bytes(runs[impl.name], impl, device)
        except Exception as error:  # one broken contender must not lose the whole run
            errors[impl.name] = f"{type(error).__name__}: {error}"
            console.print(f"[red]{impl.name} failed[/red]: {errors[impl.name]}")
    live = [impl for impl in impls if impl.name not in errors]
    for r in range(repeats):
        order = live[r % len(live) :] + live[: r % len(live)]
        for impl in order:
            if impl.slow and r > 0 and not small:
                continue
            times[impl.name].append(per_call(runs[impl.name], device, min_time))
    median = {name: statistics.median(ts) if ts else None for name, ts in times.items()}
    rows = []
    for impl in impls:
        t, peak = median[impl.name], peaks.get(impl.name)
        rows.append({
            "size": [n, k], "dtype": str(dtype).removeprefix("torch."), "impl": impl.name,
            "kind": impl.kind, "time_s": t, "times_s": times[impl.name],
            "vs_builtin": _divide(t, median[BUILTIN]), "vs_floor": _divide(t, median[FLOOR]),
            "peak_bytes": peak, "peak_vs_logits": _divide(peak, logits_bytes),
            "error": errors.get(impl.name),
        })  # fmt: skip
    return rows


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def bench_fused(shape: tuple[int, int, int], device: str, repeats: int, dtype) -> dict:
    """Fused linear + LSCE against the unfused path: time, memory, agreement."""
    n, h, k = shape
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(n, h, generator=g).to(device=device, dtype=dtype)
    weight = (torch.randn(k, h, generator=g) * 3 / h**0.5).to(device=device, dtype=dtype)
    y = torch.randint(0, k, (n,), generator=g).to(device)
    logits_bytes = n * k * hidden.element_size()

    def numpy_unfused():
        hn, wn = hidden.numpy(), weight.numpy()
        loss, cache = fast.lsce_forward(hn @ wn.T, y.numpy(), EPSILON)
        dz = fast.lsce_backward(1.0, cache)
        return loss, dz @ wn, dz.T @ hn

    def numpy_fused():
        return fast.linear_lsce(hidden.numpy(), weight.numpy(), y.numpy(), EPSILON)[:3]

    def torch_run(fused: bool) -> Callable:
        h_leaf = hidden.detach().clone().requires_grad_(True)
        w_leaf = weight.detach().clone().requires_grad_(True)

        def run():
            if fused:
                loss = lnn.linear_label_smoothing_cross_entropy(h_leaf, w_leaf, y, EPSILON)
            else:
                loss = F.cross_entropy(h_leaf @ w_leaf.T, y, label_smoothing=EPSILON)
            loss.backward()
            grads = (loss.detach(), h_leaf.grad, w_leaf.grad)
            h_leaf.grad = w_leaf.grad = None
            return grads

        return run

    if device == "cuda":
        runs = {"torch unfused": torch_run(False), "torch fused": torch_run(True)}
        kinds = {name: "torch" for name in runs}
    else:
        runs = {"NumPy unfused": numpy_unfused, "NumPy fused": numpy_fused,
                "torch unfused": torch_run(False), "torch fused": torch_run(True)}  # fmt: skip
        kinds = {name: name.split()[0].lower() for name in runs}
    result = {"shape": [n, h, k], "dtype": str(dtype).removeprefix("torch."), "rows": []}
    outputs, peaks, errors = {}, {}, {}
    for name, run in runs.items():
        gc.collect()
        try:
            # one traced call: memory, and the outputs the accuracy check compares
            if device == "cuda" or kinds[name] == "torch":
                peaks[name] = peak_extra_bytes(run, Impl(name, kinds[name], None), device)
                outputs[name] = run()
            else:
                traced = []
                peaks[name] = numpy_peak_bytes(lambda run=run, out=traced: out.append(run()))
                outputs[name] = traced[0]
        except Exception as error:
            errors[name] = f"{type(error).__name__}: {error}"
            console.print(f"[red]{name} failed[/red]: {errors[name]}")
    live = [name for name in runs if name not in errors]
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name in live[r % 2 :] + live[: r % 2]:
            times[name].append(per_call(runs[name], device, 0.0))
    for name in runs:
        row = {"impl": name, "time_s": None, "times_s": times[name], "peak_bytes": None,
               "peak_vs_logits": None, "working_vs_logits": None,
               "max_rel_error_vs_unfused": None, "error": errors.get(name)}  # fmt: skip
        result["rows"].append(row)
        if name in errors:
            continue
        loss, d_hidden, d_weight = (np.asarray(_float64(t)) for t in outputs[name])
        reference = outputs.get(name.split()[0] + " unfused")
        if reference is not None:
            row["max_rel_error_vs_unfused"] = max(
                float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
                for a, b in zip((loss, d_hidden, d_weight), map(_float64, reference), strict=True)
            )
        peak = peaks[name]
        outputs_bytes = (
            d_hidden.size * hidden.element_size() + d_weight.size * weight.element_size()
        )
        row |= {
            "time_s": statistics.median(times[name]), "peak_bytes": peak,
            "peak_vs_logits": _divide(peak, logits_bytes),
            "working_vs_logits": _divide(None if peak is None else peak - outputs_bytes,
                                         logits_bytes),
        }  # fmt: skip
    return result


def _float64(t) -> np.ndarray:
    return t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.float64(t)


def find(rows: list[dict], size: list[int], impl: str) -> dict | None:
    return next((r for r in rows if r["size"] == size and r["impl"] == impl), None)


def targets(data: dict) -> list[dict]:
    """The issue's targets, from the measured rows (only those whose size was run)."""
    rows, out = data["results"], []

    def add(name: str, row: dict | None, key: str, limit: float, above: bool = False):
        if row is None or row.get(key) is None:
            return
        value = row[key]
        ok = value >= limit if above else value <= limit
        out.append({"target": name, "value": value, "limit": limit,
                    "rule": ">=" if above else "<=", "pass": bool(ok)})  # fmt: skip

    if data["machine"]["device"] == "cpu":
        big = [8192, 32000]
        fast_row = find(rows, big, "NumPy fast")
        add("NumPy fast time / built-in (8192×32000)", fast_row, "vs_builtin", 0.4)
        add("NumPy fast time / softmax floor (8192×32000)", fast_row, "vs_floor", 1.5)
        add("LSCEFunction time / built-in (8192×32000)", find(rows, big, "LSCEFunction"),
            "vs_builtin", 0.5)  # fmt: skip
        add("NumPy fast peak extra memory / logits (8192×32000)", fast_row, "peak_vs_logits",
            1.25)  # fmt: skip
        fused = data.get("fused_linear")
        if fused and fused["shape"] == list(FUSED_CPU):
            row = next(r for r in fused["rows"] if r["impl"] == "NumPy fused")
            add("fused linear: working memory / logits (2048×512×128000)", row,
                "working_vs_logits", 0.25)  # fmt: skip
            add("fused linear: max rel. error vs unfused", row, "max_rel_error_vs_unfused", 1e-5)
    else:
        big = [8192, 128000]
        ours, builtin = find(rows, big, "LSCEFunction"), find(rows, big, BUILTIN)
        add("LSCEFunction time / built-in (8192×128000 bf16)", ours, "vs_builtin", 0.5)
        if ours and builtin and ours["peak_bytes"] and builtin["peak_bytes"]:
            memory = {"memory_vs_builtin": ours["peak_bytes"] / builtin["peak_bytes"]}
            add("LSCEFunction peak memory / built-in's (8192×128000 bf16)", memory,
                "memory_vs_builtin", 0.5)  # fmt: skip
        if lnn._triton() is not None and ours:
            # The copy reads the logits once and writes them once. Forward and backward
            # together read the logits twice (statistics, gradient) and write the gradient
            # once: 3/2 of the copy's bytes. Bytes per second over the copy's is the
            # fraction of the copy bandwidth that the kernels reach.
            for name in ("LSCEFunction", "LSCEFunction grad_in_forward"):
                row = find(rows, big, name)
                if row and row["vs_floor"]:
                    add(f"{name} (Triton): fraction of copy bandwidth",
                        {"f": 1.5 / row["vs_floor"]}, "f", 0.7, above=True)  # fmt: skip
    return out


def machine(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    info = {
        "device": device, "cpu": cpu, "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "lsce_threads": fast.THREADS,
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }  # fmt: skip
    if device == "cuda":
        triton = lnn._triton()
        info |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                 "triton": None if triton is None else triton.triton.__version__}  # fmt: skip
    return info


def run(device: str, quick: bool, repeats: int) -> dict:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    sizes = QUICK_SIZES if quick else CUDA_SIZES if device == "cuda" else CPU_SIZES
    fused_shape = FUSED_QUICK if quick else FUSED_CUDA if device == "cuda" else FUSED_CPU
    data = {
        "machine": machine(device),
        "settings": {
            "epsilon": EPSILON,
            "reduction": "mean",
            "repeats": repeats,
            "quick": quick,
            "pass": "forward + backward",
        },  # fmt: skip
        "results": [],
    }
    impls = implementations(device)
    started = time.perf_counter()
    for n, k in sizes:
        console.print(f"[bold]{n} × {k}[/bold] {data['settings']['pass']} ...")
        data["results"] += bench_size(n, k, impls, device, repeats, dtype)
        gc.collect()
    console.print(f"[bold]fused linear + LSCE {fused_shape}[/bold] ...")
    # the fused pair takes seconds per call on a CPU: one timed call after the traced one
    data["fused_linear"] = bench_fused(
        fused_shape, device, 1 if device == "cpu" else repeats, dtype
    )
    data["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    data["seconds"] = time.perf_counter() - started
    data["targets"] = targets(data)
    return data


def _mb(nbytes: int | None) -> str:
    if nbytes is None:
        return "—"
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:,.0f} KiB"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def markdown(data: dict) -> str:
    """The results as Markdown tables (what the Benchmarks page includes)."""
    m = data["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores"
    lines = [
        f"Measured {m['date']} on {where}; Python {m['python']}, NumPy {m['numpy']}, "
        f"torch {m['torch']}"
        + (f", CUDA {m['cuda']}, triton {m['triton']}" if m["device"] == "cuda" else "")
        + f". Load average {_load(m.get('loadavg_start'))} before, "
        f"{_load(m.get('loadavg_end'))} after; {data['settings']['repeats']} repeats, "
        f"median; ε = {data['settings']['epsilon']}, reduction 'mean', forward + backward.",
        "",
    ]
    sizes = sorted({tuple(r["size"]) for r in data["results"]}, key=lambda s: s[0] * s[1])
    floor = "a device-to-device copy" if m["device"] == "cuda" else "torch.softmax"
    for size in sizes:
        rows = [r for r in data["results"] if tuple(r["size"]) == size]
        lines += [
            f"**N = {size[0]}, K = {size[1]}, {rows[0]['dtype']}** (floor: {floor})",
            "",
            "| implementation | time | × built-in | × floor | peak extra memory | × logits |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['impl']} | {_time(r['time_s'])} | {_ratio(r['vs_builtin'])} | "
                f"{_ratio(r['vs_floor'])} | {_mb(r['peak_bytes'])} | "
                f"{_ratio(r['peak_vs_logits'])} |"
            )
        lines.append("")
    fused = data.get("fused_linear")
    if fused:
        n, h, k = fused["shape"]
        lines += [
            f"**Fused linear + LSCE, N = {n}, H = {h}, K = {k}, {fused['dtype']}** "
            f"(the logits would take {_mb(n * k * (2 if fused['dtype'] == 'bfloat16' else 4))})",
            "",
            "| implementation | time | peak extra memory | × logits | beyond the gradients "
            "| max rel. error vs unfused |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in fused["rows"]:
            lines.append(
                f"| {r['impl']} | {_time(r['time_s'])} | {_mb(r['peak_bytes'])} | "
                f"{_ratio(r['peak_vs_logits'])} | {_ratio(r['working_vs_logits'])} | "
                f"{_error(r['max_rel_error_vs_unfused'])} |"
            )
        lines += [
            "",
            "Each fused row is compared with the unfused path of its own framework, in the "
            "same dtype: the largest difference of the loss, ∂L/∂hidden and ∂L/∂W, relative "
            "to the largest entry. The torch unfused path is F.cross_entropy, whose own "
            "rounding in that dtype dominates the difference; the test suite checks both "
            "fused paths against float64.",
            "",
        ]
    failures = [r for r in data["results"] + (fused or {}).get("rows", []) if r.get("error")]
    if failures:
        lines += ["**Failed**", ""]
        lines += [f"- {r['impl']} {r.get('size', '')}: `{r['error']}`" for r in failures]
        lines.append("")
    if data["targets"]:
        lines += ["**Targets**", "", "| target | measured | limit | |", "|---|---:|---:|---|"]
        for t in data["targets"]:
            mark = "pass" if t["pass"] else "**FAIL**"
            lines.append(
                f"| {t['target']} | {t['value']:.3g} | {t['rule']} {t['limit']:g} | {mark} |"
            )
        lines.append("")
    return "\n".join(lines)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "failed"
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.0f} µs"
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _error(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def _load(avg: list[float] | None) -> str:
    return "?" if not avg else f"{avg[0]:.1f}"


def show(data: dict) -> None:
    """Print the results as rich tables."""
    for size in sorted({tuple(r["size"]) for r in data["results"]}, key=lambda s: s[0] * s[1]):
        rows = [r for r in data["results"] if tuple(r["size"]) == size]
        table = Table(
            title=f"N = {size[0]}, K = {size[1]}, {rows[0]['dtype']}", title_justify="left"
        )
        for column in ("implementation", "time", "× built-in", "× floor", "peak extra", "× logits"):
            table.add_column(column, justify="left" if column == "implementation" else "right")
        for r in rows:
            cells = (r["vs_builtin"], r["vs_floor"])
            table.add_row(r["impl"], _time(r["time_s"]), *map(_ratio, cells),
                          _mb(r["peak_bytes"]), _ratio(r["peak_vs_logits"]))  # fmt: skip
        console.print(table)
    fused = data.get("fused_linear")
    if fused:
        table = Table(title=f"fused linear + LSCE {tuple(fused['shape'])}", title_justify="left")
        for column in (
            "implementation",
            "time",
            "peak extra",
            "× logits",
            "beyond grads",
            "rel. error",
        ):
            table.add_column(column, justify="left" if column == "implementation" else "right")
        for r in fused["rows"]:
            table.add_row(r["impl"], _time(r["time_s"]), _mb(r["peak_bytes"]),
                          _ratio(r["peak_vs_logits"]), _ratio(r["working_vs_logits"]),
                          _error(r["max_rel_error_vs_unfused"]))  # fmt: skip
        console.print(table)
    table = Table(title="targets", title_justify="left")
    for column in ("target", "measured", "limit", ""):
        table.add_column(column)
    for t in data["targets"]:
        mark = "[green]pass[/green]" if t["pass"] else "[red]FAIL[/red]"
        table.add_row(t["target"], f"{t['value']:.3g}", f"{t['rule']} {t['limit']:g}", mark)
    if not data["targets"]:
        table.add_row("(the target sizes were not run)", "", "", "")
    console.print(table)


def write(data: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    out.with_suffix(".txt").write_text(markdown(data))
    console.print(f"wrote [bold]{out}[/bold] and [bold]{out.with_suffix('.txt')}[/bold]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="3, 5 on a GPU, 2 with --quick")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench.json")
    parser.add_argument("--render", type=Path, help="re-render the table of a saved JSON")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text())
        show(data)
        args.render.with_suffix(".txt").write_text(markdown(data))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        console.print("[red]--device cuda: no CUDA GPU here[/red]")
        return 2
    repeats = args.repeats or (2 if args.quick else 5 if args.device == "cuda" else 3)
    data = run(args.device, args.quick, repeats)
    show(data)
    console.print(f"{data['seconds']:.0f} s")
    write(data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

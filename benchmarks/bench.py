"""The benchmark command (``make bench``): LSCE implementations, forward + backward, in one run.

Every implementation gets the same inputs in the same process; the repeats interleave the
implementations (in a rotating order), and a table reports the median time, its ratio to
the built-in ``F.cross_entropy(label_smoothing=0.1)`` and to a floor measured in the same
run (``torch.softmax`` over the logits on the CPU, a device-to-device copy on a GPU), and
the peak extra memory: tracemalloc for NumPy, ``torch.cuda.max_memory_allocated`` on a
GPU, and for torch on the CPU the growth of the peak resident memory over one call, in a
fresh child process per implementation and size. Then the fused linear + LSCE against the
unfused path and torch's ``F.linear_cross_entropy`` (reference and chunked), and the goals
with what was measured. Results go to JSON (``--out``) and to a Markdown table next to it
(same name, ``.txt``) that the Benchmarks docs page includes.

    python benchmarks/bench.py                      # CPU, writes build/bench.json
    python benchmarks/bench.py --device cuda --out docs/benchmarks/cuda.json
    python benchmarks/bench.py --quick              # tiny sizes, under a minute
    python benchmarks/bench.py --render docs/benchmarks/cpu.json   # re-render the table

Absolute CPU times say little (quote ratios); a busy machine makes every ratio noisy, so
the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
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
from lsce_scratch.nn import backends  # noqa: E402

EPSILON = 0.1
CPU_SIZES = [(64, 37), (4096, 1000), (8192, 32000)]
CUDA_SIZES = [(8192, 32000), (8192, 128000)]
QUICK_SIZES = [(64, 37), (512, 1000)]
FUSED_CPU = (2048, 512, 128000)  # N, H, K
FUSED_CUDA = (8192, 4096, 128256)
FUSED_QUICK = (128, 32, 5000)
FLOOR, BUILTIN = "floor", "F.cross_entropy"
UNFUSED, FUSED = "torch unfused", "torch fused"
TORCH_LCE = "F.linear_cross_entropy"
CHUNKED = "F.linear_cross_entropy chunked"
CHUNKED_PLAIN = "F.linear_cross_entropy chunked, ε = 0"
CHILD_TIMEOUT_S = 900  # one child: building the inputs and two calls
CLEAR_REFS = Path("/proc/self/clear_refs")

console = Console(highlight=False)


@dataclass
class Impl:
    """One implementation: ``make(*inputs)`` returns a function doing forward + backward."""

    name: str
    kind: str  # "numpy", "torch" or "floor"
    make: Callable[..., Callable[[], object]]
    slow: bool = False  # timed in the first repeat only (the materialising baselines)
    smoothed: bool = True  # False: the plain cross-entropy (ε = 0), another loss


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
        backends.USE_TRITON = False
        try:
            return run()
        finally:
            backends.USE_TRITON = True

    return without_triton


def numpy_unfused(hidden: np.ndarray, weight: np.ndarray, y: np.ndarray) -> Callable:
    """The logits materialised, then the fast NumPy LSCE and the two matrix products back."""

    def run():
        loss, cache = fast.lsce_forward(hidden @ weight.T, y, EPSILON)
        dz = fast.lsce_backward(1.0, cache)
        return loss, dz @ weight, dz.T @ hidden

    return run


def torch_linear(loss_fn: Callable) -> Callable:
    """Forward + backward of ``loss_fn(hidden, weight, target)`` on leaves; returns the loss
    and both gradients (the accuracy check compares them)."""

    def make(hidden, weight, y):
        h_leaf = hidden.detach().clone().requires_grad_(True)
        w_leaf = weight.detach().clone().requires_grad_(True)

        def run():
            loss = loss_fn(h_leaf, w_leaf, y)
            loss.backward()
            grads = (loss.detach(), h_leaf.grad, w_leaf.grad)
            h_leaf.grad = w_leaf.grad = None
            return grads

        return run

    return make


def linear_cross_entropy(epsilon: float, chunked: bool) -> Callable:
    """torch's own fused head (torch >= 2.13): the reference path, or the chunked one that
    the default ``LinearCrossEntropyOptions()`` asks for."""

    def loss(hidden, weight, y):
        if not hasattr(F, "linear_cross_entropy"):
            raise RuntimeError(f"needs torch >= 2.13, this is {torch.__version__}")
        options = torch.nn.LinearCrossEntropyOptions() if chunked else None
        return F.linear_cross_entropy(
            hidden, weight, y, label_smoothing=epsilon, options=options
        )

    return torch_linear(loss)


def fused_implementations(device: str) -> list[Impl]:
    """Fused linear + LSCE, ours and torch's, and the unfused path, in table order."""
    slow = (
        device == "cpu"
    )  # seconds per call on a CPU: the materialising paths are timed once
    unfused = torch_linear(
        lambda h, w, y: F.cross_entropy(h @ w.T, y, label_smoothing=EPSILON)
    )
    ours = torch_linear(
        lambda h, w, y: lnn.linear_label_smoothing_cross_entropy(h, w, y, EPSILON)
    )
    impls = [] if device == "cuda" else [
        Impl("NumPy unfused", "numpy", numpy_unfused, slow=True),
        Impl("NumPy fused", "numpy",
             lambda h, w, y: lambda: fast.linear_lsce(h, w, y, EPSILON)[:3]),
    ]  # fmt: skip
    return impls + [
        Impl(UNFUSED, "torch", unfused, slow=slow),
        Impl(
            TORCH_LCE, "torch", linear_cross_entropy(EPSILON, chunked=False), slow=slow
        ),
        Impl(CHUNKED, "torch", linear_cross_entropy(EPSILON, chunked=True)),
        # torch's chunked path needs label_smoothing == 0: the closest it comes to ours
        Impl(
            CHUNKED_PLAIN,
            "torch",
            linear_cross_entropy(0.0, chunked=True),
            smoothed=False,
        ),
        Impl(FUSED, "torch", ours),
    ]


def make_inputs(shape: tuple[int, int], dtype: torch.dtype, device: str):
    """Logits N(0, 3²) with a confident class in a third of the rows, and class indices."""
    n, k = shape
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, k, generator=g) * 3
    winners = torch.randint(0, k, (n,), generator=g)
    rows = torch.arange(n)
    z[rows, winners] += (torch.rand(n, generator=g) < 0.3) * 10.0
    others = torch.randint(0, k, (n,), generator=g)
    y = torch.where(torch.rand(n, generator=g) < 0.5, winners, others)
    return z.to(device=device, dtype=dtype), y.to(device)


def fused_inputs(shape: tuple[int, int, int], dtype: torch.dtype, device: str):
    """Hidden states N(0, 1), a weight scaled to give logits of spread about 3, targets."""
    n, h, k = shape
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(n, h, generator=g).to(device=device, dtype=dtype)
    weight = (torch.randn(k, h, generator=g) * 3 / h**0.5).to(
        device=device, dtype=dtype
    )
    y = torch.randint(0, k, (n,), generator=g).to(device)
    return hidden, weight, y


# a section's contenders and its inputs: what a child process rebuilds to measure one of them
SECTIONS = {
    "sizes": (implementations, make_inputs),
    "fused": (fused_implementations, fused_inputs),
}


def _args(impl: Impl, inputs: tuple) -> tuple:
    return tuple(t.numpy() for t in inputs) if impl.kind == "numpy" else inputs


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


def in_process_peak(fn: Callable, kind: str, device: str) -> int | None:
    """Call fn once; the peak bytes it allocated beyond those allocated before, where this
    process can see them (GPU, NumPy). None for torch on the CPU: tracemalloc does not see
    its allocator, and a child process measures it (:func:`peak_rss_bytes`)."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    if kind == "numpy":
        return numpy_peak_bytes(fn)
    fn()
    return None


def first_call(run: Callable, kind: str, device: str, keep_output: bool) -> dict:
    """The untimed first call (page faults, kernel compilation): its output if kept, its
    peak extra memory where measured in process, and the warnings it raised."""
    outputs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peak = in_process_peak(lambda: outputs.append(run()), kind, device)
    return {
        "output": outputs[0] if keep_output else None,
        "peak": peak,
        "warnings": sorted({str(w.message) for w in caught}),
    }


def _status_bytes(key: str) -> int:
    """A ``kB`` line of /proc/self/status, in bytes."""
    line = next(
        s
        for s in Path("/proc/self/status").read_text().splitlines()
        if s.startswith(key)
    )
    return int(line.split()[1]) * 1024


def rss_growth(fn: Callable[[], object]) -> int:
    """Peak resident bytes of one call of fn() beyond the resident bytes before it (Linux).

    A first call warms up (lazy initialisation, thread pools), as in the timed process.
    glibc's malloc_trim then returns the pages of the blocks it freed, which the second call
    would otherwise reuse unseen; writing 5 to /proc/self/clear_refs resets the high-water
    mark VmHWM to the current resident size, so building the inputs does not count.
    """
    fn()
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
    CLEAR_REFS.write_text("5")
    before = _status_bytes("VmRSS")
    fn()
    return _status_bytes("VmHWM") - before


def rss_child(spec: dict) -> int:
    """In the child process: rebuild one implementation and its inputs, and measure it."""
    make_impls, make_section_inputs = SECTIONS[spec["section"]]
    impl = next(i for i in make_impls("cpu") if i.name == spec["impl"])
    inputs = make_section_inputs(
        tuple(spec["shape"]), getattr(torch, spec["dtype"]), "cpu"
    )
    return rss_growth(impl.make(*_args(impl, inputs)))


def peak_rss_bytes(
    section: str, name: str, shape: tuple[int, ...], dtype: torch.dtype
) -> int | None:
    """Peak extra resident memory of one call of an implementation, in a fresh child process.

    torch's CPU allocator is invisible to tracemalloc; the resident set is not. One child
    per implementation and size keeps one's peak, and the memory its allocator keeps, out
    of another's. None where that cannot be measured (no /proc) or the child failed.
    """
    if not CLEAR_REFS.exists():
        return None
    spec = {
        "section": section,
        "impl": name,
        "shape": list(shape),
        "dtype": _dtype(dtype),
    }
    # a fixed mmap threshold gives every large buffer its own mapping, returned on free;
    # glibc's sliding one would soon serve them from heap blocks that stay resident
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--rss-child",
        json.dumps(spec),
    ]
    try:
        child = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=CHILD_TIMEOUT_S,
            check=True,
        )
        return int(child.stdout.split()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as error:
        detail = (getattr(error, "stderr", None) or "")[-500:]
        console.print(
            f"{name} {shape}: peak memory not measured: {error} {detail}", markup=False
        )
        return None


def measure(
    section: str,
    shape: tuple[int, ...],
    device: str,
    dtype: torch.dtype,
    repeats: int,
    min_time: float,
    slow_once: bool,
) -> tuple[list[Impl], dict[str, dict]]:
    """Every implementation of a section on the same inputs: its first call (or its error),
    the interleaved timed repeats, then on the CPU each torch one's peak memory in a child.

    Per implementation: ``output`` (fused section only), ``peak``, ``warnings``, ``times``
    and ``error``. With slow_once, the slow ones are timed in the first repeat only.
    """
    make_impls, make_section_inputs = SECTIONS[section]
    impls = make_impls(device)
    inputs = make_section_inputs(shape, dtype, device)
    runs, result = {}, {}
    for impl in impls:
        try:
            runs[impl.name] = impl.make(*_args(impl, inputs))
            result[impl.name] = first_call(
                runs[impl.name], impl.kind, device, section == "fused"
            )
        except Exception as error:  # one broken contender must not lose the whole run
            runs.pop(impl.name, None)
            result[impl.name] = {"error": f"{type(error).__name__}: {error}"}
            console.print(
                f"[red]{impl.name} failed[/red]: {result[impl.name]['error']}"
            )
    live = [impl for impl in impls if impl.name in runs]
    for impl in impls:
        result[impl.name]["times"] = []
    for r in range(repeats if live else 0):
        for impl in live[r % len(live) :] + live[: r % len(live)]:
            if not (impl.slow and slow_once and r > 0):
                result[impl.name]["times"].append(
                    per_call(runs[impl.name], device, min_time)
                )
    del runs, inputs  # the children need the memory
    gc.collect()
    for impl in live:
        if device == "cpu" and impl.kind != "numpy":
            result[impl.name]["peak"] = peak_rss_bytes(section, impl.name, shape, dtype)
    return impls, result


def _median(times: list[float]) -> float | None:
    return statistics.median(times) if times else None


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def bench_size(
    shape: tuple[int, int], device: str, repeats: int, dtype: torch.dtype
) -> list[dict]:
    """LSCE forward + backward on (N, K) logits: time, ratios, peak extra memory."""
    n, k = shape
    small = n * k < 1 << 22
    # a GPU call takes milliseconds: time loops of them; big CPU calls take seconds
    min_time = 0.05 if device == "cuda" else 0.2 if small else 0.0
    impls, result = measure("sizes", shape, device, dtype, repeats, min_time, not small)
    median = {name: _median(r["times"]) for name, r in result.items()}
    rows = []
    for impl in impls:
        r = result[impl.name]
        t, peak = median[impl.name], r.get("peak")
        rows.append({
            "size": [n, k], "dtype": _dtype(dtype), "impl": impl.name, "kind": impl.kind,
            "time_s": t, "times_s": r["times"],
            "vs_builtin": _divide(t, median[BUILTIN]), "vs_floor": _divide(t, median[FLOOR]),
            "peak_bytes": peak, "peak_vs_logits": _divide(peak, n * k * dtype.itemsize),
            "warnings": r.get("warnings", []), "error": r.get("error"),
        })  # fmt: skip
    return rows


def bench_fused(
    shape: tuple[int, int, int], device: str, repeats: int, dtype: torch.dtype
) -> dict:
    """Fused linear + LSCE against the unfused path and torch's: time, memory, agreement."""
    n, h, k = shape
    impls, result = measure("fused", shape, device, dtype, repeats, 0.0, slow_once=True)
    logits_bytes = n * k * dtype.itemsize
    grads_bytes = (n * h + k * h) * dtype.itemsize
    rows = []
    for impl in impls:
        r = result[impl.name]
        # each fused row is compared with the unfused path of its own framework
        reference = result.get(UNFUSED if impl.kind == "torch" else "NumPy unfused", {})
        peak = r.get("peak")
        rows.append({
            "impl": impl.name, "kind": impl.kind, "time_s": _median(r["times"]),
            "times_s": r["times"], "peak_bytes": peak,
            "peak_vs_logits": _divide(peak, logits_bytes),
            "working_vs_logits": _divide(None if peak is None else peak - grads_bytes,
                                         logits_bytes),
            "max_rel_error_vs_unfused": _rel_error(r.get("output"), reference.get("output"))
            if impl.smoothed else None,
            "warnings": r.get("warnings", []), "error": r.get("error"),
        })  # fmt: skip
    return {"shape": [n, h, k], "dtype": _dtype(dtype), "rows": rows}


def _rel_error(output: tuple | None, reference: tuple | None) -> float | None:
    """The largest difference of the loss and both gradients, relative to the largest entry
    of the reference's."""
    if output is None or reference is None:
        return None
    return max(
        float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
        for a, b in zip(map(_float64, output), map(_float64, reference), strict=True)
    )


def _float64(t) -> np.ndarray:
    return (
        t.detach().double().cpu().numpy()
        if isinstance(t, torch.Tensor)
        else np.float64(t)
    )


def find(rows: list[dict], size: list[int], impl: str) -> dict | None:
    return next((r for r in rows if r["size"] == size and r["impl"] == impl), None)


def _get(row: dict | None, key: str) -> float | None:
    return None if row is None else row.get(key)


def _ratio_of(row: dict | None, other: dict | None, key: str) -> float | None:
    return _divide(_get(row, key), _get(other, key))


def targets(data: dict) -> list[dict]:
    """The goals and what the run measured for each (None: not measured, on this machine or
    at this size). Computed from the rows, so an older JSON shows the newer goals too."""
    rows, out = data["results"], []
    machine = data["machine"]
    cuda = machine["device"] == "cuda"

    def add(name: str, value: float | None, limit: float, above: bool = False) -> None:
        met = (
            None if value is None else bool(value >= limit if above else value <= limit)
        )
        out.append({"target": name, "value": value, "limit": limit,
                    "rule": ">=" if above else "<=", "pass": met})  # fmt: skip

    if cuda:
        big = [8192, 128000]
        ours, builtin = find(rows, big, "LSCEFunction"), find(rows, big, BUILTIN)
        add(
            "LSCEFunction time / built-in (8192×128000 bf16)",
            _get(ours, "vs_builtin"),
            0.5,
        )
        add("LSCEFunction peak memory / built-in's (8192×128000 bf16)",
            _ratio_of(ours, builtin, "peak_bytes"), 0.5)  # fmt: skip
        if machine.get("triton"):
            # The copy reads the logits once and writes them once. Forward and backward
            # together read the logits twice (statistics, gradient) and write the gradient
            # once: 3/2 of the copy's bytes. Bytes per second over the copy's is the
            # fraction of the copy bandwidth that the kernels reach.
            for name in ("LSCEFunction", "LSCEFunction grad_in_forward"):
                vs_floor = _get(find(rows, big, name), "vs_floor")
                add(f"{name} (Triton): fraction of copy bandwidth",
                    _divide(1.5, vs_floor), 0.7, above=True)  # fmt: skip
    else:
        big = [8192, 32000]
        fast_row = find(rows, big, "NumPy fast")
        add(
            "NumPy fast time / built-in (8192×32000)", _get(fast_row, "vs_builtin"), 0.4
        )
        add(
            "NumPy fast time / softmax floor (8192×32000)",
            _get(fast_row, "vs_floor"),
            1.5,
        )
        add("LSCEFunction time / built-in (8192×32000)",
            _get(find(rows, big, "LSCEFunction"), "vs_builtin"), 0.5)  # fmt: skip
        add("NumPy fast peak extra memory / logits (8192×32000)",
            _get(fast_row, "peak_vs_logits"), 1.25)  # fmt: skip
    fused = data.get("fused_linear") or {}
    shape = list(FUSED_CUDA if cuda else FUSED_CPU)
    fused_rows = (
        {r["impl"]: r for r in fused.get("rows", [])}
        if fused.get("shape") == shape
        else {}
    )
    size = "×".join(map(str, shape))
    if not cuda:
        numpy_fused = fused_rows.get("NumPy fused")
        add(f"fused linear: working memory / logits ({size})",
            _get(numpy_fused, "working_vs_logits"), 0.25)  # fmt: skip
        add("fused linear: max rel. error vs unfused",
            _get(numpy_fused, "max_rel_error_vs_unfused"), 1e-5)  # fmt: skip
    ours = fused_rows.get(FUSED)
    for baseline in (CHUNKED, CHUNKED_PLAIN):
        other = fused_rows.get(baseline)
        add(f"torch fused linear peak memory / {baseline} ({size})",
            _ratio_of(ours, other, "peak_bytes"), 0.25)  # fmt: skip
        add(
            f"torch fused linear time / {baseline} ({size})",
            _ratio_of(ours, other, "time_s"),
            1.1,
        )
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
        triton = backends.triton_kernels()
        info |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                 "triton": None if triton is None else triton.triton.__version__}  # fmt: skip
    return info


def run(device: str, quick: bool, repeats: int) -> dict:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    sizes = QUICK_SIZES if quick else CUDA_SIZES if device == "cuda" else CPU_SIZES
    fused_shape = (
        FUSED_QUICK if quick else FUSED_CUDA if device == "cuda" else FUSED_CPU
    )
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
    started = time.perf_counter()
    for size in sizes:
        console.print(
            f"[bold]{size[0]} × {size[1]}[/bold] {data['settings']['pass']} ..."
        )
        data["results"] += bench_size(size, device, repeats, dtype)
        gc.collect()
    console.print(f"[bold]fused linear + LSCE {fused_shape}[/bold] ...")
    data["fused_linear"] = bench_fused(fused_shape, device, repeats, dtype)
    data["machine"]["loadavg_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    data["seconds"] = time.perf_counter() - started
    data["targets"] = targets(data)
    return data


def _mb(nbytes: int | None) -> str:
    if nbytes is None:
        return "—"
    return (
        f"{nbytes / 2**20:,.0f} MiB"
        if nbytes >= 2**20
        else f"{nbytes / 2**10:,.0f} KiB"
    )


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


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


def _notes(rows: list[dict]) -> list[str]:
    """A Markdown line per failure and per warning of a table's rows."""
    lines = [f"- {r['impl']} failed: `{r['error']}`" for r in rows if r.get("error")]
    return lines + [
        f"- {r['impl']} warned: {w}" for r in rows for w in r.get("warnings", [])
    ]


def tables(data: dict) -> list[dict]:
    """Every table of a run as title, columns, cells and notes (Markdown paragraphs): what
    both the console and the docs page show."""
    device = data["machine"]["device"]
    floor = "a device-to-device copy" if device == "cuda" else "torch.softmax"
    out = []
    for size in sorted(
        {tuple(r["size"]) for r in data["results"]}, key=lambda s: s[0] * s[1]
    ):
        rows = [r for r in data["results"] if tuple(r["size"]) == size]
        out.append({
            "title": f"N = {size[0]}, K = {size[1]}, {rows[0]['dtype']} (floor: {floor})",
            "columns": ["implementation", "time", "× built-in", "× floor", "peak extra memory",
                        "× logits"],
            "cells": [[r["impl"], _time(r["time_s"]), _ratio(r["vs_builtin"]),
                       _ratio(r["vs_floor"]), _mb(r["peak_bytes"]), _ratio(r["peak_vs_logits"])]
                      for r in rows],
            "notes": _notes(rows),
        })  # fmt: skip
    if data.get("fused_linear"):
        out.append(fused_table(data["fused_linear"], device))
    out.append({
        "title": "Goals",
        "columns": ["goal", "limit", "measured", "result"],
        "cells": [[t["target"], f"{'≤' if t['rule'] == '<=' else '≥'} {t['limit']:g}",
                   "not measured" if t["value"] is None else f"{t['value']:.3g}",
                   "—" if t["pass"] is None else "met" if t["pass"] else "not met"]
                  for t in targets(data)],
        "notes": [],
    })  # fmt: skip
    return out


def fused_table(fused: dict, device: str) -> dict:
    """The fused linear table: every implementation this device runs, in order; one an
    older run lacks shows as not measured."""
    n, h, k = fused["shape"]
    rows = {r["impl"]: r for r in fused["rows"]}
    cells = []
    for impl in fused_implementations(device):
        r = rows.get(impl.name)
        if r is None:
            cells.append([impl.name, "not measured"] + ["—"] * 6)
            continue
        unfused = rows.get(UNFUSED if impl.kind == "torch" else "NumPy unfused")
        cells.append([
            impl.name, _time(r["time_s"]), _ratio(_ratio_of(r, unfused, "time_s")),
            _mb(r["peak_bytes"]), _ratio(_ratio_of(r, unfused, "peak_bytes")),
            _ratio(r["peak_vs_logits"]), _ratio(r["working_vs_logits"]),
            _error(r["max_rel_error_vs_unfused"]),
        ])  # fmt: skip
    logits = _mb(n * k * getattr(torch, fused["dtype"]).itemsize)
    return {
        "title": f"Fused linear + LSCE, N = {n}, H = {h}, K = {k}, {fused['dtype']} "
        f"(the logits would take {logits})",
        "columns": ["implementation", "time", "time × unfused", "peak extra memory",
                    "memory × unfused", "× logits", "beyond the gradients",
                    "max rel. error vs unfused"],
        "cells": cells,
        "notes": [
            "Each row's ratios and error are against the unfused path of its own framework, "
            "in the same dtype: the largest difference of the loss, ∂L/∂hidden and ∂L/∂W, "
            "relative to the largest entry. The torch unfused path is F.cross_entropy, whose "
            "own rounding in that dtype dominates the difference; the test suite checks both "
            f"fused paths against float64. {CHUNKED_PLAIN} is the plain cross-entropy, another "
            "loss: it has no error column.",
            *_notes(fused["rows"]),
        ],
    }  # fmt: skip


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
    for table in tables(data):
        lines += [
            f"**{table['title']}**",
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "|---|" + "---:|" * (len(table["columns"]) - 1),
        ]
        lines += ["| " + " | ".join(cells) + " |" for cells in table["cells"]]
        lines.append("")
        for note in table["notes"]:
            lines += [note, ""]
    return "\n".join(lines)


def show(data: dict) -> None:
    """Print the results as rich tables."""
    for table in tables(data):
        shown = Table(title=table["title"], title_justify="left")
        for i, column in enumerate(table["columns"]):
            shown.add_column(column, justify="right" if i else "left")
        for cells in table["cells"]:
            shown.add_row(*cells)
        console.print(shown, markup=False)
        for note in table["notes"]:
            console.print(note, markup=False)


def write(data: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    out.with_suffix(".txt").write_text(markdown(data))
    console.print(
        f"wrote [bold]{out}[/bold] and [bold]{out.with_suffix('.txt')}[/bold]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--repeats", type=int, default=None, help="3, 5 on a GPU, 2 with --quick"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench.json")
    parser.add_argument(
        "--render", type=Path, help="re-render the table of a saved JSON"
    )
    # internal: measure one implementation's peak memory (peak_rss_bytes starts it)
    parser.add_argument("--rss-child", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        print(rss_child(args.rss_child))
        return 0
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

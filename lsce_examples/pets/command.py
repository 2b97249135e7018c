"""``lsce pets``: train the article's pets classifier with our LSCE and measure it.

Also ``python -m lsce_examples.pets`` and ``torchrun --nproc_per_node=N -m
lsce_examples.pets``. Without the real data (``--data`` or ``--download``) it
trains on a generated, pets-like set and says so loudly: those numbers say
nothing about real pets.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import shutil
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from lsce_course.report import console
from lsce_examples.pets import data as pets_data
from lsce_examples.pets.model import RESNET34_URL, read_state_dict
from lsce_examples.pets.synthetic import make_synthetic_pets
from lsce_examples.pets.train import (
    Runtime,
    TrainConfig,
    config_json,
    evaluate,
    save_figures,
    save_predictions,
    start_runtime,
    stop_runtime,
    train,
    write_json_atomic,
)

# The article's settings on a GPU; on a CPU, small ones that finish in about a minute.
DEFAULTS = {
    "cuda": {
        "size": 224,
        "batch_size": 64,
        "epochs": 4,
        "images": 7390,
        "image_scale": 1.0,
    },
    "cpu": {
        "size": 64,
        "batch_size": 32,
        "epochs": 4,
        "images": 37 * 20,
        "image_scale": 0.3,
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lsce pets``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data", type=Path, help="a Pets folder (images/ inside, or the images)"
    )
    source.add_argument(
        "--download",
        action="store_true",
        help="download the Pets archives (~811 MB) into --root",
    )
    source.add_argument(
        "--synthetic",
        action="store_true",
        help="generate a pets-like set (no real data)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("data"),
        help="downloads, synthetic sets and decoded caches (default: ./data)",
    )
    parser.add_argument(
        "--weights",
        help="ImageNet ResNet34 weights: a file, a URL or none (default: "
        f"{RESNET34_URL} for real data, none for synthetic)",
    )
    parser.add_argument("--epochs", type=int, help="default 4 (GPU and CPU)")
    parser.add_argument(
        "--size", type=int, help="image side in pixels (default 224; CPU 64)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="global batch (default 64; CPU 32)"
    )
    parser.add_argument("--loss", choices=("lsce", "ce"), default="lsce")
    parser.add_argument(
        "--epsilon", type=float, default=0.1, help="label smoothing ε (default 0.1)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / "pets", help="default runs/pets"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.pt"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed (the split is fixed)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model"
    )
    parser.add_argument(
        "--split",
        choices=("random", "official"),
        default="random",
        help="fastai's random 20%% (default) or the official trainval/test lists",
    )
    parser.add_argument(
        "--images", type=int, help="synthetic set size (default 7390; CPU 740)"
    )
    parser.add_argument(
        "--workers", type=int, help="decode threads (default: one per core)"
    )
    parser.add_argument(
        "--stop-after", type=int, help="stop after this many epochs, as if interrupted"
    )


# The real set: 7,390 .jpg files. Its two archives and their extracted
# files take about 1.7 GB.
REAL_IMAGES = 7390
DOWNLOAD_BYTES = 1_700_000_000
# A synthetic set has at least two images of each breed: one to train on,
# one to validate.
MIN_SYNTHETIC = 2 * len(pets_data.BREEDS)

# The failures a user causes and can fix (a bad option, a missing file, no
# network): printed as one message with exit status 2. Anything else is a bug and
# keeps its traceback.
EXPECTED_ERRORS = (ValueError, FileNotFoundError, pets_data.DownloadError)


@dataclass(frozen=True)
class Plan:
    """The checked arguments: where the images come from, the settings,
    the training config."""

    source: (
        str  # "data", "download", "found" (real data already in --root) or "synthetic"
    )
    images_dir: (
        Path  # the images folder (once downloaded or generated, for those sources)
    )
    chosen: dict  # size, batch_size, epochs, images, image_scale
    defaults_used: list[str]  # "size=64", ... for the options left unset
    config: TrainConfig

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def validate(args: argparse.Namespace) -> Plan:
    """Check every argument before any work, so that a mistake costs no
    download, no generated set and no decoding. Raises ValueError or
    FileNotFoundError naming the option.

    Every rank runs the same checks, so under torchrun all of them stop together.
    """
    check_numbers(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = check_device(args.device, world)
    defaults = DEFAULTS["cuda" if cuda else "cpu"]
    chosen = {key: getattr(args, key, None) for key in defaults}
    used = [f"{key}={value}" for key, value in defaults.items() if chosen[key] is None]
    chosen = {
        key: defaults[key] if value is None else value for key, value in chosen.items()
    }
    source, images_dir = choose_source(args, chosen)
    check_writable(args.out, "--out")
    files = check_images(args, source, images_dir, chosen)
    if chosen["batch_size"] % world:
        raise ValueError(
            f"--batch-size {chosen['batch_size']} must be divisible by the {world} "
            "processes (each takes an equal slice of every batch)"
        )
    check_space(args, source, images_dir, files, chosen["size"], cuda=cuda, world=world)
    if args.compile:
        check_compile(cuda)
    config = TrainConfig(
        epochs=chosen["epochs"],
        size=chosen["size"],
        batch_size=chosen["batch_size"],
        loss=args.loss,
        epsilon=args.epsilon,
        seed=args.seed,
        weights=check_weights(args.weights, source),
        compile=args.compile,
        out=args.out,
        resume=args.resume,
        stop_after=args.stop_after,
    )
    if args.resume:
        check_resume(config)
    return Plan(source, images_dir, chosen, used, config)


def check_numbers(args: argparse.Namespace) -> None:
    """ε in [0, 1], the counts at least 1, the seed one that every RNG accepts."""
    # NaN compares false, so this rejects NaN and ±inf too.
    if not 0 <= args.epsilon <= 1:
        raise ValueError(
            "--epsilon must be in [0, 1] (the probability mass label smoothing moves "
            f"off the true class); got {args.epsilon}"
        )
    for key in ("epochs", "size", "batch_size", "images", "workers", "stop_after"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1; got {value}")
    # NumPy's SeedSequence refuses negative seeds,
    # torch.manual_seed ones of 2**64 and more.
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2**63); got {args.seed}")


def check_device(device: str, world: int) -> bool:
    """Whether this run trains on CUDA;
    a clear error when the device or torchrun setup is off."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu"
        )
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world > 1:
        local = os.environ.get("LOCAL_RANK")
        if local is None:
            raise ValueError(
                f"WORLD_SIZE={world} but LOCAL_RANK is not set; start the processes "
                "with torchrun --nproc_per_node=N -m lsce_examples.pets"
            )
        gpus = torch.cuda.device_count()
        if cuda and int(local) >= gpus:
            raise ValueError(
                f"LOCAL_RANK={local}, but this machine has {gpus} visible GPU(s); "
                f"start at most {gpus} processes (torchrun "
                f"--nproc_per_node={gpus}) or use --device cpu"
            )
    return cuda


def choose_source(args: argparse.Namespace, chosen: dict) -> tuple[str, Path]:
    """Where the images come from, and the folder they are (or will be) in."""
    real = args.root / "oxford-iiit-pet"
    if args.data is not None:
        return "data", pets_data.resolve_images_dir(args.data)
    if args.download:
        return "download", real / "images"
    if not args.synthetic and (real / "images").is_dir():
        return "found", real / "images"
    folder = args.root / f"pets-synthetic-{chosen['images']}-x{chosen['image_scale']}"
    return "synthetic", folder / "images"


def check_images(
    args: argparse.Namespace, source: str, images_dir: Path, chosen: dict
) -> int:
    """The number of image files to decode. A folder already on disk is listed now,
    and its split and batch checked, so that an empty folder or a missing
    annotation fails at once."""
    if source == "synthetic":
        if args.split == "official":
            raise ValueError(
                "--split official needs the real annotations (trainval.txt, "
                "test.txt), which a synthetic set has none of; use --split "
                "random, or --data / --download"
            )
        if chosen["images"] < MIN_SYNTHETIC:
            raise ValueError(
                f"--images must be at least {MIN_SYNTHETIC} for a synthetic set (two "
                f"per breed); got {chosen['images']}"
            )
        # the bad files the set includes shrink it further;
        # train() checks the exact count
        at_most = len(pets_data.random_split(chosen["images"])[0])
        if chosen["batch_size"] > at_most:
            raise ValueError(
                f"--batch-size {chosen['batch_size']} is larger than the at most "
                f"{at_most} training images of a synthetic set of {chosen['images']}; "
                "use a smaller batch or more --images"
            )
        return chosen["images"]
    if source == "download":
        return REAL_IMAGES  # not there yet: the download checks the archives' md5
    try:
        listing = pets_data.list_images(images_dir)
    except ValueError as error:
        if source == "data":
            raise
        raise ValueError(
            f"{images_dir} (found in --root) holds no Pets images; delete it, or pass "
            "--data, --download or --synthetic"
        ) from error
    names = [path.name for path in listing.files]
    if args.split == "official":
        train, _ = pets_data.official_split(names, images_dir.parent / "annotations")
    else:
        train, _ = pets_data.random_split(len(names))
    # Files that fail to decode shrink the training set further; train() checks again.
    if chosen["batch_size"] > len(train):
        raise ValueError(
            f"--batch-size {chosen['batch_size']} is larger than the {len(train)} "
            f"training images in {images_dir}; use a smaller batch"
        )
    return len(names)


def check_writable(path: Path, option: str) -> None:
    """``path`` is a folder, or can be made one, and this process may write in it."""
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{option} {path} is a file, not a folder; pass a "
            "folder (made when missing)"
        )
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"{option} {path}: {existing} is a file, so the folder cannot be "
            "made; pass another folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {path}: no permission to write in {existing}; pass "
            "a folder you can write to"
        )


def check_space(
    args: argparse.Namespace,
    source: str,
    images_dir: Path,
    files: int,
    size: int,
    *,
    cuda: bool,
    world: int,
) -> None:
    """The decoded set fits in memory (CPU) and the cache, downloads included,
    on the disk.

    Without this, a large --size runs out of memory after the decoding, or fills the
    disk halfway through writing the cache.
    """
    side = pets_data.canvas_side(size)
    needed = files * side * side * 3  # the uint8 canvas of every image
    # On the CPU every process holds its own copy of the canvases (a GPU's memory is not
    # queried: that would start CUDA in this process before torchrun picks its device).
    memory = total_memory()
    if not cuda and memory is not None and needed * world > memory:
        copies = f", in each of {world} processes" if world > 1 else ""
        raise ValueError(
            f"--size {size}: the decoded images take {gigabytes(needed * world)} of "
            f"memory ({files} images of {side}×{side}×3 bytes{copies}), but this "
            f"machine has {gigabytes(memory)}; use a smaller --size"
        )
    build_cache = not any((args.root / "decoded").glob(f"pets-{size}px-*.json"))
    download = (
        source == "download" and not (images_dir.parent / "extracted.json").is_file()
    )
    generate = (
        source == "synthetic" and not (images_dir.parent / "synthetic.json").is_file()
    )
    if not (build_cache or download or generate):
        return  # --root is only read: it may be a read-only shared folder
    check_writable(args.root, "--root")
    needed = (needed if build_cache else 0) + (DOWNLOAD_BYTES if download else 0)
    existing = next(p for p in (args.root, *args.root.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(
            f"--root {args.root}: needs about {gigabytes(needed)} of free disk (the "
            f"decode cache{' and the download' if download else ''}), but "
            f"{existing} has {gigabytes(free)}; free some space, or use another "
            "--root or a smaller --size"
        )


def total_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # no sysconf (Windows), or no such name
        return None


def gigabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB"


def check_compile(cuda: bool) -> None:
    """torch.compile fails at the first batch without its compiler: check for it now."""
    if cuda:
        if importlib.util.find_spec("triton") is None:
            raise ValueError(
                "--compile on a GPU needs Triton, which is not installed; pip install "
                "triton, or drop --compile"
            )
        return
    # TorchInductor's CPU code is C++, built with $CXX (default g++; clang++ on macOS).
    default = {"darwin": "clang++", "win32": "cl"}.get(sys.platform, "g++")
    compiler = os.environ.get("CXX", default)
    if shutil.which(compiler) is None:
        raise ValueError(
            f"--compile on the CPU needs a C++ compiler ({compiler}; set $CXX for "
            "another), which was not found; install one, or drop --compile"
        )


def check_weights(weights: str | None, source: str) -> str:
    """The weights to load: the option,
    or ImageNet's for real data and none for synthetic."""
    weights = weights or ("none" if source == "synthetic" else RESNET34_URL)
    if weights == "none" or weights.startswith(("http://", "https://")):
        return weights
    if not Path(weights).is_file():
        raise FileNotFoundError(
            f"--weights {weights}: no such file; pass a .pth file, a URL, or none "
            f"(torchvision's is {RESNET34_URL})"
        )
    return weights


def check_resume(config: TrainConfig) -> None:
    """--resume needs OUT/checkpoint.pt, written with the same settings as this run.

    The settings that depend on the data (classes, split sizes) are checked by train().
    """
    path = config.out / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint at {path}; drop --resume to start a new run, or "
            "pass the --out of the run to continue"
        )
    try:
        # mmap: the weights stay on disk; only the settings are read
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)[
            "settings"
        ]
    # a truncated or foreign file: not a zip, a refused pickle, or no settings in it
    except (
        pickle.UnpicklingError,
        RuntimeError,
        ValueError,
        OSError,
        EOFError,
        KeyError,
        TypeError,
    ) as error:
        raise ValueError(
            f"--resume: cannot read {path} ({type(error).__name__}: "
            f"{error}); delete it to start over"
        ) from error
    names = {f.name for f in fields(config)}
    differing = [
        f"{key}={value!r} (now {getattr(config, key)!r})"
        for key, value in saved.items()
        if key in names and getattr(config, key) != value
    ]
    if differing:
        raise ValueError(
            f"--resume: {path} was written by a run with other settings: "
            + ", ".join(differing)
            + ". Use the same options, or another --out"
        )


def prepare_images(plan: Plan, runtime: Runtime) -> None:
    """Download or generate the images where the plan needs it; rank 0 does,
    the others wait."""
    if plan.source == "download":
        if runtime.main:
            pets_data.download_pets(plan.images_dir.parent, console=console)
        runtime.barrier()
    elif plan.source == "synthetic":
        if runtime.main:
            make_synthetic_pets(
                plan.images_dir.parent,
                plan.chosen["images"],
                scale=plan.chosen["image_scale"],
            )
        runtime.barrier()
    elif plan.source == "found" and runtime.main:
        console.print(
            f"using the real data found in {plan.images_dir.parent} "
            "(pass --synthetic to avoid it)"
        )


SYNTHETIC_WARNING = (
    "[bold]SYNTHETIC DATA[/bold]: these are generated striped ellipses named like the "
    "Oxford-IIIT Pet files, not photographs of pets. The numbers test the pipeline; "
    "they say nothing about real pets. For the real experiment: lsce pets --download "
    "(internet, ~811 MB) on a GPU."
)


def report_decoding(report: pets_data.DecodeReport) -> None:
    """Print what decoding converted and skipped, as warnings."""
    console.print(
        f"decoded {report.decoded} images; ignored {len(report.ignored)} other files"
    )
    for name, note in report.converted:
        console.print(f"[yellow]converted[/yellow] {name}: {note}")
    for name, reason in report.skipped:
        console.print(f"[bold yellow]warning: skipped[/bold yellow] {name}: {reason}")


def summary_table(metrics: dict) -> Table:
    """The final numbers as a rich table."""
    table = Table(title="pets: validation set", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "error_rate",
        "nll",
        "ece",
        "mce",
        "brier",
        "temperature",
        "mean_confidence",
    ):
        table.add_row(key, f"{metrics[key]:.4f}")
    for pair in metrics["most_confused"][:5]:
        table.add_row(
            f"confused {pair['actual']} → {pair['predicted']}", str(pair["count"])
        )
    return table


def experiment(args: argparse.Namespace, plan: Plan, runtime: Runtime) -> dict | None:
    """Prepare the data, train, evaluate; return the metrics
    (None when stopped early)."""
    began = time.perf_counter()
    config = plan.config
    if config.weights.startswith(("http://", "https://")):
        # Fetch the weights (into torch's cache) before the data: without a
        # network this fails in seconds, not after the decoding. Rank 0 fetches;
        # the others find the file.
        if runtime.main:
            read_state_dict(config.weights)
        runtime.barrier()
    data_began = time.perf_counter()
    prepare_images(plan, runtime)
    images_dir, synthetic = plan.images_dir, plan.synthetic
    if runtime.main and not runtime.cuda and plan.defaults_used:
        console.print(
            f"[cyan]CPU run: small defaults {', '.join(plan.defaults_used)}[/cyan]"
        )
    if runtime.main and synthetic:
        console.print(Panel(SYNTHETIC_WARNING, style="yellow"))
    if runtime.main and config.weights == "none":
        console.print(
            "[yellow]no ImageNet weights (--weights none): the body is random[/yellow]"
        )
    cache = args.root / "decoded"
    load = {"split": args.split, "workers": args.workers, "console": console}
    # Rank 0 decodes into the cache; the others wait, then read the finished cache.
    if runtime.main:
        decoded = pets_data.load_pets(images_dir, config.size, cache, **load)
    runtime.barrier()
    if not runtime.main:
        decoded = pets_data.load_pets(images_dir, config.size, cache, **load)
    decode_seconds = time.perf_counter() - data_began
    if runtime.main:
        report_decoding(decoded.report)
        console.print(
            f"{len(decoded.classes)} classes, {len(decoded.train)} "
            f"train, {len(decoded.valid)} valid; {runtime.world} "
            f"process(es) on {runtime.device}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    result = train(config, decoded, runtime, console)
    if result is None:
        if runtime.main:
            console.print(
                f"stopped after epoch {args.stop_after}; continue with --resume"
            )
        return None
    if not runtime.main:
        return None
    summary, logits = result
    metrics = {"synthetic": synthetic, **evaluate(logits, decoded, config), **summary}
    metrics["data"] = {
        "images_dir": str(images_dir),
        "classes": decoded.classes,
        "train": len(decoded.train),
        "valid": len(decoded.valid),
        "split": args.split,
        "decoded": decoded.report.decoded,
        "converted": [list(c) for c in decoded.report.converted],
        "skipped": [list(s) for s in decoded.report.skipped],
        "ignored": decoded.report.ignored,
    }
    metrics["config"] = config_json(config)
    metrics["device"] = (
        torch.cuda.get_device_name(runtime.device) if runtime.cuda else "cpu"
    )
    metrics["torch"] = torch.__version__
    metrics["decode_seconds"] = decode_seconds
    metrics["wall_seconds"] = time.perf_counter() - began
    metrics["figures"] = save_figures(args.out, logits, decoded, summary["history"])
    save_predictions(args.out / "predictions.npz", logits, decoded)
    write_json_atomic(metrics, args.out / "metrics.json")
    console.print(summary_table(metrics))
    console.print(
        f"wrote {args.out / 'metrics.json'} and predictions.npz in "
        f"{metrics['wall_seconds']:.1f} s"
    )
    if synthetic:
        console.print(Panel(SYNTHETIC_WARNING, style="yellow"))
    return metrics


def run(args: argparse.Namespace) -> int:
    """Entry point of ``lsce pets``: 0 on success, 2 with one message on an
    expected failure."""
    try:
        plan = validate(args)
        runtime = start_runtime(args.device)
    except EXPECTED_ERRORS as error:
        return fail(error)
    try:
        experiment(args, plan, runtime)
    except EXPECTED_ERRORS as error:
        return fail(error)
    finally:
        stop_runtime(runtime)
    return 0


def fail(error: Exception) -> int:
    """Print an expected failure as one message, without a traceback;
    return exit status 2."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE", "1")
    # Under torchrun every rank that fails says so: name the rank.
    where = f" (rank {rank})" if rank is not None and world != "1" else ""
    console.print(f"[red]error{where}:[/red] {escape(str(error))}")
    return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m lsce_examples.pets``."""
    parser = argparse.ArgumentParser(prog="lsce pets", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))

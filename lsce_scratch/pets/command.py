"""``lsce pets``: train the article's pets classifier with our LSCE and measure it.

Also ``python -m lsce_scratch.pets`` and ``torchrun --nproc_per_node=N -m lsce_scratch.pets``.
Without the real data (``--data`` or ``--download``) it trains on a generated, pets-like
set and says so loudly: those numbers say nothing about real pets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.panel import Panel
from rich.table import Table

from lsce_scratch.pets import data as pets_data
from lsce_scratch.pets.model import RESNET34_URL
from lsce_scratch.pets.synthetic import make_synthetic_pets
from lsce_scratch.pets.train import (
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
from lsce_scratch.report import console

# The article's settings on a GPU; on a CPU, small ones that finish in about a minute.
DEFAULTS = {
    "cuda": {"size": 224, "batch_size": 64, "epochs": 4, "images": 7390, "image_scale": 1.0},
    "cpu": {"size": 64, "batch_size": 32, "epochs": 4, "images": 37 * 20, "image_scale": 0.3},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lsce pets``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="a Pets folder (images/ inside, or the images)")
    source.add_argument(
        "--download", action="store_true", help="download the Pets archives (~775 MB) into --root"
    )
    source.add_argument(
        "--synthetic", action="store_true", help="generate a pets-like set (no real data)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("data"),
        help="downloads, synthetic sets and decoded caches (default: ./data)",
    )
    parser.add_argument(
        "--weights",
        help=f"ImageNet ResNet34 weights: a file, a URL or none (default: {RESNET34_URL} "
        f"for real data, none for synthetic)",
    )
    parser.add_argument("--epochs", type=int, help="default 4 (GPU and CPU)")
    parser.add_argument("--size", type=int, help="image side in pixels (default 224; CPU 64)")
    parser.add_argument("--batch-size", type=int, help="global batch (default 64; CPU 32)")
    parser.add_argument("--loss", choices=("lsce", "ce"), default="lsce")
    parser.add_argument(
        "--epsilon", type=float, default=0.1, help="label smoothing ε (default 0.1)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs") / "pets", help="default runs/pets")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the split is fixed)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--split",
        choices=("random", "official"),
        default="random",
        help="fastai's random 20%% (default) or the official trainval/test lists",
    )
    parser.add_argument("--images", type=int, help="synthetic set size (default 7390; CPU 740)")
    parser.add_argument("--workers", type=int, help="decode threads (default: one per core)")
    parser.add_argument(
        "--stop-after", type=int, help="stop after this many epochs, as if interrupted"
    )


def resolve(args: argparse.Namespace, runtime: Runtime) -> dict:
    """Fill the options left unset with the device's defaults; say which were used."""
    defaults = DEFAULTS["cuda" if runtime.cuda else "cpu"]
    chosen = {}
    for key, value in defaults.items():
        given = getattr(args, key, None)
        chosen[key] = value if given is None else given
    if not runtime.cuda and runtime.main:
        used = [f"{k}={v}" for k, v in defaults.items() if getattr(args, k, None) is None]
        if used:
            console.print(f"[cyan]CPU run: small defaults {', '.join(used)}[/cyan]")
    for key in ("size", "batch_size", "epochs", "images"):
        if chosen[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1; got {chosen[key]}")
    if args.stop_after is not None and args.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1; got {args.stop_after}")
    return chosen


def prepare_images(args: argparse.Namespace, chosen: dict, runtime: Runtime) -> tuple[Path, bool]:
    """The images folder to train on, and whether it is synthetic (rank 0 makes it)."""
    real = args.root / "oxford-iiit-pet"
    if args.data is not None:
        return pets_data.resolve_images_dir(args.data), False
    if args.download:
        if runtime.main:
            pets_data.download_pets(real, console=console)
        runtime.barrier()
        return real / "images", False
    if not args.synthetic and (real / "images").is_dir():
        console.print(f"using the real data found in {real} (pass --synthetic to avoid it)")
        return real / "images", False
    folder = args.root / f"pets-synthetic-{chosen['images']}-x{chosen['image_scale']}"
    if runtime.main:
        make_synthetic_pets(folder, chosen["images"], scale=chosen["image_scale"])
    runtime.barrier()
    return folder / "images", True


SYNTHETIC_WARNING = (
    "[bold]SYNTHETIC DATA[/bold]: these are generated striped ellipses named like the Oxford-IIIT "
    "Pet files, not photographs of pets. The numbers test the pipeline; they say nothing about "
    "real pets. For the real experiment: lsce pets --download (internet, ~775 MB) on a GPU."
)


def report_decoding(report: pets_data.DecodeReport) -> None:
    """Print what decoding converted and skipped, as warnings."""
    console.print(f"decoded {report.decoded} images; ignored {len(report.ignored)} other files")
    for name, note in report.converted:
        console.print(f"[yellow]converted[/yellow] {name}: {note}")
    for name, reason in report.skipped:
        console.print(f"[bold yellow]warning: skipped[/bold yellow] {name}: {reason}")


def summary_table(metrics: dict) -> Table:
    """The final numbers as a rich table."""
    table = Table(title="pets: validation set", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("error_rate", "nll", "ece", "mce", "brier", "temperature", "mean_confidence"):
        table.add_row(key, f"{metrics[key]:.4f}")
    for pair in metrics["most_confused"][:5]:
        table.add_row(f"confused {pair['actual']} → {pair['predicted']}", str(pair["count"]))
    return table


def experiment(args: argparse.Namespace, runtime: Runtime) -> dict | None:
    """Prepare the data, train, evaluate; return the metrics (None when stopped early)."""
    began = time.perf_counter()
    chosen = resolve(args, runtime)
    images_dir, synthetic = prepare_images(args, chosen, runtime)
    weights = args.weights or ("none" if synthetic else RESNET34_URL)
    if runtime.main and synthetic:
        console.print(Panel(SYNTHETIC_WARNING, style="yellow"))
    if runtime.main and weights == "none":
        console.print("[yellow]no ImageNet weights (--weights none): the body is random[/yellow]")
    cache = args.root / "decoded"
    load = {"split": args.split, "workers": args.workers, "console": console}
    # Rank 0 decodes into the cache; the others wait, then read the finished cache.
    if runtime.main:
        decoded = pets_data.load_pets(images_dir, chosen["size"], cache, **load)
    runtime.barrier()
    if not runtime.main:
        decoded = pets_data.load_pets(images_dir, chosen["size"], cache, **load)
    decode_seconds = time.perf_counter() - began
    if runtime.main:
        report_decoding(decoded.report)
        console.print(
            f"{len(decoded.classes)} classes, {len(decoded.train)} train, "
            f"{len(decoded.valid)} valid; {runtime.world} process(es) on {runtime.device}"
        )
    config = TrainConfig(
        epochs=chosen["epochs"],
        size=chosen["size"],
        batch_size=chosen["batch_size"],
        loss=args.loss,
        epsilon=args.epsilon,
        seed=args.seed,
        weights=weights,
        compile=args.compile,
        out=args.out,
        resume=args.resume,
        stop_after=args.stop_after,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    result = train(config, decoded, runtime, console)
    if result is None:
        if runtime.main:
            console.print(f"stopped after epoch {args.stop_after}; continue with --resume")
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
    metrics["device"] = torch.cuda.get_device_name(runtime.device) if runtime.cuda else "cpu"
    metrics["torch"] = torch.__version__
    metrics["decode_seconds"] = decode_seconds
    metrics["wall_seconds"] = time.perf_counter() - began
    metrics["figures"] = save_figures(args.out, logits, decoded, summary["history"])
    save_predictions(args.out / "predictions.npz", logits, decoded)
    write_json_atomic(metrics, args.out / "metrics.json")
    console.print(summary_table(metrics))
    console.print(
        f"wrote {args.out / 'metrics.json'} and predictions.npz in {metrics['wall_seconds']:.1f} s"
    )
    if synthetic:
        console.print(Panel(SYNTHETIC_WARNING, style="yellow"))
    return metrics


def run(args: argparse.Namespace) -> int:
    """Entry point of ``lsce pets``: 0 on success, 2 with a message on bad input."""
    try:
        runtime = start_runtime(args.device)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    try:
        experiment(args, runtime)
    except (ValueError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    finally:
        stop_runtime(runtime)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lsce_scratch.pets``."""
    parser = argparse.ArgumentParser(prog="lsce pets", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))

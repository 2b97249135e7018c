"""Training the pets classifier: fastai's ``fit_one_cycle(4)`` in plain PyTorch.

One process or many (``torchrun``), CPU or CUDA, the same code: the whole decoded set
sits on the device, each epoch draws a seeded permutation that every rank slices the
same way, and each batch is augmented on the device by :mod:`.augment`. Every epoch ends
with a validation pass and an atomic checkpoint; ``resume`` continues from it and,
because all randomness is re-seeded from (seed, epoch, rank), replays exactly what an
uninterrupted run would have done.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from torch import nn

from lsce_examples.pets.augment import (
    Transforms,
    center_transforms,
    random_transforms,
    render,
)
from lsce_examples.pets.data import PetsData
from lsce_examples.pets.model import (
    PetClassifier,
    ResNet34,
    freeze_body,
    load_imagenet_weights,
    parameter_groups,
)
from lsce_scratch import calibration
from lsce_scratch.nn import LabelSmoothingCrossEntropy


@dataclass
class TrainConfig:
    """fastai's defaults for ``cnn_learner`` + ``fit_one_cycle(4)``
    at size 224, bs 64."""

    epochs: int = 4
    size: int = 224
    batch_size: int = 64  # global: split evenly across DDP ranks
    loss: str = (
        "lsce"  # "lsce" (our LSCE with epsilon) or "ce" (our LSCE with epsilon 0)
    )
    epsilon: float = 0.1
    max_lr: float = 3e-3
    pct_start: float = 0.3
    div_factor: float = 25.0
    weight_decay: float = 1e-2
    seed: int = 0
    weights: str = "none"  # a file, a URL or "none"
    compile: bool = False
    out: Path = field(default_factory=lambda: Path("runs") / "pets")
    resume: bool = False
    stop_after: int | None = None  # stop (as if interrupted) after this many epochs


# --8<-- [start:one_cycle]
def one_cycle(
    step: int,
    total_steps: int,
    max_lr: float,
    *,
    div_factor: float = 25.0,
    final_div: float | None = None,
    pct_start: float = 0.3,
    moms: tuple[float, float] = (0.95, 0.85),
) -> tuple[float, float]:
    """fastai v1's one-cycle schedule: the (learning rate, Adam β1) for batch ``step``.

    Warm-up for n1 = int(pct_start · n) batches, cosine from max_lr/div_factor up to
    max_lr while β1 falls from 0.95 to 0.85; then cosine down to max_lr/final_div
    (default div_factor · 1e4) while β1 climbs back. Batch n1 gets exactly max_lr.
    """
    final_div = div_factor * 1e4 if final_div is None else final_div
    warmup = int(total_steps * pct_start)

    def cosine(start: float, end: float, pct: float) -> float:
        # fastai's annealing_cos: end + (start − end)/2 · (cos(π·pct) + 1)
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= warmup:
        pct = step / warmup if warmup else 1.0
        return cosine(max_lr / div_factor, max_lr, pct), cosine(moms[0], moms[1], pct)
    pct = (step - warmup) / (total_steps - warmup)
    return cosine(max_lr, max_lr / final_div, pct), cosine(moms[1], moms[0], pct)


# --8<-- [end:one_cycle]


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its device, and its rank among ``world`` processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(device_ids=[self.device.index] if self.cuda else None)


def start_runtime(device: str = "auto") -> Runtime:
    """Pick the device; under ``torchrun`` (WORLD_SIZE > 1) join the
    process group too."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda; got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Runtime(torch.device(device))
    local = int(os.environ["LOCAL_RANK"])
    if device == "cuda":
        torch.cuda.set_device(local)
        placed = torch.device("cuda", local)
    else:
        placed = torch.device("cpu")
        # Processes on one machine share its cores;
        # without this each would start them all.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Runtime(placed, dist.get_rank(), dist.get_world_size())


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group (if any)."""
    if runtime.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def seed_for(*keys: int) -> int:
    """A well-mixed 63-bit seed from small integers (seed, epoch, rank)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class DeviceData:
    """The decoded set on the training device;
    sizes also on the CPU to draw transforms."""

    canvases: torch.Tensor  # (files, C, C, 3) uint8
    rows: torch.Tensor  # (n,) canvas row of each item
    sizes: torch.Tensor  # (n, 2) on the device
    sizes_cpu: torch.Tensor
    labels: torch.Tensor  # (n,)


def to_device(data: PetsData, device: torch.device, chunk: int = 256) -> DeviceData:
    """Copy the uint8 canvases to ``device`` in chunks
    (never a second full copy in RAM)."""
    canvases = torch.empty(data.pixels.shape, dtype=torch.uint8, device=device)
    for start in range(0, len(canvases), chunk):
        # np.array copies out of the read-only memory map: torch wants writable memory.
        block = torch.from_numpy(np.array(data.pixels[start : start + chunk]))
        canvases[start : start + chunk].copy_(block)
    sizes = torch.from_numpy(np.asarray(data.sizes))
    return DeviceData(
        canvases=canvases,
        rows=torch.from_numpy(np.asarray(data.rows)).to(device),
        sizes=sizes.to(device),
        sizes_cpu=sizes,
        labels=torch.from_numpy(np.asarray(data.labels)).to(device),
    )


# --8<-- [start:batches]
def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """(steps, batch_size/world) positions into the training set for
    this rank and epoch.

    Every rank draws the same permutation (seeded by seed and epoch), cuts it into
    global batches (dropping the last partial one, as fastai does), and takes its own
    slice of each, so the world together sees exactly the batches one process would.
    """
    generator = torch.Generator().manual_seed(seed_for(seed, epoch))
    steps = n // batch_size
    permutation = torch.randperm(n, generator=generator)[: steps * batch_size]
    per_rank = batch_size // world
    return permutation.view(steps, world, per_rank)[:, rank]


# --8<-- [end:batches]


def make_criterion(loss: str, epsilon: float) -> nn.Module:
    """Our LSCE for both: ``ce`` is LSCE with ε = 0, so the two runs
    differ only in ε."""
    if loss == "lsce":
        return LabelSmoothingCrossEntropy(epsilon)
    if loss == "ce":
        return LabelSmoothingCrossEntropy(0.0)
    raise ValueError(f"--loss must be 'lsce' or 'ce'; got {loss!r}")


def build_model(num_classes: int, weights: str, seed: int) -> PetClassifier:
    """ResNet34 + fastai head; with ImageNet weights the body is frozen
    (but its BatchNorm).

    Like fastai's ``cnn_learner``, which calls ``freeze()`` only when
    pretrained: a random body has nothing worth keeping fixed
    (``weights == 'none'``), so all of it trains.
    """
    torch.manual_seed(seed)
    backbone = ResNet34()
    model = PetClassifier(num_classes, backbone)
    if weights != "none":
        load_imagenet_weights(backbone, weights)
        freeze_body(model)
    return model


@torch.inference_mode()
def predict(
    model: nn.Module, data: DeviceData, items: torch.Tensor, size: int, batch_size: int
) -> torch.Tensor:
    """Validation logits (n, K) in float32 on the CPU: centre crops, eval mode."""
    model.eval()
    device = data.canvases.device
    outputs = []
    for chunk in items.split(batch_size):
        transforms = center_transforms(data.sizes_cpu[chunk]).to(device)
        images = batch_images(data, chunk.to(device), transforms, size)
        with torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
        ):
            outputs.append(model(images).float().cpu())
    return torch.cat(outputs)


def save_atomic(obj: object, path: Path) -> None:
    """torch.save to a temporary file, flush it to disk, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(obj: object, path: Path) -> None:
    """Write JSON the same way: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def run_settings(config: TrainConfig, data: PetsData) -> dict:
    """What a checkpoint must agree with to be resumed."""
    keys = ("epochs", "size", "batch_size", "loss", "epsilon", "max_lr", "pct_start")
    keys += ("div_factor", "weight_decay", "seed", "weights")
    settings = {key: getattr(config, key) for key in keys}
    settings.update(
        classes=list(data.classes), train=len(data.train), valid=len(data.valid)
    )
    return settings


def load_checkpoint(path: Path, settings: dict, device: torch.device) -> dict:
    """Read a checkpoint (weights_only) and check it belongs to this run's settings."""
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    # a truncated zip or a pickle error: either way the checkpoint is unusable
    except Exception as error:
        raise ValueError(
            f"--resume: cannot read {path} ({type(error).__name__}: "
            f"{error}); delete it to start over"
        ) from error
    differing = [
        f"{key}={checkpoint['settings'].get(key)!r} (now {value!r})"
        for key, value in settings.items()
        if checkpoint["settings"].get(key) != value
    ]
    if differing:
        raise ValueError(
            f"--resume: {path} was written by a run with other settings: "
            + ", ".join(differing)
            + ". Use the same options, or another --out"
        )
    return checkpoint


def format_record(record: dict) -> str:
    """One epoch's line: 'epoch 2  train_loss 1.2345  valid_loss ...'."""
    return "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in record.items()
    )


@contextmanager
def progress_bar(runtime: Runtime, console: Console) -> Iterator[Progress | None]:
    """A rich progress bar on rank 0; nothing on the other ranks."""
    if not runtime.main:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        yield progress


def check_batching(config: TrainConfig, n_train: int, world: int) -> int:
    """The number of optimiser steps per epoch; a clear error when there are none."""
    if config.batch_size % world:
        raise ValueError(
            f"--batch-size {config.batch_size} must be divisible by the {world} "
            "processes (each takes an equal slice of every batch)"
        )
    if n_train < config.batch_size:
        raise ValueError(
            f"--batch-size {config.batch_size} is larger than the {n_train} training "
            "images; use a smaller batch or more images"
        )
    return n_train // config.batch_size


def make_optimizer(model: PetClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    """fastai's AdamW: Adam(0.9, 0.99),
    decoupled weight decay (p ← p − lr·wd·p) on all."""
    # fused: one kernel for all parameters
    # (about 3× faster than the per-tensor loop on CPU)
    return torch.optim.AdamW(
        parameter_groups(model, config.max_lr),
        betas=(0.9, 0.99),
        weight_decay=config.weight_decay,
        fused=True,
    )


def set_schedule(
    optimizer: torch.optim.Optimizer, step: int, total: int, config: TrainConfig
) -> None:
    """Put one_cycle's learning rate (times each group's scale) and β1
    into the optimiser."""
    lr, beta1 = one_cycle(
        step,
        total,
        config.max_lr,
        div_factor=config.div_factor,
        pct_start=config.pct_start,
    )
    for group in optimizer.param_groups:
        group["lr"], group["betas"] = lr * group["lr_scale"], (beta1, 0.99)


def batch_images(
    data: DeviceData, index: torch.Tensor, transforms: Transforms, size: int
) -> torch.Tensor:
    """The augmented, normalised batch of items ``index``: channels_last on CUDA."""
    canvases = data.canvases[data.rows[index]]
    return render(
        canvases, data.sizes[index], transforms, size, channels_last=canvases.is_cuda
    )


# --8<-- [start:step]
def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    bf16: bool,
) -> torch.Tensor:
    """One optimiser step; returns the loss, left on the device (no host sync)."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = criterion(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().float()


# --8<-- [end:step]


# --8<-- [start:train]
def train(
    config: TrainConfig, data: PetsData, runtime: Runtime, console: Console
) -> tuple[dict, torch.Tensor] | None:
    """Run fit_one_cycle; return (summary, validation logits),
    or None when stopped early."""
    device, cuda = runtime.device, runtime.cuda
    steps = check_batching(config, len(data.train), runtime.world)
    torch.backends.cudnn.benchmark = cuda
    on_device = to_device(data, device)
    model = build_model(len(data.classes), config.weights, config.seed).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        if runtime.world > 1:
            # Batch statistics over the whole global batch, as one process would see it.
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = make_optimizer(model, config)
    criterion = make_criterion(config.loss, config.epsilon)
    settings = run_settings(config, data)
    checkpoint_path = config.out / "checkpoint.pt"
    history: list[dict] = []
    start = 0
    if config.resume and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path, settings, device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        history, start = checkpoint["history"], checkpoint["epoch"]
        if runtime.main:
            console.print(f"resuming from {checkpoint_path} after epoch {start}")
    elif config.resume and runtime.main:
        console.print(
            f"--resume: no checkpoint at {checkpoint_path} yet, starting at epoch 1"
        )
    step_model: nn.Module = model
    if runtime.world > 1:
        step_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None
        )
    if config.compile:
        step_model = torch.compile(step_model)
    train_items, valid_items = (
        torch.from_numpy(data.train),
        torch.from_numpy(data.valid),
    )
    logits = None
    with progress_bar(runtime, console) as progress:
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            # Dropout and augmentation depend only on (seed, epoch, rank):
            # resumable exactly.
            torch.manual_seed(seed_for(config.seed, epoch, runtime.rank, 1))
            batches = epoch_batches(
                len(train_items),
                config.batch_size,
                config.seed,
                epoch,
                runtime.rank,
                runtime.world,
            )
            items = train_items[batches]  # (steps, per-rank batch) item indices
            augment = torch.Generator().manual_seed(
                seed_for(config.seed, epoch, runtime.rank, 2)
            )
            transforms = random_transforms(
                on_device.sizes_cpu[items.flatten()], augment
            )
            transforms, items = transforms.to(device), items.to(device)
            per_rank = items.shape[1]
            task = (
                progress.add_task(f"epoch {epoch + 1}", total=steps)
                if progress
                else None
            )
            model.train()
            loss_sum = torch.zeros((), device=device)
            for step in range(steps):
                set_schedule(
                    optimizer, epoch * steps + step, config.epochs * steps, config
                )
                index = items[step]
                batch = transforms[step * per_rank : (step + 1) * per_rank]
                images = batch_images(on_device, index, batch, config.size)
                labels = on_device.labels[index]
                loss_sum += train_step(
                    step_model, optimizer, criterion, images, labels, bf16=cuda
                )
                if progress:
                    progress.advance(task)
            if runtime.world > 1:
                dist.all_reduce(loss_sum)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum.item() / (steps * runtime.world),
            }
            if runtime.main:
                logits = predict(model, on_device, valid_items, config.size, 128)
                labels = torch.from_numpy(data.labels[data.valid])
                record["valid_loss"] = float(criterion(logits, labels))
                record["error_rate"] = float(
                    (logits.argmax(1) != labels).float().mean()
                )
                record["seconds"] = time.perf_counter() - began
                console.print(format_record(record))
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                }
                state.update(
                    epoch=epoch + 1, history=[*history, record], settings=settings
                )
                save_atomic(state, checkpoint_path)
            history.append(record)
            runtime.barrier()
            if config.stop_after == epoch + 1 and epoch + 1 < config.epochs:
                return None
    if logits is None and runtime.main:
        # Resumed after the last epoch: nothing left to train, evaluate the checkpoint.
        logits = predict(model, on_device, valid_items, config.size, 128)
    summary = {
        "history": history,
        "steps_per_epoch": steps,
        "world_size": runtime.world,
    }
    if cuda:
        summary["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return summary, logits


# --8<-- [end:train]


# --8<-- [start:metrics]
def evaluate(
    logits: torch.Tensor, data: PetsData, config: TrainConfig, top: int = 10
) -> dict:
    """Error rate, NLL, ECE (15 bins), Brier, the fitted temperature and the most
    confused breed pairs, from the validation logits (our calibration module, NumPy)."""
    z = logits.double().numpy()
    labels = data.labels[data.valid]
    probs = torch.softmax(logits.double(), dim=1).numpy()
    predicted = probs.argmax(1)
    k = len(data.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    np.fill_diagonal(confusion, 0)
    pairs = np.argsort(confusion, axis=None)[::-1][:top]
    most_confused = [
        {
            "actual": data.classes[i],
            "predicted": data.classes[j],
            "count": int(confusion[i, j]),
        }
        for i, j in zip(*np.unravel_index(pairs, confusion.shape), strict=True)
        if confusion[i, j] > 0
    ]
    top_confidence = probs.max(1)
    epsilon = config.epsilon if config.loss == "lsce" else 0.0
    return {
        "error_rate": float(np.mean(predicted != labels)),
        "nll": calibration.negative_log_likelihood(probs, labels),
        "ece": calibration.expected_calibration_error(probs, labels, 15),
        "mce": calibration.expected_calibration_error(probs, labels, 15, norm="max"),
        "brier": calibration.brier_score(probs, labels),
        "temperature": calibration.fit_temperature(z, labels),
        "mean_confidence": float(top_confidence.mean()),
        "max_confidence": float(top_confidence.max()),
        # the LSCE optimum puts 1 − ε + ε/K on the true class and never more
        "confidence_cap": 1 - epsilon + epsilon / k,
        "most_confused": most_confused,
    }


# --8<-- [end:metrics]


def save_figures(
    out: Path, logits: torch.Tensor, data: PetsData, history: list[dict]
) -> list:
    """The reliability diagram and the loss/error curves as PNGs
    (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from lsce_examples.plots import reliability_diagram
    except ImportError:
        return []
    probs = torch.softmax(logits.double(), dim=1).numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    reliability_diagram(ax, probs, data.labels[data.valid], 15, title="validation set")
    paths = [out / "reliability.png"]
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    left.plot(epochs, [h["valid_loss"] for h in history], "s-", label="valid loss")
    right.plot(epochs, [h["error_rate"] for h in history], "o-", color="tab:red")
    left.set(xlabel="epoch", ylabel="loss")
    right.set(xlabel="epoch", ylabel="error rate")
    left.legend()
    paths.append(out / "history.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [str(p) for p in paths]


def save_predictions(path: Path, logits: torch.Tensor, data: PetsData) -> None:
    """Validation logits, labels, file names and classes, for calibration work
    (lesson 08)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        logits=logits.numpy(),
        labels=data.labels[data.valid],
        names=np.array([data.names[i] for i in data.valid]),
        classes=np.array(data.classes),
    )
    os.replace(tmp, path)


def config_json(config: TrainConfig) -> dict:
    """The config as JSON-friendly values."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}

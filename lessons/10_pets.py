# Lesson 10 · Pets on the GPU, the course's final lesson: the article's pets classifier
# rebuilt piece by piece (lsce_examples.pets), then trained twice, with our LSCE and
# with ε = 0. The narrative is the page docs/lessons/10-pets.md. Run:
# python lessons/10_pets.py (or lsce run 10). Without data/oxford-iiit-pet it trains on
# a generated set and says so.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from rich.table import Table

from lsce_course import exercises
from lsce_course.exercises import find_root
from lsce_course.report import (
    CheckTable,
    console,
    figure_dir,
    quick_mode,
    save_figure,
    save_run_output,
)
from lsce_examples.pets import augment, command, data, model, synthetic, train
from lsce_examples.plots import reliability_diagram

table = CheckTable("Lesson 10 · Pets on the GPU")
quick = quick_mode()
EPSILON, K = 0.1, 37
# the runs' data, checkpoints and metrics go beside the figures
work = figure_dir().parent / "lesson10"

# yours once you have started exercises 10.1 and 10.2, else the library's
one_cycle = exercises.choose("10.1", console)
reflect = exercises.choose("10.2", console)

# %% Labels from file names, and fastai's split
table.step("Lines 1–4: the data")

# --8<-- [start:labels]
for name in ("Abyssinian_5.jpg", "great_pyrenees_12.jpg", "Abyssinian_100.mat"):
    breed = data.breed_of(name)
    kind = (
        "not an image name"
        if breed is None
        else ("cat" if data.is_cat(breed) else "dog")
    )
    console.print(f"{name:>24} → {breed} ({kind})")
# valid_pct = 0.2 of the 7,390 images: a seeded permutation,
# the first 1,478 for validation
train_items, valid_items = data.random_split(7390)
# --8<-- [end:labels]
table.claim(
    "fastai's split of 7,390 files",
    (len(train_items), len(valid_items)) == (5912, 1478),
    f"{len(train_items)} train, {len(valid_items)} valid",
)
table.claim(
    "12 cat and 25 dog breeds",
    sum(map(data.is_cat, data.BREEDS)) == 12 and len(data.BREEDS) == K,
    "capitalised names are cats",
)

# %% Augmentation: one grid_sample per batch
table.step("Line 5: transforms, resizing and normalisation")

# four synthetic breeds, each decoded once into its uint8 canvas
demo = work / "augment-demo"
demo.mkdir(parents=True, exist_ok=True)
size, breeds, draws = 96, (0, 9, 20, 33), 6
canvases = np.zeros(
    (len(breeds), data.canvas_side(size), data.canvas_side(size), 3), np.uint8
)
sizes = []
for row, k in enumerate(breeds):
    path = demo / f"{data.BREEDS[k]}_1.jpg"
    Image.fromarray(synthetic.synthetic_image(k, 300, 200, seed=k)).save(path)
    height, width, _, _ = data.decode_into(canvases[row], path, size)
    sizes.append((height, width))
sizes = torch.tensor(sizes).repeat_interleave(draws, dim=0)
batch = torch.from_numpy(canvases).repeat_interleave(draws, dim=0)
# --8<-- [start:augment-demo]
# the first column gets the validation centre crop,
# the others random training transforms
random = augment.random_transforms(sizes, torch.Generator().manual_seed(0))
centre = augment.center_transforms(sizes)
is_first = torch.arange(len(sizes)) % draws == 0
transforms = augment.Transforms(
    torch.where(is_first[:, None, None], centre.matrices, random.matrices),
    torch.where(is_first, centre.brightness, random.brightness),
    torch.where(is_first, centre.contrast, random.contrast),
)
# one grid_sample for the whole batch, then lighting and normalisation
images = augment.render(batch, sizes, transforms, size)
# --8<-- [end:augment-demo]
mean = torch.tensor(augment.IMAGENET_MEAN).view(1, 3, 1, 1)
std = torch.tensor(augment.IMAGENET_STD).view(1, 3, 1, 1)
pictures = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
fig, axes = plt.subplots(len(breeds), draws, figsize=(1.3 * draws, 1.3 * len(breeds)))
for ax, picture in zip(axes.flat, pictures, strict=True):
    ax.imshow(picture)
    ax.axis("off")
save_figure(fig, "10_augment.png")

# reflection folds every sampling coordinate into [−1, 1]
t = torch.linspace(-5, 5, 101, dtype=torch.float64)
folded = reflect(t)
# your function against the library's as well, once you have written it
if reflect is not augment.reflect:
    table.compare(
        "your reflect vs the reference", folded, augment.reflect(t), uses="10.2"
    )
mirrored = reflect(torch.tensor([0.3, 1.2, -1.3, 2.5], dtype=torch.float64)).tolist()
table.claim(
    "reflection mirrors at ±1 (0.3, 1.2, −1.3, 2.5 → 0.3, 0.8, −0.7, −0.5)",
    bool((folded.abs() <= 1 + 1e-12).all())
    and np.allclose(mirrored, [0.3, 0.8, -0.7, -0.5]),
    f"got {', '.join(f'{v:.2f}' for v in mirrored)}",
    uses="10.2",
)

# %% The model: ResNet34, fastai's head, a frozen body
table.step("Line 6: cnn_learner(data, models.resnet34)")

# --8<-- [start:parameters]
resnet = model.ResNet34()
pets_model = model.PetClassifier(K, resnet)
model.freeze_body(pets_model)
n_resnet = sum(p.numel() for p in resnet.parameters())
n_head = sum(p.numel() for p in pets_model.head.parameters())
n_body = sum(p.numel() for p in pets_model.body.parameters())
# frozen: the convolutions; still trained: the body's BatchNorm scales and shifts
n_body_trainable = sum(
    p.numel() for p in pets_model.body.parameters() if p.requires_grad
)
# --8<-- [end:parameters]
table.claim(
    "ResNet34 = torchvision's 21,797,672 parameters",
    n_resnet == 21_797_672,
    f"{n_resnet:,}",
)
table.claim("fastai head = 546,853 parameters", n_head == 546_853, f"{n_head:,}")
table.claim(
    "frozen body trains only its BatchNorm (17,024)",
    n_body_trainable == 17_024,
    f"{n_body_trainable:,} of {n_body:,} body parameters",
)

# %% fit_one_cycle(4): the learning rate and β1, batch by batch
table.step("Line 8: fit_one_cycle(4)")

# --8<-- [start:schedule]
# 4 epochs of 92 batches; max_lr = 3e-3 for the head
steps = np.arange(368)
schedule = np.array([one_cycle(int(s), 368, 3e-3) for s in steps])  # (lr, β1) per batch
# --8<-- [end:schedule]
reference = np.array([train.one_cycle(int(s), 368, 3e-3) for s in steps])
if one_cycle is not train.one_cycle:
    table.compare("your one_cycle vs the reference", schedule, reference, uses="10.1")
table.claim(
    "one-cycle peaks at batch 110 with lr 3e-3",
    int(schedule[:, 0].argmax()) == 110 and abs(schedule[110, 0] - 3e-3) < 1e-12,
    f"peak at {int(schedule[:, 0].argmax())}: {schedule[:, 0].max():.2e}",
    uses="10.1",
)
table.claim(
    "starts at 3e-3/25 with β1 0.95",
    abs(schedule[0, 0] - 1.2e-4) < 1e-12 and abs(schedule[0, 1] - 0.95) < 1e-12,
    f"lr {schedule[0, 0]:.2e}, β1 {schedule[0, 1]:.3f}",
    uses="10.1",
)
schedule = table.trusted(
    "10.1", schedule, reference
)  # the figure shows the right schedule
fig, (ax_lr, ax_mom) = plt.subplots(1, 2, figsize=(9, 3.2))
ax_lr.plot(steps, schedule[:, 0])
ax_lr.set(
    xlabel="batch", ylabel="learning rate (head)", title="one-cycle learning rate"
)
ax_mom.plot(steps, schedule[:, 1], color="tab:orange")
ax_mom.set(xlabel="batch", ylabel="Adam β1", title="one-cycle momentum")
save_figure(fig, "10_one_cycle.png")

# %% Train: our LSCE (ε = 0.1), then ε = 0
table.step("Train: our LSCE (ε = 0.1), then ε = 0")

# --8<-- [start:runs]
real = Path("data") / "oxford-iiit-pet"
if (real / "images").is_dir() and not quick:
    source = ["--data", str(real)]
else:
    source = ["--synthetic", "--root", str(work / "data")]
tiny = ["--images", "74", "--size", "32", "--epochs", "1", "--batch-size", "16"]
runs, predictions = {}, {}
# the same loss class twice: ε = 0.1, then ε = 0 (plain cross-entropy)
for name, loss in (("LSCE", "lsce"), ("CE", "ce")):
    out = work / name.lower()
    options = [
        *source,
        *(tiny if quick else []),
        "--loss",
        loss,
        "--epsilon",
        str(EPSILON),
    ]
    code = command.main([*options, "--out", str(out), "--seed", "0"])
    written = (out / "metrics.json").is_file()
    table.claim(
        f"{name} run finishes and writes metrics.json",
        code == 0 and written,
        f"exit {code}",
    )
    if written:
        runs[name] = json.loads((out / "metrics.json").read_text())
        predictions[name] = np.load(out / "predictions.npz")
# --8<-- [end:runs]

# %% Error, NLL and calibration, CE against LSCE
table.step("What we measure")

# the LSCE optimum gives the true class 1 − ε + ε/K, and never more
cap = 1 - EPSILON + EPSILON / K
columns = ("error", "NLL", "ECE", "Brier", "T", "mean conf", "max conf")
keys = (
    "error_rate",
    "nll",
    "ece",
    "brier",
    "temperature",
    "mean_confidence",
    "max_confidence",
)
summary = Table(title="validation set", title_justify="left")
for column in ("run", *columns):
    summary.add_column(column, justify="right")
for name, m in runs.items():
    summary.add_row(name, *(f"{m[key]:.4f}" for key in keys))
console.print(summary)
for name, m in runs.items():
    chance = 1 - 1 / len(m["data"]["classes"])
    table.claim(
        f"{name}: error rate below chance ({chance:.3f})",
        m["error_rate"] < chance,
        f"{m['error_rate']:.3f}{' (one tiny epoch in quick mode)' if quick else ''}",
        required=not quick,
    )
    table.claim(
        f"{name}: NLL finite, ECE in [0, 1]",
        np.isfinite(m["nll"]) and 0 <= m["ece"] <= 1,
        f"NLL {m['nll']:.3f}, ECE {m['ece']:.3f}",
    )
if "LSCE" in runs:
    lsce = runs["LSCE"]
    table.claim(
        "LSCE: mean top confidence below 1 − ε + ε/K",
        lsce["mean_confidence"] <= cap,
        f"{lsce['mean_confidence']:.3f} ≤ {cap:.4f}",
    )
    table.claim(
        "LSCE: every top confidence below the cap",
        lsce["max_confidence"] <= cap,
        f"max {lsce['max_confidence']:.4f} vs {cap:.4f}",
        required=False,
    )
# the same table for the page, with where its numbers come from
rows = [
    f"| {name} | " + " | ".join(f"{m[key]:.4f}" for key in keys) + " |"
    for name, m in runs.items()
]
header = ["| run | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
synthetic_run = bool(runs) and next(iter(runs.values()))["synthetic"]
source_name = (
    "the synthetic set (generated images, not pets)"
    if synthetic_run
    else "Oxford-IIIT Pet"
)
note = f"The validation set of {source_name}; T is the fitted temperature."
save_run_output("10_summary.md", "\n".join([*header, *rows, "", note]) + "\n")

# %% The figures of the two runs
if len(predictions) == 2:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (name, saved) in zip(axes, predictions.items(), strict=True):
        probs = torch.softmax(torch.from_numpy(saved["logits"]).double(), dim=1).numpy()
        reliability_diagram(ax, probs, saved["labels"], 15, title=name)
        ax.axvline(cap, color="gray", lw=0.8, ls=":")
    save_figure(fig, "10_reliability.png")
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.2))
    for colour, (name, m) in enumerate(runs.items()):
        epochs = [h["epoch"] for h in m["history"]]
        style = {"color": f"C{colour}"}
        ax_loss.plot(
            epochs,
            [h["valid_loss"] for h in m["history"]],
            "o-",
            **style,
            label=f"{name} valid",
        )
        ax_loss.plot(
            epochs,
            [h["train_loss"] for h in m["history"]],
            "x--",
            **style,
            label=f"{name} train",
        )
        ax_err.plot(
            epochs, [h["error_rate"] for h in m["history"]], "o-", **style, label=name
        )
    ax_loss.set(xlabel="epoch", ylabel="loss (each run's own)", xticks=epochs)
    ax_err.set(xlabel="epoch", ylabel="error rate", xticks=epochs)
    ax_loss.legend(fontsize=7)
    ax_err.legend()
    save_figure(fig, "10_history.png")
if synthetic_run:
    console.print(f"[yellow]{command.SYNTHETIC_WARNING}[/yellow]")

# %% The pipeline on a GPU: the committed measurement
table.step("On a GPU")

# what benchmarks/pets_gpu.py measured on a GPU, for the page (not measured here)
gpu = json.loads(
    (find_root() / "docs" / "benchmarks" / "pets_gpu_h200.json").read_text()
)
phases = gpu["phases"]
gpu_numbers = {
    "device": gpu["device"],
    "date": gpu["date"][:10],
    "images": gpu["settings"]["images"],
    "size": gpu["settings"]["size"],
    "batch": gpu["settings"]["batch"],
    "decode_seconds": phases["decode"]["decode_and_cache_seconds"],
    "baseline_images_per_s": phases["baseline"]["images_per_s"],
    "ours_images_per_s": phases["ours"]["images_per_s"],
    "compiled_images_per_s": phases["ours_compiled"]["images_per_s"],
    "compile_seconds": phases["ours_compiled"]["warmup_seconds"],
    "speedup": gpu["speedup"]["value"],
    "recipe_seconds": phases["recipe"]["wall_seconds"],
}
console.print(
    f"{gpu_numbers['device']}: {gpu_numbers['speedup']:.2f}× the plain "
    "loop's images/s; the 4-epoch recipe in "
    f"{gpu_numbers['recipe_seconds']:.1f} s, decoding included"
)
save_run_output("10_results.json", {"gpu": gpu_numbers})

# %%
raise SystemExit(table.finish())

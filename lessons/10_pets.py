# %% [markdown]
# # Lesson 10: the article's pets classifier, in plain PyTorch, with our LSCE
#
# The article ends with "ten lines" of fastai v1: Oxford-IIIT Pet, a pretrained ResNet34,
# `learn.loss_func = LabelSmoothingCrossEntropy()`, `fit_one_cycle(4)`, and a 7.5 % error
# rate. Those lines hide a data pipeline, a model surgery, a frozen body, an optimiser, a
# learning-rate schedule and a dozen augmentations. `lsce_examples.pets` rebuilds each of
# them in plain PyTorch, and this lesson runs them one by one, then trains the classifier
# twice (our LSCE, then ε = 0) and measures calibration as well as error.
#
# Without the real data (`data/oxford-iiit-pet`) the runs use a generated, pets-like set
# and say so: on a CPU they show that the pipeline works, not how well pets are recognised.
# Exercises 10.1 (`one_cycle`) and 10.2 (`reflect`) rebuild two small pieces; once you have
# started them, the lesson uses yours.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from rich.table import Table

from lsce_course import exercises
from lsce_course.report import CheckTable, console, figure_dir, quick_mode, save_figure
from lsce_examples.pets import augment, command, data, model, synthetic, train
from lsce_examples.plots import reliability_diagram

table = CheckTable("Lesson 10: pets")
quick = quick_mode()
EPSILON, K = 0.1, 37
work = figure_dir().parent / "lesson10"

one_cycle = exercises.choose("10.1", console)
reflect = exercises.choose("10.2", console)
yours_schedule = one_cycle is not train.one_cycle
yours_reflect = reflect is not augment.reflect

# %% [markdown]
# ## 1. Labels from file names, and fastai's split
#
# `from_name_re(path_img, fnames, pat)` labels each image by the regex
# `r'/([^/]+)_\d+.jpg$'`: the breed is everything before the last `_<number>.jpg`, and a
# capitalised breed is a cat. `valid_pct=0.2` (the default of `from_name_re`) takes a
# seeded random 20 % for validation: 1,478 of the 7,390 images.

# %%
for name in ("Abyssinian_5.jpg", "great_pyrenees_12.jpg", "Abyssinian_100.mat"):
    breed = data.breed_of(name)
    kind = "not an image name" if breed is None else ("cat" if data.is_cat(breed) else "dog")
    console.print(f"{name:>24} → {breed} ({kind})")
train_items, valid_items = data.random_split(7390)
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

# %% [markdown]
# ## 2. The model: ResNet34, fastai's head, a frozen body
#
# `cnn_learner(data, models.resnet34)` loads torchvision's ImageNet ResNet34, drops its
# average pool and 1000-way classifier, and adds a head (concat pooling, BatchNorm,
# dropout, 512 hidden units, 37 outputs). It then freezes the body, except its BatchNorm
# layers, which keep adapting to the new images.

# %%
resnet = model.ResNet34()
pets_model = model.PetClassifier(K, resnet)
model.freeze_body(pets_model)
n_resnet = sum(p.numel() for p in resnet.parameters())
n_head = sum(p.numel() for p in pets_model.head.parameters())
n_body = sum(p.numel() for p in pets_model.body.parameters())
n_body_trainable = sum(p.numel() for p in pets_model.body.parameters() if p.requires_grad)
table.claim(
    "ResNet34 = torchvision's 21,797,672 parameters", n_resnet == 21_797_672, f"{n_resnet:,}"
)
table.claim("fastai head = 546,853 parameters", n_head == 546_853, f"{n_head:,}")
table.claim(
    "frozen body trains only its BatchNorm (17,024)",
    n_body_trainable == 17_024,
    f"{n_body_trainable:,} of {n_body:,} body parameters",
)

# %% [markdown]
# ## 3. `fit_one_cycle(4)`: the learning rate and β1, batch by batch
#
# 4 epochs of 92 batches: 110 warm-up batches from 3e-3/25 up to 3e-3 while Adam's β1
# falls from 0.95 to 0.85, then a cosine down to 3e-3/25e4 while β1 climbs back.

# %%
steps = np.arange(368)
schedule = np.array([one_cycle(int(s), 368, 3e-3) for s in steps])
reference = np.array([train.one_cycle(int(s), 368, 3e-3) for s in steps])
if yours_schedule:
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
schedule = table.trusted("10.1", schedule, reference)  # the figure shows the right schedule
fig, (ax_lr, ax_mom) = plt.subplots(1, 2, figsize=(9, 3.2))
ax_lr.plot(steps, schedule[:, 0])
ax_lr.set(xlabel="batch", ylabel="learning rate (head)", title="one-cycle learning rate")
ax_mom.plot(steps, schedule[:, 1], color="tab:orange")
ax_mom.set(xlabel="batch", ylabel="Adam β1", title="one-cycle momentum")
save_figure(fig, "10_one_cycle.png")

# %% [markdown]
# ## 4. Augmentation: one `grid_sample` per batch
#
# Each image is decoded once, resized to short side `size`, and kept as uint8 in a square
# canvas. For every batch, flip, rotation, zoom, crop position and perspective warp become
# one 3×3 matrix per image; one `grid_sample` reads the pixels; reflection (exercise 10.2)
# fills what falls outside the image. Left column: the validation centre crop.

# %%
demo = work / "augment-demo"
demo.mkdir(parents=True, exist_ok=True)
size, breeds, draws = 96, (0, 9, 20, 33), 6
canvases = np.zeros((len(breeds), data.canvas_side(size), data.canvas_side(size), 3), np.uint8)
sizes = []
for row, k in enumerate(breeds):
    path = demo / f"{data.BREEDS[k]}_1.jpg"
    Image.fromarray(synthetic.synthetic_image(k, 300, 200, seed=k)).save(path)
    height, width, _, _ = data.decode_into(canvases[row], path, size)
    sizes.append((height, width))
sizes = torch.tensor(sizes).repeat_interleave(draws, dim=0)
batch = torch.from_numpy(canvases).repeat_interleave(draws, dim=0)
random = augment.random_transforms(sizes, torch.Generator().manual_seed(0))
centre = augment.center_transforms(sizes)
is_first = torch.arange(len(sizes)) % draws == 0
transforms = augment.Transforms(
    torch.where(is_first[:, None, None], centre.matrices, random.matrices),
    torch.where(is_first, centre.brightness, random.brightness),
    torch.where(is_first, centre.contrast, random.contrast),
)
images = augment.render(batch, sizes, transforms, size)
mean = torch.tensor(augment.IMAGENET_MEAN).view(1, 3, 1, 1)
std = torch.tensor(augment.IMAGENET_STD).view(1, 3, 1, 1)
pictures = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
fig, axes = plt.subplots(len(breeds), draws, figsize=(1.3 * draws, 1.3 * len(breeds)))
for ax, picture in zip(axes.flat, pictures, strict=True):
    ax.imshow(picture)
    ax.axis("off")
save_figure(fig, "10_augment.png")
t = torch.linspace(-5, 5, 101, dtype=torch.float64)
folded = reflect(t)
if yours_reflect:
    table.compare("your reflect vs the reference", folded, augment.reflect(t), uses="10.2")
mirrored = reflect(torch.tensor([0.3, 1.2, -1.3, 2.5], dtype=torch.float64)).tolist()
table.claim(
    "reflection mirrors at ±1 (0.3, 1.2, −1.3, 2.5 → 0.3, 0.8, −0.7, −0.5)",
    bool((folded.abs() <= 1 + 1e-12).all()) and np.allclose(mirrored, [0.3, 0.8, -0.7, -0.5]),
    f"got {', '.join(f'{v:.2f}' for v in mirrored)}",
    uses="10.2",
)

# %% [markdown]
# ## 5. Train: our LSCE (ε = 0.1), then ε = 0
#
# `lsce pets` does the rest: decode once into a cache, keep the set on the device, draw a
# seeded permutation per epoch, augment on the device, bf16 and channels_last on a GPU,
# AdamW(0.9, 0.99) with decoupled weight decay 1e-2, the schedule above, a checkpoint per
# epoch. The second run uses the same loss with ε = 0: plain cross-entropy.

# %%
real = Path("data") / "oxford-iiit-pet"
if (real / "images").is_dir() and not quick:
    source = ["--data", str(real)]
else:
    source = ["--synthetic", "--root", str(work / "data")]
tiny = ["--images", "74", "--size", "32", "--epochs", "1", "--batch-size", "16"]
runs, predictions = {}, {}
for name, loss in (("LSCE", "lsce"), ("CE", "ce")):
    out = work / name.lower()
    options = [*source, *(tiny if quick else []), "--loss", loss, "--epsilon", str(EPSILON)]
    code = command.main([*options, "--out", str(out), "--seed", "0"])
    written = (out / "metrics.json").is_file()
    table.claim(
        f"{name} run finishes and writes metrics.json", code == 0 and written, f"exit {code}"
    )
    if written:
        runs[name] = json.loads((out / "metrics.json").read_text())
        predictions[name] = np.load(out / "predictions.npz")

# %% [markdown]
# ## 6. Error, NLL and calibration, CE against LSCE
#
# The LSCE optimum gives the true class 1 − ε + ε/K = 0.9027 and never more, so an LSCE
# model's confidence stays near or below that cap; a CE model's can approach 1. Whether that
# helps calibration depends on its accuracy: a model right 93 % of the time but at most
# 90 % sure is under-confident.

# %%
cap = 1 - EPSILON + EPSILON / K
summary = Table(title="validation set", title_justify="left")
for column in ("run", "error", "NLL", "ECE", "Brier", "T", "mean conf", "max conf"):
    summary.add_column(column, justify="right")
for name, m in runs.items():
    summary.add_row(
        name,
        *(f"{m[key]:.4f}" for key in ("error_rate", "nll", "ece", "brier", "temperature")),
        f"{m['mean_confidence']:.3f}",
        f"{m['max_confidence']:.3f}",
    )
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
            epochs, [h["valid_loss"] for h in m["history"]], "o-", **style, label=f"{name} valid"
        )
        ax_loss.plot(
            epochs, [h["train_loss"] for h in m["history"]], "x--", **style, label=f"{name} train"
        )
        ax_err.plot(epochs, [h["error_rate"] for h in m["history"]], "o-", **style, label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss (each run's own)", xticks=epochs)
    ax_err.set(xlabel="epoch", ylabel="error rate", xticks=epochs)
    ax_loss.legend(fontsize=7)
    ax_err.legend()
    save_figure(fig, "10_history.png")
if runs and next(iter(runs.values()))["synthetic"]:
    console.print(f"[yellow]{command.SYNTHETIC_WARNING}[/yellow]")

# %%
raise SystemExit(table.finish())

"""A pets-like folder for machines without the real archive (CI, offline laptops).

Same layout as the real ``images/`` folder: the 37 breed names, ``<Breed>_<n>.jpg``, the
real set's typical image sizes, three ``.mat`` files, and one file of each kind of bad
input the real set holds. The content is made to be learnable: the background hue and
the stripes on the "pet" depend on the breed. Nothing here is a photograph, so the
numbers a model reaches on it say nothing about real pets; every run says so.

NumPy and Pillow only.
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lsce_examples.pets.data import BREEDS

# (width, height) of the most common real images: 500×375 and 500×333 lead,
# then portraits.
REAL_SIZES = (
    (500, 375),
    (500, 333),
    (375, 500),
    (333, 500),
    (300, 225),
    (500, 500),
    (400, 300),
)

# One file of each kind of bad input in the real set, under its real name.
BAD_FILES = {
    "Abyssinian_5.jpg": "png-rgba",  # PNG content with alpha, named .jpg
    "Egyptian_Mau_139.jpg": "png-palette",  # palette (mode P) image named .jpg
    "staffordshire_bull_terrier_2.jpg": "jpeg-gray",  # grayscale (mode L) JPEG
    # cut-off JPEG: cannot be decoded, must be skipped
    "beagle_116.jpg": "jpeg-truncated",
    "Abyssinian_100.mat": "mat",  # not an image at all; the real set has three
    "Abyssinian_101.mat": "mat",
    "Abyssinian_102.mat": "mat",
}


@dataclass(frozen=True)
class SyntheticPets:
    """Where the generated images are, and which files are the deliberately bad ones."""

    images_dir: Path
    count: int
    bad_files: dict[str, str]


def breed_pattern(k: int) -> tuple[float, float, float]:
    """Breed k's look: background hue (7 kinds), pet hue (6 kinds), stripe angle
    (radians).

    Each cue alone is coarse; together they tell the 37 breeds apart.
    """
    return (k % 7) / 7, (k // 7) / 6 + 1 / 12, (k % 6) * math.pi / 6


# --8<-- [start:synthetic_image]
def synthetic_image(k: int, width: int, height: int, seed: int) -> np.ndarray:
    """An RGB uint8 image of breed k: a hued background and a striped ellipse,
    plus noise."""
    rng = np.random.default_rng(seed)
    background_hue, pet_hue, angle = breed_pattern(k)
    background = colorsys.hsv_to_rgb(background_hue, 0.6, rng.uniform(0.55, 0.9))
    light = colorsys.hsv_to_rgb(pet_hue, 0.45, 0.95)
    dark = colorsys.hsv_to_rgb(pet_hue, 0.9, 0.45)
    short = min(width, height)
    # pixel coordinates in units of the short side, as a row and a column
    # (broadcast, cheap)
    x = np.arange(width, dtype=np.float32)[None, :] / short
    y = np.arange(height, dtype=np.float32)[:, None] / short
    # Python floats (not NumPy float64 scalars) keep the arrays in float32.
    cx, cy = (
        rng.uniform(0.35, 0.65) * width / short,
        rng.uniform(0.35, 0.65) * height / short,
    )
    rx, ry = (float(r) for r in rng.uniform(0.22, 0.38, size=2))
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    # three stripes per short side, at the breed's angle
    stripes = 0.5 + 0.5 * np.sin(
        6 * math.pi * (x * math.cos(angle) + y * math.sin(angle))
    )
    light, dark = np.float32(light) * 255, np.float32(dark) * 255
    pet = dark + stripes[..., None] * (light - dark)
    image = np.where(inside[..., None], pet, np.float32(background) * 255)
    image += rng.integers(-24, 25, size=image.shape, dtype=np.int8)
    return np.clip(image, 0, 255).astype(np.uint8)


# --8<-- [end:synthetic_image]


def _write(task: tuple[str, int, int, int, int, str]) -> None:
    """Write one file; ``kind`` is "jpeg" for a good image or one of
    BAD_FILES' kinds."""
    path, k, width, height, seed, kind = task
    if kind == "mat":
        Path(path).write_bytes(b"MATLAB 5.0 MAT-file, synthetic stand-in\n" + bytes(64))
        return
    image = Image.fromarray(synthetic_image(k, width, height, seed))
    if kind == "jpeg":
        image.save(path, format="JPEG", quality=90)
    elif kind == "png-rgba":
        image.convert("RGBA").save(path, format="PNG")
    elif kind == "png-palette":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path, format="PNG")
    elif kind == "jpeg-gray":
        image.convert("L").save(path, format="JPEG", quality=90)
    elif kind == "jpeg-truncated":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        Path(path).write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    else:
        raise ValueError(f"unknown synthetic file kind {kind!r}")


def make_synthetic_pets(
    root: Path,
    count: int = 7390,
    *,
    scale: float = 1.0,
    seed: int = 0,
    workers: int | None = None,
) -> SyntheticPets:
    """Write ``count`` ``.jpg`` files (bad ones included) and 3 ``.mat``
    files to ``root/images``.

    ``scale`` shrinks the real sizes (0.3 gives ~150×112 images, quick on a CPU). A
    folder already generated with the same arguments is reused.
    """
    if count < len(BREEDS) * 2:
        raise ValueError(
            f"count must be at least {len(BREEDS) * 2} (two per breed); got {count}"
        )
    if not 0.05 <= scale <= 4:
        raise ValueError(
            f"scale must be in [0.05, 4] (1 = the real image sizes); got {scale}"
        )
    root, images = Path(root), Path(root) / "images"
    params = {"count": count, "scale": scale, "seed": seed, "version": 1}
    stamp = root / "synthetic.json"
    if stamp.is_file():
        if json.loads(stamp.read_text()) == params:
            return SyntheticPets(images, count, dict(BAD_FILES))
        raise ValueError(
            f"{root} already holds a synthetic set made with {stamp.read_text()}; "
            f"choose another folder for {params}"
        )
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tasks = []
    bad_by_breed: dict[str, list[tuple[str, str]]] = {}
    for name, kind in BAD_FILES.items():
        bad_by_breed.setdefault(name.rsplit("_", 1)[0], []).append((name, kind))
    for k, breed in enumerate(BREEDS):
        bad = bad_by_breed.get(breed, [])
        reserved = {int(name.rsplit("_", 1)[1].split(".")[0]) for name, _ in bad}
        n_jpg = count // len(BREEDS) + (k < count % len(BREEDS))
        # Bad .jpg files count towards the breed's images, as in the real 7,390.
        n_good = n_jpg - sum(kind != "mat" for _, kind in bad)
        numbers = [n for n in range(1, n_good + len(reserved) + 1) if n not in reserved]
        files = [(f"{breed}_{n}.jpg", "jpeg") for n in numbers[:n_good]]
        for name, kind in files + bad:
            width, height = REAL_SIZES[rng.integers(len(REAL_SIZES))]
            size = max(8, round(width * scale)), max(8, round(height * scale))
            tasks.append((str(images / name), k, *size, int(rng.integers(2**31)), kind))
    # Threads: NumPy and Pillow's JPEG encoder release the GIL for the heavy work.
    with ThreadPoolExecutor(workers or min(os.cpu_count() or 1, 32)) as pool:
        list(pool.map(_write, tasks))
    stamp.write_text(json.dumps(params))
    return SyntheticPets(images, count, dict(BAD_FILES))

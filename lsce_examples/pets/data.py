"""Oxford-IIIT Pet on disk: download, safe extraction, labels, split,
and a decode-once cache.

The article's data lines, ``untar_data(URLs.PETS)``, ``get_image_files``,
``from_name_re`` with ``pat = r'/([^/]+)_\\d+.jpg$'`` and ``valid_pct=0.2``, become
plain functions here. Decoding happens once: every image is converted to RGB, resized so
its short side is the training size, and stored in a uint8 ``.npy`` cache that the next
run maps straight in.

NumPy and Pillow only, no torch.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

# The 37 breeds: a capitalised name is a cat (12), a lower-case one a dog (25).
BREEDS = (
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau",
    "Maine_Coon", "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
    "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer",
    "chihuahua", "english_cocker_spaniel", "english_setter", "german_shorthaired",
    "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
    "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
)  # fmt: skip

# md5 (torchvision's) and mirrors of each archive;
# the www links broke in 2023, thor replaced them.
ARCHIVES = {
    "images.tar.gz": (
        "5c4f3ee8e5d25df40f4fd59a7f44e54c",
        (
            "https://thor.robots.ox.ac.uk/~vgg/data/pets/images.tar.gz",
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
        ),
    ),
    "annotations.tar.gz": (
        "95a8c909bbe2e81eed6a22bccdf3f68f",
        (
            "https://thor.robots.ox.ac.uk/~vgg/data/pets/annotations.tar.gz",
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
        ),
    ),
}

# The article's r'/([^/]+)_\d+.jpg$' on the file name alone, with the dot escaped. The
# greedy .+ makes the breed all before the last "_<digits>.jpg"
# (great_pyrenees_12 → great_pyrenees).
NAME_PATTERN = re.compile(r"^(?P<breed>.+)_\d+\.jpg$")
# fastai's seed for the split (np.random.seed(2) in the article), kept apart from the
# training seed so a CE run and an LSCE run see the same validation images.
SPLIT_SEED = 2
# Canvas side = ceil(size · MAX_ASPECT): room for a 3:2 image at short side
# `size`. Wider images are shrunk until their long side fits, so their short side
# ends a little under size.
MAX_ASPECT = 1.5
CACHE_VERSION = 1


def breed_of(file_name: str) -> str | None:
    """The breed in a Pets file name ('Bengal_12.jpg' → 'Bengal'),
    or None if it has none."""
    match = NAME_PATTERN.match(file_name)
    return match["breed"] if match else None


def is_cat(breed: str) -> bool:
    """Pets' naming rule: cat breeds are capitalised, dog breeds are lower case."""
    return breed[:1].isupper()


# --8<-- [start:listing]
@dataclass
class Listing:
    """The image files of a Pets folder, sorted by name, with the breed of each."""

    files: list[Path]
    breeds: list[str]
    ignored: list[str] = field(
        default_factory=list
    )  # not .jpg, or no "_<n>.jpg" in the name

    @property
    def classes(self) -> list[str]:
        """fastai's class order: a case-sensitive sort,
        so the 12 cat breeds come first."""
        return sorted(set(self.breeds))


def list_images(images_dir: Path) -> Listing:
    """Every ``<Breed>_<n>.jpg`` in ``images_dir``;
    anything else (the 3 .mat files) is ignored.

    Sorting by name makes the random split reproducible, which fastai's directory-order
    listing is not.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(
            f"--data: {images_dir} is not a folder; pass the folder that "
            "holds the Pets .jpg files (or its parent with images/ inside), "
            "or use --download / --synthetic"
        )
    listing = Listing(files=[], breeds=[])
    for path in sorted(images_dir.iterdir(), key=lambda p: p.name):
        breed = breed_of(path.name) if path.is_file() else None
        if breed is None:
            listing.ignored.append(path.name)
            continue
        listing.files.append(path)
        listing.breeds.append(breed)
    if not listing.files:
        raise ValueError(
            f"--data: no <Breed>_<n>.jpg files in {images_dir}; point it at the Pets "
            "images folder, or use --download / --synthetic"
        )
    return listing


# --8<-- [end:listing]


# --8<-- [start:split]
def random_split(
    n: int, valid_pct: float = 0.2, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """fastai v1's ``split_by_rand_pct``: a seeded permutation,
    the first 20 % for validation."""
    permutation = np.random.RandomState(seed).permutation(n)
    cut = int(valid_pct * n)
    return np.sort(permutation[cut:]), np.sort(permutation[:cut])


# --8<-- [end:split]


def official_split(
    names: Sequence[str], annotations_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The official lists: train = ``trainval.txt`` (3,680), valid = ``test.txt``
    (3,669).

    Files in neither list (41 in the real set) are left out, as torchvision does.
    """
    ids = {}
    for split in ("trainval", "test"):
        path = Path(annotations_dir) / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(
                f"--split official needs {path}; download the annotations archive "
                f"(lsce pets --download) or use --split random"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        ids[split] = {
            line.split()[0] for line in lines if line.strip() and line[0] != "#"
        }
    stems = [Path(name).stem for name in names]
    train = [i for i, stem in enumerate(stems) if stem in ids["trainval"]]
    valid = [i for i, stem in enumerate(stems) if stem in ids["test"]]
    return np.array(train, dtype=np.int64), np.array(valid, dtype=np.int64)


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _progress(console: Console | None, *columns: object) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=console,
        transient=False,
    )


# --8<-- [start:download]
def download(url: str, dest: Path, md5: str, *, console: Console | None = None) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar; resume a ``.part`` file;
    check the md5.

    The file only gets its final name once its md5 matches, so a half-finished or
    corrupted download is never used.
    """
    dest = Path(dest)
    if dest.is_file() and md5_of(dest) == md5:
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=60
        )
    except urllib.error.HTTPError as error:
        # 416: the range starts at the end, so the .part file is already complete.
        if error.code != 416:
            raise
        response = None
    if response is not None:
        with response:
            # A server (or file://) that ignores Range sends the whole file: start over.
            if start and getattr(response, "status", None) != 206:
                start = 0
            remaining = int(response.headers.get("Content-Length") or 0)
            with (
                part.open("ab" if start else "wb") as out,
                _progress(
                    console,
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                ) as bar,
            ):
                task = bar.add_task(
                    f"download {dest.name}", total=start + remaining or None
                )
                bar.advance(task, start)
                received = 0
                while block := response.read(1 << 20):
                    out.write(block)
                    received += len(block)
                    bar.advance(task, len(block))
            # urllib ends a body cut short silently;
            # keep the .part file for the next try.
            if received < remaining:
                raise ConnectionError(
                    f"the connection closed after {start + received} of "
                    f"{start + remaining} bytes; run again to resume"
                )
    found = md5_of(part)
    if found != md5:
        part.unlink()
        raise ValueError(
            f"download of {url} has md5 {found}, expected {md5}; the partial file "
            f"was deleted. Run the command again, or download {dest.name} "
            f"yourself into {dest.parent}"
        )
    os.replace(part, dest)
    return dest


# --8<-- [end:download]


# --8<-- [start:safe_extract]
def check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse a tar member that would land outside ``dest``: an absolute path, a ``..``,
    a link pointing out, or a device file."""
    dest = dest.resolve()
    name = member.name
    if name.startswith(("/", "\\")):
        raise ValueError(
            f"unsafe tar member {name!r}: absolute path; refusing to extract"
        )
    if ".." in PurePosixPath(name).parts or not (dest / name).resolve().is_relative_to(
        dest
    ):
        raise ValueError(
            f"unsafe tar member {name!r}: escapes the target folder; refusing"
        )
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        base = (dest / name).parent if member.issym() else dest
        if link.is_absolute() or not (base / link).resolve().is_relative_to(dest):
            raise ValueError(
                f"unsafe tar member {name!r}: link to {member.linkname!r} leaves "
                "the target folder; refusing"
            )
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ValueError(
            f"unsafe tar member {name!r}: device or fifo; refusing to extract"
        )


def extract(archive: Path, dest: Path, md5: str | None) -> None:
    """Check the archive's md5, check every member, then extract into ``dest``."""
    if md5 is not None and (found := md5_of(archive)) != md5:
        raise ValueError(
            f"{archive} has md5 {found}, expected {md5}: refusing to extract a "
            "corrupted or different archive. Delete it and download again"
        )
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # "r:*" reads gzip or plain tar: the Pets ".tar.gz" files are in fact uncompressed.
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, dest)
        # The standard library's own "data" filter re-checks each member as it extracts.
        tar.extractall(dest, members=members, filter="data")


# --8<-- [end:safe_extract]


class DownloadError(OSError):
    """The Pets archives could not be fetched or extracted;
    the message says what to do."""


def _download_failed(name: str, md5: str, root: Path, errors: list[str]) -> str:
    """The message for an archive that no mirror delivered: why each failed,
    then the fixes."""
    archive = root / name
    found = ""
    # A file the user put there themselves, but not the right one: say so, or they will
    # wonder why it is not used.
    if archive.is_file() and (actual := md5_of(archive)) != md5:
        found = f"{archive} is there but has md5 {actual}, not {md5}: replace it. "
    return (
        f"--download: could not download {name}:\n  "
        + "\n  ".join(errors)
        + f"\n{found}Check the internet connection and run again (a partial "
        f"download resumes), or download {name} yourself into {root} (md5 "
        f"{md5}), or use --synthetic"
    )


def download_pets(root: Path, *, console: Console | None = None) -> Path:
    """Download and extract both Pets archives under ``root``; return the images folder.

    Raises :class:`DownloadError` with one message when no mirror delivers an
    archive (no network, a wrong md5) or an archive cannot be extracted (an unsafe
    member, a full disk).
    """
    root = Path(root)
    stamp = root / "extracted.json"
    if stamp.is_file() and (root / "images").is_dir():
        return root / "images"
    for name, (md5, urls) in ARCHIVES.items():
        archive = root / name
        errors = []
        for url in urls:
            try:
                download(url, archive, md5, console=console)
                break
            # OSError: no network, refused, timed out, an HTTP error (URLError),
            # a full disk; ValueError: a wrong md5; HTTPException: the
            # connection broke off mid-file.
            except (OSError, ValueError, http.client.HTTPException) as error:
                errors.append(f"{url}: {error}")
        else:
            raise DownloadError(_download_failed(name, md5, root, errors))
        try:
            extract(archive, root, md5)
        # a wrong md5 or an unsafe member: the file is not the archive it should be
        except ValueError as error:
            raise DownloadError(
                f"--download: {error}. {archive} is not the Pets archive: delete it "
                "and run again, or use --synthetic"
            ) from error
        except (OSError, tarfile.TarError) as error:
            raise DownloadError(
                f"--download: could not extract {archive} into {root} "
                f"({error}); free some disk space or fix the permissions and "
                "run again, or use --synthetic"
            ) from error
    stamp.write_text(json.dumps({name: md5 for name, (md5, _) in ARCHIVES.items()}))
    return root / "images"


# --8<-- [start:decode]
@dataclass
class DecodeReport:
    """What decoding found: files converted to RGB on the way,
    and files it had to skip."""

    decoded: int = 0
    converted: list[tuple[str, str]] = field(
        default_factory=list
    )  # (file, what was done)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    ignored: list[str] = field(
        default_factory=list
    )  # not <Breed>_<n>.jpg (the .mat files)


def fit_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Resized (height, width): short side ``size``,
    long side at most the canvas side."""
    canvas = canvas_side(size)
    scale = min(size / min(height, width), canvas / max(height, width))
    return (
        min(canvas, max(1, round(height * scale))),
        min(canvas, max(1, round(width * scale))),
    )


def canvas_side(size: int) -> int:
    """The side of the square uint8 canvas each image is stored in."""
    return math.ceil(size * MAX_ASPECT)


def decode_image(path: Path, size: int) -> tuple[np.ndarray, str]:
    """Decode one file to an RGB uint8 array of :func:`fit_size`;
    say what had to be converted.

    Raises whatever Pillow raises for a file it cannot decode (truncated, not an image).
    """
    notes = []
    with Image.open(path) as image:
        if image.format != "JPEG":
            notes.append(f"{image.format} content named .jpg")
        if image.mode != "RGB":
            notes.append(f"mode {image.mode} converted to RGB")
        height, width = fit_size(image.height, image.width, size)
        # JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 scale when that
        # is still big enough.
        image.draft("RGB", (width, height))
        # Pets holds palette, grayscale and RGBA files:
        # fastai's open_image converts them too.
        rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(rgb), "; ".join(notes)


def decode_into(canvas: np.ndarray, path: Path, size: int) -> tuple[int, int, str, str]:
    """Decode ``path`` into one canvas row; return (height, width, note, error).

    A file Pillow cannot decode leaves the row blank and returns the
    reason as ``error``.
    """
    try:
        pixels, note = decode_image(path, size)
    # Any failure of a broken file (OSError, SyntaxError,
    # DecompressionBombError...) skips it.
    except Exception as error:
        return 0, 0, "", f"{type(error).__name__}: {error}"
    height, width = pixels.shape[:2]
    canvas[:height, :width] = pixels
    # Repeat the edge pixels into the unused canvas, so bilinear sampling at the image's
    # border never blends in black.
    canvas[:height, width:] = pixels[:, -1:]
    canvas[height:] = canvas[height - 1 : height]
    return height, width, note, ""


# --8<-- [end:decode]


@dataclass
class DecodedImages:
    """The decode-once cache: one uint8 canvas per file,
    and the true size of each image."""

    pixels: np.ndarray  # (files, C, C, 3) uint8, NHWC; rows of skipped files stay blank
    rows: np.ndarray  # (n,) canvas row of each decoded image
    sizes: np.ndarray  # (n, 2) its (height, width) inside the canvas
    names: list[str]
    report: DecodeReport


def cache_key(files: Sequence[Path], size: int) -> str:
    """A hash of the file names, sizes and times,
    the training size and the cache format."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} size={size}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode_all(
    files: Sequence[Path],
    size: int,
    cache_dir: Path,
    *,
    workers: int | None = None,
    console: Console | None = None,
) -> DecodedImages:
    """Decode every file once into ``cache_dir``;
    a later call with the same files reuses it.

    ``workers`` threads decode in parallel (default: one per core).
    """
    cache_dir = Path(cache_dir)
    stem = cache_dir / f"pets-{size}px-{cache_key(files, size)}"
    index = stem.with_suffix(".json")
    if not index.is_file():
        _build_cache(files, size, stem, workers=workers, console=console)
    meta = json.loads(index.read_text(encoding="utf-8"))
    report = DecodeReport(
        decoded=meta["decoded"],
        converted=[tuple(c) for c in meta["converted"]],
        skipped=[tuple(s) for s in meta["skipped"]],
    )
    return DecodedImages(
        pixels=np.load(stem.with_suffix(".npy"), mmap_mode="r"),
        rows=np.array(meta["rows"], dtype=np.int64).reshape(-1),
        sizes=np.array(meta["sizes"], dtype=np.int64).reshape(-1, 2),
        names=meta["names"],
        report=report,
    )


def _build_cache(
    files: Sequence[Path],
    size: int,
    stem: Path,
    *,
    workers: int | None,
    console: Console | None,
) -> None:
    side = canvas_side(size)
    stem.parent.mkdir(parents=True, exist_ok=True)
    partial = stem.with_suffix(".npy.part")
    canvases = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.uint8, shape=(len(files), side, side, 3)
    )
    workers = workers or min(os.cpu_count() or 1, 32)
    # Threads, not processes: Pillow releases the GIL while it decodes and
    # resizes, and threads need no re-import of the caller's script (a lesson) or
    # fork of torch's threads.
    with (
        ThreadPoolExecutor(workers) as pool,
        _progress(console, MofNCompleteColumn(), TimeRemainingColumn()) as bar,
    ):
        task = bar.add_task(f"decode {len(files)} images to {size}px", total=len(files))
        futures = [
            pool.submit(decode_into, canvases[row], path, size)
            for row, path in enumerate(files)
        ]
        results = []
        for row, future in enumerate(futures):
            results.append((row, *future.result()))
            bar.advance(task)
    canvases.flush()
    del canvases
    kept = [r for r in results if not r[4]]
    meta = {
        "version": CACHE_VERSION,
        "size": size,
        "decoded": len(kept),
        "rows": [r[0] for r in kept],
        "sizes": [[r[1], r[2]] for r in kept],
        "names": [files[r[0]].name for r in kept],
        "converted": [[files[r[0]].name, r[3]] for r in kept if r[3]],
        "skipped": [[files[r[0]].name, r[4]] for r in results if r[4]],
    }
    os.replace(partial, stem.with_suffix(".npy"))
    # The index is written last and atomically:
    # its presence means the cache is complete.
    tmp = stem.with_suffix(".json.part")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, stem.with_suffix(".json"))


@dataclass
class PetsData:
    """Decoded images with labels and a train/validation split
    (indices into the items)."""

    pixels: np.ndarray  # (files, C, C, 3) uint8 canvases
    rows: np.ndarray  # (n,) canvas row of item i
    sizes: np.ndarray  # (n, 2) (height, width) of item i
    labels: np.ndarray  # (n,) class index of item i
    classes: list[str]
    names: list[str]
    train: np.ndarray
    valid: np.ndarray
    report: DecodeReport


def load_pets(
    images_dir: Path,
    size: int,
    cache_dir: Path,
    *,
    split: str = "random",
    workers: int | None = None,
    console: Console | None = None,
) -> PetsData:
    """List, split, decode (once) and label a Pets images folder.

    The split is drawn over the listing, before decoding, so a file that fails to decode
    drops out of its side without moving any other file to the other side.
    """
    listing = list_images(images_dir)
    names = [path.name for path in listing.files]
    if split == "random":
        train, valid = random_split(len(names))
    elif split == "official":
        train, valid = official_split(names, Path(images_dir).parent / "annotations")
    else:
        raise ValueError(
            f"--split must be 'random' (fastai, 20 %) or 'official'; got {split!r}"
        )
    decoded = decode_all(
        listing.files, size, cache_dir, workers=workers, console=console
    )
    decoded.report.ignored = listing.ignored
    classes = listing.classes
    breed_index = {breed: k for k, breed in enumerate(classes)}
    # Listing position of each decoded item (rows are listing positions), and back.
    item_of_row = {row: item for item, row in enumerate(decoded.rows.tolist())}
    return PetsData(
        pixels=decoded.pixels,
        rows=decoded.rows,
        sizes=decoded.sizes,
        labels=np.array(
            [breed_index[listing.breeds[r]] for r in decoded.rows], dtype=np.int64
        ),
        classes=classes,
        names=decoded.names,
        train=np.array(
            [item_of_row[r] for r in train if r in item_of_row], dtype=np.int64
        ),
        valid=np.array(
            [item_of_row[r] for r in valid if r in item_of_row], dtype=np.int64
        ),
        report=decoded.report,
    )


def resolve_images_dir(data: Path) -> Path:
    """Accept the images folder itself or a folder with ``images/`` inside
    (fastai's layout)."""
    data = Path(data)
    return data / "images" if (data / "images").is_dir() else data

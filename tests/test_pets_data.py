"""Pets data: labels from file names, the split, md5-checked resumable downloads, safe tar
extraction, decoding every kind of bad file, the decode-once cache, the synthetic set."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lsce_examples.pets import data
from lsce_examples.pets.synthetic import BAD_FILES, make_synthetic_pets, synthetic_image

# ---------------------------------------------------------------------------------------------
# labels and split


@pytest.mark.parametrize(
    ("name", "breed"),
    [
        ("Bengal_12.jpg", "Bengal"),
        ("great_pyrenees_3.jpg", "great_pyrenees"),
        ("staffordshire_bull_terrier_22.jpg", "staffordshire_bull_terrier"),
        ("Abyssinian_100.mat", None),
        ("Bengal.jpg", None),
        ("Bengal_12.jpeg", None),
        ("Bengal_12xjpg", None),  # the article's unescaped dot would accept this
    ],
)
def test_breed_is_the_name_before_the_last_number(name: str, breed: str | None) -> None:
    assert data.breed_of(name) == breed


def test_capitalised_breeds_are_the_12_cats() -> None:
    cats = [b for b in data.BREEDS if data.is_cat(b)]
    assert len(data.BREEDS) == 37 and len(cats) == 12
    assert "Egyptian_Mau" in cats and not data.is_cat("english_setter")


def test_random_split_is_fastais_seeded_permutation() -> None:
    train, valid = data.random_split(7390)
    assert (len(train), len(valid)) == (5912, 1478)  # fastai's lesson-1 sizes
    assert not set(train) & set(valid) and len(set(train) | set(valid)) == 7390
    expected_valid = np.sort(np.random.RandomState(2).permutation(7390)[:1478])
    np.testing.assert_array_equal(valid, expected_valid)
    again = data.random_split(7390)
    np.testing.assert_array_equal(again[1], valid)


def test_official_split_reads_trainval_and_test(tmp_path: Path) -> None:
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    (annotations / "trainval.txt").write_text("Bengal_1 2 1 2\nbeagle_2 14 2 4\n")
    (annotations / "test.txt").write_text("# comment\nBengal_3 2 1 2\n")
    names = ["Bengal_1.jpg", "Bengal_2.jpg", "Bengal_3.jpg", "beagle_2.jpg"]
    train, valid = data.official_split(names, annotations)
    assert train.tolist() == [0, 3] and valid.tolist() == [
        2
    ]  # Bengal_2 is in neither list
    with pytest.raises(FileNotFoundError, match="--split official needs"):
        data.official_split(names, tmp_path / "missing")


def test_listing_errors_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--data: .* is not a folder"):
        data.list_images(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="--data: no <Breed>_<n>.jpg files"):
        data.list_images(tmp_path)


# ---------------------------------------------------------------------------------------------
# archives


def make_tar(
    path: Path,
    members: dict[str, bytes],
    links: dict[str, tuple[str, bytes]] | None = None,
) -> str:
    """Write an uncompressed tar of ``members`` (and links: name → (target, type)); its md5."""
    with tarfile.open(path, "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, (target, kind) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return data.md5_of(path)


def test_good_archive_extracts(tmp_path: Path) -> None:
    md5 = make_tar(
        tmp_path / "a.tar", {"images/Bengal_1.jpg": b"x", "images/sub/y.txt": b"yy"}
    )
    data.extract(tmp_path / "a.tar", tmp_path / "out", md5)
    assert (tmp_path / "out" / "images" / "Bengal_1.jpg").read_bytes() == b"x"


def test_md5_mismatch_refuses_to_extract(tmp_path: Path) -> None:
    make_tar(tmp_path / "a.tar", {"images/Bengal_1.jpg": b"x"})
    with pytest.raises(ValueError, match="has md5 .* expected 0+: refusing to extract"):
        data.extract(tmp_path / "a.tar", tmp_path / "out", "0" * 32)
    assert not (tmp_path / "out" / "images").exists()


@pytest.mark.parametrize(
    ("members", "links", "why"),
    [
        ({"../evil.txt": b"x"}, {}, "escapes the target folder"),
        ({"images/../../evil.txt": b"x"}, {}, "escapes the target folder"),
        ({"/tmp/evil.txt": b"x"}, {}, "absolute path"),
        (
            {},
            {"images/link": ("../../etc/passwd", tarfile.SYMTYPE)},
            "leaves the target",
        ),
        ({}, {"images/link": ("/etc/passwd", tarfile.SYMTYPE)}, "leaves the target"),
        ({}, {"images/hard": ("../outside", tarfile.LNKTYPE)}, "leaves the target"),
        ({}, {"images/dev": ("", tarfile.CHRTYPE)}, "device or fifo"),
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, members, links, why) -> None:
    md5 = make_tar(tmp_path / "a.tar", {"images/ok.txt": b"ok", **members}, links)
    with pytest.raises(ValueError, match=f"unsafe tar member .*{why}"):
        data.extract(tmp_path / "a.tar", tmp_path / "out", md5)
    assert not (
        tmp_path / "out" / "images" / "ok.txt"
    ).exists()  # nothing was extracted
    assert not (tmp_path / "evil.txt").exists()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload and honours ``Range: bytes=N-`` (206), like the Oxford server."""

    payload = b""

    def do_GET(self) -> None:
        start = 0
        if (header := self.headers.get("Range")) and header.startswith("bytes="):
            start = int(header[6:].split("-")[0])
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/images.tar.gz"
    httpd.shutdown()


def test_download_resumes_a_partial_file(tmp_path: Path, server: str) -> None:
    payload = bytes(range(256)) * 4000
    RangeHandler.payload = payload
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "images.tar.gz"
    # A corrupted tail would give a wrong md5: the first 300,000 bytes are right, so resuming
    # from there must give the whole file.
    (tmp_path / "images.tar.gz.part").write_bytes(payload[:300_000])
    assert data.download(server, dest, md5) == dest
    assert dest.read_bytes() == payload
    assert not (tmp_path / "images.tar.gz.part").exists()


def test_download_with_wrong_md5_is_deleted_and_refused(
    tmp_path: Path, server: str
) -> None:
    RangeHandler.payload = b"not the archive"
    with pytest.raises(ValueError, match="expected 0+; the partial file was deleted"):
        data.download(server, tmp_path / "images.tar.gz", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_restarts_when_the_server_ignores_range(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"abcdef" * 1000)
    md5 = data.md5_of(source)
    (tmp_path / "copy.bin.part").write_bytes(
        b"zzz"
    )  # file:// sends everything: start over
    data.download(source.as_uri(), tmp_path / "copy.bin", md5)
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


class CutShortHandler(RangeHandler):
    """Announces the whole payload, sends half of it, and closes: a connection that broke."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])


def test_a_download_cut_short_keeps_its_part_file(tmp_path: Path) -> None:
    CutShortHandler.payload = payload = bytes(range(256)) * 100
    httpd = http.server.HTTPServer(("127.0.0.1", 0), CutShortHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/images.tar.gz"
        md5 = hashlib.md5(payload).hexdigest()
        with pytest.raises(
            ConnectionError, match="closed after 12800 of 25600 bytes; run again"
        ):
            data.download(url, tmp_path / "images.tar.gz", md5)
    finally:
        httpd.shutdown()
    # kept for the next try to resume, and not mistaken for the archive
    assert (tmp_path / "images.tar.gz.part").read_bytes() == payload[:12800]
    assert not (tmp_path / "images.tar.gz").exists()


def test_download_pets_without_a_mirror_is_one_download_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = (tmp_path / "nowhere" / "images.tar.gz").as_uri()  # file://: no network
    monkeypatch.setattr(
        data, "ARCHIVES", {"images.tar.gz": ("0" * 32, (missing, missing))}
    )
    with pytest.raises(data.DownloadError) as caught:
        data.download_pets(tmp_path / "pets")
    message = str(caught.value)
    assert isinstance(caught.value, OSError) and message.count(missing) == 2
    assert "--download: could not download images.tar.gz" in message
    assert f"download images.tar.gz yourself into {tmp_path / 'pets'}" in message
    assert message.endswith("or use --synthetic")


def test_download_pets_refuses_an_unsafe_archive_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mirror").mkdir()
    md5 = make_tar(tmp_path / "mirror" / "images.tar.gz", {"../evil.txt": b"x"})
    source = (tmp_path / "mirror" / "images.tar.gz").as_uri()
    monkeypatch.setattr(data, "ARCHIVES", {"images.tar.gz": (md5, (source,))})
    with pytest.raises(
        data.DownloadError, match="unsafe tar member .* delete it and run again"
    ):
        data.download_pets(tmp_path / "pets")
    assert not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------------------------------------
# decoding


def write_bad_files(folder: Path) -> dict[str, str]:
    """One file of each bad kind (plus CMYK and empty); returns the expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(synthetic_image(3, 90, 60, seed=1))
    rgb.save(folder / "Bombay_1.jpg", format="JPEG")
    rgb.convert("RGBA").save(folder / "Abyssinian_5.jpg", format="PNG")
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(
        folder / "Egyptian_Mau_139.jpg", "PNG"
    )
    rgb.convert("L").save(folder / "staffordshire_bull_terrier_2.jpg", format="JPEG")
    rgb.convert("CMYK").save(folder / "Bengal_7.jpg", format="JPEG")
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG")
    (folder / "beagle_116.jpg").write_bytes(
        buffer.getvalue()[: len(buffer.getvalue()) // 2]
    )
    (folder / "chihuahua_121.jpg").write_bytes(b"")
    (folder / "Abyssinian_100.mat").write_bytes(b"MATLAB")
    return {
        "Bombay_1.jpg": "ok",
        "Abyssinian_5.jpg": "PNG content named .jpg; mode RGBA converted to RGB",
        "Egyptian_Mau_139.jpg": "PNG content named .jpg; mode P converted to RGB",
        "staffordshire_bull_terrier_2.jpg": "mode L converted to RGB",
        "Bengal_7.jpg": "mode CMYK converted to RGB",
        "beagle_116.jpg": "skipped: truncated",
        "chihuahua_121.jpg": "skipped: cannot identify",
        "Abyssinian_100.mat": "ignored",
    }


def test_each_kind_of_bad_file_is_converted_or_skipped(tmp_path: Path) -> None:
    expected = write_bad_files(tmp_path / "images")
    pets = data.load_pets(tmp_path / "images", 32, tmp_path / "cache", workers=2)
    report = pets.report
    converted = dict(report.converted)
    skipped = dict(report.skipped)
    for name, outcome in expected.items():
        if outcome == "ok":
            assert name in pets.names and name not in converted
        elif outcome == "ignored":
            assert name in report.ignored
        elif outcome.startswith("skipped"):
            assert outcome.split(": ")[1] in skipped[name] and name not in pets.names
        else:
            assert converted[name] == outcome and name in pets.names
    assert report.decoded == len(pets.names) == 5
    # Every kept image is RGB uint8 at short side 32 inside a 48 × 48 canvas.
    assert pets.pixels.shape[1:] == (48, 48, 3) and pets.pixels.dtype == np.uint8
    assert (pets.sizes.min(axis=1) == 32).all() and (pets.sizes.max(axis=1) <= 48).all()
    # Labels follow the case-sensitive sort of the breeds found (cats first).
    assert [pets.classes[k] for k in pets.labels] == [
        data.breed_of(n) for n in pets.names
    ]


def test_canvas_edges_repeat_the_image_border(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(0, 120, 80, seed=0)).save(images / "Bengal_1.jpg")
    pets = data.load_pets(images, 40, tmp_path / "cache", workers=1)
    (height, width), canvas = pets.sizes[0], pets.pixels[pets.rows[0]]
    assert (height, width) == (40, 60)
    np.testing.assert_array_equal(
        canvas[:height, width:], np.repeat(canvas[:height, width - 1 :], 60 - width, 1)
    )
    np.testing.assert_array_equal(
        canvas[height:], np.repeat(canvas[height - 1 : height], 60 - height, 0)
    )


def test_cache_is_reused_and_rebuilt_when_files_change(
    tmp_path: Path, monkeypatch
) -> None:
    write_bad_files(tmp_path / "images")
    first = data.load_pets(tmp_path / "images", 32, tmp_path / "cache")
    built = []
    monkeypatch.setattr(data, "_build_cache", lambda *a, **k: built.append(a))
    again = data.load_pets(tmp_path / "images", 32, tmp_path / "cache")
    assert built == [] and again.names == first.names
    np.testing.assert_array_equal(np.asarray(again.pixels), np.asarray(first.pixels))
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json", ".npy"]


def test_split_is_drawn_before_decoding(tmp_path: Path) -> None:
    pets_folder = make_synthetic_pets(tmp_path / "syn", 37 * 4, scale=0.2, workers=2)
    pets = data.load_pets(pets_folder.images_dir, 32, tmp_path / "cache")
    listing = data.list_images(pets_folder.images_dir)
    train, valid = data.random_split(len(listing.files))
    names = [p.name for p in listing.files]
    assert sorted(pets.names[i] for i in pets.valid) == sorted(
        names[i] for i in valid if names[i] != "beagle_116.jpg"
    )
    assert len(pets.train) + len(pets.valid) == len(pets.names) == 37 * 4 - 1


# ---------------------------------------------------------------------------------------------
# the synthetic set


def test_synthetic_set_looks_like_pets(tmp_path: Path) -> None:
    made = make_synthetic_pets(tmp_path / "syn", 37 * 3, scale=0.2, workers=2)
    files = sorted(p.name for p in made.images_dir.iterdir())
    jpgs = [f for f in files if f.endswith(".jpg")]
    assert len(jpgs) == 37 * 3 and set(BAD_FILES) <= set(files)
    assert {data.breed_of(f) for f in jpgs} == set(data.BREEDS)
    with Image.open(made.images_dir / "Abyssinian_5.jpg") as image:
        assert (image.format, image.mode) == ("PNG", "RGBA")
    with Image.open(made.images_dir / "Egyptian_Mau_139.jpg") as image:
        assert (image.format, image.mode) == ("PNG", "P")
    sizes = set()
    for name in jpgs[:30]:
        with Image.open(made.images_dir / name) as image:
            sizes.add(image.size)
    assert len(sizes) > 2  # varied sizes, like the real set
    again = make_synthetic_pets(
        tmp_path / "syn", 37 * 3, scale=0.2
    )  # reused, not rewritten
    assert again.images_dir == made.images_dir
    with pytest.raises(ValueError, match="already holds a synthetic set"):
        make_synthetic_pets(tmp_path / "syn", 37 * 4, scale=0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 10}, "count must be at least 74"),
        ({"scale": 0}, r"scale must be in \[0.05, 4\]"),
    ],
)
def test_synthetic_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_synthetic_pets(tmp_path, **{"count": 100, **kwargs})


def test_breeds_differ_in_their_images() -> None:
    means = np.array(
        [synthetic_image(k, 64, 48, seed=0).mean(axis=(0, 1)) for k in range(37)]
    )
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert (
        np.sort(distances, axis=1)[:, 1].min() > 1.0
    )  # no two breeds share a colour scheme


def test_data_and_synthetic_modules_do_not_import_torch() -> None:
    code = (
        "import sys, lsce_examples.pets.data, lsce_examples.pets.synthetic; "
        "sys.exit('torch' in sys.modules)"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], check=False, timeout=120
        ).returncode
        == 0
    )

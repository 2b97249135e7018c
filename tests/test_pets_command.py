"""``lsce pets`` checks every argument before any work, and prints each expected failure (a bad
option, a missing folder or file, no network, a bad checksum, an unsafe archive) as one message
with exit status 2 and no traceback. No test touches the network: downloads are refused by a
patched ``urlopen`` or served from local files."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.hub

from lsce_course import cli
from lsce_course.report import console
from lsce_examples.pets import command
from lsce_examples.pets import data as pets_data


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wrapping: a message is one line however long its paths are."""
    monkeypatch.setattr(console, "width", 1000)


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if not under torchrun, whatever the environment the suite runs in."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network: every urlopen fails as it does without DNS, and the mirrors are local."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(
        torch.hub, "urlopen", refuse
    )  # torch.hub imported the name itself
    # Should a patch miss, these point at a closed local port rather than at Oxford.
    unreachable = {
        name: (md5, (f"http://127.0.0.1:9/{name}",))
        for name, (md5, _) in pets_data.ARCHIVES.items()
    }
    monkeypatch.setattr(pets_data, "ARCHIVES", unreachable)
    # An empty torch cache: the ImageNet weights are not already on this machine.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def pets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str
) -> tuple[int, str]:
    """Run ``lsce pets`` in-process with --root/--out under tmp_path; (exit code, output)."""
    code = command.main(
        [*args, "--root", str(tmp_path / "root"), "--out", str(tmp_path / "out")]
        + ([] if "--device" in args else ["--device", "cpu"])
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def tree(folder: Path) -> set[str]:
    """Every path under ``folder``: the same before and after means no work was done."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def assert_one_message(output: str, *fragments: str) -> None:
    """The output is one error message (one line) holding every fragment, no traceback."""
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error( \(rank \d+\))?: ", lines[0]), output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in {output!r}"


def assert_failed_once(output: str, *fragments: str) -> None:
    """Exactly one error message (it may list reasons on several lines), no traceback."""
    assert "Traceback" not in output, output
    assert len(re.findall(r"^error: ", output, re.MULTILINE)) == 1, output
    for fragment in fragments:
        assert fragment in " ".join(output.split()), f"{fragment!r} not in {output!r}"


# ---------------------------------------------------------------------------------------------
# argument errors: one message, exit 2, and nothing written


COUNTS = ("epochs", "size", "batch-size", "images", "workers", "stop-after")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--synthetic", "--epsilon", "2"], ["--epsilon must be in [0, 1]", "got 2.0"]),
        (
            ["--synthetic", "--epsilon", "-0.1"],
            ["--epsilon must be in [0, 1]", "got -0.1"],
        ),
        (
            ["--synthetic", "--epsilon", "nan"],
            ["--epsilon must be in [0, 1]", "got nan"],
        ),
        (
            ["--synthetic", "--epsilon", "inf"],
            ["--epsilon must be in [0, 1]", "got inf"],
        ),
        *[([f"--{key}", "0"], [f"--{key} must be >= 1; got 0"]) for key in COUNTS],
        (
            ["--synthetic", "--images", "73"],
            ["--images must be at least 74", "two per breed"],
        ),
        (["--seed", "-1"], ["--seed must be in [0, 2**63); got -1"]),
        (
            ["--synthetic", "--split", "official"],
            ["--split official needs the real annotations", "use --split random"],
        ),
        (
            ["--data", "{tmp}/nothing"],
            [
                "--data: {tmp}/nothing is not a folder",
                "or use --download / --synthetic",
            ],
        ),
        (
            ["--synthetic", "--resume"],
            ["--resume: no checkpoint at {tmp}/out/checkpoint.pt", "drop --resume"],
        ),
        (
            ["--synthetic", "--weights", "{tmp}/missing.pth"],
            ["--weights {tmp}/missing.pth: no such file", "a URL, or none"],
        ),
    ],
)
def test_bad_arguments_are_one_message_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragments: list[str],
) -> None:
    args = [arg.format(tmp=tmp_path) for arg in args]
    code, output = pets(capsys, tmp_path, *args)
    assert code == 2, output
    assert_one_message(
        output, *(fragment.format(tmp=tmp_path) for fragment in fragments)
    )
    assert tree(tmp_path) == set()  # no synthetic set, no cache, no output folder


def test_a_size_too_big_for_memory_is_refused_before_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if command.total_memory() is None:
        pytest.skip("this OS does not report its memory")
    code, output = pets(capsys, tmp_path, "--synthetic", "--size", "100000")
    assert code == 2
    assert_one_message(
        output, "--size 100000: the decoded images take", "use a smaller --size"
    )
    assert tree(tmp_path) == set()


@pytest.mark.parametrize("option", ["--root", "--out"])
def test_a_file_where_a_folder_belongs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    (tmp_path / option[2:]).write_text("not a folder")
    code, output = pets(capsys, tmp_path, "--synthetic")
    assert code == 2
    assert_one_message(
        output, f"{option} {tmp_path / option[2:]} is a file", "pass a folder"
    )
    assert tree(tmp_path) == {option[2:]}


def pets_folder(folder: Path, count: int) -> Path:
    """A folder of ``count`` Pets-named files: enough for the listing, which does not decode."""
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{pets_data.BREEDS[i % 37]}_{i + 1}.jpg").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    ("count", "args", "fragments"),
    [
        (
            0,
            [],
            ["--data: no <Breed>_<n>.jpg files in", "or use --download / --synthetic"],
        ),
        (
            10,
            ["--split", "official"],
            ["--split official needs", "or use --split random"],
        ),
        (
            10,
            ["--batch-size", "64"],
            [
                "--batch-size 64 is larger than the 8 training images",
                "use a smaller batch",
            ],
        ),
    ],
)
def test_a_data_folder_is_checked_before_decoding(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    count: int,
    args: list,
    fragments: list,
) -> None:
    images = pets_folder(tmp_path / "pets" / "images", count)
    before = tree(tmp_path)
    code, output = pets(capsys, tmp_path, "--data", str(images.parent), *args)
    assert code == 2
    assert_one_message(output, *fragments)
    assert tree(tmp_path) == before


def test_resume_with_other_settings_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    torch.save(
        {"settings": {"epochs": 4, "epsilon": 0.2}}, tmp_path / "out" / "checkpoint.pt"
    )
    before = tree(tmp_path)
    code, output = pets(capsys, tmp_path, "--synthetic", "--resume", "--epsilon", "0.1")
    assert code == 2
    assert_one_message(
        output, "other settings: epsilon=0.2 (now 0.1)", "Use the same options"
    )
    assert tree(tmp_path) == before


def test_resume_from_an_unreadable_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoint.pt").write_bytes(b"half a checkpoint")
    before = tree(tmp_path)
    code, output = pets(capsys, tmp_path, "--synthetic", "--resume")
    assert code == 2
    assert_one_message(output, "--resume: cannot read", "delete it to start over")
    assert tree(tmp_path) == before


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message without a GPU"
)
def test_cuda_without_a_gpu_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = pets(capsys, tmp_path, "--synthetic", "--device", "cuda")
    assert code == 2
    assert_one_message(output, "--device cuda: no CUDA GPU", "use --device cpu")
    assert tree(tmp_path) == set()


def test_compile_without_a_compiler_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    code, output = pets(capsys, tmp_path, "--synthetic", "--compile")
    assert code == 2
    assert_one_message(
        output, "--compile on the CPU needs a C++ compiler", "drop --compile"
    )
    assert tree(tmp_path) == set()


@pytest.mark.parametrize(
    ("env", "args", "fragments"),
    [
        (
            {"WORLD_SIZE": "2"},
            [],
            ["LOCAL_RANK is not set", "torchrun --nproc_per_node"],
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"},
            ["--batch-size", "15"],
            ["error (rank 1): --batch-size 15 must be divisible by the 2 processes"],
        ),
    ],
)
def test_torchrun_settings_are_checked_before_joining(
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
    env: dict,
    args: list,
    fragments,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, output = pets(capsys, tmp_path, "--synthetic", *args)
    assert code == 2
    assert_one_message(output, *fragments)
    assert tree(tmp_path) == set()


def test_the_lsce_command_gives_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = str(tmp_path / "root"), str(tmp_path / "out")
    code = cli.main(
        ["pets", "--synthetic", "--epsilon", "2", "--root", root, "--out", out]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert_one_message(captured.out + captured.err, "--epsilon must be in [0, 1]")
    assert tree(tmp_path) == set()


# ---------------------------------------------------------------------------------------------
# expected failures while working: one message, exit 2


def test_download_without_network_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    code, output = pets(capsys, tmp_path, "--download", "--weights", "none")
    assert code == 2
    assert output.startswith(
        "error: "
    )  # nothing before it: no defaults line, no traceback
    assert_failed_once(
        output,
        "--download: could not download images.tar.gz",
        "Temporary failure in name resolution",
        "Check the internet connection",
        f"download images.tar.gz yourself into {tmp_path / 'root' / 'oxford-iiit-pet'}",
        "or use --synthetic",
    )
    assert tree(tmp_path) <= {
        "root",
        "root/oxford-iiit-pet",
    }  # no archive, cache or output


def test_weights_without_network_fail_before_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    code, output = pets(capsys, tmp_path, "--download")
    assert code == 2
    assert_failed_once(
        output,
        f"--weights {command.RESNET34_URL}: could not fetch the weights",
        "pass its path, or use --weights none",
    )
    assert not (tmp_path / "root").exists() and not (tmp_path / "out").exists()


def test_a_wrong_archive_left_in_root_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    real = tmp_path / "root" / "oxford-iiit-pet"
    real.mkdir(parents=True)
    (real / "images.tar.gz").write_bytes(b"something else")
    code, output = pets(capsys, tmp_path, "--download", "--weights", "none")
    assert code == 2
    assert_failed_once(
        output,
        f"{real / 'images.tar.gz'} is there but has md5 {pets_data.md5_of(real / 'images.tar.gz')}",
        "replace it",
        "or use --synthetic",
    )


def serve_archive(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    content: bytes,
    md5: str,
    mirrors: int = 1,
) -> None:
    """Make ``content`` the images archive, from ``mirrors`` local file:// mirrors."""
    folder.mkdir()
    source = folder / "images.tar.gz"
    source.write_bytes(content)
    monkeypatch.setattr(
        pets_data, "ARCHIVES", {source.name: (md5, (source.as_uri(),) * mirrors)}
    )


def test_a_bad_checksum_from_every_mirror_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_archive(
        monkeypatch, tmp_path / "mirror", b"not the archive", "0" * 32, mirrors=2
    )
    code, output = pets(capsys, tmp_path, "--download", "--weights", "none")
    assert code == 2
    found = pets_data.md5_of(tmp_path / "mirror" / "images.tar.gz")
    assert (
        output.count(
            f"has md5 {found}, expected {'0' * 32}; the partial file was deleted"
        )
        == 2
    )
    assert_failed_once(
        output, "could not download images.tar.gz", "download images.tar.gz yourself"
    )
    real = tmp_path / "root" / "oxford-iiit-pet"
    assert list(real.iterdir()) == []  # neither the bad file nor its .part is kept


def test_an_unsafe_archive_is_refused_in_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (("images/Bengal_1.jpg", b"x"), ("../evil.txt", b"evil")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    archive = buffer.getvalue()
    serve_archive(
        monkeypatch, tmp_path / "mirror", archive, hashlib.md5(archive).hexdigest()
    )
    code, output = pets(capsys, tmp_path, "--download", "--weights", "none")
    assert code == 2
    assert_failed_once(
        output,
        "--download: unsafe tar member '../evil.txt': escapes the target folder",
        "is not the Pets archive: delete it and run again, or use --synthetic",
    )
    assert not (tmp_path / "root" / "evil.txt").exists()
    assert not (tmp_path / "root" / "oxford-iiit-pet" / "images").exists()


def test_an_unexpected_error_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the download code")

    monkeypatch.setattr(pets_data, "download_pets", broken)
    with pytest.raises(RuntimeError, match="a bug in the download code"):
        command.main(
            [
                "--download",
                "--weights",
                "none",
                "--root",
                str(tmp_path / "root"),
                "--out",
                str(tmp_path / "out"),
            ]
        )

"""Training: the one-cycle schedule, rank-sliced batches, end-to-end runs on a tiny synthetic
set, exact resume, DDP with gloo on CPU, clear errors, and (with a GPU) the CUDA path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsce_examples.pets import command
from lsce_examples.pets.train import epoch_batches, one_cycle

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(size: int = 64, epochs: int = 1) -> list[str]:
    """37 breeds × 4 images (one truncated), batch 16, no pretrained weights."""
    sizes = ["--size", str(size), "--batch-size", "16", "--epochs", str(epochs)]
    return ["--synthetic", "--images", "148", *sizes]


def test_one_cycle_matches_fastai_lesson_one() -> None:
    # 4 epochs × 92 batches: 110 warm-up steps, lr 1.2e-4 → 3e-3 → 1.2e-8 (fact sheet §3.2)
    assert one_cycle(0, 368, 3e-3) == pytest.approx((1.2e-4, 0.95))
    assert one_cycle(110, 368, 3e-3) == pytest.approx((3e-3, 0.85))
    lr, beta1 = one_cycle(55, 368, 3e-3)
    assert lr == pytest.approx(1.2e-4 + (3e-3 - 1.2e-4) / 2) and beta1 == pytest.approx(
        0.9
    )
    # one step before the end of phase 2 (fastai steps the schedule after each batch)
    lr, beta1 = one_cycle(367, 368, 3e-3)
    assert 1.2e-8 < lr < 2e-7 and beta1 == pytest.approx(0.95, abs=1e-5)
    rates = [one_cycle(i, 368, 3e-3)[0] for i in range(368)]
    assert rates.index(max(rates)) == 110
    assert all(a < b for a, b in zip(rates[:110], rates[1:111], strict=True))
    assert all(a > b for a, b in zip(rates[110:-1], rates[111:], strict=True))


def test_one_cycle_is_close_to_torchs_one_cycle_lr() -> None:
    # PyTorch's OneCycleLR "follows the fastai implementation"; its peak sits at step 109.4
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=3e-3, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=368, pct_start=0.3, final_div_factor=1e4
    )
    for step in range(368):
        lr, beta1 = one_cycle(step, 368, 3e-3)
        group = optimizer.param_groups[0]
        assert (
            abs(lr - group["lr"]) < 0.01 * 3e-3
            and abs(beta1 - group["betas"][0]) < 1e-3
        )
        optimizer.step()
        if step < 367:
            schedule.step()


def test_ranks_slice_the_same_global_batches() -> None:
    single = epoch_batches(100, 16, seed=3, epoch=1)
    assert single.shape == (6, 16)  # the last partial batch is dropped
    ranks = [epoch_batches(100, 16, seed=3, epoch=1, rank=r, world=2) for r in range(2)]
    torch.testing.assert_close(torch.cat(ranks, dim=1), single)
    assert not torch.equal(single, epoch_batches(100, 16, seed=3, epoch=2))
    assert len(set(single.flatten().tolist())) == 96


def run_pets(tmp_path: Path, root: Path, *args: str) -> tuple[int, str]:
    """Run ``lsce pets`` in-process; return (exit code, console text on one line)."""
    out = tmp_path / "out"
    code = command.main(
        [*args, "--root", str(root), "--out", str(out), "--device", "cpu"]
    )
    return code, str(out)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic set and decode cache for every test in this module."""
    return tmp_path_factory.mktemp("pets-root")


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.mark.slow
def test_end_to_end_on_a_tiny_synthetic_set(tmp_path: Path, root: Path, capsys) -> None:
    code, out = run_pets(tmp_path, root, *tiny())
    text = one_line(capsys)
    assert code == 0, text
    assert "SYNTHETIC DATA" in text
    assert "skipped beagle_116.jpg" in text and "converted Abyssinian_5.jpg" in text
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    assert metrics["synthetic"] is True
    assert metrics["data"]["skipped"][0][0] == "beagle_116.jpg"
    converted = {name for name, _ in metrics["data"]["converted"]}
    assert converted == {
        "Abyssinian_5.jpg",
        "Egyptian_Mau_139.jpg",
        "staffordshire_bull_terrier_2.jpg",
    }
    assert metrics["data"]["ignored"] == [
        "Abyssinian_100.mat",
        "Abyssinian_101.mat",
        "Abyssinian_102.mat",
    ]
    assert metrics["data"]["train"] + metrics["data"]["valid"] == 147
    for key in ("error_rate", "nll", "ece", "brier", "temperature", "max_confidence"):
        assert 0 <= metrics[key] < float("inf"), key
    assert len(metrics["history"]) == 1 and metrics["confidence_cap"] == pytest.approx(
        0.9 + 0.1 / 37
    )
    assert Path(out, "checkpoint.pt").is_file()
    checkpoint = torch.load(Path(out, "checkpoint.pt"), weights_only=True)
    assert checkpoint["epoch"] == 1 and "head.7.weight" in checkpoint["model"]
    assert {Path(p).name for p in metrics["figures"]} == {
        "reliability.png",
        "history.png",
    }


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path: Path, root: Path, capsys) -> None:
    # 32 px: this test trains five times
    two = [*tiny(32, epochs=2), "--seed", "7", "--loss", "lsce"]
    code, straight = run_pets(tmp_path / "straight", root, *two)
    assert code == 0
    code, out = run_pets(tmp_path / "interrupted", root, *two, "--stop-after", "1")
    assert code == 0 and not Path(out, "metrics.json").exists()
    assert torch.load(Path(out, "checkpoint.pt"), weights_only=True)["epoch"] == 1
    assert "continue with --resume" in one_line(capsys)
    code, resumed = run_pets(tmp_path / "interrupted", root, *two, "--resume")
    assert code == 0
    assert "resuming from" in one_line(capsys)
    a = json.loads(Path(straight, "metrics.json").read_text())
    b = json.loads(Path(resumed, "metrics.json").read_text())
    for key in ("error_rate", "nll", "ece", "brier", "temperature", "most_confused"):
        assert a[key] == b[key], key
    for x, y in zip(a["history"], b["history"], strict=True):
        assert (x["train_loss"], x["valid_loss"]) == (y["train_loss"], y["valid_loss"])
    # resuming a finished run trains nothing and evaluates the last checkpoint
    code, again = run_pets(tmp_path / "interrupted", root, *two, "--resume")
    assert code == 0
    assert json.loads(Path(again, "metrics.json").read_text())["nll"] == a["nll"]
    # a checkpoint from other settings is refused, naming them
    code, _ = run_pets(
        tmp_path / "interrupted", root, *two, "--resume", "--epsilon", "0.2"
    )
    assert code == 2
    assert "other settings: epsilon=0.1 (now 0.2)" in one_line(capsys)


@pytest.mark.slow
def test_ddp_with_gloo_matches_a_single_process(tmp_path: Path) -> None:
    # A fresh root: rank 0 generates and decodes while rank 1 waits at the barrier.
    settings = [
        *tiny(32),
        "--root",
        str(tmp_path / "root"),
        "--device",
        "cpu",
        "--seed",
        "1",
    ]
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            *launch,
            "-m",
            "lsce_examples.pets",
            *settings,
            "--out",
            str(tmp_path / "ddp"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert command.main([*settings, "--out", str(tmp_path / "single")]) == 0
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert (ddp["world_size"], single["world_size"]) == (2, 1)
    assert (
        ddp["data"] == single["data"]
        and ddp["steps_per_epoch"] == single["steps_per_epoch"]
    )
    # Same global batches and gradients averaged over them; only the BatchNorm statistics
    # (over 8 rows per process instead of 16) and the dropout masks differ.
    a, b = single["history"][0], ddp["history"][0]
    assert abs(a["train_loss"] - b["train_loss"]) < 0.1 * a["train_loss"]
    assert abs(a["valid_loss"] - b["valid_loss"]) < 0.2 * a["valid_loss"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--batch-size", "4096"],
            "--batch-size 4096 is larger than the at most 119 training",
        ),
        (["--epochs", "0"], "--epochs must be >= 1; got 0"),
        (["--weights", "missing.pth"], "--weights missing.pth: no such file"),
        (["--loss", "lsce", "--epsilon", "1.5"], "epsilon must be in [0, 1]"),
    ],
)
@pytest.mark.slow
def test_bad_options_are_clear_errors(tmp_path, root, capsys, args, message) -> None:
    code, _ = run_pets(tmp_path, root, *tiny(), *args)
    assert code == 2
    assert message in one_line(capsys)


def test_missing_data_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code = command.main(["--data", str(tmp_path / "nothing"), "--device", "cpu"])
    assert code == 2
    assert "--data: " in one_line(capsys)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message without a GPU"
)
def test_cuda_without_a_gpu_is_a_clear_error(capsys) -> None:
    assert command.main(["--synthetic", "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA GPU" in one_line(capsys)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_run(tmp_path: Path, root: Path) -> None:
    code = command.main(
        [*tiny(), "--root", str(root), "--out", str(tmp_path), "--device", "cuda"]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["device"] != "cpu" and metrics["max_memory_gib"] > 0
    assert 0 <= metrics["error_rate"] <= 1 and metrics["nll"] < 10

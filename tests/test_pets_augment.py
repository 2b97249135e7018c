"""The batched augmentation: exact centre crops, flips, the warp homography, reflection,
fastai's parameter ranges, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from lsce_examples.pets.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    Transforms,
    center_transforms,
    corner_homography,
    crop_matrices,
    random_transforms,
    reflect,
    render,
    symmetric_warp,
)


def canvases_of(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) images placed top-left in (B, side, side, 3) canvases, edges repeated."""
    batch, height, width, _ = images.shape
    canvas = torch.zeros(batch, side, side, 3, dtype=torch.uint8)
    canvas[:, :height, :width] = images
    canvas[:, :height, width:] = images[:, :, -1:]
    canvas[:, height:] = canvas[:, height - 1 : height]
    return canvas


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x * std + mean).permute(0, 2, 3, 1) * 255


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 16, 24, 3), generator=g, dtype=torch.uint8)


def test_centre_crop_is_exact(images: torch.Tensor) -> None:
    sizes = torch.tensor([[16, 24]] * 3)
    out = render(canvases_of(images, 36), sizes, center_transforms(sizes), 16)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32
    # output pixel centres land on input pixel centres: no interpolation at all
    torch.testing.assert_close(
        unnormalise(out), images[:, :, 4:20].float(), atol=2e-3, rtol=0
    )


def test_flip_mirrors_the_crop(images: torch.Tensor) -> None:
    sizes = torch.tensor([[16, 24]] * 3)
    n = len(sizes)
    flip = torch.full((n,), -1.0, dtype=torch.float64)
    zero, one = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    matrices = crop_matrices(
        sizes, one, zero, flip, torch.full((n, 2), 0.5, dtype=torch.float64)
    )
    transforms = Transforms(matrices.float(), torch.full((n,), 0.5), torch.ones(n))
    out = unnormalise(render(canvases_of(images, 36), sizes, transforms, 16))
    torch.testing.assert_close(
        out, images[:, :, 4:20].flip(2).float(), atol=2e-3, rtol=0
    )


def test_window_position_spans_the_long_side(images: torch.Tensor) -> None:
    sizes = torch.tensor([[16, 24]] * 3)
    n = len(sizes)
    zero, one = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    right = torch.tensor([[1.0, 0.5]] * n, dtype=torch.float64)
    transforms = Transforms(
        crop_matrices(sizes, one, zero, one, right).float(),
        torch.full((n,), 0.5),
        torch.ones(n),
    )
    out = unnormalise(render(canvases_of(images, 36), sizes, transforms, 16))
    torch.testing.assert_close(out, images[:, :, 8:24].float(), atol=2e-3, rtol=0)


def test_homography_maps_corners_to_targets() -> None:
    targets = torch.tensor(
        [[[-1.1, -0.9], [-0.8, 1.2], [1.05, -1.0], [0.9, 1.1]]], dtype=torch.float64
    )
    h = corner_homography(targets)
    corners = torch.tensor(
        [[-1.0, -1.0, 1], [-1, 1, 1], [1, -1, 1], [1, 1, 1]], dtype=torch.float64
    )
    mapped = corners @ h[0].T
    torch.testing.assert_close(mapped[:, :2] / mapped[:, 2:], targets[0])
    identity = symmetric_warp(torch.zeros(2, 4, dtype=torch.float64))
    torch.testing.assert_close(
        identity, torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    )


def test_reflect_folds_into_the_image() -> None:
    t = torch.tensor([-1.0, -0.5, 0.0, 0.7, 1.0, 1.2, -1.3, 2.5, 3.0])
    torch.testing.assert_close(
        reflect(t), torch.tensor([-1.0, -0.5, 0, 0.7, 1, 0.8, -0.7, -0.5, -1])
    )


def test_random_transforms_stay_in_fastais_ranges() -> None:
    sizes = torch.tensor([[375, 500], [500, 333]] * 2000)
    t = random_transforms(sizes, torch.Generator().manual_seed(0))
    assert t.matrices.shape == (4000, 3, 3)
    assert float(t.brightness.min()) >= 0.4 and float(t.brightness.max()) <= 0.6
    assert float(t.contrast.min()) >= 0.8 and float(t.contrast.max()) <= 1.25
    # each lighting change happens with probability 0.75
    assert abs(float((t.brightness != 0.5).float().mean()) - 0.75) < 0.03
    assert abs(float((t.contrast != 1.0).float().mean()) - 0.75) < 0.03
    # the output centre maps into the image
    centre = t.matrices[:, :2, 2] / t.matrices[:, 2:, 2]
    assert float(centre.abs().max()) <= 1.0


def test_zoom_crops_at_most_a_tenth_more() -> None:
    sizes = torch.tensor([[375, 500], [500, 333]] * 2000)
    config = AugmentConfig(flip=0, max_rotate=0, max_warp=0)
    t = random_transforms(sizes, torch.Generator().manual_seed(3), config)
    # m00 = 2a/w with a = short/(2·zoom): zoom = short/(w·m00)
    zoom = sizes.min(1).values / (sizes[:, 1] * t.matrices[:, 0, 0])
    assert float(zoom.min()) > 1 - 1e-5 and float(zoom.max()) <= 1.1 + 1e-5
    assert abs(float((zoom > 1 + 1e-5).float().mean()) - 0.75) < 0.03
    # the window stays inside the image: centre ± half-window within [−1, 1]
    reach = t.matrices[:, 0, 2].abs() + t.matrices[:, 0, 0].abs()
    assert float(reach.max()) <= 1 + 1e-5


def test_transforms_are_reproducible_and_flip_half_the_time() -> None:
    sizes = torch.tensor([[300, 400]] * 4000)
    a = random_transforms(sizes, torch.Generator().manual_seed(5))
    b = random_transforms(sizes, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a.matrices, b.matrices, rtol=0, atol=0)
    no_rotation = random_transforms(
        sizes, torch.Generator().manual_seed(1), AugmentConfig(max_rotate=0, max_warp=0)
    )
    flipped = no_rotation.matrices[:, 0, 0] < 0
    assert abs(float(flipped.float().mean()) - 0.5) < 0.03


def test_rotation_stays_within_ten_degrees() -> None:
    sizes = torch.tensor([[200, 200]] * 2000)
    config = AugmentConfig(flip=0, max_warp=0, max_zoom=1.0)
    t = random_transforms(sizes, torch.Generator().manual_seed(2), config)
    angles = torch.rad2deg(torch.atan2(t.matrices[:, 1, 0], t.matrices[:, 0, 0]))
    assert float(angles.abs().max()) <= 10 + 1e-4 and float(angles.abs().max()) > 9
    assert abs(float((angles != 0).float().mean()) - 0.75) < 0.04


def test_channels_last_output() -> None:
    sizes = torch.tensor([[16, 16]] * 2)
    canvases = torch.zeros(2, 24, 24, 3, dtype=torch.uint8)
    out = render(canvases, sizes, center_transforms(sizes), 8, channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert math.isclose(
        float(out[0, 0, 0, 0]), -IMAGENET_MEAN[0] / IMAGENET_STD[0], rel_tol=1e-4
    )

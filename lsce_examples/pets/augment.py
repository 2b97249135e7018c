"""fastai's ``get_transforms()`` as one ``grid_sample`` per batch, on the device.

fastai v1 composes crop, flip, rotation, zoom and perspective warp into one sampling
grid per image on CPU workers. We do the same for a whole batch at once: every geometric
transform becomes one 3×3 matrix per image (a homography), applied to the output pixel
grid, so a single ``F.grid_sample`` reads all the pixels. Lighting is then two numbers
per image in logit space. The random parameters are drawn on the CPU from a seeded
generator (tiny tensors), so a run is reproducible on any device.

Coordinates: ``grid_sample``'s normalised [-1, 1] with ``align_corners=False``; (u, v)
is an output pixel, (x, y) the point it reads in the stored image (h × w pixels,
top-left of its canvas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    """fastai v1 ``get_transforms()`` defaults."""

    flip: float = 0.5  # probability of a left-right flip
    max_rotate: float = 10.0  # degrees
    max_zoom: float = 1.1
    max_warp: float = 0.2
    max_lighting: float = 0.2
    p_affine: float = 0.75  # probability of each of rotate, zoom, warp
    p_lighting: float = 0.75  # probability of each of brightness, contrast


@dataclass
class Transforms:
    """One batch's transforms: (B, 3, 3) output→source matrices and the lighting."""

    matrices: (
        torch.Tensor
    )  # float32, (u, v, 1) → homogeneous (x, y) in image coordinates
    brightness: (
        torch.Tensor
    )  # (B,) fastai's "change" in (0, 1); 0.5 leaves the image alone
    contrast: torch.Tensor  # (B,) scale of the logits; 1 leaves the image alone

    def __getitem__(self, index: slice | torch.Tensor) -> Transforms:
        return Transforms(
            self.matrices[index], self.brightness[index], self.contrast[index]
        )

    def to(self, device: torch.device) -> Transforms:
        return Transforms(
            *(t.to(device, non_blocking=True) for t in vars(self).values())
        )


# --8<-- [start:warp]
def corner_homography(targets: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) homographies taking the corners (−1,−1), (−1,1), (1,−1),
    (1,1) to ``targets``.

    Solves the 8 equations x_i·(g u_i + h v_i + 1) = a u_i + b v_i + c (and the same for
    y) for the 8 unknowns of H = [[a, b, c], [d, e, f], [g, h, 1]].
    """
    corners = targets.new_tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    u, v = corners[:, 0].expand(len(targets), 4), corners[:, 1].expand(len(targets), 4)
    x, y = targets[..., 0], targets[..., 1]
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    rows_x = torch.stack([u, v, one, zero, zero, zero, -u * x, -v * x], dim=-1)
    rows_y = torch.stack([zero, zero, zero, u, v, one, -u * y, -v * y], dim=-1)
    system = torch.cat([rows_x, rows_y], dim=1)  # (B, 8, 8)
    solution = torch.linalg.solve(system, torch.cat([x, y], dim=1))
    return torch.cat([solution, torch.ones_like(solution[:, :1])], dim=1).view(-1, 3, 3)


def symmetric_warp(magnitude: torch.Tensor) -> torch.Tensor:
    """fastai's ``symmetric_warp``: corners moved by four magnitudes m (B, 4),
    as homographies."""
    m0, m1, m2, m3 = magnitude.unbind(-1)
    targets = torch.stack(
        [
            torch.stack([-1 - m3, -1 - m1], -1),
            torch.stack([-1 - m2, 1 + m1], -1),
            torch.stack([1 + m3, -1 - m0], -1),
            torch.stack([1 + m2, 1 + m0], -1),
        ],
        dim=1,
    )
    return corner_homography(targets)


# --8<-- [end:warp]


def _with_probability(
    p: float, values: torch.Tensor, default: float, g: torch.Generator
) -> torch.Tensor:
    """``values`` where a coin with P(heads) = p says so, else ``default``
    (no transform)."""
    keep = torch.rand(values.shape, generator=g, dtype=values.dtype) < p
    return torch.where(keep, values, torch.full_like(values, default))


# --8<-- [start:random_transforms]
def random_transforms(
    sizes: torch.Tensor, generator: torch.Generator, config: AugmentConfig | None = None
) -> Transforms:
    """Draw fastai's training transforms for images of ``sizes`` (B, 2) = (h, w),
    on the CPU."""
    config = config or AugmentConfig()
    n, g, f64 = len(sizes), generator, torch.float64

    def uniform(low: float, high: float, shape: tuple[int, ...] = ()) -> torch.Tensor:
        return low + (high - low) * torch.rand((n, *shape), generator=g, dtype=f64)

    flip = torch.where(torch.rand(n, generator=g, dtype=f64) < config.flip, -1.0, 1.0)
    angle = _with_probability(
        config.p_affine, uniform(-1, 1) * config.max_rotate, 0.0, g
    )
    zoom = _with_probability(config.p_affine, uniform(1.0, config.max_zoom), 1.0, g)
    warp = _with_probability(
        config.p_affine, uniform(-config.max_warp, config.max_warp, (4,)), 0.0, g
    )
    # fastai's lighting: brightness change uniform in 0.5·(1 ± l),
    # contrast log-uniform in [1 − l, 1/(1 − l)]
    light = config.max_lighting
    brightness = _with_probability(
        config.p_lighting, uniform(0.5 * (1 - light), 0.5 * (1 + light)), 0.5, g
    )
    log_c = -math.log(1 - light)
    contrast = _with_probability(
        config.p_lighting, uniform(-log_c, log_c).exp(), 1.0, g
    )
    # fastai's rand_crop: the window's position along each axis is uniform in [0, 1].
    position = uniform(0.0, 1.0, (2,))
    matrices = crop_matrices(sizes, zoom, angle, flip, position) @ symmetric_warp(warp)
    return Transforms(matrices.float(), brightness.float(), contrast.float())


# --8<-- [end:random_transforms]


def center_transforms(sizes: torch.Tensor) -> Transforms:
    """Validation: the centred square crop of the short side, nothing random."""
    n, f64 = len(sizes), torch.float64
    one, zero = torch.ones(n, dtype=f64), torch.zeros(n, dtype=f64)
    matrices = crop_matrices(sizes, one, zero, one, torch.full((n, 2), 0.5, dtype=f64))
    return Transforms(matrices.float(), torch.full((n,), 0.5), torch.ones(n))


# --8<-- [start:crop]
def crop_matrices(
    sizes: torch.Tensor,
    zoom: torch.Tensor,
    angle_degrees: torch.Tensor,
    flip: torch.Tensor,
    position: torch.Tensor,
) -> torch.Tensor:
    """(B, 3, 3) maps from output (u, v) to image (x, y): a square window of
    side short/zoom, rotated, flipped, at ``position`` ∈ [0, 1]² of the room
    left in the image."""
    h, w = sizes[:, 0].double(), sizes[:, 1].double()
    # half the window side in pixels
    a = torch.minimum(h, w) / (2 * zoom)
    # window centre in pixels: a + position · (room along the axis)
    cx, cy = a + position[:, 0] * (w - 2 * a), a + position[:, 1] * (h - 2 * a)
    theta = torch.deg2rad(angle_degrees)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # x = (cx + a(cos·f·u − sin·v)) / (w/2) − 1;
    # y = (cy + a(sin·f·u + cos·v)) / (h/2) − 1
    matrices = torch.zeros(len(sizes), 3, 3, dtype=torch.float64)
    matrices[:, 0, 0] = 2 * a * cos * flip / w
    matrices[:, 0, 1] = -2 * a * sin / w
    matrices[:, 0, 2] = 2 * cx / w - 1
    matrices[:, 1, 0] = 2 * a * sin * flip / h
    matrices[:, 1, 1] = 2 * a * cos / h
    matrices[:, 1, 2] = 2 * cy / h - 1
    matrices[:, 2, 2] = 1
    return matrices


# --8<-- [end:crop]


# --8<-- [start:reflect]
def reflect(t: torch.Tensor) -> torch.Tensor:
    """Fold coordinates into [−1, 1] by mirroring at the edges
    (fastai's reflection padding)."""
    # period 4: t → t for t in [−1, 1], t → 2 − t for t in [1, 3]
    t = torch.remainder(t + 1, 4)
    return torch.where(t > 2, 3 - t, t - 1)


# --8<-- [end:reflect]


# --8<-- [start:render]
def render(
    canvases: torch.Tensor,
    sizes: torch.Tensor,
    transforms: Transforms,
    out_size: int,
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """Turn uint8 canvases (B, C, C, 3) into a normalised float batch (B, 3, S, S).

    One grid for the geometry, one ``grid_sample``,
    then lighting and ImageNet normalisation.
    """
    batch, side = canvases.shape[0], canvases.shape[1]
    device = canvases.device
    # output pixel centres in [−1, 1], as homogeneous (u, v, 1)
    centres = (
        torch.arange(out_size, device=device, dtype=torch.float32) * 2 + 1
    ) / out_size - 1
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([u, v, torch.ones_like(u)], dim=-1).view(1, -1, 3)
    # (x', y', z') = M (u, v, 1); the sampled point is (x'/z', y'/z')
    mapped = points @ transforms.matrices.transpose(1, 2)
    xy = reflect(mapped[..., :2] / mapped[..., 2:])
    # The image fills the top-left h × w of its canvas:
    # image coordinates → canvas coordinates.
    hw = sizes.to(device=device, dtype=torch.float32)
    scale = torch.stack([hw[:, 1], hw[:, 0]], dim=-1).view(batch, 1, 2) / side
    grid = ((xy + 1) * scale - 1).view(batch, out_size, out_size, 2)
    # NHWC uint8 viewed as NCHW is already channels_last in memory.
    pixels = canvases.permute(0, 3, 1, 2).float().div_(255)
    images = F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    # fastai's brightness then contrast, in logit space:
    # sigmoid((logit x + logit b) · c)
    logit_b = torch.logit(transforms.brightness).view(batch, 1, 1, 1)
    contrast = transforms.contrast.view(batch, 1, 1, 1)
    images = torch.sigmoid((torch.logit(images, eps=1e-6) + logit_b) * contrast)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    images = (images - mean) / std
    if channels_last:
        return images.contiguous(memory_format=torch.channels_last)
    return images


# --8<-- [end:render]

"""Video-consistent spatial augmentation: one random transform, the same for every frame of a clip.

Built on torchvision transforms v2: a `tv_tensors.Video` `(T, C, H, W)` is transformed as one
object, so crop, flip, rotation and colour parameters are drawn once per clip.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2


def to_video(frames: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """uint8 `(T, H, W, C)` frames (as decoded, or a read-only cache memmap) -> `tv_tensors.Video` `(T, C, H, W)`."""
    x = torch.from_numpy(np.array(frames, copy=True)) if isinstance(frames, np.ndarray) else frames
    return tv_tensors.Video(x.permute(0, 3, 1, 2))


def video_augment(size: int | tuple[int, int], scale: tuple[float, float] = (0.7, 1.0), hflip: float = 0.5,
                  degrees: float = 0.0, brightness: float = 0.0, contrast: float = 0.0,
                  ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> v2.Compose:
    """Random resized crop, horizontal flip, rotation and brightness/contrast, drawn once per clip.

    ratio=(1, 1) keeps the aspect ratio: use it where shape is a label (a lesion taller than wide is suspicious).
    """
    steps = [v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if degrees:
        steps.append(v2.RandomRotation(degrees))
    if brightness or contrast:
        steps.append(v2.ColorJitter(brightness=brightness, contrast=contrast))
    return v2.Compose(steps)


class ElasticWarp(nn.Module):
    """Elastic transform: a smooth random displacement field (bicubic upsampling of a coarse `grid` x `grid` field of
    N(0, magnitude) offsets, in units of the half frame) applied by bilinear resampling. The same family of warps as
    torchvision's `v2.ElasticTransform` (which blurs a full-resolution noise field: ~20x slower on 85 px frames)."""

    def __init__(self, magnitude: float = 0.04, grid: int = 4):
        super().__init__()
        self.magnitude, self.grid = magnitude, grid

    def forward(self, img: torch.Tensor) -> torch.Tensor:  # img: (C, H, W), uint8 or float
        h, w = img.shape[-2:]
        offsets = torch.randn(1, 2, self.grid, self.grid) * self.magnitude
        field = F.interpolate(offsets, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        base = torch.stack([xs, ys], dim=-1)[None]  # (1, H, W, 2): x, y
        out = F.grid_sample(img[None].float(), base + field, mode="bilinear", padding_mode="reflection",
                            align_corners=True)[0]
        return out.round().clamp(0, 255).to(img.dtype) if img.dtype == torch.uint8 else out


def simclr_augment(size: int, scale: tuple[float, float] = (0.5, 1.0), elastic: float = 0.04) -> v2.Compose:
    """CLMAN's tau in Eq. (2) (Huang et al. 2022, SimCLR on frames): the random combination of flip, crop, scale, brightness, contrast and elastic transform."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, ratio=(0.8, 1.25), antialias=True),  # crop + scale
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
        v2.RandomApply([ElasticWarp(elastic)], p=0.5),
    ])


def uscl_augment(size: int, scale: tuple[float, float] = (0.8, 1.0), jitter: float = 0.8) -> v2.Compose:
    """USCL's frame augmentation (Chen et al. 2021, its public code): random resized crop (area `scale`, aspect
    0.8-1.25), horizontal flip and colour jitter (brightness and contrast `jitter`; saturation and hue do nothing
    to grayscale frames), drawn anew for every frame."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, ratio=(0.8, 1.25), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=jitter, contrast=jitter),
    ])

"""Video-consistent spatial augmentation: one random transform, the same for every frame of a clip.

Built on torchvision transforms v2: a `tv_tensors.Video` `(T, C, H, W)` is transformed as one
object, so crop, flip, rotation and colour parameters are drawn once per clip.
"""
from __future__ import annotations

import numpy as np
import torch
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

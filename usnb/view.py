"""What the model sees of a frame, and the clip augmentation that comes before it.

`FieldOfView` crops the central part of each cached frame and resizes it; `standardise` makes each clip (or image)
zero-mean, unit-std; `clip_augment` is the breast recipes' random crop + flip, on the CPU workers or on the device;
`frames` turns cached uint8 frames into the (1, T, 1, H, W) tensor every predictor feeds the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import video_augment


@dataclass(frozen=True)
class FieldOfView:
    """What the model sees of a frame: the central `fraction` of the cached frame's side, resized to `size` pixels.

    Frames are cached (and augmented) at `cache_size`; `crop` cuts the centre and resizes, `__call__` also
    standardises. Boxes in the cached frame's pixels map into the model's pixels with `boxes`.
    """

    size: int
    fraction: float = 1.0

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ValueError(f"field of view must be a fraction in (0, 1], got {self.fraction}")

    @property
    def cache_size(self) -> int:
        return self.size if self.fraction == 1 else int(round(self.size / self.fraction))

    def _window(self, side: int) -> tuple[int, int]:
        keep = int(round(side * self.fraction))
        return (side - keep) // 2, keep

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., H, W) pixels -> float (..., size, size): the central window, resized."""
        (top, h), (left, w) = self._window(x.shape[-2]), self._window(x.shape[-1])
        x = x[..., top:top + h, left:left + w].float()
        if (h, w) == (self.size, self.size):
            return x
        lead = x.shape[:-2]
        x = F.interpolate(x.reshape(-1, 1, h, w), size=(self.size, self.size), mode="bilinear", antialias=True,
                          align_corners=False)
        return x.reshape(*lead, self.size, self.size)

    def __call__(self, x: torch.Tensor, dims: int) -> torch.Tensor:
        """Crop, resize and standardise over the last `dims` dims: the model's input."""
        return standardise(self.crop(x), dims)

    def boxes(self, boxes) -> list[tuple[float, float, float, float]]:
        """Boxes (x, y, w, h) in the cached frame's pixels (`ClipCache.boxes`) -> the model's pixels (parts outside
        the view fall off)."""
        c = self.cache_size
        (top, h), (left, w) = self._window(c), self._window(c)
        sx, sy = self.size / w, self.size / h
        return [((x - left) * sx, (y - top) * sy, bw * sx, bh * sy) for x, y, bw, bh in boxes]


def field_of_view(profile) -> FieldOfView:
    """The field of view of a profile with `size` and `fov` (KGA-Net, CLMAN, MVCC)."""
    return FieldOfView(profile.size, profile.fov)


def standardise(x: torch.Tensor, dims: int) -> torch.Tensor:
    """uint8 -> float, zero mean and unit std over the last `dims` dims (per clip or per image).

    Per-clip standardisation removes the gain and attenuation that differ between recordings.
    """
    x = x.float()
    d = tuple(range(-dims, 0))
    return (x - x.mean(d, keepdim=True)) / x.std(d, keepdim=True).clamp_min(1e-3)


def clip_augment(view: FieldOfView, scale: tuple[float, float], where: str = "loader"):
    """The recipes' training augmentation and where it runs: (transform for the dataset or None, prepare).

    A random crop (area fraction `scale`, resized back, aspect ratio kept: a lesion's orientation is a malignancy
    sign) and a horizontal flip, drawn once per clip (all frames alike) and per image, then the field of view.
    `prepare(x, dims)` turns a uint8 batch on the device into the model's input. where="loader": torchvision crops
    each clip in the DataLoader workers and `prepare` is `view`; where="device": the loader only copies uint8 frames
    from the cache and `usnb.gpu_augment.GPUAugment` crops, flips, cuts the field of view and standardises the whole
    batch on the model's device, GPU or CPU (one resampling instead of two).
    """
    if where == "loader":
        return video_augment(view.cache_size, scale=scale, ratio=(1.0, 1.0)), view
    if where == "device":
        from .gpu_augment import GPUAugment

        gpu = GPUAugment(view.size, scale=scale, ratio=(1.0, 1.0), fov=view.fraction)
        return None, lambda x, dims: gpu(x)
    raise ValueError(f"augment_on must be 'loader' or 'device', got {where!r}")


def frames(clip: np.ndarray, indices) -> torch.Tensor:
    """Cached uint8 frames (N, H, W, 1) at `indices` -> uint8 (1, T, 1, H, W): one clip as a batch of one."""
    return torch.from_numpy(np.ascontiguousarray(clip[indices])).permute(0, 3, 1, 2)[None]

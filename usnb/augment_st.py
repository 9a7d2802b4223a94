"""Spatio-temporal (2-D + time) augmentation of Chen et al.'s lung SSL paper, Table 2, on clip batches.

Clips are float tensors `x: (B, C, T, H, W)` with intensities in [0, 1] (square frames). Every spatial transform
draws its parameters once per clip and applies them to all T frames alike (the warp runs on the frames stacked as
channels); the temporal transforms reorder or repeat frames. Each transform is a plain function of explicit
parameters (testable), and `SpatioTemporalAugment` draws those parameters at random with Table 2's ranges.

Table 2 gives ranges, not probabilities, for most spatial transforms; our reading (written here once):
random affine, colour jitter and Gaussian noise are applied to every clip with random parameters; random erasing
with probability 0.5 (torchvision's default); reversal, shuffling and replacement each with probability 0.5,
shuffling / replacing k ~ U{0, ..., 4} frames. A replaced frame becomes a copy of another frame of the same clip.
The noise field is one image per clip (the same on every frame), so that every spatial transform is frame-consistent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 5:
        raise ValueError(f"clips must be (B, C, T, H, W), got shape {tuple(x.shape)}; add the batch / channel dims")
    return x


# ---------------------------------------------------------------- spatial transforms (Table 2, top)


def affine(x: torch.Tensor, angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Rotate by `angle` degrees (B,), scale by `scale` (B,), shift by `translate` (B, 2) = (dx, dy) as fractions of
    the frame side, about the frame centre; the same warp for every frame of a clip. Outside: 0 (black)."""
    b, c, t, h, w = _check(x).shape
    a = torch.deg2rad(angle.to(x))
    cos, sin = torch.cos(a), torch.sin(a)
    # forward map p_out = s R p_in + d; grid_sample wants p_in = R^T (p_out - d) / s (normalised coords in [-1, 1])
    rt = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / scale.to(x)[:, None, None]
    d = 2 * translate.to(x)  # a fraction f of the side is 2f in normalised coordinates
    theta = torch.cat([rt, -(rt @ d[:, :, None])], dim=2)  # (B, 2, 3)
    grid = F.affine_grid(theta, (b, c * t, h, w), align_corners=False)
    out = F.grid_sample(x.reshape(b, c * t, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, c, t, h, w)


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the clips where `flip` (B,) bool is True (all frames)."""
    return torch.where(flip.view(-1, 1, 1, 1, 1), _check(x).flip(-1), x)


def color_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """Brightness: x * b; then contrast: (x - m) * c + m with m the clip's mean; clipped to [0, 1]. b, c: (B,)."""
    x = _check(x) * brightness.to(x).view(-1, 1, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3, 4), keepdim=True)  # one mean per clip (torchvision takes one per image)
    return ((x - m) * contrast.to(x).view(-1, 1, 1, 1, 1) + m).clamp(0, 1)


def gaussian_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Add a noise image `noise` (B, 1, 1, H, W) (one per clip: the same on every frame); clipped to [0, 1]."""
    return (_check(x) + noise.to(x)).clamp(0, 1)


def erase(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Set the rectangle boxes[i] = (top, left, height, width) to 0 in every frame of clip i (height 0: no erasing)."""
    b, _, _, h, w = _check(x).shape
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    top, left, bh, bw = (boxes[:, k].to(x.device).view(-1, 1) for k in range(4))
    inside = (((rows >= top) & (rows < top + bh))[:, :, None] & ((cols >= left) & (cols < left + bw))[:, None, :])
    return x.masked_fill(inside.view(b, 1, 1, h, w), 0.0)


def erase_boxes(b: int, h: int, w: int, area: tuple[float, float], ratio: tuple[float, float], p: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision RandomErasing's draw: with probability p a box of area U(area) * H * W and log-uniform aspect
    `ratio` (up to 10 tries to fit); (B, 4) = (top, left, height, width), zeros where nothing is erased."""
    out = torch.zeros(b, 4, dtype=torch.long)
    for i in range(b):
        if float(torch.rand(1, generator=generator)) >= p:
            continue
        for _ in range(10):
            a = h * w * float(torch.empty(1).uniform_(*area, generator=generator))
            r = math.exp(float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)))
            bh, bw = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
            if 0 < bh < h and 0 < bw < w:
                top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
                out[i] = torch.tensor([top, left, bh, bw])
                break
    return out


# ---------------------------------------------------------------- temporal transforms (Table 2, bottom)


def take_frames(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Frame t of clip i becomes frame order[i, t] of the input; order: (B, T) long."""
    b, c, t, h, w = _check(x).shape
    idx = order.to(x.device).view(b, 1, -1, 1, 1).expand(b, c, order.shape[1], h, w)
    return torch.gather(x, 2, idx)


def reversed_order(t: int) -> torch.Tensor:
    """(T,) the frames backwards: T-1, ..., 0."""
    return torch.arange(t - 1, -1, -1)


def shuffled_order(t: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(T,) k frame positions chosen at random swap their frames by a random permutation; the rest stay."""
    order = torch.arange(t)
    k = min(k, t)
    if k < 2:
        return order
    pos = torch.randperm(t, generator=generator)[:k]
    order[pos] = pos[torch.randperm(k, generator=generator)]
    return order


def replaced_order(t: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(T,) k frame positions chosen at random each show a copy of another frame of the clip (drawn at random)."""
    order = torch.arange(t)
    if t < 2:
        return order
    for p in torch.randperm(t, generator=generator)[:min(k, t)].tolist():
        other = int(torch.randint(0, t - 1, (1,), generator=generator))
        order[p] = other + (other >= p)  # any frame but p itself
    return order


# ---------------------------------------------------------------- the random pipeline


@dataclass(frozen=True)
class SpatioTemporalAugment:
    """Table 2 of Chen et al.: spatial (affine, flip, jitter, noise, erasing) then temporal (reverse, shuffle, replace)."""

    scale: tuple[float, float] = (0.8, 1.2)  # random affine: scale +-20 %
    translate: float = 0.1  # translation +-10 % of the side
    degrees: float = 10.0  # rotation +-10 degrees
    hflip: float = 0.5  # horizontal flip probability
    brightness: float = 0.3  # colour jitter: factor in [1 - 0.3, 1 + 0.3]
    contrast: float = 0.3
    noise_std: float = 0.03  # Gaussian noise standard deviation (intensities in [0, 1])
    erase_p: float = 0.5  # random erasing probability (not in Table 2: torchvision's default)
    erase_area: tuple[float, float] = (0.02, 0.1)  # proportion of the frame erased
    erase_ratio: tuple[float, float] = (0.3, 3.3)  # aspect ratio of the erased box
    reverse_p: float = 0.5  # reversed frame order
    shuffle_p: float = 0.5  # shuffled order of 0-4 frames
    shuffle_max: int = 4
    replace_p: float = 0.5  # replacement of 0-4 frames
    replace_max: int = 4
    spatial: bool = True
    temporal: bool = True  # False: the "without temporal augmentations" ablation (Sec. 4.2)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, C, T, H, W) in [0, 1] -> an augmented copy, new random parameters per clip."""
        b, _, t, h, w = _check(x).shape
        g, dev = generator, x.device
        u = lambda lo, hi: torch.empty(b).uniform_(lo, hi, generator=g)  # noqa: E731 - (B,) uniform draws
        if self.spatial:
            shift = torch.empty(b, 2).uniform_(-self.translate, self.translate, generator=g)
            x = affine(x, u(-self.degrees, self.degrees), shift, u(*self.scale))
            x = hflip(x, (torch.rand(b, generator=g) < self.hflip).to(dev))
            x = color_jitter(x, u(1 - self.brightness, 1 + self.brightness), u(1 - self.contrast, 1 + self.contrast))
            x = gaussian_noise(x, self.noise_std * torch.randn(b, 1, 1, h, w, generator=g))
            x = erase(x, erase_boxes(b, h, w, self.erase_area, self.erase_ratio, self.erase_p, g))
        if self.temporal:
            orders = []
            for _ in range(b):
                order = torch.arange(t)
                if float(torch.rand(1, generator=g)) < self.reverse_p:
                    order = order[reversed_order(t)]
                if float(torch.rand(1, generator=g)) < self.shuffle_p:
                    order = order[shuffled_order(t, int(torch.randint(0, self.shuffle_max + 1, (1,), generator=g)), g)]
                if float(torch.rand(1, generator=g)) < self.replace_p:
                    order = order[replaced_order(t, int(torch.randint(0, self.replace_max + 1, (1,), generator=g)), g)]
                orders.append(order)
            x = take_frames(x, torch.stack(orders))
        return x


def gallery(clip: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Each Table 2 augmentation alone on `clip` (1, 1, T, H, W) in [0, 1], then all of them: {name: clip}."""
    g = torch.Generator().manual_seed(seed)
    t, h, w = clip.shape[2:]
    u = lambda lo, hi: torch.empty(1).uniform_(lo, hi, generator=g)  # noqa: E731
    return {
        "original": clip,
        "affine": affine(clip, u(-10, 10), torch.empty(1, 2).uniform_(-0.1, 0.1, generator=g), u(0.8, 1.2)),
        "flip": hflip(clip, torch.tensor([True])),
        "colour jitter": color_jitter(clip, u(0.7, 1.3), u(0.7, 1.3)),
        "noise sd 0.03": gaussian_noise(clip, 0.03 * torch.randn(1, 1, 1, h, w, generator=g)),
        "erasing": erase(clip, erase_boxes(1, h, w, (0.02, 0.1), (0.3, 3.3), 1.0, g)),
        "reversed": take_frames(clip, reversed_order(t)[None]),
        "shuffled 4": take_frames(clip, shuffled_order(t, 4, g)[None]),
        "replaced 4": take_frames(clip, replaced_order(t, 4, g)[None]),
        "all (spatial + temporal)": SpatioTemporalAugment()(clip, g),
    }

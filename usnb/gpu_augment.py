"""Augmentation and standardisation on the GPU, for a whole batch of uint8 clips at once.

The loader then only copies uint8 frames out of the clip cache (`usnb.cache`); the device draws one random resized
crop and one flip per clip (the same for every frame of the clip, as `usnb.transforms.video_augment` does on the CPU),
resamples every frame with `torchvision.ops.roi_align` (bilinear, averaging several samples per output pixel when it
shrinks) and standardises: per clip (zero mean, unit std, as the KGA-Net recipe does) or with a fixed mean and std.
"""
from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align


def random_resized_boxes(n: int, height: int, width: int, scale: tuple[float, float] = (0.7, 1.0),
                         ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                         device=None, tries: int = 10) -> torch.Tensor:
    """n crop boxes (x0, y0, x1, y1) in pixels, float (n, 4), drawn as torchvision's RandomResizedCrop draws them.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); the first of `tries` draws that fits the frame is kept;
    when none fits, the central crop with the aspect ratio clamped to `ratio` (torchvision's fallback).
    """
    area = height * width
    s = torch.empty(n, tries, device=device).uniform_(*scale, generator=generator) * area
    log_r = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_r.exp()
    w = (s * aspect).sqrt().round()
    h = (s / aspect).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, tries)
    first = fits.float().argmax(1, keepdim=True)  # the first draw that fits (0 when none does)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    u = torch.rand(n, 2, device=device, generator=generator)
    x0 = (u[:, 0] * (width - w + 1)).floor().clamp_max(width - w)  # randint(0, W - w + 1)
    y0 = (u[:, 1] * (height - h + 1)).floor().clamp_max(height - h)
    # fallback: the whole frame, cut to the nearest allowed aspect ratio, centred
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    none = ~fits.any(1)
    w, h = torch.where(none, float(fw), w), torch.where(none, float(fh), h)
    x0 = torch.where(none, float((width - fw) // 2), x0)
    y0 = torch.where(none, float((height - fh) // 2), y0)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def crop_resize(frames: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """frames (B, T, C, H, W), boxes (B, 4) pixel (x0, y0, x1, y1), one per clip -> float (B, T, C, h, w).

    Every frame of clip b is cut to boxes[b] and resampled to `size`: an integer box of exactly `size` pixels
    returns those pixels unchanged.
    """
    b, t, c, height, width = frames.shape
    out = (size, size) if isinstance(size, int) else tuple(size)
    x = frames.reshape(b * t, c, height, width)
    if not x.is_floating_point():
        x = x.float()
    idx = torch.arange(b * t, device=x.device, dtype=x.dtype)[:, None]
    rois = torch.cat([idx, boxes.to(x.dtype).repeat_interleave(t, dim=0)], dim=1)  # (B*T, 5): frame, x0, y0, x1, y1
    return roi_align(x, rois, out, spatial_scale=1.0, sampling_ratio=-1, aligned=True).reshape(b, t, c, *out)


def standardise_clips(x: torch.Tensor, mean_std: tuple[float, float] | None = None) -> torch.Tensor:
    """float (B, ...) pixel values 0..255 -> per clip zero mean and unit std over all its dims (mean_std None, the
    KGA-Net recipe's `standardise`), or (x / 255 - mean) / std with fixed intensities in [0, 1]."""
    if mean_std is not None:
        return (x / 255 - mean_std[0]) / mean_std[1]
    dims = tuple(range(1, x.dim()))
    return (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True).clamp_min(1e-3)


def central_part(boxes: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boxes (n, 4) -> the central `fraction` of each box's side: a crop then a field-of-view cut, in one box."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * fraction / 2
    return torch.cat([centre - half, centre + half], dim=1)


class GPUAugment:
    """uint8 clips (B, T, C, H, W) or images (B, C, H, W) on the device -> augmented, standardised float at `size`.

    train=True: a random resized crop (`scale`, `ratio`) and a horizontal flip (probability `hflip`), drawn once per
    clip and applied to all its frames; train=False: the whole frame resized. With `fov` < 1 the model then sees the
    central `fov` of that crop (the recipes' field of view, `usnb.view.FieldOfView`), resampled once.
    Then `standardise_clips(mean_std)`.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.7, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 hflip: float = 0.5, mean_std: tuple[float, float] | None = None, fov: float = 1.0):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1 (area fractions), got {scale}")
        if not 0 <= hflip <= 1:
            raise ValueError(f"hflip is a probability in [0, 1], got {hflip}")
        if not 0 < fov <= 1:
            raise ValueError(f"fov must be a fraction in (0, 1], got {fov}")
        self.size, self.scale, self.ratio, self.hflip, self.mean_std = size, scale, ratio, hflip, mean_std
        self.fov = fov

    def __call__(self, x: torch.Tensor, train: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        image = x.dim() == 4
        if image:
            x = x[:, None]  # (B, 1, C, H, W): an image is a one-frame clip
        if x.dim() != 5:
            raise ValueError(f"GPUAugment takes clips (B, T, C, H, W) or images (B, C, H, W), got {tuple(x.shape)}")
        b, _, _, height, width = x.shape
        if train:
            boxes = random_resized_boxes(b, height, width, self.scale, self.ratio, generator, x.device)
        else:
            boxes = torch.tensor([[0.0, 0.0, width, height]], device=x.device).expand(b, 4)
        if self.fov < 1:
            boxes = central_part(boxes, self.fov)
        out = crop_resize(x, boxes, self.size)  # (B, T, C, s, s)
        if train and self.hflip:
            flip = torch.rand(b, device=x.device, generator=generator) < self.hflip
            out = torch.where(flip[:, None, None, None, None], out.flip(-1), out)
        out = standardise_clips(out, self.mean_std)
        return out[:, 0] if image else out


# ---------------------------------------------------------------- CVRL's strong augmentation, once per clip


def jitter_clips(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, contrast_first: torch.Tensor
                 ) -> torch.Tensor:
    """SimCLRv2-style colour jitter of clips x (B, T, C, H, W) in [0, 1], one draw per clip: brightness x * b, contrast
    (x - m) c + m with m the clip's mean, in the order `contrast_first` (B,) bool says, clipped to [0, 1] after each."""
    shape = (-1, 1, 1, 1, 1)
    b, c, first = brightness.view(shape).to(x), contrast.view(shape).to(x), contrast_first.view(shape)

    def bright(y):
        return (y * b).clamp(0, 1)

    def contr(y):
        m = y.mean(dim=(1, 2, 3, 4), keepdim=True)
        return ((y - m) * c + m).clamp(0, 1)

    return torch.where(first, bright(contr(x)), contr(bright(x)))


def blur_clips(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Gaussian blur of every frame of clip i with sigma[i] (B,), a separable `kernel`-tap filter (odd), zero padded
    ('SAME', as the public code): x (B, T, C, H, W) -> the same shape."""
    b, t, c, h, w = x.shape
    r = kernel // 2
    taps = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    g = torch.exp(-taps[None] ** 2 / (2 * sigma.to(x)[:, None] ** 2))
    g = (g / g.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B C, k): one filter per clip and channel
    y = x.transpose(1, 2).reshape(1, b * c, t, h, w)  # clips' channels as groups
    y = torch.nn.functional.conv3d(y, g.view(b * c, 1, 1, 1, -1), padding=(0, 0, r), groups=b * c)
    y = torch.nn.functional.conv3d(y, g.view(b * c, 1, 1, -1, 1), padding=(0, r, 0), groups=b * c)
    return y.reshape(b, c, t, h, w).transpose(1, 2)


def solarize_clips(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Where `apply` (B,): pixels >= 0.5 become 1 - x (x in [0, 1])."""
    return torch.where(apply.view(-1, 1, 1, 1, 1) & (x >= 0.5), 1 - x, x)


class ConsistentAugment:
    """CVRL's temporally consistent spatial augmentation (Qian et al. 2021, arXiv:2008.03800, Sec. 3.2), a batch of
    uint8 clips (B, T, C, H, W) on the device -> standardised float (B, T, C, size, size). Every parameter is drawn once
    per clip and applied to all its frames: a random resized crop (area `scale`, aspect `ratio`) and a horizontal flip
    (`GPUAugment`, with the field of view `fov`); with probability `jitter_p` colour jitter of strength `strength`
    (brightness and contrast 0.8 strength; saturation and hue, and the grayscale conversion drawn with `gray_p`, are
    identities on grey clips: for C = 3 the conversion is the frames' channel mean); a Gaussian blur with probability
    `blur_p`, sigma ~ U(0.1, 2), size // 10 taps (made odd); solarisation with probability `solarize_p`; then per-clip
    standardisation. Defaults and the per-clip probabilities: the public code (video_ssl_input._process_image and
    video_ssl_preprocess_ops: crop (0.3, 1) x (0.5, 2), jitter p 0.8, gray p 0.2, blur p 1.0 / 0.1 and
    solarisation p 0 / 0.2 for the first / second clip)."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.3, 1.0), ratio: tuple[float, float] = (0.5, 2.0),
                 fov: float = 1.0, strength: float = 1.0, jitter_p: float = 0.8, gray_p: float = 0.2):
        self.crop = GPUAugment(size, scale=scale, ratio=ratio, fov=fov, mean_std=(0.0, 1.0))  # -> [0, 1]
        self.size, self.strength, self.jitter_p, self.gray_p = size, strength, jitter_p, gray_p
        self.kernel = 2 * ((size // 10) // 2) + 1

    def __call__(self, x: torch.Tensor, blur_p: float = 1.0, solarize_p: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.crop(x, generator=generator)  # (B, T, C, s, s) in [0, 1], one crop and flip per clip
        b, dev = x.shape[0], x.device

        def draw(lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
            return torch.empty(b, device=dev).uniform_(lo, hi, generator=generator)

        s = 0.8 * self.strength
        jitter = draw() < self.jitter_p
        jittered = jitter_clips(x, draw(max(0.0, 1 - s), 1 + s), draw(max(0.0, 1 - s), 1 + s), draw() < 0.5)
        x = torch.where(jitter.view(-1, 1, 1, 1, 1), jittered, x)
        gray = draw() < self.gray_p
        if x.shape[2] == 3:
            x = torch.where(gray.view(-1, 1, 1, 1, 1), x.mean(2, keepdim=True).expand_as(x), x)
        blur = draw() < blur_p
        x = torch.where(blur.view(-1, 1, 1, 1, 1), blur_clips(x, draw(0.1, 2.0), self.kernel), x)
        x = solarize_clips(x, draw() < solarize_p).clamp(0, 1)
        return standardise_clips(x)

"""Breast sweep phantom: tissue layers and a 3-D lesion swept by the probe in elevation.

Class-dependent BI-RADS-like features are latent variables z_k ~ N(+-MU, 1) (malignant +MU,
benign -MU), so each feature alone overlaps between classes (inter-class similarity, intra-class
variation) while all five together separate them. Size, contrast, depth, gain and tissue are
drawn independently of the class. data_cards/phantom.md gives the measured difficulty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .speckle import bmode, smooth_noise

MU = 0.85  # feature separation: d' = 2 MU = 1.7 per feature (0.65 up to generator v4, see data_cards/phantom.md)
FEATURES = ("orientation", "irregularity", "margin_blur", "heterogeneity", "posterior")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@dataclass
class Lesion:
    """A 3-D lesion in pixels: centre (x0, y0, z0), semi-axes (rx, ry, rz), shape and echo features."""

    x0: float
    y0: float
    z0: float
    rx: float
    ry: float
    rz: float
    harmonics: np.ndarray  # (K, 2): amplitude, phase for k = 2..K+1
    spicules: np.ndarray  # (J, 2): angle, length
    blur: float
    heterogeneity: float
    posterior: float  # > 0 enhancement, < 0 shadowing
    contrast: float

    def rotated(self) -> "Lesion":
        """The same lesion seen by an orthogonal sweep: lateral and elevation axes swap."""
        harmonics = self.harmonics + [0, np.pi / 2]  # the outline seen from 90 degrees
        return Lesion(self.x0, self.y0, self.z0, self.rz, self.ry, self.rx, harmonics, self.spicules,
                      self.blur, self.heterogeneity, self.posterior, self.contrast)


def draw_features(rng: np.random.Generator, malignant: bool) -> dict[str, float]:
    """Latent feature values z_k for one lesion."""
    sign = 1.0 if malignant else -1.0
    return {name: float(rng.normal(sign * MU, 1.0)) for name in FEATURES}


def make_lesion(rng: np.random.Generator, z: dict[str, float], size: int) -> Lesion:
    """Map latent features to a lesion; class-independent nuisances drawn here too."""
    aspect = np.exp(0.35 * z["orientation"] - 0.05)  # depth / width: > 1 is taller than wide
    r0 = rng.uniform(0.11, 0.23) * size  # area-preserving radius, wide: size does not tell the class
    irregular = 0.22 * _sigmoid(1.6 * z["irregularity"])
    k = np.arange(2, 7)
    harmonics = np.stack([irregular * rng.uniform(0.5, 1.0, k.size) / np.sqrt(k - 1),
                          rng.uniform(0, 2 * np.pi, k.size)], axis=1)
    n_spic = int(rng.poisson(7 * _sigmoid(2.0 * z["irregularity"] - 1.0)))
    spicules = np.stack([rng.uniform(0, 2 * np.pi, n_spic),
                         rng.uniform(0.15, 0.45, n_spic) * _sigmoid(1.5 * z["irregularity"])], axis=1)
    return Lesion(
        x0=rng.uniform(0.35, 0.65) * size, y0=rng.uniform(0.38, 0.52) * size, z0=rng.uniform(-0.15, 0.15) * size,
        rx=r0 / np.sqrt(aspect), ry=r0 * np.sqrt(aspect), rz=r0 * rng.uniform(0.9, 1.8),
        harmonics=harmonics, spicules=spicules,
        blur=0.03 * np.exp(0.55 * z["margin_blur"]),
        heterogeneity=0.7 * _sigmoid(1.6 * z["heterogeneity"]),
        posterior=-0.55 * np.tanh(0.9 * z["posterior"]),
        contrast=rng.uniform(0.04, 0.14),
    )


def lesion_mask(lesion: Lesion, zs: np.ndarray, size: int) -> np.ndarray:
    """Soft lesion occupancy (T, H, W) in [0, 1] for the slices at elevations `zs` (pixels)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    masks = np.zeros((zs.size, size, size), np.float32)
    for t, z in enumerate(zs):
        s2 = 1 - ((z - lesion.z0) / lesion.rz) ** 2
        if s2 <= 0.02:
            continue
        s = np.sqrt(s2)
        dx, dy = (x - lesion.x0) / (lesion.rx * s), (y - lesion.y0) / (lesion.ry * s)
        d = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        drift = 1.5 * (z - lesion.z0) / lesion.rz  # the outline changes from slice to slice
        boundary = 1 + sum(a * np.cos(k * theta + p + drift) for k, (a, p) in enumerate(lesion.harmonics, start=2))
        for angle, length in lesion.spicules:
            gap = np.angle(np.exp(1j * (theta - angle)))
            boundary = boundary + length * s * np.exp(-(gap / 0.07) ** 2)
        masks[t] = 1 / (1 + np.exp(np.clip((d - boundary) / lesion.blur, -50, 50)))
    return masks


def background(rng: np.random.Generator, t: int, size: int) -> np.ndarray:
    """Reflectivity of skin, fat, glandular tissue, pectoral muscle and chest wall (T, H, W)."""
    v = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    u = np.linspace(0, 1, size, dtype=np.float32)[None, None, :]
    w = np.linspace(0, 1, t, dtype=np.float32)[:, None, None]
    wave = lambda base, amp: base + amp * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * u + rng.uniform(0, 0.5) * w
                                                              + rng.uniform(0, 1)))
    skin = wave(rng.uniform(0.03, 0.05), 0.005)
    fat = wave(rng.uniform(0.18, 0.28), 0.04)
    gland = wave(rng.uniform(0.66, 0.74), 0.04)
    muscle = gland + rng.uniform(0.12, 0.16)
    texture = smooth_noise(rng, (t, size, size), (max(2, t // 8), 6, 6))
    r = np.where(v < skin, 2.0, np.where(v < fat, 0.4 * (1 + 0.35 * texture),
                 np.where(v < gland, 1.0 * (1 + 0.3 * texture),
                 np.where(v < muscle, 0.7 * (1 + 0.3 * np.sin(2 * np.pi * v * size / 5 + u * 3)), 0.25))))
    return np.clip(r, 0.05, None).astype(np.float32)


def render(rng: np.random.Generator, lesion: Lesion | None, t: int, size: int,
           zs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """B-mode frames uint8 (T, H, W) and soft lesion masks (T, H, W) of one sweep."""
    zs = np.linspace(-0.5, 0.5, t) * size if zs is None else zs
    refl = background(rng, t, size)
    mask = np.zeros_like(refl) if lesion is None else lesion_mask(lesion, zs, size)
    if lesion is not None:
        inside = lesion.contrast * np.exp(lesion.heterogeneity * smooth_noise(rng, refl.shape, (max(2, t // 4), 24, 24)))
        refl = refl * (1 - mask) + inside * mask
        # posterior enhancement (> 0) or shadowing (< 0) below the lesion, column by column
        below = np.maximum.accumulate(mask, axis=1) - mask
        refl = refl * (1 + lesion.posterior * below)
    depth = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    refl = refl * np.exp(-rng.uniform(0.3, 1.4) * depth)  # attenuation the TGC did not undo
    frames = bmode(rng, refl, rho=0.8, gain_db=rng.normal(0, 3.0))
    return frames, mask


def ground_truth(mask: np.ndarray) -> dict:
    """Per-frame box [x, y, w, h] (or None), visibility in [0, 1] and the keyframe index."""
    hard = mask > 0.5
    area = hard.sum(axis=(1, 2)).astype(float)
    boxes = []
    for frame in hard:
        ys, xs = np.nonzero(frame)
        boxes.append(None if ys.size == 0 else
                     [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)])
    peak = area.max()
    visibility = (area / peak).round(4).tolist() if peak > 0 else [0.0] * len(area)
    return {"boxes": boxes, "visibility": visibility, "keyframe": int(area.argmax()) if peak > 0 else None}

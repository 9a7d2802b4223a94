"""Lung clip phantom: chest wall, rib shadows, a sliding pleural line with A-lines below it;
as pathology, B-lines and a subpleural consolidation (with its box) that breathing moves in and
out of view. The task is consolidation present or absent, as in Chen et al.'s lung paper.
"""
from __future__ import annotations

import numpy as np

from .speckle import bmode, smooth_noise


def render(rng: np.random.Generator, consolidation: bool, t: int, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """B-mode frames uint8 (T, H, W), soft consolidation mask (T, H, W) and the clip's features."""
    v = np.arange(size, dtype=np.float32)[None, :, None]
    u = np.arange(size, dtype=np.float32)[None, None, :]
    frame_t = np.arange(t, dtype=np.float32)[:, None, None]
    period = rng.uniform(20, 40)  # frames per breath
    phase = rng.uniform(0, 2 * np.pi)
    breath = np.sin(2 * np.pi * frame_t / period + phase)  # (T, 1, 1)
    slide = rng.uniform(2, 5) * breath  # lateral lung sliding in pixels
    pleura = rng.uniform(0.22, 0.32) * size

    wall = 0.8 * (1 + 0.3 * smooth_noise(rng, (t, size, size), (max(2, t // 8), 8, 8)))
    refl = np.where(v < pleura, wall, 0.02).astype(np.float32)  # air below the pleura: little echo
    # pleural line and its reverberations (A-lines) at multiples of the pleural depth
    line = lambda depth, strength: strength * np.exp(-((v - depth) / 1.2) ** 2)
    refl = refl + line(pleura, 6.0)
    a_strength = rng.uniform(0.5, 1.5)
    for k in (2, 3):
        refl = refl + line(k * pleura, a_strength * 2.5 / k)
    # sliding: the lung-side texture moves with breathing (shifted noise, shown as shimmer)
    lung_tex = smooth_noise(rng, (1, size, 2 * size), (1, 6, 24))[0]
    shift = (u + slide + size // 2).astype(int) % (2 * size)
    refl = refl + np.where(v > pleura, 0.04 * np.abs(lung_tex[v.astype(int), shift]), 0)

    features = {"b_lines": int(rng.poisson(3.0 if consolidation else 1.0)), "consolidation": bool(consolidation)}
    for _ in range(features["b_lines"]):  # vertical comet tails from the pleura to the bottom, erasing A-lines
        x = rng.uniform(0.15, 0.85) * size + slide
        width = rng.uniform(1.5, 3.0)
        refl = np.where(v > pleura, refl * (1 - np.exp(-((u - x) / width) ** 2))
                        + rng.uniform(1.0, 2.5) * np.exp(-((u - x) / width) ** 2), refl)

    mask = np.zeros((t, size, size), np.float32)
    if consolidation:  # tissue-like (hepatised) region under the pleura with an irregular (shred) deep border
        cx = rng.uniform(0.3, 0.7) * size
        half_w = rng.uniform(0.08, 0.2) * size
        depth = rng.uniform(0.08, 0.22) * size
        shred = smooth_noise(rng, (1, 1, size), (1, 1, 12))[0, 0] * 0.3 * depth
        # breathing moves it out of the plane: visible part of the cycle only
        visible = np.clip(1.2 * np.sin(2 * np.pi * frame_t[:, 0, 0] / period + phase + rng.uniform(0, np.pi)) + 0.4, 0, 1)
        for i in range(t):
            x = cx + slide[i, 0, 0]
            inside = (np.abs(u[0] - x) < half_w * visible[i]) & (v[0] > pleura) & (v[0] < pleura + (depth + shred[None, :]) * visible[i])
            mask[i] = inside
        tissue = 0.6 * (1 + 0.4 * smooth_noise(rng, (t, size, size), (max(2, t // 8), 12, 12)))
        bronchogram = (rng.random((t, size, size)) < 0.01) * rng.uniform(2, 5)  # bright air specks
        refl = refl * (1 - mask) + (tissue + bronchogram) * mask
        features.update(centre_x=float(cx), half_width=float(half_w), depth=float(depth))

    for side in rng.choice([0, 1], size=rng.integers(1, 3), replace=False):  # ribs: bright arc, dark shadow
        x = (0.06 if side == 0 else 0.94) * size + rng.normal(0, 2)
        half = rng.uniform(0.07, 0.12) * size
        top = pleura - rng.uniform(2, 6)
        covered = np.abs(u - x) < half
        refl = np.where(covered & (v > top + 2), refl * 0.04, refl)
        refl = refl + covered * line(top, 5.0)

    depth_axis = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    refl = refl * np.exp(-rng.uniform(0.2, 1.0) * depth_axis)
    wall_region = np.broadcast_to(v[0] < pleura - 3, (size, size))  # gain set on the chest wall, as a sonographer does
    frames = bmode(rng, refl.astype(np.float32), rho=0.85, gain_db=rng.normal(0, 3.0), region=wall_region)
    return frames, mask, features

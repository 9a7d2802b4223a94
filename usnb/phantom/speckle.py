"""B-mode image formation shared by the breast and lung phantoms.

A tissue reflectivity map R (T, H, W) scales complex Gaussian scatterers; a Gaussian point spread
function blurs them (a linear map of a circular complex Gaussian stays circular complex Gaussian,
so the envelope of a homogeneous region is Rayleigh: mean/std = sqrt(pi/(4-pi)) = 1.913);
then log compression to 8 bits. Speckle decorrelates from frame to frame as an AR(1) process.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

RAYLEIGH_MEAN_OVER_STD = float(np.sqrt(np.pi / (4 - np.pi)))  # 1.913


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cells: tuple[int, ...]) -> np.ndarray:
    """Smooth random field of `shape` (zero mean, unit std) from a coarse grid of `cells` points."""
    coarse = rng.standard_normal(tuple(c + 2 for c in cells))
    field = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=1, mode="nearest")
    field = field[tuple(slice(0, s) for s in shape)]
    return ((field - field.mean()) / (field.std() + 1e-8)).astype(np.float32)


def scatterers(rng: np.random.Generator, shape: tuple[int, int, int], rho: float) -> np.ndarray:
    """Circular complex Gaussian scatterers (T, H, W), unit power, frame-to-frame correlation `rho`."""
    t = shape[0]
    noise = (rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32))
    noise /= np.sqrt(2.0)
    out = np.empty(shape, np.complex64)
    out[0] = noise[0]
    keep, fresh = rho, np.sqrt(1 - rho ** 2)
    for i in range(1, t):
        out[i] = keep * out[i - 1] + fresh * noise[i]
    return out


def envelope(reflectivity: np.ndarray, field: np.ndarray, psf_sigma: tuple[float, float] = (0.8, 1.4)) -> np.ndarray:
    """|PSF * (sqrt(R) . scatterers)| for R, field of shape (T, H, W); psf_sigma = (axial, lateral) px."""
    echo = np.sqrt(np.maximum(reflectivity, 0)).astype(np.float32) * field
    sigma = (0, *psf_sigma)
    real = ndimage.gaussian_filter(echo.real, sigma)
    imag = ndimage.gaussian_filter(echo.imag, sigma)
    return np.hypot(real, imag)


def log_compress(env: np.ndarray, gain_db: float = 0.0, low_db: float = -20.0, high_db: float = 22.0,
                 region: np.ndarray | None = None) -> np.ndarray:
    """Envelope -> uint8 B-mode: decibels relative to the median over `region` (H, W) bool
    (default: the whole clip), [low_db, high_db] onto [0, 255]."""
    ref = np.median(env if region is None else env[:, region])
    db = 20 * np.log10(env / (ref + 1e-12) + 1e-12) + gain_db
    return np.clip((db - low_db) / (high_db - low_db) * 255, 0, 255).astype(np.uint8)


def bmode(rng: np.random.Generator, reflectivity: np.ndarray, rho: float = 0.8, gain_db: float = 0.0,
          psf_sigma: tuple[float, float] = (0.8, 1.4), region: np.ndarray | None = None) -> np.ndarray:
    """Reflectivity (T, H, W) -> uint8 B-mode frames (T, H, W) with speckle; `region` as in log_compress."""
    field = scatterers(rng, reflectivity.shape, rho)
    return log_compress(envelope(reflectivity, field, psf_sigma), gain_db, region=region)

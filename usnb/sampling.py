"""Which frames of a clip a model sees (CLMAN T=16, KGA-Net up to 128 at inference).

Rule for clips shorter than T: frames are repeated in temporal order (nearest-frame
resampling over the whole clip); a clip is never padded with blank frames.
"""
from __future__ import annotations

import numpy as np


def uniform_indices(n_frames: int, t: int) -> np.ndarray:
    """T frame indices spread evenly over the clip (centres of T equal segments)."""
    if n_frames < 1 or t < 1:
        raise ValueError(f"need n_frames >= 1 and t >= 1, got n_frames={n_frames}, t={t}")
    return np.minimum(((np.arange(t) + 0.5) * n_frames / t).astype(int), n_frames - 1)


def random_crop_indices(n_frames: int, t: int, rng: np.random.Generator, stride: int = 1) -> np.ndarray:
    """T consecutive frames (every `stride`-th) from a random start, for training; shorter clips as uniform."""
    span = (t - 1) * stride + 1
    if n_frames < span:
        return uniform_indices(n_frames, t)
    start = int(rng.integers(0, n_frames - span + 1))
    return start + stride * np.arange(t)


def segment_indices(n_frames: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """One random frame from each of T equal segments (TSN, Wang et al. 2016): the whole clip, jittered, for training."""
    if n_frames < t:
        return uniform_indices(n_frames, t)
    edges = np.linspace(0, n_frames, t + 1)
    return np.array([int(rng.integers(int(lo), max(int(lo) + 1, int(hi)))) for lo, hi in zip(edges[:-1], edges[1:])])


def all_indices(n_frames: int, max_frames: int | None = None) -> np.ndarray:
    """Every frame, for inference; clips longer than `max_frames` are subsampled uniformly."""
    if max_frames is not None and n_frames > max_frames:
        return uniform_indices(n_frames, max_frames)
    return np.arange(n_frames)


def sample_indices(n_frames: int, t: int | None, mode: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """`mode` 'uniform' | 'random' (consecutive) | 'segments' (TSN) | 'all' (t then caps the count, None: no cap)."""
    if mode == "uniform":
        return uniform_indices(n_frames, t)
    if mode == "random":
        return random_crop_indices(n_frames, t, rng if rng is not None else np.random.default_rng())
    if mode == "segments":
        return segment_indices(n_frames, t, rng if rng is not None else np.random.default_rng())
    if mode == "all":
        return all_indices(n_frames, t)
    raise ValueError(f"sampling mode must be 'uniform', 'random', 'segments' or 'all', got {mode!r}")

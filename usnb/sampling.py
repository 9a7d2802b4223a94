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


def decreasing_interval(max_offset: int, rng: np.random.Generator) -> int:
    """CVRL's temporal interval (Qian et al. 2021, arXiv:2008.03800, Sec. 3.2): a start-to-start distance
    t in {0, ..., max_offset - 1} from the paper's linearly falling density -t + c, c = max_offset: drawn by its
    inverse CDF t = floor(c (1 - sqrt(1 - u))), u ~ U[0, 1), so P(t) = (2 (c - t) - 1) / c^2, linear in t, 0 beyond.
    The public code (video_ssl_preprocess_ops.sample_ssl_sequence, power 1) draws the same law by bisection."""
    if max_offset < 1:
        raise ValueError(f"max_offset must be >= 1 start position, got {max_offset}")
    return min(int(max_offset * (1 - np.sqrt(1 - rng.random()))), max_offset - 1)


def interval_pair_indices(n_frames: int, t: int, stride: int, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Two clips of T frames (every `stride`-th) of one video for CVRL's contrastive pair: their starts lie an interval
    apart drawn by `decreasing_interval` (close clips likelier than distant ones), the earlier start uniform among the
    positions that keep both clips inside the video, the order of the two clips random (as the public code).

    A video shorter than one clip at `stride` takes the largest stride that fits; shorter than T frames, both clips
    are the T frames spread over it (`uniform_indices`: frames repeat in temporal order, never padded)."""
    if n_frames < 1 or t < 1 or stride < 1:
        raise ValueError(f"need n_frames, t, stride >= 1, got n_frames={n_frames}, t={t}, stride={stride}")
    if n_frames < t:
        idx = uniform_indices(n_frames, t)
        return idx, idx.copy()
    if t > 1:
        stride = min(stride, (n_frames - 1) // (t - 1))
    span = (t - 1) * stride  # frames from a clip's first to its last
    max_offset = n_frames - span  # start positions that keep a clip inside the video
    gap = decreasing_interval(max_offset, rng)
    first = int(rng.integers(0, max_offset - gap))
    starts = [first, first + gap]
    if rng.random() < 0.5:
        starts.reverse()
    return tuple(s + stride * np.arange(t) for s in starts)

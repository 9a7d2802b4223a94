"""torch Datasets over records: clips from the uint8 cache, still images in memory, 1:1 pairs."""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import sampling
from .cache import FIT, ClipCache
from .datasets.records import ImageRecord, VideoRecord
from .errors import DataWarning


def label_index(records: Sequence, classes: Sequence[str]) -> np.ndarray:
    """Labels as class indices; a label outside `classes` is an error naming the record."""
    lookup = {c: i for i, c in enumerate(classes)}
    bad = [r for r in records if r.label not in lookup]
    if bad:
        raise ValueError(f"{bad[0].path}: label {bad[0].label!r} is not one of {list(classes)}; "
                         "filter the records or pass the classes")
    return np.array([lookup[r.label] for r in records])


class ClipDataset(Dataset):
    """(clip uint8 (T, C, H, W), label) from the cache; `mode` 'uniform' | 'random' | 'segments' | 'all' (see sampling)."""

    def __init__(self, records: Sequence[VideoRecord], cache: ClipCache, classes: Sequence[str],
                 num_frames: int | None = 16, mode: str = "uniform", transform: Callable | None = None):
        self.records, self.cache, self.num_frames, self.mode = list(records), cache, num_frames, mode
        self.labels = label_index(self.records, classes)
        self.transform = transform
        cache.prefill(self.records)
        if num_frames and mode != "all":  # "all" takes the clip as it is
            lengths = [(len(cache.get(r)), str(r.path)) for r in self.records]  # (frames, clip)
            short = sorted(x for x in lengths if x[0] < num_frames)
            if short:
                warnings.warn(f"{len(short)} of {len(self.records)} clips have fewer than T={num_frames} frames "
                              f"(shortest: {short[0][1]}, {short[0][0]} frames); their frames repeat in temporal "
                              "order (usnb.sampling). Fix: lower num_frames if repeats are not wanted",
                              DataWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        frames = self.cache.get(self.records[i])  # (T, H, W, C) memmap
        # random crops draw from torch's generator: seeded by seed_everything, restored on resume
        rng = np.random.default_rng(int(torch.randint(2**31, (1,)))) if self.mode in ("random", "segments") else None
        idx = sampling.sample_indices(len(frames), self.num_frames, self.mode, rng)
        clip = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2)  # (T, C, H, W)
        if self.transform is not None:
            clip = self.transform(clip)
        return clip, int(self.labels[i])


class ImageDataset(Dataset):
    """(image uint8 (C, H, W), label), all decoded once into memory."""

    def __init__(self, records: Sequence[ImageRecord], classes: Sequence[str], size: tuple[int, int],
                 grayscale: bool = True, transform: Callable | None = None, fit: str = FIT):
        self.records = list(records)
        self.labels = label_index(self.records, classes)
        images = [r.read(grayscale=grayscale, size=size, fit=fit) for r in self.records]  # aspect kept unless stretch
        self.images = torch.from_numpy(np.stack(images))
        self.images = self.images.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])


class PairedDataset(Dataset):
    """Item i = (a[i mod len(a)], b[i mod len(b)]): a shuffled batch of B pairs samples `a` and `b` 1:1."""

    def __init__(self, a: Dataset, b: Dataset):
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int):
        return (*self.a[i % len(self.a)], *self.b[i % len(self.b)])


class FrameViews(Dataset):
    """Item = M random frames of one clip, two augmented views of each: uint8 (M, 2, C, H, W) (CLMAN's SimCLR).

    A batch of N items gives the 2 N M projections of Eq. (2); the positive of a view is the other view of the same
    frame, every other frame (of the same clip too) is a negative.
    """

    def __init__(self, records: Sequence[VideoRecord], cache: ClipCache, frames: int, augment):
        self.records, self.cache, self.frames, self.augment = list(records), cache, frames, augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        clip = self.cache.get(self.records[i])  # (T, H, W, C)
        idx = torch.randperm(len(clip))[: self.frames].sort().values.numpy()
        if len(idx) < self.frames:  # a clip shorter than M: frames repeat
            idx = sampling.uniform_indices(len(clip), self.frames)
        x = torch.from_numpy(np.ascontiguousarray(clip[idx])).permute(0, 3, 1, 2)  # (M, C, H, W)
        return torch.stack([torch.stack([self.augment(f), self.augment(f)]) for f in x])  # (M, 2, C, H, W)


class Repeated(Dataset):
    """`length` items cycling through `dataset` (item i is dataset[i mod n]): a fixed number of optimizer steps
    whatever the data size (5 % of the labels is fewer clips than one batch)."""

    def __init__(self, dataset: Dataset, length: int):
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.dataset[i % len(self.dataset)]


class FeatureClips(Dataset):
    """(features of T frames, one per segment (T, m), label) from cached frame features (`usnb.evaluate.frame_features`):
    the training clips of a head on frozen features."""

    def __init__(self, features: Sequence[np.ndarray], labels: np.ndarray, frames: int):
        self.features, self.labels, self.frames = [torch.from_numpy(f) for f in features], labels, frames

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int):
        f = self.features[i]
        rng = np.random.default_rng(int(torch.randint(2**31, (1,))))
        return f[sampling.segment_indices(len(f), self.frames, rng)], int(self.labels[i])


def interpolate_pair(x1: torch.Tensor, anchor: torch.Tensor, x3: torch.Tensor, lam: float) -> torch.Tensor:
    """USCL's positive pair (Chen et al. 2021, sample pair generation): two frames of one video each mixed with a
    third, the anchor: (lam x1 + (1 - lam) anchor, lam x3 + (1 - lam) anchor) as float (2, C, H, W)."""
    anchor = anchor.float()
    return torch.stack([lam * x1.float() + (1 - lam) * anchor, lam * x3.float() + (1 - lam) * anchor])


class MixedFramePairs(Dataset):
    """Item = one clip's positive pair, USCL's sample pair generation: three distinct random frames of the clip, each
    augmented on its own, the first and the third mixed with the second (the anchor) by one lam ~ Beta(alpha, alpha)
    (`interpolate_pair`): float (2, C, H, W) pixels. No label: the other clips of a batch are the negatives.

    A clip of two frames gives them unmixed, a clip of one frame that frame augmented twice (lam = 1), as USCL's code.
    """

    def __init__(self, records: Sequence[VideoRecord], cache: ClipCache, augment: Callable, alpha: float = 0.5):
        if alpha <= 0:
            raise ValueError(f"the mixing weight's Beta(alpha, alpha) needs alpha > 0, got {alpha}")
        self.records, self.cache, self.augment = list(records), cache, augment
        self.beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        cache.prefill(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def parts(self, i: int) -> tuple[np.ndarray, torch.Tensor, float]:
        """(frame indices (3,): x1, anchor, x3; the three augmented frames uint8 (3, C, H, W); lam) of item i, drawn
        from torch's generator (seeded by `usnb.train.seed_everything`)."""
        clip = self.cache.get(self.records[i])  # (T, H, W, C)
        n = len(clip)
        idx = torch.randperm(n)[:3].numpy() if n >= 3 else np.array([0, n - 1, n - 1])
        lam = float(self.beta.sample()) if n >= 3 else 1.0
        x = torch.from_numpy(np.ascontiguousarray(clip[idx])).permute(0, 3, 1, 2)  # (3, C, H, W)
        return idx, torch.stack([self.augment(f) for f in x]), lam

    def __getitem__(self, i: int) -> torch.Tensor:
        _, x, lam = self.parts(i)
        return interpolate_pair(x[0], x[1], x[2], lam)  # (2, C, H, W)


class ClipPairs(Dataset):
    """Item i: two clips of video i by CVRL's temporal interval sampler (`sampling.interval_pair_indices`), uint8
    (2, T, C, H, W) from the cache (no label)."""

    def __init__(self, records: Sequence[VideoRecord], cache, frames: int, stride: int):
        self.records, self.cache, self.frames, self.stride = list(records), cache, frames, stride
        cache.prefill(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pair(i, np.random.default_rng(int(torch.randint(2**31, (1,)))))  # torch's seeded generator

    def pair(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        """The two clips of video i drawn with `rng`: uint8 (2, T, C, H, W)."""
        clip = self.cache.get(self.records[i])  # (N, H, W, C)
        a, b = sampling.interval_pair_indices(len(clip), self.frames, self.stride, rng)
        x = torch.from_numpy(np.ascontiguousarray(clip[np.concatenate([a, b])])).permute(0, 3, 1, 2)
        return x.reshape(2, self.frames, *x.shape[1:])  # (2, T, C, H, W)

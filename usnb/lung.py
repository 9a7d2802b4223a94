"""The lung video sources and what the 3-D encoder sees of them, for the lung SSL recipe and the benchmark's BYOL row.

`load_lung` reads the lung phantom (consolidation present/absent, per-frame boxes, its own patient split) or the real
POCUS clips (pathology vs regular, split later by k-fold over patients); `lung_data` caches any clips at the encoder's
field of view and measures the intensity normalisation on the training clips; `embed` and `predict` run an encoder or
a classifier over T evenly spread frames of each clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import sampling
from .cache import MAX_FRAMES, ClipCache
from .data import ClipDataset, label_index
from .datasets.records import VideoRecord
from .view import FieldOfView

CLASSES = ("normal", "consolidation")  # phantom task; index 1 is the positive class
POCUS_CLASSES = ("regular", "pathology")  # POCUS task: covid, pneumonia and viral clips are "pathology"


@dataclass
class LungData:
    """Clips by split ('train', 'val', 'test'; POCUS: 'all', split by k-fold later), the uint8 cache, the classes and
    the intensity mean/std (of the training frames, in [0, 1]) used to normalise the encoder's input."""

    clips: dict[str, list[VideoRecord]]
    cache: ClipCache
    classes: tuple[str, ...]
    size: int  # the encoder's frame side
    mean: float = 0.5
    std: float = 0.25
    dataset: str = "phantom"
    notes: list[str] = field(default_factory=list)
    clip_norm: bool = False

    def counts(self) -> dict:
        return {s: {c: sum(r.label == c for r in recs) for c in self.classes} for s, recs in self.clips.items()}

    @property
    def offset(self) -> int:
        """Pixels cut from each side of the cached frames (the central field of view)."""
        return (self.cache.size[0] - self.size) // 2

    def view(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 (B, T, 1, h, w) from the loader -> float (B, 1, T, size, size) in [0, 1]: the encoder's layout,
        the central field of view."""
        o = self.offset
        x = clips.transpose(1, 2)[..., o:o + self.size, o:o + self.size].float() / 255
        if self.clip_norm:  # each recording's gain removed; colour jitter applied afterwards still varies it
            m, s = x.mean((1, 2, 3, 4), keepdim=True), x.std((1, 2, 3, 4), keepdim=True).clamp_min(1e-3)
            x = ((x - m) / s * 0.2 + 0.3).clamp(0, 1)
        return x

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities in [0, 1] -> the encoder's input (a fixed affine map: colour jitter survives it)."""
        return (x - self.mean) / self.std


def lung_data(clips: Mapping[str, list[VideoRecord]], classes: Sequence[str], size: int, fov: float = 1.0,
              clip_norm: bool = False, dataset: str = "phantom", notes: Sequence[str] = (),
              max_clip_frames: int | None = MAX_FRAMES) -> LungData:
    """Clips by split -> LungData: labels checked, frames cached at size / fov, the intensity mean and std measured on
    the training clips (every clip where there is no training split yet: POCUS, split by k-fold later). A clip longer
    than `max_clip_frames` is cached as that many frames spread evenly over it (None: every frame)."""
    for recs in clips.values():
        label_index(recs, classes)  # an unknown label fails here, naming the file
    side = FieldOfView(size, fov).cache_size
    cache = ClipCache(size=(side, side), grayscale=True, max_frames=max_clip_frames)
    everything = [r for recs in clips.values() for r in recs]
    cache.prefill(everything)
    data = LungData(dict(clips), cache, tuple(classes), size, dataset=dataset, notes=list(notes), clip_norm=clip_norm)
    pixels = torch.cat([data.view(torch.from_numpy(np.array(cache.get(r)[::4]))[None].permute(0, 1, 4, 2, 3))
                        .reshape(-1) for r in clips.get("train", everything)])
    data.mean, data.std = float(pixels.mean()), float(pixels.std())
    return data


def pocus_task(records: Sequence[VideoRecord]) -> list[VideoRecord]:
    """POCUS clips relabelled pathology (covid, pneumonia, viral) vs regular; the one `uncertain` clip left out."""
    from .sources import binary_task

    return binary_task(records, positive=["covid", "pneumonia", "viral"], drop=["uncertain"], classes=POCUS_CLASSES)


def load_lung(dataset: str, size: int, fov: float = 1.0, clip_norm: bool = False, data_dir: str | Path | None = None,
              phantom_clips: int = 300, phantom_seed: int = 0, phantom_test_clips: int | None = None,
              max_clip_frames: int | None = MAX_FRAMES) -> LungData:
    """'phantom' (the lung phantom of `phantom_clips` clips, generated once) or 'pocus' (the 131 real POCUS clips at
    `data_dir`), cached for an encoder that sees the central `fov` of each frame at `size` px."""
    from .datasets.pocus import load_pocus
    from .phantom import load_phantom, notebook_phantom

    if dataset == "phantom":
        root = Path(data_dir) if data_dir else notebook_phantom("lung", phantom_clips, phantom_seed, phantom_test_clips)
        records = load_phantom(root)
        return lung_data({s: [r for r in records if r.split == s] for s in ("train", "val", "test")}, CLASSES, size,
                         fov, clip_norm, dataset, max_clip_frames=max_clip_frames)
    if dataset == "pocus":
        if data_dir is None:
            raise ValueError("dataset='pocus' needs data_dir: the folder holding pocus_videos/ "
                             "(e.g. ../shared/realdata/pocus from the repository root); see data_cards/pocus.md")
        return lung_data({"all": pocus_task(load_pocus(data_dir))}, POCUS_CLASSES, size, fov, clip_norm, dataset,
                         ["frames resized to a square (3 of 131 clips are not square); split by patient with k-fold"],
                         max_clip_frames)
    raise ValueError(f"dataset must be 'phantom' or 'pocus', got {dataset!r}")


def clip_dataset(data: LungData, records: Sequence[VideoRecord], frames: int, train: bool = True) -> ClipDataset:
    """(clip uint8 (T, 1, H, W), label): T frames, one random per segment (train) or spread evenly (evaluation)."""
    return ClipDataset(records, data.cache, data.classes, num_frames=frames,
                       mode="segments" if train else "uniform")


@torch.no_grad()
def embed(encoder: nn.Module, data: LungData, records: Sequence[VideoRecord], frames: int,
          device: torch.device | None = None, batch_size: int = 32) -> np.ndarray:
    """Frozen features (N, D) of `records` from `frames` evenly spread frames (no augmentation)."""
    device = device or next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    ds = clip_dataset(data, records, frames, train=False)
    feats = []
    for i in range(0, len(ds), batch_size):
        x = torch.stack([ds[j][0] for j in range(i, min(i + batch_size, len(ds)))])
        feats.append(encoder(data.normalise(data.view(x.to(device)))).float().cpu())
    encoder.train(was_training)
    return torch.cat(feats).numpy()


@torch.no_grad()
def predict(model: nn.Module, data: LungData, records: Sequence[VideoRecord], frames: int,
            device: torch.device | None = None) -> np.ndarray:
    """P(positive class) per clip from `frames` evenly spread frames."""
    device = device or next(model.parameters()).device
    model.eval()
    ds = clip_dataset(data, records, frames, train=False)
    probs = []
    for i in range(0, len(ds), 32):
        x = torch.stack([ds[j][0] for j in range(i, min(i + 32, len(ds)))]).to(device)
        probs.append(model(data.normalise(data.view(x))).float().softmax(-1)[:, 1].cpu())
    return torch.cat(probs).numpy()


class Normalised(nn.Module):
    """A classifier on clips in [0, 1]: normalises inside, so that occluding with 0 means 'no echo' (black)."""

    def __init__(self, model: nn.Module, data: LungData):
        super().__init__()
        self.model, self.mean, self.std = model, data.mean, data.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def clip_input(data: LungData, record: VideoRecord, frames: int) -> tuple[torch.Tensor, np.ndarray]:
    """One clip as the model sees it, (1, T, H, W) in [0, 1], from `frames` evenly spread frames, and their indices."""
    ds = clip_dataset(data, [record], frames, train=False)
    idx = sampling.uniform_indices(len(data.cache.get(record)), frames)
    return data.view(ds[0][0][None])[0], idx


def clip_boxes(record: VideoRecord, idx: np.ndarray, data: LungData, native: int) -> dict[int, list]:
    """Ground-truth boxes of the cached frames `idx`, from the native frame (side `native`) to the encoder's pixels
    (cached side, then the central crop): {t: [(x, y, w, h)]}."""
    s, o = data.cache.size[0] / native, data.offset
    frame = data.cache.native(record)[np.asarray(idx, dtype=int)]  # boxes are numbered by the file's frames
    return {t: [(x * s - o, y * s - o, w * s, h * s) for x, y, w, h in record.boxes[int(i)]]
            for t, i in enumerate(frame) if record.boxes.get(int(i))}

"""The lung video sources and what the 3-D encoder sees of them, for the lung SSL recipe and the benchmark's BYOL row.

`load_lung` reads any video source: the lung phantom (consolidation present/absent, per-frame boxes, its own patient
split), the real POCUS clips (pathology vs regular), BUSV, a manifest or class folders, with the task's labels
(`usnb.task`); a source without a split is split later by k-fold over patients. `lung_data` caches any clips at the
encoder's field of view and measures the intensity normalisation on the training clips; `embed` and `predict` run an
encoder or a classifier over T evenly spread frames of each clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import sampling
from .cache import FIT, MAX_FRAMES, ClipCache
from .data import ClipDataset, label_index
from .datasets.records import VideoRecord
from .view import FieldOfView

CLASSES = ("normal", "consolidation")  # phantom task; index 1 is the positive class


@dataclass
class LungData:
    """Clips by split ('train', 'val', 'test'; a source without a split: 'all', split by k-fold later), the uint8
    cache, the classes and the intensity mean/std (of the training frames, in [0, 1]) used to normalise the encoder's
    input."""

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

    def mapping(self) -> str:
        """Each class: the source labels it holds, clips per split, patients (`usnb.task.task_mapping`)."""
        from .task import task_mapping

        return task_mapping([r for recs in self.clips.values() for r in recs])

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
              max_clip_frames: int | None = MAX_FRAMES, frame_fit: str = FIT) -> LungData:
    """Clips by split -> LungData: labels checked, frames cached at size / fov, the intensity mean and std measured on
    the training clips (every clip where there is no training split yet: split by k-fold later). A clip longer
    than `max_clip_frames` is cached as that many frames spread evenly over it (None: every frame); `frame_fit`: how a
    non-square frame becomes square (`usnb.cache`)."""
    for recs in clips.values():
        label_index(recs, classes)  # an unknown label fails here, naming the file
    side = FieldOfView(size, fov).cache_size
    cache = ClipCache(size=(side, side), grayscale=True, max_frames=max_clip_frames, fit=frame_fit)
    everything = [r for recs in clips.values() for r in recs]
    cache.prefill(everything)
    data = LungData(dict(clips), cache, tuple(classes), size, dataset=dataset, notes=list(notes), clip_norm=clip_norm)
    pixels = torch.cat([data.view(torch.from_numpy(np.array(cache.get(r)[::4]))[None].permute(0, 1, 4, 2, 3))
                        .reshape(-1) for r in clips.get("train", everything)])
    data.mean, data.std = float(pixels.mean()), float(pixels.std())
    return data


def load_lung(dataset: str, size: int, fov: float = 1.0, clip_norm: bool = False, data_dir: str | Path | None = None,
              phantom_clips: int = 300, phantom_seed: int = 0, phantom_test_clips: int | None = None,
              positive: str | Sequence[str] | None = None, drop: str | Sequence[str] | None = None,
              patient_pattern: str | None = None, max_clip_frames: int | None = MAX_FRAMES,
              frame_fit: str = FIT) -> LungData:
    """Any video source (`usnb.sources.VIDEO_SOURCES`), cached for an encoder that sees the central `fov` of each
    frame at `size` px: 'phantom' (the lung phantom of `phantom_clips` clips, generated once; its own split), 'pocus'
    (the real POCUS clips at `data_dir`: covid, pneumonia and viral are pathology), 'busv', 'manifest' or 'folders'.
    The task: `positive` and `drop` (`usnb.task`). A source with its own split keeps it; one without comes as 'all'
    (the notebook splits it by k-fold over patients)."""
    from .phantom import notebook_phantom
    from .splits import stable_order
    from .task import check_task, load_task, own_split

    root = data_dir
    if dataset == "phantom" and root is None:
        root = notebook_phantom("lung", phantom_clips, phantom_seed, phantom_test_clips)
    records, classes = load_task(dataset, root, CLASSES, positive, drop, patient_pattern)
    clips = own_split(records)
    if clips is not None:
        notes = check_task(clips, classes, str(root or dataset))
        clips = {s: v for s, v in clips.items() if v}
    else:
        clips = {"all": sorted(records, key=stable_order)}  # the same clips in one order, however listed
        notes = ["no split in the source: split by patient with k-fold"]
    return lung_data(clips, classes, size, fov, clip_norm, dataset, notes, max_clip_frames, frame_fit)



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


def clip_boxes(record: VideoRecord, idx: np.ndarray, data: LungData) -> dict[int, list]:
    """Ground-truth boxes of the cached frames `idx`, from the file's pixels to the encoder's (the cache's resize and
    pad or crop, then the central crop): {t: [(x, y, w, h)]}."""
    o = data.offset
    frame = data.cache.native(record)[np.asarray(idx, dtype=int)]  # boxes are numbered by the file's frames
    return {t: [(x - o, y - o, w, h) for x, y, w, h in data.cache.boxes(record, record.boxes[int(i)])]
            for t, i in enumerate(frame) if record.boxes.get(int(i))}

"""The breast video sources, loaded once for MVCC, CLMAN, KGA-Net and the benchmark.

`load_breast` reads any video source (the phantom, BUSV, POCUS, a manifest or class folders of your own videos), maps
its labels to the two classes (`usnb.task`: `positive`, `drop`), keeps the source's split or splits by patient, loads
KGA-Net's still images from any still-image source and fills the uint8 clip cache at the field of view's cache size.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from .cache import FIT, MAX_FRAMES, ClipCache
from .data import label_index
from .datasets.records import ImageRecord, VideoRecord
from .view import FieldOfView

CLASSES = ("benign", "malignant")  # index 1 is the positive class: SEN is the recall of malignant
COMPANION_IMAGES = {"phantom": "phantom", "busv": "busi"}  # the still images that go with a video source by default


@dataclass
class BreastData:
    """Clips by split, still images (KGA-Net's image branch; empty unless asked for), the uint8 cache and the model's
    field of view."""

    clips: dict[str, list[VideoRecord]]
    cache: ClipCache
    view: FieldOfView
    images: list[ImageRecord] = field(default_factory=list)
    dataset: str = "phantom"
    notes: list[str] = field(default_factory=list)
    classes: tuple[str, str] = CLASSES  # (negative, positive) of this task; the papers' names on breast data

    def counts(self) -> dict:
        out = {s: {c: sum(r.label == c for r in recs) for c in self.classes} for s, recs in self.clips.items()}
        if self.images:
            out["images"] = {c: sum(r.label == c for r in self.images) for c in self.classes}
        return out

    def mapping(self) -> str:
        """Each class: the source labels it holds, clips per split, patients (`usnb.task.task_mapping`)."""
        from .task import task_mapping

        return task_mapping([r for recs in self.clips.values() for r in recs])


def load_breast(dataset: str, view: FieldOfView, data_dir: str | Path | None = None,
                image_dir: str | Path | None = None, phantom_clips: int = 300, phantom_seed: int = 0,
                phantom_test_clips: int | None = None, images: str | bool | None = False,
                positive: str | Sequence[str] | None = None, drop: str | Sequence[str] | None = None,
                folds: int | None = None, fold: int = 0, patient_pattern: str | None = None,
                max_clip_frames: int | None = MAX_FRAMES, frame_fit: str = FIT) -> BreastData:
    """Clips by split of any video source (`usnb.sources.VIDEO_SOURCES`): 'phantom' (the built-in breast sweeps of
    `phantom_clips` clips, generated once; `data_dir` another phantom folder), 'busv', 'pocus', 'manifest' (a CSV
    path,label,split,patient_id) or 'folders' (ROOT/<label>/<clip>; `patient_pattern`); `data_dir` None:
    USNB_DATA_DIR/<dataset>. See data_cards/.

    The task: `positive` labels (and `drop`, labels left out) -> (negative, positive) classes (`usnb.task`); the
    source's own split where it has one, else by patient (fractions, or fold `fold` of `folds`). `images`: the still
    images of KGA-Net's image branch: an image source (`usnb.sources.IMAGE_SOURCES`) read at `image_dir`, True for
    the video source's companion (the phantom's stills, BUSI with BUSV), False/None for none. A clip longer than
    `max_clip_frames` is cached as that many frames spread evenly over it; `frame_fit` keeps the aspect ratio of
    non-square frames ('pad', 'crop') or stretches them ('stretch'; `usnb.cache`).
    """
    from .phantom import notebook_phantom
    from .sources import load
    from .task import check_task, load_task, task_labels, task_splits

    root = data_dir
    if dataset == "phantom" and root is None:
        root = notebook_phantom("breast", phantom_clips, phantom_seed, phantom_test_clips)
    clips, classes = load_task(dataset, root, CLASSES, positive, drop, patient_pattern)
    by_split, notes = task_splits(clips, folds, fold)
    notes += check_task(by_split, classes, str(root or dataset))
    if not by_split["val"]:
        del by_split["val"]
    stills = []
    if images:
        source = COMPANION_IMAGES.get(dataset) if images is True else images
        if source is None:
            raise ValueError(f"{dataset} has no still images of its own; pass images (one of busi, folders, "
                             "manifest, phantom) and image_dir")
        folder = image_dir or (root if dataset == "phantom" else None)  # None: USNB_DATA_DIR/<source>
        stills, names = task_labels(load(source, folder, images=True), source, CLASSES, positive, drop, strict=False)
        label_index(stills, names)  # an unknown label fails here, naming the file
        stills = [replace(r, label=classes[names.index(r.label)]) for r in stills]  # named as the clips' classes
        notes.append(f"still images: {len(stills)} from {source} ({folder or 'its default folder'})")
    for recs in by_split.values():
        label_index(recs, classes)
    cache = ClipCache(size=(view.cache_size, view.cache_size), grayscale=True, max_frames=max_clip_frames,
                      fit=frame_fit)
    cache.prefill([r for recs in by_split.values() for r in recs])
    return BreastData(by_split, cache, view, stills, dataset, notes, classes)


def train_clips(data: BreastData, frames: int, crop_scale: tuple[float, float], augment_on: str = "loader",
                mode: str = "segments"):
    """(dataset, prepare): the training clips of T = `frames` frames (`mode` "segments": one random frame in each of
    T segments; see `usnb.data.ClipDataset`) and `prepare(x, dims)`, the model's input from a uint8 batch; one random
    crop + flip per clip, in the loader or on the device as `augment_on` says (decided once: `view.clip_augment`)."""
    from .data import ClipDataset
    from .view import clip_augment

    augment, prepare = clip_augment(data.view, crop_scale, augment_on)
    return ClipDataset(data.clips["train"], data.cache, data.classes, num_frames=frames, mode=mode,
                       transform=augment), prepare

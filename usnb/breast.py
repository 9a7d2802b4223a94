"""The breast video sources, loaded once for MVCC, CLMAN, KGA-Net and the benchmark.

`load_breast` reads the phantom, a manifest of your own videos or BUSV (with BUSI's still images), keeps each clip's
split, checks the labels and fills the uint8 clip cache at the field of view's cache size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cache import MAX_FRAMES, ClipCache
from .data import label_index
from .datasets.records import ImageRecord, VideoRecord
from .view import FieldOfView

CLASSES = ("benign", "malignant")  # index 1 is the positive class: SEN is the recall of malignant
SOURCES = ("phantom", "manifest", "busv")


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

    def counts(self) -> dict:
        out = {s: {c: sum(r.label == c for r in recs) for c in CLASSES} for s, recs in self.clips.items()}
        if self.images:
            out["images"] = {c: sum(r.label == c for r in self.images) for c in CLASSES}
        return out


def load_breast(dataset: str, view: FieldOfView, data_dir: str | Path | None = None,
                image_dir: str | Path | None = None, phantom_clips: int = 300, phantom_seed: int = 0,
                phantom_test_clips: int | None = None, sources: tuple[str, ...] = SOURCES,
                images: bool = False, max_clip_frames: int | None = MAX_FRAMES) -> BreastData:
    """'phantom' (the built-in breast sweeps of `phantom_clips` clips, generated once), 'manifest' (your videos: a
    manifest CSV or its folder with path,label,split columns, labels benign/malignant; data_cards/inhouse.md) or
    'busv' (public BUSV; with `images`, every BUSI benign/malignant still image from `image_dir`).

    `sources` are the datasets the calling notebook accepts; `images` loads still images too (KGA-Net); a clip longer
    than `max_clip_frames` is cached as that many frames spread evenly over it (None: every frame; `usnb.cache`).
    """
    from .phantom import load_phantom, load_phantom_images, notebook_phantom
    from .sources import load

    if dataset not in sources:
        names = " or ".join([", ".join(map(repr, sources[:-1])), repr(sources[-1])] if len(sources) > 1 else [repr(*sources)])
        raise ValueError(f"dataset must be {names}, got {dataset!r}")
    stills: list[ImageRecord] = []
    if dataset == "phantom":
        root = Path(data_dir) if data_dir else notebook_phantom("breast", phantom_clips, phantom_seed,
                                                                phantom_test_clips)
        clips = load_phantom(root)
        stills = load_phantom_images(root) if images else []
    elif dataset == "manifest":
        if images:
            raise ValueError("this notebook trains on still images too, which a manifest does not list; "
                             "use dataset='busv' with image_dir (BUSI) or the phantom")
        clips = load("manifest", data_dir, labels=CLASSES)  # data_dir None: USNB_DATA_DIR/manifest
    else:
        clips = load("busv", data_dir)
        stills = load("busi", image_dir) if images else []
    label_index(clips, CLASSES), label_index(stills, CLASSES)  # an unknown label fails here, naming the file
    by_split = {s: [c for c in clips if c.split == s] for s in ("train", "val", "test")}
    if not by_split["train"] or not by_split["test"]:
        raise ValueError(f"{dataset}: needs clips in the train and test splits, got "
                         f"{ {s: len(v) for s, v in by_split.items()} }; fill the split column of the manifest "
                         "(or check the annotation files)")
    notes = []
    if not by_split["val"]:
        del by_split["val"]
        notes.append("no validation split: Youden thresholds are chosen on the test split")
    cache = ClipCache(size=(view.cache_size, view.cache_size), grayscale=True, max_frames=max_clip_frames)
    cache.prefill(clips)
    return BreastData(by_split, cache, view, stills, dataset, notes)

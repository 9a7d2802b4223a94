"""Records: one row per clip or still image, the same fields for every data set."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import io
from ..errors import DataError

Box = tuple[float, float, float, float]  # (x, y, w, h) in pixels of the original frame


@dataclass
class VideoRecord:
    """A clip: a video file or a folder of frames, with its label, patient and (optional) boxes."""

    video_id: str
    path: Path
    label: str
    patient_id: str
    split: str = ""  # "train" / "val" / "test", or "" when the data set has no official split
    source: str = ""
    licence: str = ""
    boxes: dict[int, list[Box]] = field(default_factory=dict)  # frame index -> boxes in that frame
    keyframe: int | None = None
    meta: dict = field(default_factory=dict)

    def read(self, grayscale: bool = False, indices: Sequence[int] | None = None,
             size: tuple[int, int] | None = None) -> np.ndarray:
        """Decode this clip to uint8 `(T, H, W, C)` (slow: training uses `ClipCache`)."""
        return io.read_clip(self.path, grayscale=grayscale, indices=indices, size=size)


@dataclass
class ImageRecord:
    """A still image with zero or more lesion masks (BUSI keeps one file per lesion)."""

    image_id: str
    path: Path
    label: str
    patient_id: str
    mask_paths: list[Path] = field(default_factory=list)
    split: str = ""
    source: str = ""
    licence: str = ""
    meta: dict = field(default_factory=dict)

    def read(self, grayscale: bool = False, size: tuple[int, int] | None = None, fit: str = "stretch") -> np.ndarray:
        """The image as uint8 `(H, W, C)`; `size` with `fit` as in `usnb.io.read_image`."""
        return io.read_image(self.path, grayscale=grayscale, size=size, fit=fit)

    def read_mask(self, merge: bool = True, size: tuple[int, int] | None = None) -> np.ndarray:
        """Lesion masks: merged into one bool `(H, W)` (union), or stacked per lesion `(K, H, W)`."""
        if not self.mask_paths:
            from ..errors import DataError
            raise DataError(self.path, "image has no mask", "add its <name>_mask.png next to it")
        masks = np.stack([io.read_mask(p, size=size) for p in self.mask_paths])
        return masks.any(axis=0) if merge else masks


Record = VideoRecord | ImageRecord


def record_id(record: Record) -> str:
    return record.video_id if isinstance(record, VideoRecord) else record.image_id


def content_hash(record: Record) -> str:
    """A fingerprint of the clip's content: sha256 of the file, or for a frame folder of its
    frame count and the bytes of its first, middle and last frames (identical clips collide)."""
    if "sha256" in record.meta:
        return record.meta["sha256"]
    path = io.check_readable(record.path)
    h = hashlib.sha256()
    if path.is_dir():
        files = io.frame_files(path)
        h.update(str(len(files)).encode())
        for p in dict.fromkeys([files[0], files[len(files) // 2], files[-1]]):
            h.update(p.read_bytes())
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    record.meta["sha256"] = h.hexdigest()
    return record.meta["sha256"]


def class_counts(records: Sequence[Record]) -> dict[str, dict[str, int]]:
    """{split: {label: count}} ('' split shown as 'all')."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        per = out.setdefault(r.split or "all", {})
        per[r.label] = per.get(r.label, 0) + 1
    return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}


def control_characters(text: str) -> bool:
    """Whether `text` holds a control character (a NUL, a tab, a line break): no id, label or path may."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def outside_clip(record: VideoRecord) -> list[str]:
    """What of a clip's keyframe and boxes lies outside it (frames from 0; boxes x y w h in the native frame's pixels,
    1 px of rounding allowed); [] where the clip cannot be read (it is named where it is decoded)."""
    if record.keyframe is None and not record.boxes:
        return []
    try:
        frames, height, width = io.clip_shape(record.path)
    except (DataError, OSError, IndexError):  # an unreadable clip is named where it is decoded (`usnb data check`)
        return []
    problems = []
    if record.keyframe is not None and record.keyframe >= frames:
        problems.append(f"keyframe {record.keyframe} is beyond the clip's {frames} frames")
    for i, boxes in sorted(record.boxes.items()):
        if i >= frames:
            problems.append(f"a box on frame {i}, beyond the clip's {frames} frames")
            continue
        for x, y, w, h in boxes:
            if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
                problems.append(f"box (x {x:g}, y {y:g}, w {w:g}, h {h:g}) on frame {i} reaches outside the "
                                f"{width} x {height} px frame")
    return problems

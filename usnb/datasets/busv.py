"""BUSV (Lin et al., MICCAI 2022; repository jhl-Det/CVA-Net): breast ultrasound videos as frames.

Layout: `ROOT/rawframes/{benign,malignant}/<video_id>/000000.png` and COCO / ImageNet-VID style
JSON files `ROOT/imagenet_vid_train*.json` (official train, 149 videos) and
`ROOT/imagenet_vid_val.json` (official val, 37 videos). See data_cards/busv.md.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from ..errors import DataError, DataWarning
from .records import VideoRecord, outside_clip

CATEGORIES = {1: "benign", 2: "malignant"}
# Published errata (data_cards/busv.md): applied when variant="corrected".
DUPLICATES = {"benign/x66ef02e7f1b9a0ef": "malignant/x3b88488853e8b7d1"}  # dropped -> kept copy
RELABEL = {"benign/x63c9ba1377f35bf6": "malignant", "benign/x5a1c46ec6377e946": "malignant"}
# The errata also say these four videos come from one patient: one shared patient_id, so that
# usnb.splits.check_leakage refuses a split that puts them in two parts.
SAME_PATIENT = ("benign/x63c9ba1377f35bf6", "benign/x5a1c46ec6377e946",
                "malignant/2390fbea047347b", "malignant/7a39ab5d4970bf89")
SAME_PATIENT_ID = "busv-errata-patient-1"
VARIANTS = ("corrected", "raw")


FIX = "use the CVA-Net annotation files (data_cards/busv.md), or mend this entry"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(path, f"BUSV annotation JSON is not UTF-8 text ({err})",
                        "re-download the annotation file, or save it as UTF-8") from err
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, f"cannot read BUSV annotation JSON ({err})", "re-download the annotation file") from err
    for key in ("images", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(path, f"BUSV JSON lacks the {key!r} list", "use the CVA-Net annotation files")
    return data


def _image(path: Path, im) -> tuple[object, str, int]:
    """(id, video folder 'benign/x1', frame number) of an entry of the JSON's images list, checked."""
    if not isinstance(im, dict) or "id" not in im:
        raise DataError(path, f"an entry of 'images' has no id ({str(im)[:80]})", FIX)
    name = im.get("file_name")
    if not isinstance(name, str) or not name:
        raise DataError(path, f"image id {im['id']!r} has no file_name", FIX)
    stem = Path(name).stem
    if not stem.isdigit():
        raise DataError(path, f"image id {im['id']!r}: frame name {name!r} is not a frame number (000012.png)", FIX)
    return im["id"], Path(name).parent.as_posix(), int(stem)


def _box(path: Path, ann) -> tuple[object, tuple[float, float, float, float]]:
    """(image id, (x, y, w, h)) of an entry of the JSON's annotations list, checked."""
    if not isinstance(ann, dict) or "image_id" not in ann:
        raise DataError(path, f"an entry of 'annotations' has no image_id ({str(ann)[:80]})", FIX)
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
        raise DataError(path, f"annotation id {ann.get('id')!r} (image {ann['image_id']!r}): bbox {box!r} is not "
                        "four numbers [x, y, w, h]", FIX)
    return ann["image_id"], tuple(float(v) for v in box)


def _split_of(name: str) -> str | None:
    """'train' / 'val' / 'test' from an annotation file name (imagenet_vid_train_15frames.json), by whole word."""
    words = re.split(r"[_\-. ]", name.lower())
    for split in ("val", "test", "train"):
        if split in words:
            return split
    return None


def load_busv(root: str | Path, variant: str = "corrected") -> list[VideoRecord]:
    """One record per video folder, with split from the JSON that lists it and boxes per frame."""
    if variant not in VARIANTS:
        raise ValueError(f"BUSV variant must be one of {VARIANTS}, got {variant!r}")
    root = Path(root)
    frames_root = root / "rawframes"
    if not frames_root.is_dir():
        raise DataError(frames_root, "BUSV rawframes/ folder not found",
                        "pass the BUSV root that holds rawframes/ and the imagenet_vid_*.json files")
    split_of: dict[str, str] = {}
    boxes: dict[str, dict[int, list]] = {}
    for json_path in sorted(root.glob("*.json")):
        split = _split_of(json_path.stem)
        if split is None:  # not an annotation file of the official split
            warnings.warn(f"BUSV {json_path}: ignored (its name says neither train, val nor test)", DataWarning)
            continue
        data = _read_json(json_path)
        images, degenerate, orphans = {}, [], []
        for im in data["images"]:
            image_id, video, frame = _image(json_path, im)
            images[image_id] = (video, frame)
            split_of.setdefault(video, split)
            if split_of[video] != split:
                raise DataError(json_path, f"video {video} is listed in two splits ({split_of[video]}, {split})",
                                "keep each video in one annotation file")
        for ann in data["annotations"]:
            image_id, (x, y, w, h) = _box(json_path, ann)
            if image_id not in images:
                orphans.append(ann.get("id"))
                continue
            if w <= 0 or h <= 0:
                degenerate.append(ann.get("id"))
                continue
            video, frame = images[image_id]
            boxes.setdefault(video, {}).setdefault(frame, []).append((x, y, w, h))
        if degenerate:
            warnings.warn(f"BUSV {json_path}: skipped {len(degenerate)} box(es) with zero or negative width/height "
                          f"(annotation ids {degenerate[:5]}); fix or delete them to silence this", DataWarning)
        if orphans:
            warnings.warn(f"BUSV {json_path}: skipped {len(orphans)} box(es) of images the file does not list "
                          f"(annotation ids {orphans[:5]}); fix their image_id or delete them", DataWarning)

    others = sorted(p.name for p in frames_root.iterdir() if p.is_dir() and p.name not in ("benign", "malignant"))
    if others:
        warnings.warn(f"BUSV {frames_root}: class folder(s) {others} left out (BUSV's classes are benign and "
                      "malignant)", DataWarning)
    records = []
    for label in ("benign", "malignant"):
        folder = frames_root / label
        for video_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            vid = f"{label}/{video_dir.name}"
            true_label, patient_id = label, video_dir.name
            if variant == "corrected":
                if vid in DUPLICATES:
                    continue
                true_label = RELABEL.get(vid, label)
                if vid in SAME_PATIENT:
                    patient_id = SAME_PATIENT_ID
            records.append(VideoRecord(video_id=vid, path=video_dir, label=true_label, patient_id=patient_id,
                                       split=split_of.get(vid, ""), source="busv", licence="see data_cards/busv.md",
                                       boxes=boxes.get(vid, {}), meta={"folder_label": label}))
    if not records:
        raise DataError(frames_root, "no video folders under rawframes/benign or rawframes/malignant",
                        "check the BUSV download is unpacked completely")
    outside = [f"{r.video_id}: {problem}" for r in records for problem in outside_clip(r)]
    if outside:
        shown = "; ".join(outside[:20]) + (f"; and {len(outside) - 20} more" if len(outside) > 20 else "")
        raise DataError(root, f"boxes in the annotation JSON lie outside their clips: {shown}",
                        "boxes are [x, y, w, h] in pixels of the video's own frames and frames are numbered by "
                        "their file names (000000.png is frame 0); mend the JSON or the frame folders")
    on_disk = {f"{r.meta['folder_label']}/{r.path.name}" for r in records}
    absent = sorted(v for v in split_of if v not in on_disk and v not in DUPLICATES)
    if absent:
        warnings.warn(f"BUSV {root}: {len(absent)} video(s) listed in the annotation JSON have no frame folder under "
                      f"rawframes/ (e.g. {absent[:3]}); re-download or unpack them to use them", DataWarning)
    unassigned = sum(1 for r in records if not r.split)
    if split_of and unassigned:
        warnings.warn(f"BUSV {root}: {unassigned} video(s) are in no annotation JSON (split left empty)", DataWarning)
    return records

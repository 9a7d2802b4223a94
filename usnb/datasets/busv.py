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
from .records import VideoRecord

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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, f"cannot read BUSV annotation JSON ({err})", "re-download the annotation file") from err
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(path, f"BUSV JSON lacks the {key!r} list", "use the CVA-Net annotation files")
    return data


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
        images, degenerate = {}, []
        for im in data["images"]:
            video = Path(im["file_name"]).parent.as_posix()
            frame = int(Path(im["file_name"]).stem)
            images[im["id"]] = (video, frame)
            split_of.setdefault(video, split)
            if split_of[video] != split:
                raise DataError(json_path, f"video {video} is listed in two splits ({split_of[video]}, {split})",
                                "keep each video in one annotation file")
        for ann in data["annotations"]:
            if ann["image_id"] not in images:
                continue
            x, y, w, h = ann["bbox"]
            if w <= 0 or h <= 0:
                degenerate.append(ann.get("id"))
                continue
            video, frame = images[ann["image_id"]]
            boxes.setdefault(video, {}).setdefault(frame, []).append((float(x), float(y), float(w), float(h)))
        if degenerate:
            warnings.warn(f"BUSV {json_path}: skipped {len(degenerate)} box(es) with zero or negative width/height "
                          f"(annotation ids {degenerate[:5]}); fix or delete them to silence this", DataWarning)

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
    on_disk = {f"{r.meta['folder_label']}/{r.path.name}" for r in records}
    absent = sorted(v for v in split_of if v not in on_disk and v not in DUPLICATES)
    if absent:
        warnings.warn(f"BUSV {root}: {len(absent)} video(s) listed in the annotation JSON have no frame folder under "
                      f"rawframes/ (e.g. {absent[:3]}); re-download or unpack them to use them", DataWarning)
    unassigned = sum(1 for r in records if not r.split)
    if split_of and unassigned:
        warnings.warn(f"BUSV {root}: {unassigned} video(s) are in no annotation JSON (split left empty)", DataWarning)
    return records

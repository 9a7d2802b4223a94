"""Manifest CSV for any data set, private ones included: `path,label,split,patient_id`.

Optional columns: `keyframe` (frame index), `box` (the lesion box `x y w h` in the keyframe, pixels)
and `annotation` (a JSON file, relative to the CSV, holding `{"boxes": [[x, y, w, h] or null, one per
frame], "keyframe": k, ...}`). Paths are relative to the CSV's folder. See data_cards/inhouse.md.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..io import check_readable
from .records import ImageRecord, VideoRecord, control_characters, outside_clip

REQUIRED = ("path", "label", "split", "patient_id")
SPLITS = ("train", "val", "test", "")


def _manifest_file(path: str | Path, default_name: str) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise DataError(path, "manifest not found", f"pass the CSV file or a folder holding {default_name}")
    return check_readable(path)


def _rows(csv_path: Path, required: Sequence[str]) -> list[dict]:
    # utf-8-sig: a CSV saved by Excel starts with a byte-order mark that would hide the first column name
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(csv_path, f"manifest lacks column(s) {missing}",
                                f"the header must hold {', '.join(required)}")
            twice = sorted({c for c in header if header.count(c) > 1})
            if twice:
                raise DataError(csv_path, f"the header names column(s) {twice} more than once",
                                "keep one column of each name")
            rows = []
            for line, row in enumerate(reader, start=2):
                if row.get(None):  # csv.DictReader keeps fields past the header under the key None
                    raise DataError(csv_path, f"row {line} has more fields than the header ({row[None]!r} left over)",
                                    "quote fields that hold commas, or drop the extra fields")
                rows.append({k.strip(): (v or "").strip() for k, v in row.items() if k})
    except UnicodeDecodeError as err:
        raise DataError(csv_path, f"manifest is not UTF-8 text ({err})", "save the CSV as UTF-8") from err
    except csv.Error as err:  # a field over csv's size limit (an unclosed quote swallows the rest), a NUL byte
        raise DataError(csv_path, f"row {reader.line_num}: not a CSV row ({err})",
                        "close every quote, keep each field short (a path, a label), save the file as plain CSV "
                        "text") from err
    if not rows:
        raise DataError(csv_path, "manifest has no rows", "list one clip per row")
    return rows


def _check_row(csv_path: Path, line: int, row: dict, labels: Sequence[str] | None, seen: dict) -> Path:
    where = f"row {line}"
    for column, value in row.items():  # the columns that name things; free text (notes) may hold line breaks
        if column in REQUIRED + ("annotation", "mask_path") and control_characters(value):
            raise DataError(csv_path, f"{where}: {column} {value!r} holds a control character",
                            "remove it (ids, labels and paths are plain text)")
    if not row["path"]:
        raise DataError(csv_path, f"{where}: empty path", "give the clip's path, relative to the CSV")
    if labels is not None and row["label"] not in labels:
        raise DataError(csv_path, f"{where}: unknown label {row['label']!r}", f"use one of {list(labels)}")
    if not row["patient_id"]:
        raise DataError(csv_path, f"{where}: empty patient_id",
                        "give every row a patient id (the video id if nothing better is known)")
    if row["split"] not in SPLITS:
        raise DataError(csv_path, f"{where}: unknown split {row['split']!r}", "use train, val, test or leave it empty")
    try:
        full = (csv_path.parent / row["path"]).resolve()  # compared resolved: `a.mp4` and `./a.mp4` are one clip
    except (OSError, RuntimeError) as err:  # a symbolic link loop (RuntimeError before Python 3.13)
        raise DataError(csv_path, f"{where}: path {row['path']!r} cannot be followed ({err})",
                        "point the symbolic link at the clip itself") from err
    if (csv_path.parent / row["path"]).is_symlink() and not full.exists():
        raise DataError(csv_path, f"{where}: path {row['path']!r} is a symbolic link that leads nowhere (to {full})",
                        "point the link at the clip, or list the clip itself")
    if full in seen:
        raise DataError(csv_path, f"{where}: duplicate path {row['path']!r} (first at row {seen[full]})",
                        "list each clip once")
    seen[full] = line
    return full


def _check_files(csv_path: Path, missing: list[str]) -> None:
    """Every listed file that does not exist, named in one error (up to 20)."""
    if missing:
        shown = "; ".join(missing[:20]) + (f"; and {len(missing) - 20} more" if len(missing) > 20 else "")
        count = f" ({len(missing)} listed files missing)" if len(missing) > 1 else ""
        raise DataError(csv_path, shown + count, "fix the paths or drop the rows")


def _check_label_spellings(csv_path: Path, rows: list[dict]) -> None:
    """Labels that differ only in case or surrounding space would become separate classes."""
    spellings: dict[str, set[str]] = {}
    for row in rows:
        spellings.setdefault(row["label"].lower(), set()).add(row["label"])
    clashes = [sorted(s) for s in spellings.values() if len(s) > 1]
    if clashes:
        raise DataError(csv_path, f"labels spelled several ways: {clashes}", "spell each class one way")


def _annotation(csv_path: Path, line: int, ann_path: Path) -> tuple[dict, dict, int | None]:
    """(meta, boxes {frame: [(x, y, w, h)]}, keyframe) of an annotation JSON, its structure checked."""
    try:
        meta = json.loads(ann_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(ann_path, f"cannot read annotation JSON ({err})", "fix or remove the file") from err
    fix = 'write {"boxes": [[x, y, w, h] or null, one per frame], "keyframe": k}'
    if not isinstance(meta, dict) or not isinstance(meta.get("boxes", []), list):
        raise DataError(ann_path, f"annotation of row {line} is not an object with a list of boxes", fix)
    boxes = {}
    for i, b in enumerate(meta.get("boxes", [])):
        if b is None or b == []:
            continue
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)) or b[2] <= 0 \
                or b[3] <= 0:
            raise DataError(ann_path, f"frame {i}: box {b!r} is not [x, y, w, h] with positive w and h", fix)
        boxes[i] = [tuple(b)]
    keyframe = meta.get("keyframe")
    if keyframe is not None and (isinstance(keyframe, bool) or not isinstance(keyframe, int) or keyframe < 0):
        raise DataError(ann_path, f"keyframe {keyframe!r} is not a frame index", fix)
    return meta, boxes, keyframe


def _parse_box(csv_path: Path, line: int, text: str) -> tuple[float, float, float, float]:
    """'x y w h' (spaces, commas or semicolons) -> (x, y, w, h) with positive w and h."""
    parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise DataError(csv_path, f"row {line}: box {text!r} is not four numbers x y w h",
                        "write the box as 'x y w h' in pixels") from None
    if w <= 0 or h <= 0:
        raise DataError(csv_path, f"row {line}: box {text!r} has zero or negative width/height",
                        "fix the box or leave the cell empty")
    return (x, y, w, h)


def load_manifest(path: str | Path, labels: Sequence[str] | None = None, source: str = "manifest") -> list[VideoRecord]:
    """Clips listed in a manifest CSV (a file, or a folder holding manifest.csv)."""
    csv_path = _manifest_file(path, "manifest.csv")
    rows = _rows(csv_path, REQUIRED)
    _check_label_spellings(csv_path, rows)
    records, seen, missing, outside, ids = [], {}, [], [], {}
    for line, row in enumerate(rows, start=2):
        full = _check_row(csv_path, line, row, labels, seen)
        if not full.exists():
            missing.append(f"row {line}: file {row['path']!r} does not exist")
            continue
        boxes, keyframe, meta = {}, None, {}
        if row.get("annotation"):
            meta, boxes, keyframe = _annotation(csv_path, line, csv_path.parent / row["annotation"])
        if row.get("keyframe"):
            try:
                keyframe = int(row["keyframe"])
            except ValueError:
                keyframe = -1
            if keyframe < 0:
                raise DataError(csv_path, f"row {line}: keyframe {row['keyframe']!r} is not a frame index",
                                "give a 0-based frame number or leave the cell empty")
        if row.get("box"):
            box = _parse_box(csv_path, line, row["box"])
            if keyframe is None:
                raise DataError(csv_path, f"row {line}: a box needs its keyframe", "fill the keyframe column")
            boxes.setdefault(keyframe, []).append(box)
        video_id = meta.get("video_id") or Path(row["path"]).as_posix()  # suffix kept: a.mp4 and a.avi differ
        if isinstance(video_id, int) and not isinstance(video_id, bool):  # COCO / ImageNet-VID ids are numbers
            video_id = str(video_id)
        if not isinstance(video_id, str) or control_characters(video_id):
            raise DataError(csv_path.parent / row["annotation"], f"row {line}: video_id {video_id!r} is not plain text",
                            "give the annotation a text video_id, or leave it out (the path is the id)")
        if video_id in ids:  # one id for two clips would make them one video for the leakage check
            raise DataError(csv_path, f"row {line}: video_id {video_id!r} is also row {ids[video_id]}'s",
                            "give each clip its own video_id in its annotation (or leave it out: the path is the id)")
        ids[video_id] = line
        records.append(VideoRecord(video_id=video_id, path=full,
                                   label=row["label"], patient_id=row["patient_id"], split=row["split"],
                                   source=source, licence=row.get("licence", ""), boxes=boxes,
                                   keyframe=keyframe, meta=meta))
        outside += [f"row {line}: {problem}" for problem in outside_clip(records[-1])]
    _check_files(csv_path, missing)
    if outside:
        shown = "; ".join(outside[:20]) + (f"; and {len(outside) - 20} more" if len(outside) > 20 else "")
        raise DataError(csv_path, shown, "boxes are x y w h in pixels of the clip's own frames (x, y: top-left "
                        "corner; not x1 y1 x2 y2) and frames count from 0; fix them or leave the cells empty")
    return records


def load_image_manifest(path: str | Path, labels: Sequence[str] | None = None,
                        source: str = "manifest") -> list[ImageRecord]:
    """Still images listed in a CSV `path,mask_path,label,split,patient_id` (mask_path may be empty)."""
    csv_path = _manifest_file(path, "images.csv")
    rows = _rows(csv_path, REQUIRED + ("mask_path",))
    _check_label_spellings(csv_path, rows)
    records, seen, missing = [], {}, []
    for line, row in enumerate(rows, start=2):
        full = _check_row(csv_path, line, row, labels, seen)
        masks = [(csv_path.parent / m).resolve() for m in row["mask_path"].split(";") if m]
        missing += [f"row {line}: file {p!r} does not exist" for p in [row["path"]] * (not full.exists()) +
                    [m.name for m in masks if not m.exists()]]
        records.append(ImageRecord(image_id=Path(row["path"]).with_suffix("").as_posix(), path=full,
                                   label=row["label"], patient_id=row["patient_id"], mask_paths=masks,
                                   split=row["split"], source=source))
    _check_files(csv_path, missing)
    return records

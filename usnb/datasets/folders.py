"""Labelled videos kept the commonest way: one folder per class, `ROOT/<label>/<clip>`, a clip being a video file or a
folder of numbered frames.

Patients: from `ROOT/patients.csv` (columns `clip,patient_id`, `clip` as `<label>/<name>`), or from the clip's name
with `patient_pattern` (a regular expression whose first group is the patient id, e.g. `^(p\\d+)_`); without either,
each clip is its own patient and a warning says so (two clips of one patient could then land in different splits).
There is no split: the notebook splits by patient. Names starting with '.' are ignored (.DS_Store, editor files);
anything else that is neither a video nor a frame folder is counted in a warning. See data_cards/inhouse.md.
"""
from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

from ..errors import DataError, DataWarning
from ..io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_readable, frame_files
from .records import ImageRecord, VideoRecord, control_characters

PATIENTS = "patients.csv"


def _clips(folder: Path) -> tuple[list[Path], list[Path]]:
    """(clips, other entries) of one class folder, in name order."""
    clips, other = [], []
    for entry in sorted(check_readable(folder).iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            clips.append(entry)
        elif entry.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
            frame_files(entry)  # a frame folder with a gap or a doubled frame fails here, naming it
            clips.append(entry)
        else:
            other.append(entry)
    return clips, other


def _patient_table(root: Path, path: Path) -> dict[str, str]:
    """clip ('label/name') -> patient id from a CSV `clip,patient_id`."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"clip", "patient_id"} <= set(reader.fieldnames or []):
                raise DataError(path, f"needs the columns clip,patient_id, has {reader.fieldnames}",
                                "write one row per clip: clip (as label/name) and its patient_id")
            table = {}
            for line, row in enumerate(reader, start=2):
                clip, patient = (row["clip"] or "").strip().strip("/"), (row["patient_id"] or "").strip()
                if not clip or not patient:
                    raise DataError(path, f"row {line}: empty clip or patient_id", "fill both cells")
                if clip in table:
                    raise DataError(path, f"row {line}: clip {clip!r} listed twice", "list each clip once")
                table[clip] = patient
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err})", "save the CSV as UTF-8") from err
    return table


def load_folders(root: str | Path, patients: str | Path | None = None, patient_pattern: str | None = None,
                 source: str = "folders") -> list[VideoRecord]:
    """Every clip under `root/<label>/`, labelled by its folder's name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a folder", "pass the folder that holds one subfolder per class")
    classes = sorted(p for p in check_readable(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(root, "holds no class folders", "put each class's clips in ROOT/<label>/")
    table_path = Path(patients) if patients else root / PATIENTS
    table = _patient_table(root, table_path) if (patients or table_path.is_file()) else None
    if patients and table is None:
        raise DataError(table_path, "patients file not found", "pass the CSV clip,patient_id or leave it out")
    pattern = re.compile(patient_pattern) if patient_pattern else None
    if pattern is not None and pattern.groups < 1:
        raise ValueError(f"patient_pattern {patient_pattern!r} has no group; write the patient id part in "
                         "parentheses, e.g. '^(p\\d+)_'")
    records, skipped, unmatched = [], [], []
    for folder in classes:
        clips, other = _clips(folder)
        skipped += other
        for clip in clips:
            name = f"{folder.name}/{clip.name}"
            if table is not None:
                patient = table.get(name)
            elif pattern is not None:
                match = pattern.search(clip.stem if clip.is_file() else clip.name)
                patient = match.group(1) if match else None
            else:
                patient = name
            if patient is None:
                unmatched.append(name)
                continue
            if control_characters(name) or control_characters(patient):
                raise DataError(clip if control_characters(name) else table_path,
                                f"clip {name!r} (patient {patient!r}) holds a control character",
                                "rename it: ids, labels and patients are plain text")
            records.append(VideoRecord(video_id=name, path=clip.resolve(), label=folder.name, patient_id=patient,
                                       source=source))
    if unmatched:
        where = f"in {table_path}" if table is not None else f"matched by patient_pattern {patient_pattern!r}"
        raise DataError(root, f"{len(unmatched)} clip(s) have no patient {where}: {unmatched[:10]}",
                        "give every clip a patient (one row in patients.csv, or a pattern that matches every name)")
    if not records:
        raise DataError(root, f"no clips in its class folders {[c.name for c in classes]}",
                        f"put video files ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders in ROOT/<label>/")
    if skipped:
        warnings.warn(f"folders {root}: {len(skipped)} entries are neither videos nor frame folders and were left out "
                      f"(e.g. {[str(p.relative_to(root)) for p in skipped[:3]]})", DataWarning, stacklevel=2)
    if table is None and pattern is None:
        warnings.warn(f"folders {root}: no {PATIENTS} and no patient_pattern: each of the {len(records)} clips is "
                      "taken as its own patient, so two clips of one patient may land in different splits; give "
                      f"{PATIENTS} (clip,patient_id) or patient_pattern", DataWarning, stacklevel=2)
    extra = sorted(set(table or ()) - {r.video_id for r in records})
    if extra:
        warnings.warn(f"{table_path}: {len(extra)} listed clip(s) are not in the class folders (e.g. {extra[:3]})",
                      DataWarning, stacklevel=2)
    return records


def load_image_folders(root: str | Path, source: str = "folders") -> list[ImageRecord]:
    """Still images under `root/<label>/` (KGA-Net's image branch), labelled by their folder's name; each image is its
    own patient (the image branch trains on every image and is never scored)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a folder", "pass the folder that holds one subfolder of images per class")
    records = []
    for folder in sorted(p for p in check_readable(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            name = f"{folder.name}/{image.name}"
            records.append(ImageRecord(image_id=name, path=image.resolve(), label=folder.name, patient_id=name,
                                       source=source))
    if not records:
        raise DataError(root, "no still images in class folders",
                        f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) in ROOT/<label>/")
    return records

"""POCUS (Born et al., Applied Sciences 2021): lung clips labelled by their file-name prefix.

See data_cards/pocus.md. Every clip is loaded, GIFs (through PyAV) and the one clip in
`linear/label_uncertain/` (label `uncertain`) included; tasks choose what to exclude.
`patient_id` is `pocus-<id>` where the source sheet `SOURCE_dataset_metadata.csv` gives the clip a
`Patient ID / Name` (joined on `Filename` = file stem), else the file stem.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

from ..errors import DataError, DataWarning
from ..io import VIDEO_SUFFIXES
from .records import VideoRecord, content_hash

PREFIX_LABELS = {"cov": "covid", "pneu": "pneumonia", "reg": "regular", "vir": "viral"}
METADATA = "SOURCE_dataset_metadata.csv"
PATIENT_COLUMN = "Patient ID / Name"


def _sheet(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """The rows of a CSV sheet that must hold `columns`; [] if it is absent; a DataError naming it otherwise."""
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"sheet lacks column(s) {missing}", "restore the file from the POCUS download")
            return list(reader)
    except UnicodeDecodeError as err:
        raise DataError(path, f"sheet is not UTF-8 text ({err.reason})", "save it as UTF-8") from err


def _metadata_rows(root: Path) -> dict[str, list[dict]]:
    """Rows of the source metadata sheet by `Filename` (file name without extension); {} if absent."""
    rows: dict[str, list[dict]] = {}
    for r in _sheet(root / METADATA, ("Filename", PATIENT_COLUMN)):
        rows.setdefault((r.get("Filename") or "").strip(), []).append(r)
    return rows


def _metadata_patient(rows: list[dict], probe: str, rel: str) -> str:
    """The raw `Patient ID / Name` of a clip ('' if none); of several rows for one file name,
    the one whose `Current location` matches the clip's folder."""
    if len(rows) > 1:
        folder = rel.rsplit("/", 1)[0].lower()
        rows = [r for r in rows if (r.get("Current location") or "").strip().lower().endswith(folder)] or \
               [r for r in rows if (r.get("Current location") or "").strip().lower().endswith(probe)] or rows
    return (rows[0].get(PATIENT_COLUMN) or "").strip() if rows else ""


def pocus_label(path: Path) -> str:
    """Label from the file-name prefix (Cov, Pneu/pneu, Reg, Vir); `uncertain` in label_uncertain/."""
    if path.parent.name == "label_uncertain":
        return "uncertain"
    head = path.name.replace("-", "_").split("_")[0].lower()
    if head not in PREFIX_LABELS:
        raise DataError(path, f"file-name prefix {head!r} is not one of Cov, Pneu, Reg, Vir",
                        "rename the clip with its class prefix, or move it to label_uncertain/")
    return PREFIX_LABELS[head]


def load_pocus(root: str | Path) -> list[VideoRecord]:
    """Clips below `root/pocus_videos/` with label, probe (convex/linear) and per-clip licence."""
    root = Path(root)
    videos = root / "pocus_videos"
    if not videos.is_dir():
        raise DataError(videos, "POCUS folder pocus_videos/ not found",
                        "pass the folder that holds pocus_videos/ (see data_cards/pocus.md)")
    licences = {r["relpath"]: r for r in _sheet(root / "LICENSES_PER_FILE.csv", ("relpath", "License"))}
    hashes = {r["relpath"]: r["sha256"] for r in _sheet(root / "MANIFEST.csv", ("relpath", "sha256"))}
    sheet = _metadata_rows(root)
    records, changed = [], []
    for path in sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        rel = path.relative_to(root).as_posix()
        lic = licences.get(rel, {})
        probe = path.relative_to(videos).parts[0]
        raw_patient = _metadata_patient(sheet.get(path.stem, []), probe, rel)
        meta = {"probe": probe, "source_url": lic.get("source_url", ""), "metadata_patient_id": raw_patient}
        licence = lic.get("License", "")
        if lic.get("source_url"):
            licence = f"{licence}, {lic['source_url']}".strip(", ")
        records.append(VideoRecord(video_id=path.stem, path=path, label=pocus_label(path),
                                   patient_id=f"pocus-{raw_patient}" if raw_patient else path.stem,
                                   source="pocus", licence=licence, meta=meta))
        if rel in hashes and content_hash(records[-1]) != hashes[rel]:  # the leakage check uses the file's own hash
            changed.append(rel)
    if not records:
        raise DataError(videos, "no video files found", "check the folder holds the POCUS clips")
    if changed:
        warnings.warn(f"POCUS {root}: {len(changed)} clip(s) differ from MANIFEST.csv's sha256 (e.g. {changed[:3]}): "
                      "changed since the manifest was written; the leakage check uses their content", DataWarning)
    return records

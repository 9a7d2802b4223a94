"""A notebook's two-class task from any source: which labels are positive, which are left out, and the split.

Every notebook (and `usnb data check`) goes through these three steps, so a folder of labelled videos trains every
paper the same way:

1. `task_labels(records, positive, drop, ...)`: the source's labels -> the notebook's two classes (`binary_task`);
   with `positive=None`, labels that already are the notebook's classes stay, and a public set's usual task is used
   (POCUS: covid, pneumonia and viral are pathology; BUSI's normal images are left out).
2. `task_splits(records, folds, fold, ...)`: the source's own split where every clip has one (BUSV, a manifest's split
   column); otherwise stratified by class and grouped by patient into train/val/test fractions, or fold `fold` of a
   k-fold by patient (the rest of the patients: 80 % train, 20 % validation for the threshold).
3. `check_task(parts, classes)`: every class in the training and test parts; the leakage check (patients and videos).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from .datasets.records import Record
from .errors import DataError
from .splits import assign_splits, check_leakage, kfold, stable_order

# A public set's usual two-class task: (positive labels, dropped labels, class names; None: the notebook's own).
DEFAULT_TASKS = {
    "pocus": (("covid", "pneumonia", "viral"), ("uncertain",), ("regular", "pathology")),
    "busi": (("malignant",), ("normal",), None),
}
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
PARTS = ("train", "val", "test")


def _names(value: str | Sequence[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def binary_task(records: Sequence[Record], positive: str | Sequence[str], drop: str | Sequence[str] = (),
                classes: tuple[str, str] = ("negative", "positive"), strict: bool = True) -> list[Record]:
    """The records relabelled for a two-class task: a label in `positive` becomes classes[1], every other label
    classes[0]; labels in `drop` are left out. The source's own label stays in `meta["source_label"]`.

    A name in `positive` or `drop` that no record carries is a ValueError listing the labels there are (a typo
    would otherwise make an empty class without a word); `strict=False` only asks that some positive label is there
    (still images relabelled with their videos' task, whose labels may be fewer).
    """
    positive, drop = _names(positive), _names(drop)
    present = sorted({r.label for r in records})
    unknown = [name for name in positive + drop if name not in present]
    if unknown and (strict or not set(positive) & set(present)):
        raise ValueError(f"label(s) {unknown} in positive/drop are not labels of these records; they have {present}")
    if set(positive) & set(drop):
        raise ValueError(f"label(s) {sorted(set(positive) & set(drop))} are both positive and dropped; pick one")
    if not positive:
        raise ValueError(f"positive names no label; choose the positive class among {present}")
    out = []
    for r in records:
        if r.label in drop:
            continue
        label = classes[1] if r.label in positive else classes[0]
        out.append(dataclasses.replace(r, label=label, meta={**r.meta, "source_label": r.label}))
    return out


def class_names(records: Sequence[Record], positive: Sequence[str], drop: Sequence[str]) -> tuple[str, str]:
    """(negative, positive) names: the two labels themselves where the source has exactly two left and one is
    positive (pathology vs regular), else 'not <positive>' and the positive labels joined by '/'."""
    left = sorted({r.label for r in records} - set(drop))
    if len(left) == 2 and len(positive) == 1:
        return (left[0] if left[1] == positive[0] else left[1]), positive[0]
    pos = "/".join(positive)
    return f"not {pos}", pos


def task_labels(records: Sequence[Record], source: str, classes: tuple[str, str],
                positive: str | Sequence[str] | None = None, drop: str | Sequence[str] | None = None,
                strict: bool = True) -> tuple[list[Record], tuple[str, str]]:
    """(records labelled with the task's two classes, the two class names).

    `positive=None`: records whose labels are all among `classes` keep them (the phantoms, BUSV, a manifest labelled
    benign/malignant); a source in DEFAULT_TASKS takes its usual task; anything else is a ValueError asking for
    `positive`. With `positive`, the classes are named by `class_names`, the source's labels stay in meta.
    """
    positive, drop = _names(positive), _names(drop)
    labels = sorted({r.label for r in records} - set(drop))
    if not positive:
        if set(labels) <= set(classes):
            return [r for r in records if r.label not in drop], classes
        if source not in DEFAULT_TASKS:
            raise ValueError(f"{source}: labels {labels} are not this notebook's classes {list(classes)}; say which "
                             f"label(s) form the positive class, e.g. -p positive '[\"{labels[-1]}\"]' (every other "
                             "label is negative; -p drop '[...]' leaves labels out)")
        positive, default_drop, names = DEFAULT_TASKS[source]
        present = {r.label for r in records}  # a copy of the set may lack a label (POCUS without its `uncertain`)
        positive = [label for label in positive if label in present] or list(positive)  # none there: said below
        drop, names = drop or [label for label in default_drop if label in present], names or classes
    else:
        names = class_names(records, positive, drop)
    return binary_task(records, positive, drop, names, strict=strict), names


def load_task(dataset: str, data_dir: str | Path | None, classes: tuple[str, str],
              positive: str | Sequence[str] | None = None, drop: str | Sequence[str] | None = None,
              patient_pattern: str | None = None) -> tuple[list[Record], tuple[str, str]]:
    """Clips of any video source (`usnb.sources.VIDEO_SOURCES`) with the task's labels (`task_labels`): the one way
    every notebook reads its videos. `data_dir` None: `usnb.paths.dataset_root` (USNB_<DATASET>_DIR, else
    USNB_DATA_DIR/<dataset>; the phantom: the default one, a notebook passes the folder of its own phantom);
    `patient_pattern`: the `folders` source's patient ids."""
    from .paths import dataset_root
    from .sources import VIDEO_SOURCES, load

    if dataset not in VIDEO_SOURCES:
        hint = " (BUSI holds still images: give it to KGA-Net as images='busi')" if dataset == "busi" else ""
        raise ValueError(f"dataset must be one of {list(VIDEO_SOURCES)}, got {dataset!r}{hint}")
    if dataset != "phantom" and data_dir is None and not dataset_root(dataset).exists():
        raise ValueError(f"dataset={dataset!r} needs data_dir: the folder holding the data (or put it at "
                         f"{dataset_root(dataset)}, or set USNB_{dataset.upper()}_DIR); see data_cards/")
    kwargs = {"patient_pattern": patient_pattern} if dataset == "folders" and patient_pattern else {}
    return task_labels(load(dataset, data_dir, **kwargs), dataset, classes, positive, drop)


def own_split(records: Sequence[Record]) -> dict[str, list] | None:
    """{'train', 'val', 'test'} -> records where every clip has a split, None where none has; a ValueError where
    only some have one."""
    own = [r for r in records if r.split]
    if not own:
        return None
    if len(own) < len(records):
        raise ValueError(f"{len(own)} of {len(records)} clips have a split and {len(records) - len(own)} do "
                         "not; fill the split column for every clip or for none (then the notebook splits by "
                         "patient)")
    bad = sorted({r.split for r in own} - set(PARTS))
    if bad:
        raise ValueError(f"splits {bad} are not train, val or test; rename them")
    return {s: [r for r in records if r.split == s] for s in PARTS}


def task_splits(records: Sequence[Record], folds: int | None = None, fold: int = 0,
                fractions: Mapping[str, float] | None = None, seed: int = 0) -> tuple[dict[str, list], list[str]]:
    """({'train', 'val', 'test'} -> records, notes). The split does not depend on the training seed (`seed` here is
    the split's own seed, 0 unless a notebook asks): every seed of a batch trains on the same patients. Nor on the
    order a source lists its clips: a split made here lists each part by patient, then file name."""
    parts = own_split(records) if folds is None else None
    if parts is not None:
        return parts, ["the source's own split"]
    _enough_patients(records, folds or 3)
    records = sorted(records, key=stable_order)  # the same clips listed in any order split and train alike
    if folds is None:
        fractions = dict(fractions or FRACTIONS)
        split = assign_splits(records, fractions, by="patient", seed=seed)
        note = ("split by patient, stratified by class: " +
                ", ".join(f"{k} {v:.0%}" for k, v in fractions.items()) + f" (split seed {seed})")
        return {s: [r for r in split if r.split == s] for s in PARTS}, [note]
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be 0 .. {folds - 1} for folds={folds}, got {fold}")
    train, test = kfold(records, k=folds, by="patient", seed=seed)[fold]
    inner = assign_splits(train, {"train": 0.8, "val": 0.2}, by="patient", seed=seed)
    parts = {"train": [r for r in inner if r.split == "train"], "val": [r for r in inner if r.split == "val"],
             "test": [dataclasses.replace(r, split="test") for r in test]}
    return parts, [f"fold {fold + 1} of {folds} by patient (stratified; split seed {seed}): its test patients are "
                   "held out, 20 % of the others choose the threshold"]


def _enough_patients(records: Sequence[Record], parts: int) -> None:
    """Each class needs a patient for every part (train, val, test; or each fold)."""
    patients: dict[str, set] = {}
    for r in records:
        patients.setdefault(r.label, set()).add(r.patient_id)
    few = {label: len(p) for label, p in sorted(patients.items()) if len(p) < parts}
    if few:
        raise ValueError(f"too few patients of class(es) {few} to split into {parts} parts (each part needs one of "
                         "every class); add clips of other patients, or use fewer folds")
    if len(patients) < 2:
        raise ValueError(f"only one class ({sorted(patients)}) after the task's mapping; check positive and drop")


def check_task(parts: Mapping[str, Sequence[Record]], classes: Sequence[str], where: str = "") -> list[str]:
    """Refuse a split that cannot train or be scored; returns notes (e.g. no validation part). The leakage check
    (patients and videos, never across parts) always runs."""
    counts = {s: Counter(r.label for r in recs) for s, recs in parts.items()}
    for part in ("train", "test"):
        missing = [c for c in classes if not counts.get(part, {}).get(c)]
        if missing:
            raise DataError(where or part, f"the {part} split has no clip of class(es) {missing} "
                            f"(clips per split and class: { {s: dict(c) for s, c in counts.items()} })",
                            "give every class clips in train and test (the split column), or leave the split "
                            "empty for every clip so that the notebook splits by patient")
    outside = sorted({r.label for recs in parts.values() for r in recs} - set(classes))
    if outside:
        raise DataError(where or "labels", f"labels {outside} are outside the task's classes {list(classes)}",
                        "pass positive (and drop) so that every label maps to a class")
    check_leakage({s: list(r) for s, r in parts.items() if r}, content=False)
    return [] if parts.get("val") else ["no validation split: Youden thresholds are chosen on the test split"]


def task_mapping(records: Sequence[Record]) -> str:
    """What `binary_task` did, per class and split: 'pathology <- covid 18, pneumonia 22 | train 30, ...'."""
    lines = []
    for label in sorted({r.label for r in records}):
        mine = [r for r in records if r.label == label]
        sources = Counter(r.meta.get("source_label", r.label) for r in mine)
        splits = Counter(r.split or "-" for r in mine)
        patients = len({r.patient_id for r in mine})
        lines.append(f"{label} <- " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))
                     + " | " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())) + f" | {patients} patients")
    return "\n".join(lines)

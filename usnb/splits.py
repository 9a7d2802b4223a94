"""Splits by video or by patient (never by frame), stratified k-fold, and a leakage check."""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .datasets.records import Record, content_hash, record_id
from .errors import LeakageError


def _group(record: Record, by: str) -> str:
    if by == "patient":
        return record.patient_id
    if by == "video":
        return record_id(record)
    raise ValueError(f"split by 'patient' or 'video', got {by!r}")


def _group_labels(records: Sequence[Record], by: str) -> dict[str, str]:
    """Each group's label: its most common label (ties: alphabetical)."""
    votes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        votes[_group(r, by)][r.label] += 1
    return {g: sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for g, v in votes.items()}


def split_groups(group_labels: Mapping[str, str], fractions: Mapping[str, float],
                 rng: np.random.Generator) -> dict[str, str]:
    """{group: part}: each label's groups (sorted) in shuffled order, cut by `fractions` (stratified)."""
    names, bounds = list(fractions), np.cumsum(list(fractions.values()))
    part_of = {}
    for label in sorted(set(group_labels.values())):
        groups = sorted(g for g, lab in group_labels.items() if lab == label)
        for rank, i in enumerate(rng.permutation(len(groups))):
            cut = int(np.searchsorted(bounds * len(groups), rank, side="right"))
            part_of[groups[i]] = names[min(cut, len(names) - 1)]
    return part_of


def assign_splits(records: Sequence[Record], fractions: Mapping[str, float] | None = None, by: str = "patient",
                  seed: int = 0) -> list[Record]:
    """Copies of `records` with `split` set: whole groups (patients or videos) per part, stratified by label."""
    fractions = dict(fractions or {"train": 0.6, "val": 0.2, "test": 0.2})
    if abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    part_of = split_groups(_group_labels(records, by), fractions, np.random.default_rng(seed))
    out = [dataclasses.replace(r, split=part_of[_group(r, by)]) for r in records]
    check_leakage(out, content=False, keys=_checked(by))
    return out


def _checked(by: str) -> tuple[str, ...]:
    """A split by patient must keep patients and videos apart; a split by video (asked for when patient
    ids are unknown or not wanted) keeps videos apart."""
    return ("patient", "video") if by == "patient" else ("video",)


def kfold(records: Sequence[Record], k: int = 5, by: str = "patient", seed: int = 0) -> list[tuple[list, list]]:
    """Stratified group k-fold: [(train_records, test_records)] with no group in both. The folds depend on the
    records, not on their order (the same clips listed by a manifest or found in class folders split alike)."""
    from sklearn.model_selection import StratifiedGroupKFold

    records = sorted(records, key=stable_order)
    per_class = _group_labels(records, by)
    few = {label: n for label in sorted(set(per_class.values()))
           if (n := sum(v == label for v in per_class.values())) < k}
    if few:
        raise ValueError(f"{k}-fold by {by} needs at least {k} {by}s of each class; class(es) {few} have fewer. "
                         "Fix: fewer folds (folds=...), or more clips of other patients")
    groups = [_group(r, by) for r in records]
    labels = [r.label for r in records]
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = []
    for train, test in folds.split(np.zeros(len(records)), labels, groups):
        pair = ([records[i] for i in train], [records[i] for i in test])
        check_leakage({"train": pair[0], "test": pair[1]}, content=False, keys=_checked(by))
        out.append(pair)
    return out


def stable_order(record: Record) -> tuple[str, str]:
    """A sort key that does not depend on how a source names or lists its clips: patient, then file name."""
    return record.patient_id, Path(record.path).name


def check_leakage(parts: Sequence[Record] | Mapping[str, Sequence[Record]], content: bool = True,
                  keys: Sequence[str] = ("patient", "video")) -> None:
    """Refuse a split where a patient, a video or an identical clip (content hash) is in two parts.

    `parts`: {part name: records}, or records whose `split` field names the part; `keys`: which of
    'patient' and 'video' to check; `content`: also compare clip contents (reads the files).
    """
    if not isinstance(parts, Mapping):
        grouped: dict[str, list[Record]] = defaultdict(list)
        for r in parts:
            grouped[r.split or "unassigned"].append(r)
        parts = grouped
    getters = {"patient": lambda r: r.patient_id, "video": record_id}
    unknown = set(keys) - set(getters)
    if unknown:
        raise ValueError(f"leakage keys must be 'patient' and/or 'video', got {sorted(unknown)}")
    checks = {k: getters[k] for k in keys}
    if content:
        checks["identical clip"] = content_hash
    problems = []
    for what, key in checks.items():
        seen: dict[str, tuple[str, Record]] = {}
        for part, records in parts.items():
            for r in records:
                k = key(r)
                if k in seen and seen[k][0] != part:
                    other = seen[k][1]
                    problems.append(f"{what} {k if what != 'identical clip' else k[:12]} is in {seen[k][0]!r} "
                                    f"({other.path}) and in {part!r} ({r.path})")
                seen.setdefault(k, (part, r))
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise LeakageError("split leaks between its parts: " + "; ".join(problems[:5]) + more +
                           ". Fix: split by patient with usnb.splits.assign_splits(records, by='patient'), "
                           "and drop duplicate clips")


def fraction_subset(records: Sequence[Record], fraction: float, seed: int = 0) -> list[Record]:
    """A stratified `fraction` of the labelled clips (at least one per class); nested: 5 % inside 10 % inside ... ."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must lie in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted({r.label for r in records}):
        group = [r for r in records if r.label == label]
        order = rng.permutation(len(group))
        out += [group[i] for i in order[:max(1, math.ceil(fraction * len(group)))]]
    return out

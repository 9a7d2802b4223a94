"""The data sources by name: `load("busv", root)` for the CLI's `data check` and any notebook that takes a source.

It sits above `usnb.datasets` (the public sets and manifests) and `usnb.phantom` (which reads its own manifests
with `usnb.datasets`), so neither imports the other back.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from .datasets import load_busi, load_busv, load_folders, load_manifest, load_pocus
from .datasets.records import Record
from .errors import DataError
from .io import check_readable, unreadable
from .paths import data_dir, dataset_root
from .phantom import ensure_phantom, load_phantom

CARDS = {"manifest": "inhouse.md", "folders": "inhouse.md"}  # data card of a source, where not <source>.md
SOURCES: dict[str, Callable] = {
    "phantom": load_phantom,
    "busv": load_busv,
    "busi": load_busi,
    "pocus": load_pocus,
    "manifest": load_manifest,
    "folders": load_folders,
}


def load(source: str, root: str | Path | None = None, **kwargs) -> list[Record]:
    """Records of a data set: `source` one of SOURCES; `root` defaults to USNB_DATA_DIR/<source>."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; use one of {sorted(SOURCES)}")
    if source == "phantom" and root is None:
        root = ensure_phantom("breast")
    folder = dataset_root(source, root)
    where = (f"pass the folder holding the {source} data, or put it at USNB_DATA_DIR/{source} (USNB_DATA_DIR is "
             f"now {data_dir()}); see data_cards/{CARDS.get(source, source + '.md')}")
    if not folder.exists():
        raise DataError(folder, f"{source} data folder does not exist", where)
    if folder.is_dir() and not any(check_readable(folder).iterdir()):
        raise DataError(folder, f"{source} data folder is empty", where)
    try:
        return SOURCES[source](folder, **kwargs)
    except PermissionError as err:  # a listing or side file the adapter opened itself
        raise unreadable(err.filename or folder) from err


def binary_task(records: Sequence[Record], positive: str | Sequence[str], drop: str | Sequence[str] = (),
                classes: tuple[str, str] = ("negative", "positive")) -> list[Record]:
    """The records relabelled for a two-class task: a label in `positive` becomes classes[1], every other label
    classes[0]; labels in `drop` are left out. The source's own label stays in `meta["source_label"]`.

    A name in `positive` or `drop` that no record carries is a ValueError listing the labels there are (a typo
    would otherwise make an empty class without a word).
    """
    positive = [positive] if isinstance(positive, str) else list(positive)
    drop = [drop] if isinstance(drop, str) else list(drop)
    present = sorted({r.label for r in records})
    unknown = [name for name in positive + drop if name not in present]
    if unknown:
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


def task_mapping(records: Sequence[Record]) -> str:
    """What `binary_task` did, per class and split: 'pathology <- covid 18, pneumonia 22 | train 30, ...'."""
    lines = []
    for label in sorted({r.label for r in records}):
        mine = [r for r in records if r.label == label]
        sources = Counter(r.meta.get("source_label", r.label) for r in mine)
        splits = Counter(r.split or "-" for r in mine)
        lines.append(f"{label} <- " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))
                     + " | " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    return "\n".join(lines)

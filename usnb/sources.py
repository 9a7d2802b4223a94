"""The data sources by name: `load("busv", root)` for the CLI's `data check` and any notebook that takes a source.

It sits above `usnb.datasets` (the public sets and manifests) and `usnb.phantom` (which reads its own manifests
with `usnb.datasets`), so neither imports the other back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

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

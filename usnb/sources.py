"""The data sources by name: `load("busv", root)` for the CLI's `data check` and any notebook that takes a source.

It sits above `usnb.datasets` (the public sets and manifests) and `usnb.phantom` (which reads its own manifests
with `usnb.datasets`), so neither imports the other back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .datasets import (load_busi, load_busv, load_folders, load_image_folders, load_image_manifest, load_manifest,
                       load_pocus)
from .datasets.records import Record
from .errors import DataError
from .io import check_readable, unreadable
from .paths import data_dir, dataset_root
from .phantom import ensure_phantom, load_phantom, load_phantom_images

CARDS = {"manifest": "inhouse.md", "folders": "inhouse.md"}  # data card of a source, where not <source>.md
SOURCES: dict[str, Callable] = {
    "phantom": load_phantom,
    "busv": load_busv,
    "busi": load_busi,
    "pocus": load_pocus,
    "manifest": load_manifest,
    "folders": load_folders,
}
VIDEO_SOURCES = ("phantom", "busv", "pocus", "manifest", "folders")  # what a video notebook trains on
# still images (KGA-Net's image branch): BUSI, a folder of images per class, a manifest images.csv, the phantom's stills
IMAGE_SOURCES: dict[str, Callable] = {
    "busi": load_busi,
    "folders": load_image_folders,
    "manifest": load_image_manifest,
    "phantom": load_phantom_images,
}


def load(source: str, root: str | Path | None = None, images: bool = False, **kwargs) -> list[Record]:
    """Records of a data set: `source` one of SOURCES (with `images`: IMAGE_SOURCES, the still images); `root`
    defaults to USNB_DATA_DIR/<source>."""
    table = IMAGE_SOURCES if images else SOURCES
    if source not in table:
        raise ValueError(f"unknown {'image' if images else 'data'} source {source!r}; use one of {sorted(table)}")
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
        return table[source](folder, **kwargs)
    except PermissionError as err:  # a listing or side file the adapter opened itself
        raise unreadable(err.filename or folder) from err

"""Data set adapters: every source loads into the same records (see records.py and data_cards/). The registry of
sources by name (with the phantom) is `usnb.sources`."""
from __future__ import annotations

from .busi import load_busi
from .busv import load_busv
from .folders import load_folders, load_image_folders
from .manifest import load_image_manifest, load_manifest
from .pocus import load_pocus
from .records import ImageRecord, Record, VideoRecord, class_counts, content_hash, record_id

__all__ = ["load_busi", "load_busv", "load_folders", "load_image_folders", "load_manifest", "load_image_manifest",
           "load_pocus", "ImageRecord", "VideoRecord", "Record", "class_counts", "content_hash", "record_id"]

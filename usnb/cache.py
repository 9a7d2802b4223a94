"""uint8 clip cache: each clip is decoded once into a memory-mapped `.npy` `(T, H, W, C)`.

Training reads frames from the cache (a memory copy), never from the decoder: decord leaks and
seeks badly, and decoding is the slowest thing a loader can do. The key covers the file's
path, size and modification time and the decode settings, so an edited file is decoded again.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from . import io
from .datasets.records import VideoRecord
from .paths import atomic_write, cache_dir

CACHE_VERSION = 1


class ClipCache:
    """Decoded clips at one frame size: `cache.get(record)` -> read-only uint8 memmap `(T, H, W, C)`."""

    def __init__(self, root: str | Path | None = None, size: tuple[int, int] | None = (112, 112),
                 grayscale: bool = True):
        self.root = Path(root) if root else cache_dir()
        self.size, self.grayscale = (tuple(size) if size else None), grayscale
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, path: str | Path) -> str:
        path = io.check_readable(path).resolve()
        if path.is_dir():  # a frame folder: its frame count and newest frame
            files = io.frame_files(path)
            extra, mtime = len(files), max(p.stat().st_mtime_ns for p in files)
        else:
            stat = path.stat()
            extra, mtime = stat.st_size, stat.st_mtime_ns
        text = f"{CACHE_VERSION}|{path}|{extra}|{mtime}|{self.size}|{self.grayscale}"
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def file(self, record: VideoRecord) -> Path:
        return self.root / f"{self.key(record.path)}.npy"

    def get(self, record: VideoRecord) -> np.ndarray:
        """The whole clip, decoding it on the first call only."""
        target = self.file(record)
        if not target.exists():
            frames = record.read(grayscale=self.grayscale, size=self.size)
            with atomic_write(target) as tmp:  # a reader never sees half a clip
                np.save(tmp, frames)
        return np.load(target, mmap_mode="r")

    def prefill(self, records: Sequence[VideoRecord], workers: int = 2, progress: bool = True) -> None:
        """Decode every clip not cached yet, `workers` at a time, with a progress bar."""
        from tqdm.auto import tqdm

        todo = [r for r in records if not self.file(r).exists()]
        with ThreadPoolExecutor(workers) as pool:
            for _ in tqdm(pool.map(self.get, todo), total=len(todo), disable=not progress or not todo,
                          desc="decoding clips into the cache"):
                pass

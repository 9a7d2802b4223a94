"""uint8 clip cache: each clip is decoded once into a memory-mapped `.npy` `(T, H, W, C)`.

Training reads frames from the cache (a memory copy), never from the decoder: decord leaks and
seeks badly, and decoding is the slowest thing a loader can do. The key covers the file's
path, size and modification time and the decode settings, so an edited file is decoded again. Each entry has a
sidecar `<key>.json` (shape and SHA-1 of the frames): an entry that is truncated, damaged or not a clip of these
settings is decoded again, with a warning that names the source file.

A clip longer than `max_frames` (default 1,024: about 34 s at 30 fps; every clip of the phantoms and of POCUS is
shorter) is cached as `max_frames` frames spread evenly over it, decoded by index (only those frames are kept), so
that an hour-long recording costs megabytes, not gigabytes; `native(record)` maps each cached frame back to its
frame in the file (boxes and keyframes are numbered by the file's frames), and `prefill` counts such clips in a
warning.

Frames of any shape become `size` frames by `fit` (`usnb.io.fit_geometry`): 'pad' (the default: the whole frame,
aspect kept, black bars), 'crop' (the centre, aspect kept) or 'stretch'; `boxes(record, boxes)` maps a clip's boxes
from its file's pixels to the cached frame's.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from . import io, live
from .datasets.records import VideoRecord
from .errors import DataError, DataWarning
from .paths import atomic_write, cache_dir
from .sampling import uniform_indices

CACHE_VERSION = 1
MAX_FRAMES = 1024
FIT = "pad"  # non-square frames keep their aspect ratio, letterboxed (io.fit_geometry); square frames are unchanged


class ClipCache:
    """Decoded clips at one frame size: `cache.get(record)` -> read-only uint8 memmap `(T, H, W, C)`."""

    def __init__(self, root: str | Path | None = None, size: tuple[int, int] | None = (112, 112),
                 grayscale: bool = True, max_frames: int | None = MAX_FRAMES, fit: str = FIT):
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise ValueError("max_frames (a notebook's max_clip_frames) must be a whole number >= 1 or None (every "
                             f"frame), got {max_frames!r}")
        self.root = Path(root) if root else cache_dir()
        self.size, self.grayscale, self.max_frames = (tuple(size) if size else None), grayscale, max_frames
        io.fit_geometry((1, 1), (1, 1), fit)  # an unknown fit fails here, naming the choices
        self.fit = fit
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise self._unwritable(err) from err
        self._checked: dict[str, tuple[int, int]] = {}  # entries verified by this process: (bytes, `_sample` CRC)
        self._native: dict[str, np.ndarray] = {}  # entry -> the file's frame of each cached frame
        self._shape: dict[str, tuple[int, int, int]] = {}  # entry -> the file's (frames, H, W)

    def key(self, path: str | Path) -> str:
        path = io.check_readable(path).resolve()
        if path.is_dir():  # a frame folder: its frame count and newest frame
            files = io.frame_files(path)
            extra, mtime = len(files), max(p.stat().st_mtime_ns for p in files)
        else:
            stat = path.stat()
            extra, mtime = stat.st_size, stat.st_mtime_ns
        text = f"{CACHE_VERSION}|{path}|{extra}|{mtime}|{self.size}|{self.grayscale}|{self.max_frames}" + \
            (f"|{self.fit}" if self.fit != "stretch" else "")  # stretch: the keys of before fit existed
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def file(self, record: VideoRecord) -> Path:
        return self.root / f"{self.key(record.path)}.npy"

    def get(self, record: VideoRecord) -> np.ndarray:
        """The whole clip, decoding it on the first call only (or when its entry is damaged).

        An entry is verified whole (its SHA-1) the first time this process reads it; every later read checks its
        file size and a CRC of a sample of its frames (`_sample`), so that an entry damaged while a run goes on is
        named, decoded again, and the run goes on."""
        target = self.file(record)
        if target.name in self._checked:  # the cheap check of every later read
            frames, problem = self._unchanged(target)
            if frames is not None:
                return frames
            if problem:
                self._decode_again(record, target, problem)
        elif target.exists():
            problem = self._problem(target)
            if problem:
                self._decode_again(record, target, problem)
        if not target.exists():
            frames, kept = self._decode(record)
            try:
                with atomic_write(target) as tmp:  # a reader never sees half a clip
                    np.save(tmp, frames)
                self._write_sidecar(target, frames, kept)
            except OSError as err:
                raise self._unwritable(err) from err
        frames = np.load(target, mmap_mode="r")
        self._checked[target.name] = (target.stat().st_size, self._sample(frames))  # verified whole or just written
        return frames

    def _decode_again(self, record: VideoRecord, target: Path, problem: str) -> None:
        warnings.warn(f"{target}: the cache entry of {record.path} {problem}; decoding the clip again", DataWarning,
                      stacklevel=3)
        target.unlink(missing_ok=True)
        self._checked.pop(target.name, None)

    @staticmethod
    def _sample(frames: np.ndarray) -> int:
        """CRC-32 of up to 8 frames spread evenly over the clip, first and last included: a cheap check on each read
        (about a quarter of a 32-frame clip; a fixed cost for a long one)."""
        crc = 0
        for i in uniform_indices(len(frames), min(8, len(frames))):
            crc = zlib.crc32(np.ascontiguousarray(frames[int(i)]).data, crc)
        return crc

    def _unchanged(self, target: Path) -> tuple[np.ndarray | None, str]:
        """(the entry's frames, "") if a verified entry still has its size and its frames' sample CRC, else (None,
        what changed)."""
        size, crc = self._checked[target.name]
        if not target.exists():  # removed (the cache cleared): decoded again without a word
            self._checked.pop(target.name, None)
            return None, ""
        try:
            now = target.stat().st_size
            if now != size:
                return None, f"changed size while this process used it ({size} -> {now} bytes)"
            frames = np.load(target, mmap_mode="r")
        except Exception as err:  # noqa: BLE001 - unreadable now: decoded again
            return None, f"became unreadable while this process used it ({type(err).__name__})"
        if self._sample(frames) != crc:
            return None, "changed in place while this process used it (its frames' checksum differs)"
        return frames, ""

    def _decode(self, record: VideoRecord) -> tuple[np.ndarray, list[int] | None]:
        """(frames, None) for a whole clip; (frames, the file's frame of each) for one longer than max_frames."""
        frames, kept = self._read(record)
        if self.size is not None and self.fit != "stretch":
            hw, corner = io.fit_geometry(self.shape(record)[1:], self.size, self.fit)
            if hw != self.size:
                frames = io.place(frames, self.size, corner)
        return frames, kept

    def _read(self, record: VideoRecord) -> tuple[np.ndarray, list[int] | None]:
        """Decoded at the cached size (aspect kept unless stretched), every frame or `max_frames` of them."""
        size = self.size
        if size is not None and self.fit != "stretch":
            size = io.fit_geometry(self.shape(record)[1:], size, self.fit)[0]
        read = dict(grayscale=self.grayscale, size=size)
        n = self.shape(record)[0] if self.max_frames is not None else 0
        if n <= (self.max_frames or 0):
            frames = record.read(**read)
            if self.max_frames is None or len(frames) <= self.max_frames:
                return frames, None
            kept = uniform_indices(len(frames), self.max_frames)  # its container undercounted: thin it here
            return np.ascontiguousarray(frames[kept]), kept.tolist()
        kept = uniform_indices(n, self.max_frames)
        try:
            return record.read(indices=kept, **read), kept.tolist()
        except IndexError:  # its container overcounted: decode everything, thin it here
            frames = record.read(**read)
            kept = uniform_indices(len(frames), min(self.max_frames, len(frames)))
            return np.ascontiguousarray(frames[kept]), kept.tolist()

    def shape(self, record: VideoRecord) -> tuple[int, int, int]:
        """The file's (frames, height, width), from its container (`usnb.io.clip_shape`), read once."""
        key = str(record.path)
        if key not in self._shape:
            self._shape[key] = io.clip_shape(record.path)
        return self._shape[key]

    def boxes(self, record: VideoRecord, boxes) -> list[tuple[float, float, float, float]]:
        """Boxes (x, y, w, h) in the file's pixels -> the cached frame's pixels (the same resize, pad or crop)."""
        native = self.shape(record)[1:]
        return io.fit_boxes(boxes, native, self.size or native, self.fit)

    def native(self, record: VideoRecord) -> np.ndarray:
        """The file's frame index of each cached frame of `record` (0, 1, 2, ... unless the clip was thinned)."""
        target = self.file(record)
        if target.name not in self._native:
            frames = self.get(record)
            try:
                kept = json.loads(target.with_suffix(".json").read_text()).get("frames")
            except (OSError, ValueError):
                kept = None
            self._native[target.name] = np.arange(len(frames)) if kept is None else np.asarray(kept, dtype=int)
        return self._native[target.name]

    def _unwritable(self, err: OSError) -> DataError:
        return DataError(self.root, f"cannot write the clip cache ({err.strerror or err})",
                         "set USNB_CACHE_DIR to a writable folder with free space")

    @staticmethod
    def _digest(frames: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(frames).data).hexdigest()

    def _write_sidecar(self, target: Path, frames: np.ndarray, kept: list[int] | None = None) -> None:
        with atomic_write(target.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps({"shape": list(frames.shape), "sha1": self._digest(frames), "frames": kept}))

    def _problem(self, target: Path) -> str | None:
        """None if the entry is a whole clip of these settings matching its sidecar, else what is wrong."""
        try:
            frames = np.load(target, mmap_mode="r")
        except Exception as err:  # noqa: BLE001 - any unreadable entry is decoded again
            return f"is unreadable ({type(err).__name__})"
        channels = 1 if self.grayscale else 3
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != channels or \
                (self.size is not None and tuple(frames.shape[1:3]) != self.size) or not len(frames):
            return f"is not a clip of these settings ({frames.dtype}, shape {frames.shape})"
        side = target.with_suffix(".json")
        try:
            meta = json.loads(side.read_text())
        except FileNotFoundError:  # an entry from before sidecars: its structure is right, keep it and vouch now
            try:
                self._write_sidecar(target, frames)
            except OSError:
                pass
            return None
        except (OSError, ValueError):
            return "has an unreadable sidecar"
        if meta.get("shape") != list(frames.shape) or meta.get("sha1") != self._digest(frames):
            return "does not match its checksum (truncated or changed)"
        kept = meta.get("frames")
        if kept is not None and (not isinstance(kept, list) or len(kept) != len(frames)):
            return "has a sidecar whose frame list does not match the entry"
        return None

    def prefill(self, records: Sequence[VideoRecord], workers: int = 2, progress: bool = True) -> None:
        """Decode every clip not cached yet, `workers` at a time, with a progress bar; verify the cached ones here, so
        that the training loop (and the loader workers forked after this) only reads."""
        todo = []
        for r in records:
            if self.file(r).exists():
                self.get(r)  # checks the entry once (decodes it again if it is damaged)
            else:
                todo.append(r)
        with ThreadPoolExecutor(workers) as pool:
            for _ in live.progress(pool.map(self.get, todo), total=len(todo), disable=not progress or not todo,
                          desc="decoding clips into the cache"):
                pass
        thinned = [r for r in records if self.native(r)[-1] + 1 > len(self.native(r))]  # native() is memoised
        if thinned:
            warnings.warn(f"{len(thinned)} of {len(records)} clips are longer than {self.max_frames} frames (e.g. "
                          f"{thinned[0].path}): each is cached as {self.max_frames} frames spread evenly over it; "
                          "pass max_clip_frames=None to keep every frame (memory: frames x H x W bytes per clip)",
                          DataWarning, stacklevel=2)

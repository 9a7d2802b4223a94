"""The cost of the clip cache's check on each read (`usnb.cache.ClipCache._unchanged`: file size and a CRC of up to 8
frames), against a read without it, for a phantom clip (32 x 112 x 112) and a long one (1,024 frames).

    python benchmarks/cache_read_check.py
"""
import tempfile
import time
from pathlib import Path

import numpy as np

from usnb import io
from usnb.cache import ClipCache
from usnb.datasets.records import VideoRecord


def per_read(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (32, 1024):
            path = io.write_video(Path(tmp) / f"c{frames}.mp4", rng.integers(0, 255, (frames, 112, 112), np.uint8))
            record = VideoRecord(f"c{frames}", path, "benign", "p")
            cache = ClipCache(Path(tmp) / "cache", size=(112, 112))
            cache.get(record)
            target = cache.file(record)
            checked = per_read(lambda: cache.get(record), 2000)
            bare = per_read(lambda: np.load(target, mmap_mode="r"), 2000)
            # what a training item costs anyway: 8 of its frames copied out of the memmap
            item = per_read(lambda: np.ascontiguousarray(cache.get(record)[:: max(1, frames // 8)][:8]), 2000)
            print(f"{frames:>5} frames of 112 px: get() {checked:7.0f} us per read (bare memmap {bare:5.0f} us, "
                  f"key and checks {checked - bare:6.0f} us); a training item's read + copy of 8 frames {item:7.0f} us")


if __name__ == "__main__":
    main()

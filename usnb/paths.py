"""Where usnb keeps data: `USNB_DATA_DIR` (real data sets, the phantom, the clip cache); atomic writes."""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """`$USNB_DATA_DIR`, else `~/.cache/usnb`; real data sets live below it as busv/, busi/, pocus/."""
    return Path(os.environ.get("USNB_DATA_DIR") or Path.home() / ".cache" / "usnb").expanduser()


def cache_dir() -> Path:
    """`$USNB_CACHE_DIR`, else `<data_dir>/clip_cache`: decoded uint8 clips."""
    return Path(os.environ.get("USNB_CACHE_DIR") or data_dir() / "clip_cache").expanduser()


def dataset_root(source: str, root: str | Path | None = None) -> Path:
    """The folder of a data set: `root` if given, else `$USNB_<SOURCE>_DIR` (e.g. USNB_POCUS_DIR) if set, else
    `<data_dir>/<source>`."""
    if root:
        return Path(root).expanduser()
    own = os.environ.get(f"USNB_{source.upper()}_DIR")
    return Path(own).expanduser() if own else data_dir() / source


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; it replaces `path` only when the block succeeds.

    An interrupted or failed write (an exception, Ctrl-C, a full disk) leaves the old file as it was and
    no temporary file behind; a crash (power loss) leaves the old or the new file, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # same folder (os.replace is atomic only within one file system), same suffix (np.save adds .npy otherwise)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

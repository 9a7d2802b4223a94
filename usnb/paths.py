"""Where usnb keeps data: `USNB_DATA_DIR` (real data sets, the phantom, the clip cache)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """`$USNB_DATA_DIR`, else `~/.cache/usnb`; real data sets live below it as busv/, busi/, pocus/."""
    return Path(os.environ.get("USNB_DATA_DIR") or Path.home() / ".cache" / "usnb").expanduser()


def cache_dir() -> Path:
    """`$USNB_CACHE_DIR`, else `<data_dir>/clip_cache`: decoded uint8 clips."""
    return Path(os.environ.get("USNB_CACHE_DIR") or data_dir() / "clip_cache").expanduser()


def dataset_root(source: str, root: str | Path | None = None) -> Path:
    """The folder of a data set: `root` if given, else `<data_dir>/<source>`."""
    return Path(root).expanduser() if root else data_dir() / source

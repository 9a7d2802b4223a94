"""`usnb data check SOURCE ROOT`: load every item, report counts and every unreadable file."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

from .datasets import ImageRecord
from .errors import DataError
from .sources import binary_task, load, task_mapping


def data_check(source: str, root: str | Path, decode_size: tuple[int, int] = (64, 64), echo=print,
               positive: Sequence[str] | None = None, drop: Sequence[str] = ()) -> int:
    """Decode every item of the data set; prints a report ending `loaded N/M items`; returns failures. With
    `positive` (and `drop`), the two-class task a notebook would train is shown too (`usnb.sources.binary_task`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            records = load(source, root)
        except (DataError, ValueError, OSError) as err:
            echo(f"cannot list {source} items: {err}")
            echo("loaded 0/0 items")
            return 1
    for w in caught:
        echo(f"warning: {w.message}")
    echo(f"{source} at {root}: {len(records)} items")
    for split, per_label in sorted(Counter((r.split or "-", r.label) for r in records).items()):
        echo(f"  split {split[0]:<6} label {split[1]:<14} {per_label}")
    if positive:
        try:
            task = binary_task(records, positive, drop)
        except ValueError as err:
            echo(f"task: {err}")
            return 1
        echo(f"task (positive {list(positive)}, dropped {list(drop)}): class <- source labels | clips per split")
        for line in task_mapping(task).splitlines():
            echo(f"  {line}")
    failed, frames = [], 0
    for r in records:
        try:
            if isinstance(r, ImageRecord):
                r.read(size=decode_size)
                if r.mask_paths:
                    r.read_mask(size=decode_size)
                frames += 1
            else:
                frames += len(r.read(grayscale=True, size=decode_size))
        except Exception as err:  # noqa: BLE001 - report every failure, then go on
            failed.append((r.path, err))
    echo(f"frames decoded: {frames}")
    for path, err in failed:
        echo(f"unreadable: {path}: {err}")
    echo(f"loaded {len(records) - len(failed)}/{len(records)} items")
    return len(failed)


"""`usnb data check SOURCE ROOT`: load every item, report counts and every unreadable file."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

from .datasets import ImageRecord
from .errors import DataError
from .sources import load
from .task import check_task, task_labels, task_mapping, task_splits


def data_check(source: str, root: str | Path, decode_size: tuple[int, int] = (64, 64), echo=print,
               positive: Sequence[str] | None = None, drop: Sequence[str] = (), folds: int | None = None) -> int:
    """Decode every item of the data set; prints a report ending `loaded N/M items`; returns failures. For videos,
    what each notebook would train on (`notebook_view`): the task of `positive` and `drop`, and the split."""
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
    task_refused = False  # counted as a failure where the task was asked for (--positive, --folds)
    if not any(isinstance(r, ImageRecord) for r in records):
        task_refused = not notebook_view(records, source, positive, drop, folds, echo) and bool(positive or folds)
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
    return len(failed) + task_refused



def notebook_view(records, source: str, positive, drop, folds: int | None, echo=print) -> bool:
    """What notebooks 01-05 would see of these clips: the classes after the mapping, then clips and patients per
    class and split (the source's split; else the breast notebooks' 60/20/20 by patient, or fold 1 of `folds`) and
    per fold (notebook 04's k-fold by patient, `folds` or 5). False where a notebook would refuse the data (why)."""
    from .splits import kfold

    try:
        task, classes = task_labels(records, source, ("benign", "malignant"), positive, drop or None)
        echo(f"task: classes (negative, positive) = {classes}; class <- source labels | clips per split | patients")
        for line in task_mapping(task).splitlines():
            echo(f"  {line}")
        parts, notes = task_splits(task, folds, 0)
        notes += check_task(parts, classes, source)
    except (ValueError, DataError) as err:
        echo(f"task: a notebook would stop here: {err}")
        return False

    def line(name, recs):
        per = ", ".join(f"{c} {sum(r.label == c for r in recs)} clips / "
                        f"{len({r.patient_id for r in recs if r.label == c})} patients" for c in classes)
        return f"  {name:<7} {per}"

    echo("notebooks 01-03, 05 (" + "; ".join(notes) + "):")
    for name, recs in parts.items():
        echo(line(name, recs))
    own = all(r.split for r in task)  # else notebook 04 splits the clips by k-fold
    small_batches(len(parts["train"]), {"train": {"clips": len(parts["train"])}} if own else
                  {"all": {"clips": len(task)}}, folds, echo)
    if not all(r.split for r in task):
        k = folds or 5
        echo(f"notebook 04 ({k}-fold by patient, folds={k}):")
        try:
            for i, (_, test) in enumerate(kfold(task, k=k, by="patient")):
                echo(line(f"fold {i + 1}", test))
        except ValueError as err:
            echo(f"  a {k}-fold split is impossible: {err}")
            return False
    return True


def small_batches(n_breast: int, lung: dict, folds: int | None, echo=print) -> None:
    """Say which notebooks' stages have a larger batch than their training split has clips (`usnb.train.fit` clips
    the batch to the split), at the small and the paper profile: `n_breast` training clips for notebooks 01-03;
    notebook 04's counts as `batch_notes` takes them (a source without a split: 'all', split by `folds`)."""
    from .recipes import clman, kganet, lung_ssl, mvcc
    from .train import batch_notes

    for notebook, module, n_train in (("01 MVCC", mvcc, n_breast), ("02 CLMAN", clman, n_breast),
                                      ("03 KGA-Net", kganet, n_breast), ("04 lung", lung_ssl, lung)):
        for profile in ("small", "paper"):
            for note in batch_notes(module.get_profile(profile), n_train, folds):
                echo(f"note: notebook {notebook}, {profile} profile: {note}")

"""BUSI (Al-Dhabyani et al., Data in Brief 2020): breast ultrasound still images with lesion masks.

Layout: `Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (<n>).png` with
`<class> (<n>)_mask.png`, plus `_mask_1.png`, `_mask_2.png` where an image has several lesions.
Every mask file is kept in `mask_paths`; `ImageRecord.read_mask(merge=True)` takes their union.
See data_cards/busi.md.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from .records import ImageRecord

_MASK = re.compile(r"^(?P<stem>.+)_mask(_\d+)?$")


def load_busi(root: str | Path, include_normal: bool = False, require_masks: bool = True) -> list[ImageRecord]:
    """Images of benign and malignant (and `normal` if asked) with their masks."""
    root = Path(root)
    base = root / "Dataset_BUSI_with_GT" if (root / "Dataset_BUSI_with_GT").is_dir() else root
    classes = ["benign", "malignant"] + (["normal"] if include_normal else [])
    records = []
    for label in classes:
        folder = base / label
        if not folder.is_dir():
            raise DataError(folder, f"BUSI class folder {label}/ not found",
                            "pass the folder holding Dataset_BUSI_with_GT/ (see data_cards/busi.md)")
        images, masks = {}, {}
        for p in sorted(folder.glob("*.png")):
            m = _MASK.match(p.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append(p)
            else:
                images[p.stem] = p
        orphans = sorted(set(masks) - set(images))
        if orphans:
            raise DataError(folder / f"{orphans[0]}_mask.png", "mask without its image",
                            f"restore {orphans[0]}.png or delete the mask")
        for stem, path in sorted(images.items(), key=lambda kv: _natural(kv[0])):
            if require_masks and stem not in masks:
                raise DataError(path, "image has no mask file", f"add {stem}_mask.png next to it")
            records.append(ImageRecord(image_id=f"{label}/{stem}", path=path, label=label, patient_id=f"{label}/{stem}",
                                       mask_paths=sorted(masks.get(stem, []), key=lambda q: _natural(q.stem)),
                                       source="busi", licence="CC BY 4.0, Al-Dhabyani et al. 2020"))
    return records


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

"""BUSI (Al-Dhabyani et al., Data in Brief 2020): breast ultrasound still images with lesion masks.

Layout: `Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (<n>).png` with
`<class> (<n>)_mask.png`, plus `_mask_1.png`, `_mask_2.png` where an image has several lesions.
Every mask file is kept in `mask_paths`; `ImageRecord.read_mask(merge=True)` takes their union.
See data_cards/busi.md.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from ..errors import DataError, DataWarning
from .records import ImageRecord

OTHER_IMAGES = (".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")  # counted, left out: BUSI is PNG
_MASK = re.compile(r"^(?P<stem>.+)_mask(_\d+)?$")


def load_busi(root: str | Path, include_normal: bool = False, require_masks: bool = True) -> list[ImageRecord]:
    """Images of benign and malignant (and `normal` if asked) with their masks."""
    root = Path(root)
    base = root / "Dataset_BUSI_with_GT" if (root / "Dataset_BUSI_with_GT").is_dir() else root
    classes = ["benign", "malignant"] + (["normal"] if include_normal else [])
    records, other = [], []
    for label in classes:
        folder = base / label
        if not folder.is_dir():
            raise DataError(folder, f"BUSI class folder {label}/ not found",
                            "pass the folder holding Dataset_BUSI_with_GT/ (see data_cards/busi.md)")
        images, masks = {}, {}
        other += [q for q in folder.iterdir() if q.suffix.lower() in OTHER_IMAGES]
        for p in sorted(q for q in folder.iterdir() if q.suffix.lower() == ".png"):  # .PNG too
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
            _check_mask_sizes(path, masks.get(stem, []))
            records.append(ImageRecord(image_id=f"{label}/{stem}", path=path, label=label, patient_id=f"{label}/{stem}",
                                       mask_paths=sorted(masks.get(stem, []), key=lambda q: _natural(q.stem)),
                                       source="busi", licence="CC BY 4.0, Al-Dhabyani et al. 2020"))
    if other:
        warnings.warn(f"BUSI {base}: {len(other)} image(s) that are not PNG left out (e.g. {sorted(other)[0]}); "
                      "BUSI's images and masks are PNG files: convert them to PNG (image and mask) to use them",
                      DataWarning)
    if not include_normal and (base / "normal").is_dir():
        n = sum(1 for q in (base / "normal").iterdir() if q.suffix.lower() == ".png" and not _MASK.match(q.stem))
        warnings.warn(f"BUSI {base}: normal/ ({n} images) left out: the papers' task is benign vs malignant "
                      "(include_normal=True adds them)", DataWarning)
    return records


def _check_mask_sizes(image: Path, masks: list[Path]) -> None:
    """Each mask must have its image's size (read from the PNG headers; an unreadable file is named when read)."""
    from PIL import Image

    def size_of(path: Path):
        try:
            with Image.open(path) as im:
                return im.size
        except Exception:  # noqa: BLE001 - a damaged file: reading it later names it
            return None

    size = size_of(image)
    for mask in masks:
        m = size_of(mask)
        if size and m and m != size:
            raise DataError(mask, f"mask is {m[0]}x{m[1]} px, its image {image.name} {size[0]}x{size[1]}",
                            "re-export the mask at the image's size")


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

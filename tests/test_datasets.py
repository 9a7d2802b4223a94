"""Data set adapters, the manifest CSV, the real POCUS subset and the splits.

Every fixture is written here, into tmp_path, in the exact layout of the real data set
(see data_cards/). The real POCUS subset is read in place and skipped when absent.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import POCUS
from usnb import io
from usnb.datasets import (ImageRecord, VideoRecord, class_counts, content_hash, load_busi, load_busv, load_manifest,
                           load_pocus)
from usnb.errors import DataError, DataWarning, LeakageError
from usnb.sources import SOURCES, load
from usnb.splits import assign_splits, check_leakage, kfold

POCUS_ROOT = POCUS


# ============================================================================ any source: the folder
@pytest.mark.bad_input
@pytest.mark.parametrize("state", ["missing", "empty"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_missing_or_empty_data_folder_is_named_with_the_fix(tmp_path, source, state):
    root = tmp_path / "data" / source
    if state == "empty":
        root.mkdir(parents=True)
    problem = "does not exist" if state == "missing" else "is empty"
    with pytest.raises(DataError, match=f"{source} data folder {problem}. Fix: pass the folder holding") as err:
        load(source, root)
    assert err.value.path == root and str(err.value).startswith(str(root))


@pytest.mark.bad_input
def test_default_data_folder_comes_from_usnb_data_dir_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("USNB_DATA_DIR", str(tmp_path / "mydata"))
    with pytest.raises(DataError, match=r"busv data folder does not exist.*USNB_DATA_DIR is now .*mydata") as err:
        load("busv")
    assert err.value.path == tmp_path / "mydata" / "busv"


# ============================================================================================ BUSV
DUPLICATE, KEPT_COPY = "benign/x66ef02e7f1b9a0ef", "malignant/x3b88488853e8b7d1"
RELABELLED = ("benign/x63c9ba1377f35bf6", "benign/x5a1c46ec6377e946")
SAME_PATIENT = ("benign/x63c9ba1377f35bf6", "benign/x5a1c46ec6377e946",
                "malignant/2390fbea047347b", "malignant/7a39ab5d4970bf89")

# video id -> (number of frames, official split). The four same-patient videos straddle the
# official split, as nothing stops them doing in the published files.
BUSV_VIDEOS = {
    "benign/x1a2b3c4d5e6f7a8b": (3, "train"),
    DUPLICATE: (3, "train"),
    KEPT_COPY: (3, "val"),
    "benign/x63c9ba1377f35bf6": (4, "train"),
    "benign/x5a1c46ec6377e946": (3, "val"),
    "malignant/2390fbea047347b": (3, "train"),
    "malignant/7a39ab5d4970bf89": (4, "val"),
    "malignant/x9f8e7d6c5b4a3210": (3, "val"),
}
# boxes as published: video -> {frame: [[x, y, w, h], ...]}
BUSV_BOXES = {
    "benign/x1a2b3c4d5e6f7a8b": {0: [[1, 2, 3, 4]], 2: [[5, 6, 7, 8], [0.5, 1.5, 2.5, 3.5]]},
    "malignant/x9f8e7d6c5b4a3210": {1: [[2, 2, 6, 6]]},
}


def _frame_value(video_index: int, frame: int) -> int:
    return 20 * video_index + 3 * frame + 1


def _write_png(path: Path, value: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size, size, 3), np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = value, (value + 1) % 256, (value + 2) % 256
    Image.fromarray(arr).save(path)


def make_busv(root: Path, extra_annotations: list[list[float]] = (), videos: dict | None = None) -> Path:
    """BUSV as published: rawframes/<class>/<video>/000000.png and two ImageNet-VID JSON files.
    The duplicate pair holds identical frames (they are the same video); `extra_annotations`
    adds boxes on frame 1 of the first video."""
    videos = BUSV_VIDEOS if videos is None else videos
    ids = list(videos)
    content_of = {vid: ids.index(KEPT_COPY) if vid == DUPLICATE else k for k, vid in enumerate(ids)}
    docs = {split: {"images": [], "annotations": [], "videos": [],
                    "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}]}
            for split in ("train", "val")}
    image_id = ann_id = 0
    for k, (vid, (n_frames, split)) in enumerate(videos.items()):
        doc = docs[split]
        doc["videos"].append({"id": k + 1, "name": vid})
        category = 1 if vid.startswith("benign/") else 2
        for t in range(n_frames):
            _write_png(root / "rawframes" / vid / f"{t:06d}.png", _frame_value(content_of[vid], t))
            image_id += 1
            doc["images"].append({"file_name": f"{vid}/{t:06d}.png", "id": image_id, "frame_id": t,
                                  "video_id": k + 1, "height": 16, "width": 16})
            boxes = list(BUSV_BOXES.get(vid, {}).get(t, []))
            if k == 0 and t == 1:
                boxes += list(extra_annotations)
            for box in boxes:
                ann_id += 1
                doc["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": category,
                                           "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    (root / "imagenet_vid_train_15frames.json").write_text(json.dumps(docs["train"]))
    (root / "imagenet_vid_val.json").write_text(json.dumps(docs["val"]))
    return root


@pytest.fixture
def busv_root(tmp_path: Path) -> Path:
    return make_busv(tmp_path / "busv")


def _by_id(records):
    return {r.video_id if isinstance(r, VideoRecord) else r.image_id: r for r in records}


def test_busv_split_comes_from_the_json_that_lists_the_video(busv_root):
    recs = _by_id(load_busv(busv_root, variant="raw"))
    assert {v: r.split for v, r in recs.items()} == {v: split for v, (_, split) in BUSV_VIDEOS.items()}
    assert class_counts(recs.values()) == {"train": {"benign": 3, "malignant": 1},
                                           "val": {"benign": 1, "malignant": 3}}


def test_busv_boxes_per_frame_from_the_frame_file_name(busv_root):
    recs = _by_id(load_busv(busv_root))
    assert recs["benign/x1a2b3c4d5e6f7a8b"].boxes == {
        0: [(1.0, 2.0, 3.0, 4.0)], 2: [(5.0, 6.0, 7.0, 8.0), (0.5, 1.5, 2.5, 3.5)]}
    assert all(isinstance(v, float) for v in recs["benign/x1a2b3c4d5e6f7a8b"].boxes[0][0])
    assert recs["malignant/x9f8e7d6c5b4a3210"].boxes == {1: [(2.0, 2.0, 6.0, 6.0)]}
    assert recs["malignant/2390fbea047347b"].boxes == {}


def test_busv_record_fields_and_clip_pixels(busv_root):
    rec = _by_id(load_busv(busv_root))["benign/x1a2b3c4d5e6f7a8b"]
    assert rec.path == busv_root / "rawframes/benign/x1a2b3c4d5e6f7a8b"
    assert (rec.source, rec.licence, rec.meta["folder_label"]) == ("busv", "see data_cards/busv.md", "benign")
    clip = rec.read()
    assert clip.shape == (3, 16, 16, 3) and clip.dtype == np.uint8
    for t in range(3):  # frames come back in frame order, pixel values as written
        v = _frame_value(0, t)
        assert clip[t, 5, 5].tolist() == [v, v + 1, v + 2]
    grey = rec.read(grayscale=True, indices=[2, 0])
    assert grey.shape == (2, 16, 16, 1)
    v = _frame_value(0, 2)
    assert grey[0, 0, 0, 0] == round(0.299 * v + 0.587 * (v + 1) + 0.114 * (v + 2))


def test_busv_raw_variant_keeps_everything_as_published(busv_root):
    recs = _by_id(load_busv(busv_root, variant="raw"))
    assert set(recs) == set(BUSV_VIDEOS)
    for vid, rec in recs.items():
        assert rec.label == vid.split("/")[0] == rec.meta["folder_label"]
        assert rec.patient_id == vid.split("/")[1]
    assert Counter(r.label for r in recs.values()) == {"benign": 4, "malignant": 4}


def test_busv_corrected_variant_drops_the_duplicate_and_relabels_two(busv_root):
    recs = _by_id(load_busv(busv_root))  # "corrected" is the default
    assert set(recs) == set(BUSV_VIDEOS) - {DUPLICATE}
    assert recs[KEPT_COPY].label == "malignant"
    for vid in RELABELLED:
        assert recs[vid].label == "malignant"
        assert recs[vid].meta["folder_label"] == "benign"
        assert recs[vid].path.parent.name == "benign"
    assert recs["benign/x1a2b3c4d5e6f7a8b"].label == "benign"
    assert Counter(r.label for r in recs.values()) == {"benign": 1, "malignant": 6}
    with pytest.raises(ValueError, match="variant"):
        load_busv(busv_root, variant="fixed")


def test_busv_corrected_variant_gives_the_errata_patient_one_patient_id(busv_root):
    corrected = _by_id(load_busv(busv_root))
    shared = {corrected[v].patient_id for v in SAME_PATIENT}
    assert len(shared) == 1
    others = [r.patient_id for v, r in corrected.items() if v not in SAME_PATIENT]
    assert shared.isdisjoint(others) and len(set(others)) == len(others)
    # the official split puts the patient in train and val: the leakage check now refuses it
    with pytest.raises(LeakageError, match=f"patient {shared.pop()}"):
        check_leakage(list(corrected.values()), content=False)
    # the raw variant keeps one patient per folder (nothing says otherwise in the published files)
    raw = _by_id(load_busv(busv_root, variant="raw"))
    assert len({raw[v].patient_id for v in SAME_PATIENT}) == 4
    # a split by patient keeps all four together
    parts = assign_splits(list(corrected.values()), {"train": 0.5, "test": 0.5}, by="patient")
    assert len({r.split for r in parts if r.video_id in SAME_PATIENT}) == 1
    check_leakage(parts)


def test_busv_raw_official_split_leaks_the_duplicate_video(busv_root):
    """The duplicate pair are the same frames under two names, one in train and one in val."""
    raw = load_busv(busv_root, variant="raw")
    check_leakage([r for r in raw if r.video_id not in SAME_PATIENT], content=False)  # ids alone: clean
    with pytest.raises(LeakageError, match="identical clip") as err:
        check_leakage([r for r in raw if r.video_id not in SAME_PATIENT])
    assert "x66ef02e7f1b9a0ef" in str(err.value) and "x3b88488853e8b7d1" in str(err.value)


@pytest.mark.bad_input
def test_busv_degenerate_box_is_skipped_with_a_counted_warning(tmp_path):
    root = make_busv(tmp_path / "busv", extra_annotations=[[4, 4, -3, 5], [1, 1, 2, 0], [3, 3, 2, 2]])
    with pytest.warns(DataWarning, match=r"imagenet_vid_train_15frames.json: skipped 2 box\(es\) with zero or "
                                         r"negative width/height \(annotation ids \[\d+, \d+\]\); fix or delete"):
        recs = _by_id(load_busv(root))
    assert recs["benign/x1a2b3c4d5e6f7a8b"].boxes[1] == [(3.0, 3.0, 2.0, 2.0)]  # the valid box survives
    assert len(recs) == len(BUSV_VIDEOS) - 1


def test_busv_clean_boxes_give_no_warning(busv_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_busv(busv_root)


@pytest.mark.bad_input
def test_busv_video_in_no_json_has_no_split_and_a_warning(busv_root):
    _write_png(busv_root / "rawframes/benign/xunlisted00000000/000000.png", 9)
    with pytest.warns(DataWarning, match=r"1 video\(s\) are in no annotation JSON"):
        recs = _by_id(load_busv(busv_root))
    assert recs["benign/xunlisted00000000"].split == ""


@pytest.mark.bad_input
def test_busv_video_in_two_splits_is_an_error(busv_root):
    val = json.loads((busv_root / "imagenet_vid_val.json").read_text())
    val["images"].append({"file_name": "benign/x1a2b3c4d5e6f7a8b/000000.png", "id": 9999, "frame_id": 0,
                          "video_id": 99})
    (busv_root / "imagenet_vid_val.json").write_text(json.dumps(val))
    with pytest.raises(DataError, match="listed in two splits") as err:
        load_busv(busv_root)
    assert err.value.path.name == "imagenet_vid_val.json"


@pytest.mark.bad_input
def test_busv_corrupt_frame_names_the_file_when_read(busv_root):
    bad = busv_root / "rawframes/benign/x1a2b3c4d5e6f7a8b/000001.png"
    bad.write_bytes(b"\x89PNG garbage, not an image" * 4)
    rec = _by_id(load_busv(busv_root))["benign/x1a2b3c4d5e6f7a8b"]  # loading does not decode frames
    with pytest.raises(DataError, match="cannot read image") as err:
        rec.read()
    assert err.value.path == bad
    assert str(bad) in str(err.value) and "Fix:" in str(err.value)
    assert rec.read(indices=[0, 2]).shape == (2, 16, 16, 3)  # the other frames still read


@pytest.mark.bad_input
def test_busv_truncated_frame_names_the_file_when_read(busv_root):
    frame = busv_root / "rawframes/malignant/x9f8e7d6c5b4a3210/000002.png"
    arr = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(arr).save(frame)
    frame.write_bytes(frame.read_bytes()[:60])
    rec = _by_id(load_busv(busv_root))["malignant/x9f8e7d6c5b4a3210"]
    with pytest.raises(DataError) as err:
        rec.read()
    assert err.value.path == frame


@pytest.mark.bad_input
def test_busv_gap_in_frame_numbering_names_the_folder(busv_root):
    folder = busv_root / "rawframes/malignant/7a39ab5d4970bf89"
    (folder / "000002.png").unlink()
    rec = _by_id(load_busv(busv_root))["malignant/7a39ab5d4970bf89"]
    with pytest.raises(DataError, match=r"gap in frame numbering: frame\(s\) \[2\] missing") as err:
        rec.read()
    assert err.value.path == folder
    with pytest.raises(DataError, match="gap in frame numbering"):
        io.count_frames(folder)


@pytest.mark.bad_input
def test_frame_folder_with_two_files_for_one_frame_is_an_error(tmp_path):
    folder = tmp_path / "clip"
    for name in ("000000.png", "000001.png", "1.png", "000002.png"):
        _write_png(folder / name, 5)
    with pytest.raises(DataError, match=r"two files for one frame number: \['000001.png', '1.png'\]|"
                                        r"two files for one frame number: \['1.png', '000001.png'\]") as err:
        io.frame_files(folder)
    assert err.value.path == folder


@pytest.mark.bad_input
def test_busv_missing_rawframes_is_an_error(tmp_path):
    with pytest.raises(DataError, match="rawframes/ folder not found") as err:
        load_busv(tmp_path)
    assert err.value.path == tmp_path / "rawframes"


def test_load_dispatches_to_busv(busv_root):
    assert [r.video_id for r in load("busv", busv_root)] == [r.video_id for r in load_busv(busv_root)]


# ============================================================================================ BUSI
LESION_1 = (slice(2, 6), slice(2, 6))     # 16 pixels
LESION_2 = (slice(10, 14), slice(8, 13))  # 20 pixels


def _mask(*lesions, size=16) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    for rows, cols in lesions:
        m[rows, cols] = 255
    return m


def make_busi(root: Path) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (base / label).mkdir(parents=True)
    b = base / "benign"
    for n in (1, 2, 10):  # natural order 1, 2, 10; plain string order would be 1, 10, 2
        Image.fromarray(np.full((16, 16, 3), n, np.uint8)).save(b / f"benign ({n}).png")
        Image.fromarray(_mask(LESION_1)).save(b / f"benign ({n})_mask.png")
    Image.fromarray(_mask(LESION_2)).save(b / "benign (10)_mask_1.png")  # a second lesion
    m = base / "malignant"
    Image.fromarray((np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)).save(m / "malignant (1).png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 30
    Image.fromarray(rgba).save(m / "malignant (2).png")
    for n in (1, 2):
        Image.fromarray(_mask(LESION_2)).save(m / f"malignant ({n})_mask.png")
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(base / "normal/normal (1).png")
    Image.fromarray(_mask()).save(base / "normal/normal (1)_mask.png")
    return root


@pytest.fixture
def busi_root(tmp_path: Path) -> Path:
    return make_busi(tmp_path / "busi")


def test_busi_default_is_benign_and_malignant_in_natural_order(busi_root):
    recs = load_busi(busi_root)
    assert [r.image_id for r in recs] == ["benign/benign (1)", "benign/benign (2)", "benign/benign (10)",
                                          "malignant/malignant (1)", "malignant/malignant (2)"]
    assert all(isinstance(r, ImageRecord) and r.patient_id == r.image_id for r in recs)
    assert {r.source for r in recs} == {"busi"} and all("CC BY 4.0" in r.licence for r in recs)
    assert recs[2].read()[0, 0].tolist() == [10, 10, 10]  # the record points at its own image


def test_busi_normal_only_when_asked(busi_root):
    assert "normal" not in {r.label for r in load_busi(busi_root)}
    recs = load_busi(busi_root, include_normal=True)
    assert Counter(r.label for r in recs) == {"benign": 3, "malignant": 2, "normal": 1}
    normal = _by_id(recs)["normal/normal (1)"]
    assert normal.read_mask().sum() == 0
    assert normal.read().tolist() == np.full((16, 16, 3), 90, np.uint8).tolist()  # grey replicated to RGB


def test_busi_accepts_the_dataset_folder_itself(busi_root):
    assert [r.image_id for r in load_busi(busi_root / "Dataset_BUSI_with_GT")] == \
           [r.image_id for r in load_busi(busi_root)]


def test_busi_keeps_one_mask_file_per_lesion(busi_root):
    recs = _by_id(load_busi(busi_root))
    folder = busi_root / "Dataset_BUSI_with_GT/benign"
    assert recs["benign/benign (10)"].mask_paths == [folder / "benign (10)_mask.png", folder / "benign (10)_mask_1.png"]
    assert recs["benign/benign (1)"].mask_paths == [folder / "benign (1)_mask.png"]


def test_busi_merged_mask_is_the_union(busi_root):
    rec = _by_id(load_busi(busi_root))["benign/benign (10)"]
    merged = rec.read_mask(merge=True)
    assert merged.shape == (16, 16) and merged.dtype == bool
    assert merged.tolist() == ((_mask(LESION_1) > 0) | (_mask(LESION_2) > 0)).tolist()
    assert merged.sum() == 16 + 20
    assert merged[3, 3] and merged[11, 9] and not merged[0, 0] and not merged[8, 8]


def test_busi_unmerged_masks_stack_per_lesion(busi_root):
    rec = _by_id(load_busi(busi_root))["benign/benign (10)"]
    stacked = rec.read_mask(merge=False)
    assert stacked.shape == (2, 16, 16) and stacked.dtype == bool
    assert stacked[0].tolist() == (_mask(LESION_1) > 0).tolist()
    assert stacked[1].tolist() == (_mask(LESION_2) > 0).tolist()
    single = _by_id(load_busi(busi_root))["benign/benign (1)"].read_mask(merge=False)
    assert single.shape == (1, 16, 16) and single.sum() == 16
    assert rec.read_mask(size=(8, 8)).shape == (8, 8)


@pytest.mark.bad_input
def test_busi_16_bit_image_loads_as_uint8_rgb(busi_root):
    rec = _by_id(load_busi(busi_root))["malignant/malignant (1)"]
    img = rec.read()
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    expected = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257) >> 8  # == arange(256)
    assert img[..., 0].tolist() == expected.tolist()
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert rec.read(grayscale=True).shape == (16, 16, 1)


@pytest.mark.bad_input
def test_busi_rgba_image_loads_as_uint8_rgb_without_alpha(busi_root):
    img = _by_id(load_busi(busi_root))["malignant/malignant (2)"].read()
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert img[7, 7].tolist() == [200, 100, 50]


@pytest.mark.bad_input
def test_busi_image_without_mask_is_an_error_naming_it(busi_root):
    image = busi_root / "Dataset_BUSI_with_GT/benign/benign (2).png"
    (image.parent / "benign (2)_mask.png").unlink()
    with pytest.raises(DataError, match="image has no mask file") as err:
        load_busi(busi_root)
    assert err.value.path == image and "benign (2)_mask.png" in str(err.value)
    rec = _by_id(load_busi(busi_root, require_masks=False))["benign/benign (2)"]
    assert rec.mask_paths == []
    with pytest.raises(DataError, match="image has no mask"):
        rec.read_mask()


@pytest.mark.bad_input
def test_busi_mask_without_image_is_an_error(busi_root):
    (busi_root / "Dataset_BUSI_with_GT/malignant/malignant (2).png").unlink()
    with pytest.raises(DataError, match="mask without its image") as err:
        load_busi(busi_root)
    assert err.value.path.name == "malignant (2)_mask.png"


@pytest.mark.bad_input
def test_busi_missing_class_folder_is_an_error(busi_root):
    shutil.rmtree(busi_root / "Dataset_BUSI_with_GT/malignant")
    with pytest.raises(DataError, match="class folder malignant/ not found"):
        load_busi(busi_root)


# ======================================================================================= manifest
CLIP = np.stack([np.full((32, 32), 40 * (t + 1), np.uint8) for t in range(4)])  # (4, 32, 32), even H, W


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    root = tmp_path / "inhouse"
    io.write_video(root / "clips/a.mp4", CLIP)
    for t in range(3):
        _write_png(root / "frames/b" / f"{t:06d}.png", 10 * t)
    (root / "ann").mkdir()
    (root / "ann/a.json").write_text(json.dumps({"boxes": [[1, 2, 3, 4], None, [5, 6, 7, 8], None], "keyframe": 2}))
    return root


def _write_manifest(path: Path, rows: list[dict], columns=("path", "label", "split", "patient_id",
                                                           "keyframe", "annotation")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


GOOD_ROWS = [
    {"path": "clips/a.mp4", "label": "malignant", "split": "train", "patient_id": "p1", "keyframe": "",
     "annotation": "ann/a.json"},
    {"path": "frames/b", "label": "benign", "split": "test", "patient_id": "p2", "keyframe": "1", "annotation": ""},
]


def test_manifest_paths_are_relative_to_the_csv(manifest_dir, tmp_path, monkeypatch):
    csv_path = _write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS)
    monkeypatch.chdir(tmp_path)  # not the CSV's folder
    recs = load_manifest(csv_path)
    assert [r.path for r in recs] == [(manifest_dir / "clips/a.mp4").resolve(), (manifest_dir / "frames/b").resolve()]
    assert [r.video_id for r in recs] == ["clips/a.mp4", "frames/b"]
    assert [(r.label, r.split, r.patient_id, r.source) for r in recs] == [
        ("malignant", "train", "p1", "manifest"), ("benign", "test", "p2", "manifest")]
    assert [r.video_id for r in load_manifest(manifest_dir)] == ["clips/a.mp4", "frames/b"]  # folder -> manifest.csv
    assert [r.video_id for r in load("manifest", manifest_dir)] == ["clips/a.mp4", "frames/b"]


def test_manifest_annotation_and_keyframe_columns(manifest_dir):
    recs = load_manifest(_write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS))
    assert recs[0].boxes == {0: [(1, 2, 3, 4)], 2: [(5, 6, 7, 8)]}
    assert recs[0].keyframe == 2            # from the annotation JSON
    assert recs[1].keyframe == 1 and recs[1].boxes == {}  # from the column
    rows = [dict(GOOD_ROWS[0], keyframe="3"), GOOD_ROWS[1]]
    assert load_manifest(_write_manifest(manifest_dir / "m2.csv", rows))[0].keyframe == 3  # column wins
    only_required = _write_manifest(manifest_dir / "m3.csv", GOOD_ROWS, ("path", "label", "split", "patient_id"))
    recs = load_manifest(only_required)
    assert [(r.keyframe, r.boxes) for r in recs] == [(None, {}), (None, {})]


def test_manifest_clips_decode(manifest_dir):
    video, folder = load_manifest(_write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS))
    clip = video.read()
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    assert np.abs(clip.astype(int).mean(axis=(1, 2, 3)) - [40, 80, 120, 160]).max() < 4  # H.264 is lossy
    assert io.count_frames(video.path) == 4
    frames = folder.read()
    assert frames.shape == (3, 16, 16, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 10, 20]


MANIFEST_ERRORS = [
    # (row 3 is the bad one, message pattern, labels)
    (dict(GOOD_ROWS[1], label="unknown"), r"row 3: unknown label 'unknown'", ["benign", "malignant"]),
    (dict(GOOD_ROWS[1], path="clips/a.mp4"), r"row 3: duplicate path 'clips/a.mp4' \(first at row 2\)", None),
    (dict(GOOD_ROWS[1], path="./clips/../clips/a.mp4"), r"row 3: duplicate path .*\(first at row 2\)", None),
    (dict(GOOD_ROWS[1], path="clips/missing.mp4"), r"row 3: file 'clips/missing.mp4' does not exist", None),
    (dict(GOOD_ROWS[1], patient_id=""), r"row 3: empty patient_id", None),
    (dict(GOOD_ROWS[1], patient_id="   "), r"row 3: empty patient_id", None),
    (dict(GOOD_ROWS[1], split="holdout"), r"row 3: unknown split 'holdout'", None),
    (dict(GOOD_ROWS[1], path=""), r"row 3: empty path", None),
    (dict(GOOD_ROWS[1], keyframe="two"), r"row 3: keyframe 'two' is not a frame index", None),
    (dict(GOOD_ROWS[1], keyframe="-1"), r"row 3: keyframe '-1' is not a frame index", None),
    (dict(GOOD_ROWS[1], keyframe="3"), r"row 3: keyframe 3 is beyond the clip's 3 frames", None),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("bad_row, message, labels", MANIFEST_ERRORS,
                         ids=["unknown-label", "duplicate", "duplicate-spelled-differently", "missing-file",
                              "empty-patient", "blank-patient", "unknown-split", "empty-path", "keyframe-text",
                              "keyframe-negative", "keyframe-beyond-the-clip"])
def test_manifest_bad_row_is_an_error_naming_csv_and_row(manifest_dir, bad_row, message, labels):
    csv_path = _write_manifest(manifest_dir / "manifest.csv", [GOOD_ROWS[0], bad_row])
    with pytest.raises(DataError, match=message) as err:
        load_manifest(csv_path, labels=labels)
    assert err.value.path == csv_path and str(err.value).startswith(f"{csv_path}: row 3")
    assert "Fix:" in str(err.value)


@pytest.mark.bad_input
def test_manifest_boxes_outside_the_clip_are_all_named(manifest_dir):
    # a.mp4 has 4 frames of 32 x 32 px; b has 3 frames of 16 x 16 px
    (manifest_dir / "ann/a.json").write_text(json.dumps({"boxes": [[1, 2, 3, 4], None, None, None, [1, 1, 2, 2]]}))
    rows = [GOOD_ROWS[0], dict(GOOD_ROWS[1], box="4 4 20 20")]  # x1 y1 x2 y2 written as x y w h
    columns = ("path", "label", "split", "patient_id", "keyframe", "annotation", "box")
    csv_path = _write_manifest(manifest_dir / "manifest.csv", rows, columns)
    with pytest.raises(DataError) as err:
        load_manifest(csv_path)
    text = str(err.value)
    assert err.value.path == csv_path
    assert "row 2: a box on frame 4, beyond the clip's 4 frames" in text
    assert "row 3: box (x 4, y 4, w 20, h 20) on frame 1 reaches outside the 16 x 16 px frame" in text
    assert "not x1 y1 x2 y2" in text
    rows[1]["box"] = "4 4 12 12"  # inside (x + w = 16)
    (manifest_dir / "ann/a.json").write_text(json.dumps({"boxes": [[0, 0, 32, 32], None, None, [31, 31, 1, 1]]}))
    video, folder = load_manifest(_write_manifest(manifest_dir / "manifest.csv", rows, columns))
    assert folder.boxes == {1: [(4.0, 4.0, 12.0, 12.0)]} and sorted(video.boxes) == [0, 3]


def test_manifest_unknown_label_is_fine_without_a_label_list(manifest_dir):
    rows = [GOOD_ROWS[0], dict(GOOD_ROWS[1], label="unknown")]
    assert load_manifest(_write_manifest(manifest_dir / "manifest.csv", rows))[1].label == "unknown"


@pytest.mark.bad_input
def test_manifest_missing_required_column_is_an_error(manifest_dir):
    csv_path = _write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS, ("path", "label", "split"))
    with pytest.raises(DataError, match=r"manifest lacks column\(s\) \['patient_id'\]") as err:
        load_manifest(csv_path)
    assert err.value.path == csv_path


def test_manifest_written_by_excel_with_a_byte_order_mark(manifest_dir):
    csv_path = _write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS)
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    assert [r.video_id for r in load_manifest(csv_path)] == ["clips/a.mp4", "frames/b"]


@pytest.mark.bad_input
def test_manifest_bad_annotation_json_names_the_json(manifest_dir):
    (manifest_dir / "ann/a.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read annotation JSON") as err:
        load_manifest(_write_manifest(manifest_dir / "manifest.csv", GOOD_ROWS))
    assert err.value.path == manifest_dir / "ann/a.json"


@pytest.mark.bad_input
def test_manifest_not_found(tmp_path):
    with pytest.raises(DataError, match="manifest not found") as err:
        load_manifest(tmp_path)
    assert err.value.path == tmp_path / "manifest.csv"


# ========================================================================================= POCUS
def make_pocus(root: Path, sheet_rows: list[dict] | None) -> Path:
    """A tiny POCUS layout (clips are not decoded by the loader) with an optional metadata sheet."""
    for rel in ("convex/Cov_a.mp4", "convex/Cov_b.mp4", "convex/Reg_c.avi", "convex/Pneu-d.mpeg",
                "linear/Vir_e.mov", "linear/label_uncertain/Vir_or_Pneu_f.mp4"):
        (root / "pocus_videos" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "pocus_videos" / rel).write_bytes(rel.encode())
    if sheet_rows is not None:
        _write_manifest(root / "SOURCE_dataset_metadata.csv", sheet_rows,
                        ("Date added", "Current location", "Filename", "Label", "Patient ID / Name", "Other"))
    return root


SHEET = [
    {"Current location": "data/pocus_videos/Convex", "Filename": "Cov_a", "Patient ID / Name": "7"},
    {"Current location": "data/pocus_videos/Convex", "Filename": "Cov_b", "Patient ID / Name": " 7 "},
    {"Current location": "data/pocus_videos/Convex", "Filename": "Reg_c", "Patient ID / Name": ""},
    # two rows for one file name: the one in the clip's folder counts
    {"Current location": "data/pocus_videos/Convex", "Filename": "Vir_e", "Patient ID / Name": "12"},
    {"Current location": "data/pocus_videos/Linear", "Filename": "Vir_e", "Patient ID / Name": "13"},
    {"Current location": "pocus_videos/linear/label_uncertain", "Filename": "Vir_or_Pneu_f", "Patient ID / Name": "13"},
    {"Current location": "data/pocus_videos/Convex", "Filename": "Cov_not_in_this_copy", "Patient ID / Name": "7"},
]


def test_pocus_patient_id_from_the_metadata_sheet(tmp_path):
    recs = _by_id(load_pocus(make_pocus(tmp_path / "pocus", SHEET)))
    assert {v: r.patient_id for v, r in recs.items()} == {
        "Cov_a": "pocus-7", "Cov_b": "pocus-7",          # shared sheet id -> one patient
        "Reg_c": "Reg_c",                                 # empty id -> the clip stem
        "Pneu-d": "Pneu-d",                               # not in the sheet -> the clip stem
        "Vir_e": "pocus-13", "Vir_or_Pneu_f": "pocus-13"}
    assert {v: r.meta["metadata_patient_id"] for v, r in recs.items()} == {
        "Cov_a": "7", "Cov_b": "7", "Reg_c": "", "Pneu-d": "", "Vir_e": "13", "Vir_or_Pneu_f": "13"}
    assert {v: r.label for v, r in recs.items()} == {
        "Cov_a": "covid", "Cov_b": "covid", "Reg_c": "regular", "Pneu-d": "pneumonia", "Vir_e": "viral",
        "Vir_or_Pneu_f": "uncertain"}
    split = {"train": [recs["Cov_a"]], "test": [recs["Cov_b"]]}
    with pytest.raises(LeakageError, match="patient pocus-7"):
        check_leakage(split, content=False)


def test_pocus_without_metadata_sheet_uses_the_clip_stem(tmp_path):
    recs = load_pocus(make_pocus(tmp_path / "pocus", None))
    assert all(r.patient_id == r.video_id for r in recs) and len(recs) == 6


@pytest.mark.bad_input
def test_pocus_unknown_prefix_is_an_error(tmp_path):
    root = make_pocus(tmp_path / "pocus", SHEET)
    bad = root / "pocus_videos/convex/Lung_x.mp4"
    bad.write_bytes(b"x")
    with pytest.raises(DataError, match="prefix 'lung'") as err:
        load_pocus(root)
    assert err.value.path == bad


@pytest.fixture(scope="module")
def pocus_real():
    if not (POCUS_ROOT / "pocus_videos").is_dir():
        pytest.skip(f"real POCUS subset not found at {POCUS_ROOT}: set USNB_POCUS_DIR to its folder")
    return load_pocus(POCUS_ROOT)


def _csv(name: str) -> dict[str, dict]:
    with open(POCUS_ROOT / name, newline="") as f:
        return {r["relpath"]: r for r in csv.DictReader(f)}


def test_pocus_real_records_and_labels(pocus_real):
    assert len(pocus_real) == 131
    assert Counter(r.label for r in pocus_real) == {"regular": 59, "pneumonia": 37, "covid": 29, "viral": 5,
                                                    "uncertain": 1}
    assert Counter(r.meta["probe"] for r in pocus_real) == {"convex": 121, "linear": 10}
    assert len({r.video_id for r in pocus_real}) == 131
    manifest = _csv("MANIFEST.csv")
    for r in pocus_real:
        rel = r.path.relative_to(POCUS_ROOT).as_posix()
        assert r.meta["sha256"] == manifest[rel]["sha256"] == content_hash(r)
        if r.label != "uncertain":
            assert r.label == manifest[rel]["label"]


def test_pocus_real_every_clip_has_its_licence(pocus_real):
    licences = _csv("LICENSES_PER_FILE.csv")
    for r in pocus_real:
        row = licences[r.path.relative_to(POCUS_ROOT).as_posix()]
        assert r.licence.strip() and r.licence.startswith(row["License"])
        assert r.meta["source_url"] == row["source_url"]
        if row["source_url"]:
            assert r.licence.endswith(row["source_url"])
    assert sum(r.licence.startswith("CC BY-NC 4.0") for r in pocus_real) == 62


def test_pocus_real_gifs_decode_through_pyav(pocus_real, monkeypatch):
    probe = _csv("VIDEO_PROBE.csv")
    used = []
    real_pyav = io._read_pyav
    monkeypatch.setattr(io, "_read_pyav", lambda path, *a: used.append(path.name) or real_pyav(path, *a))
    gifs = [r for r in pocus_real if r.path.suffix.lower() == ".gif"]
    assert len(gifs) == 12
    for r in gifs:
        row = probe[r.path.relative_to(POCUS_ROOT).as_posix()]
        clip = r.read()
        assert clip.dtype == np.uint8 and clip.ndim == 4 and clip.shape[-1] == 3
        assert clip.shape[:3] == (int(row["frames_decoded"]), int(row["height"]), int(row["width"])), r.video_id
        assert clip.std() > 0  # real pixels, not a blank frame
    assert used == [r.path.name for r in gifs]


def test_pocus_real_clips_sharing_a_sheet_patient_share_patient_id(pocus_real):
    recs = _by_id(pocus_real)
    day = [recs[f"Cov-Atlas-Day+{i}"] for i in range(1, 5)]
    assert {r.patient_id for r in day} == {"pocus-35"}
    assert {r.meta["metadata_patient_id"] for r in day} == {"35"}
    assert len({r.patient_id for r in pocus_real if r.video_id.startswith("Reg_pat2Image")}) == 1
    with open(POCUS_ROOT / "SOURCE_dataset_metadata.csv", newline="", encoding="utf-8-sig") as f:
        sheet = {}
        for row in csv.DictReader(f):
            sheet.setdefault(row["Filename"].strip(), row["Patient ID / Name"].strip())
    for r in pocus_real:
        raw = sheet.get(r.video_id, "")
        assert r.patient_id == (f"pocus-{raw}" if raw else r.video_id)
    groups = Counter(r.patient_id for r in pocus_real)
    assert sum(1 for n in groups.values() if n > 1) == 16
    # a split by clip that separates the Day+1..4 clips now leaks; a split by patient does not
    with pytest.raises(LeakageError, match="patient pocus-35"):
        check_leakage({"train": day[:2], "test": day[2:]}, content=False)
    parts = assign_splits(pocus_real, by="patient", seed=3)
    check_leakage(parts)
    assert len({r.split for r in parts if r.patient_id == "pocus-35"}) == 1


# ========================================================================================= splits
def _clip_file(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _rec(tmp_path: Path, vid: str, patient: str, label: str = "benign", split: str = "", payload=None) -> VideoRecord:
    path = _clip_file(tmp_path / f"{vid}.mp4", payload if payload is not None else f"clip {vid}".encode())
    return VideoRecord(video_id=vid, path=path, label=label, patient_id=patient, split=split)


def test_check_leakage_accepts_a_clean_split(tmp_path):
    parts = {"train": [_rec(tmp_path, "v1", "p1"), _rec(tmp_path, "v2", "p1")],
             "test": [_rec(tmp_path, "v3", "p2", "malignant")]}
    assert check_leakage(parts) is None
    flat = [dataclasses.replace(r, split=s) for s, rs in parts.items() for r in rs]
    assert check_leakage(flat) is None


@pytest.mark.bad_input
def test_check_leakage_refuses_a_shared_patient(tmp_path):
    with pytest.raises(LeakageError, match=r"patient p1 is in 'train' .* and in 'test'") as err:
        check_leakage({"train": [_rec(tmp_path, "v1", "p1")], "test": [_rec(tmp_path, "v2", "p1")]})
    assert "assign_splits" in str(err.value)  # the message says how to fix it


@pytest.mark.bad_input
def test_check_leakage_refuses_a_shared_video_id(tmp_path):
    a = _rec(tmp_path, "v1", "p1", split="train")
    b = VideoRecord(video_id="v1", path=_clip_file(tmp_path / "other/v1.mp4", b"other bytes"), label="benign",
                    patient_id="p2", split="val")
    with pytest.raises(LeakageError, match="video v1 is in 'train'") as err:
        check_leakage([a, b])
    assert "patient p1" not in str(err.value) and "patient p2" not in str(err.value)


@pytest.mark.bad_input
def test_check_leakage_refuses_an_identical_clip_under_two_names(tmp_path):
    a = _rec(tmp_path, "a", "p1", payload=b"the same bytes")
    b = _rec(tmp_path, "renamed_copy", "p2", payload=b"the same bytes")
    parts = {"train": [a], "test": [b]}
    check_leakage(parts, content=False)  # ids alone do not see it
    with pytest.raises(LeakageError, match="identical clip") as err:
        check_leakage(parts)
    assert str(a.path) in str(err.value) and str(b.path) in str(err.value)


@pytest.mark.bad_input
def test_check_leakage_sees_identical_frame_folders(tmp_path):
    for name in ("x", "y"):
        for t in range(3):
            _write_png(tmp_path / name / f"{t:06d}.png", 7 * t)
    a = VideoRecord("x", tmp_path / "x", "benign", "p1")
    b = VideoRecord("y", tmp_path / "y", "benign", "p2")
    with pytest.raises(LeakageError, match="identical clip"):
        check_leakage({"train": [a], "val": [b]})


def _cohort(n_per_label: int = 10) -> list[VideoRecord]:
    """Patients with 1 to 3 clips each, half benign and half malignant."""
    recs = []
    for label in ("benign", "malignant"):
        for p in range(n_per_label):
            for c in range(1 + p % 3):
                recs.append(VideoRecord(video_id=f"{label}_p{p}_c{c}", path=Path(f"/nonexistent/{label}_p{p}_c{c}"),
                                        label=label, patient_id=f"{label}_p{p}"))
    return recs


def test_assign_splits_by_patient_keeps_patients_whole_and_labels_in_every_part():
    recs = _cohort()
    for seed in range(5):
        out = assign_splits(recs, by="patient", seed=seed)
        assert [r.video_id for r in out] == [r.video_id for r in recs]
        assert all(r.split == "" for r in recs)  # copies; the input is untouched
        part_of: dict[str, set] = {}
        for r in out:
            part_of.setdefault(r.patient_id, set()).add(r.split)
        assert all(len(parts) == 1 for parts in part_of.values())
        patients = Counter((next(iter(parts)), pid.split("_")[0]) for pid, parts in part_of.items())
        assert patients == {("train", "benign"): 6, ("val", "benign"): 2, ("test", "benign"): 2,
                            ("train", "malignant"): 6, ("val", "malignant"): 2, ("test", "malignant"): 2}
        check_leakage(out, content=False)
    assert [r.split for r in assign_splits(recs, seed=1)] == [r.split for r in assign_splits(recs, seed=1)]
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(recs, {"train": 0.5, "test": 0.4})


def test_kfold_groups_patients():
    recs = _cohort()
    folds = kfold(recs, k=5, by="patient", seed=0)
    assert len(folds) == 5
    tested = Counter()
    for train, test in folds:
        assert {r.patient_id for r in train}.isdisjoint({r.patient_id for r in test})
        assert len(train) + len(test) == len(recs)
        assert {r.label for r in test} == {"benign", "malignant"}
        tested.update(r.video_id for r in test)
    assert tested == Counter(r.video_id for r in recs)  # every clip is tested exactly once


def test_split_by_video_checks_videos_not_patients():
    """A split asked for by video (patient ids unknown) may share a patient; by patient it may not."""
    from usnb.datasets.records import VideoRecord
    from usnb.splits import assign_splits, check_leakage
    from usnb.errors import LeakageError

    recs = [VideoRecord(f"v{i}", Path(f"/x/v{i}.mp4"), "benign" if i % 2 else "malignant", f"p{i // 4}")
            for i in range(40)]
    by_video = assign_splits(recs, by="video", seed=1)
    assert len({r.video_id for r in by_video}) == 40
    check_leakage(by_video, content=False, keys=("video",))
    by_patient = assign_splits(recs, by="patient", seed=1)
    check_leakage(by_patient, content=False)
    with pytest.raises(ValueError, match="leakage keys"):
        check_leakage(recs, content=False, keys=("frame",))
    leaky = [dataclasses.replace(r, split="test" if r.video_id == "v0" else "train") for r in recs]
    check_leakage(leaky, content=False, keys=("video",))  # fine by video
    with pytest.raises(LeakageError, match="patient p0"):
        check_leakage(leaky, content=False)  # refused by patient


@pytest.mark.bad_input
def test_busi_corrupt_image_and_mask_are_named_by_data_check(busi_root, capsys):
    from usnb.cli import main

    image = busi_root / "Dataset_BUSI_with_GT/benign/benign (1).png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)
    mask = busi_root / "Dataset_BUSI_with_GT/malignant/malignant (2)_mask.png"
    mask.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"benign \(1\).png: cannot read image"):
        _by_id(load_busi(busi_root))["benign/benign (1)"].read()
    assert main(["data", "check", "busi", str(busi_root)]) == 1
    out = capsys.readouterr().out
    assert f"unreadable: {image}" in out and "malignant (2)_mask.png" in out
    assert out.strip().endswith("loaded 3/5 items")


@pytest.mark.bad_input
def test_manifest_box_column_sits_on_the_keyframe(manifest_dir):
    cols = ("path", "label", "split", "patient_id", "keyframe", "box")
    rows = [dict(GOOD_ROWS[1], box="2, 3, 5, 6")]
    rec = load_manifest(_write_manifest(manifest_dir / "b.csv", rows, cols))[0]
    assert rec.keyframe == 1 and rec.boxes == {1: [(2.0, 3.0, 5.0, 6.0)]}
    for box, pattern in (("2 3 5", "not four numbers"), ("2 3 -5 6", "negative width")):
        with pytest.raises(DataError, match=f"row 2: box .*{pattern}"):
            load_manifest(_write_manifest(manifest_dir / "c.csv", [dict(GOOD_ROWS[1], box=box)], cols))
    with pytest.raises(DataError, match="row 2: a box needs its keyframe"):
        load_manifest(_write_manifest(manifest_dir / "d.csv", [dict(GOOD_ROWS[1], keyframe="", box="1 1 2 2")], cols))


@pytest.mark.bad_input
def test_manifest_names_every_missing_file_not_only_the_first(manifest_dir):
    rows = [GOOD_ROWS[0], dict(GOOD_ROWS[1], path="clips/gone1.mp4"), dict(GOOD_ROWS[1], path="clips/gone2.mp4")]
    with pytest.raises(DataError, match=r"row 3: file 'clips/gone1.mp4' does not exist; row 4: file 'clips/gone2.mp4' "
                                        r"does not exist \(2 listed files missing\)"):
        load_manifest(_write_manifest(manifest_dir / "manifest.csv", rows))


@pytest.mark.bad_input
@pytest.mark.parametrize("text, message", [
    ("path,label,split,patient_id,label\nclips/a.mp4,benign,train,p1,x\n", r"names column\(s\) \['label'\] more than once"),
    ("path,label,split,patient_id\nclips/a.mp4,benign,train,p1,extra\n", r"row 2 has more fields than the header"),
], ids=["duplicate-column", "extra-field"])
def test_manifest_header_and_row_shape_are_checked(manifest_dir, text, message):
    (manifest_dir / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_manifest(manifest_dir / "manifest.csv")


@pytest.mark.bad_input
def test_manifest_labels_spelled_several_ways_are_refused(manifest_dir):
    rows = [GOOD_ROWS[0], dict(GOOD_ROWS[1], label=GOOD_ROWS[0]["label"].upper())]
    with pytest.raises(DataError, match=r"labels spelled several ways"):
        load_manifest(_write_manifest(manifest_dir / "manifest.csv", rows))


@pytest.mark.bad_input
@pytest.mark.parametrize("annotation, message", [
    ('[1, 2]', "not an object with a list of boxes"),
    ('{"boxes": [[1, 2, 3]]}', r"frame 0: box \[1, 2, 3\] is not \[x, y, w, h\]"),
    ('{"boxes": [null, [1, 2, 0, 4]]}', r"frame 1: box .* positive w and h"),
    ('{"boxes": [], "keyframe": "two"}', r"keyframe 'two' is not a frame index"),
], ids=["list", "three-numbers", "zero-width", "keyframe-text"])
def test_manifest_annotation_structure_is_checked_at_load(manifest_dir, annotation, message):
    (manifest_dir / "a.json").write_text(annotation)
    rows = [dict(GOOD_ROWS[0], annotation="a.json"), GOOD_ROWS[1]]
    with pytest.raises(DataError, match=message) as err:
        load_manifest(_write_manifest(manifest_dir / "manifest.csv", rows))
    assert err.value.path == manifest_dir / "a.json"


@pytest.mark.bad_input
def test_busi_upper_case_extensions_count_mask_sizes_are_checked_and_normal_is_announced(busi_root):
    from PIL import Image

    folder = busi_root / "Dataset_BUSI_with_GT" / "benign"
    before = len(load_busi(busi_root))
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(folder / "benign (9).PNG")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(folder / "benign (9)_mask.PNG")
    assert len(load_busi(busi_root)) == before + 1  # .PNG is a PNG
    Image.fromarray(np.zeros((10, 30), np.uint8)).save(folder / "benign (9)_mask.PNG")
    with pytest.raises(DataError, match=r"mask is 30x10 px, its image benign \(9\).PNG 30x20"):
        load_busi(busi_root)
    (folder / "benign (9)_mask.PNG").unlink(), (folder / "benign (9).PNG").unlink()
    normal = busi_root / "Dataset_BUSI_with_GT" / "normal"
    normal.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(normal / "normal (1).png")
    with pytest.warns(DataWarning, match=r"normal/ \(\d+ images\) left out"):
        load_busi(busi_root)


@pytest.mark.bad_input
def test_busv_absent_videos_and_other_class_folders_are_counted(busv_root):
    import shutil

    listed = sorted(p for p in (busv_root / "rawframes" / "benign").iterdir() if p.is_dir())[0]
    shutil.rmtree(listed)
    (busv_root / "rawframes" / "unsure").mkdir()
    with pytest.warns(DataWarning) as caught:
        load_busv(busv_root)
    text = " | ".join(str(w.message) for w in caught)
    assert "class folder(s) ['unsure'] left out" in text
    assert "1 video(s) listed in the annotation JSON have no frame folder" in text and listed.name in text


@pytest.mark.bad_input
def test_pocus_sheets_are_checked_and_a_stale_manifest_hash_is_said(tmp_path):
    import shutil

    root = tmp_path / "pocus"
    shutil.copytree(POCUS_ROOT / "pocus_videos" / "linear", root / "pocus_videos" / "linear")
    clip = sorted((root / "pocus_videos" / "linear").rglob("*.*"))[0]
    rel = clip.relative_to(root).as_posix()
    (root / "MANIFEST.csv").write_text(f"relpath,sha256\n{rel},{'0' * 64}\n")
    with pytest.warns(DataWarning, match=r"1 clip\(s\) differ from MANIFEST.csv's sha256"):
        records = load_pocus(root)
    assert next(r for r in records if r.path == clip).meta["sha256"] != "0" * 64  # its content, not the sheet's
    (root / "MANIFEST.csv").write_text(f"relpath,hash\n{rel},x\n")
    with pytest.raises(DataError, match=r"MANIFEST.csv: sheet lacks column\(s\) \['sha256'\]"):
        load_pocus(root)
    (root / "MANIFEST.csv").write_bytes("relpath,sha256\nx,\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="sheet is not UTF-8 text"):
        load_pocus(root)


# ======================================================================================= two-class task
def _labelled(*labels: str) -> list[VideoRecord]:
    return [VideoRecord(f"v{i}", Path(f"v{i}.mp4"), label, f"p{i}", split="train" if i % 2 else "test")
            for i, label in enumerate(labels)]


def test_binary_task_maps_positive_labels_drops_others_and_keeps_the_source_label():
    from usnb.task import binary_task, task_mapping

    records = _labelled("covid", "regular", "pneumonia", "uncertain", "viral", "regular")
    task = binary_task(records, ["covid", "pneumonia", "viral"], drop="uncertain", classes=("regular", "pathology"))
    assert [(r.video_id, r.label, r.meta["source_label"]) for r in task] == [
        ("v0", "pathology", "covid"), ("v1", "regular", "regular"), ("v2", "pathology", "pneumonia"),
        ("v4", "pathology", "viral"), ("v5", "regular", "regular")]
    assert records[0].label == "covid"  # the source's records are left as they were
    assert task_mapping(task).splitlines() == ["pathology <- covid 1, pneumonia 1, viral 1 | test 3 | 3 patients",
                                               "regular <- regular 2 | train 2 | 2 patients"]
    assert [r.label for r in binary_task(_labelled("low", "high"), "high")] == ["negative", "positive"]


@pytest.mark.bad_input
def test_binary_task_refuses_a_label_the_records_do_not_have():
    from usnb.task import binary_task

    with pytest.raises(ValueError, match=r"label\(s\) \['Covid'\] in positive/drop are not labels of these records; "
                                         r"they have \['covid', 'regular'\]"):
        binary_task(_labelled("covid", "regular"), ["Covid"])
    with pytest.raises(ValueError, match="both positive and dropped"):
        binary_task(_labelled("covid", "regular"), ["covid"], drop=["covid"])


def test_task_labels_uses_the_notebook_classes_a_public_sets_usual_task_or_the_users_positive():
    from usnb.task import task_labels

    task, names = task_labels(_labelled("covid", "regular", "uncertain", "viral", "pneumonia"), "pocus", ("a", "b"))
    assert [r.label for r in task] == ["pathology", "regular", "pathology", "pathology"]
    assert names == ("regular", "pathology")  # index 1 is the positive class
    same, names = task_labels(_labelled("benign", "malignant"), "manifest", ("benign", "malignant"))
    assert [r.label for r in same] == ["benign", "malignant"] and names == ("benign", "malignant")
    two, names = task_labels(_labelled("regular", "pathology", "regular"), "folders", ("benign", "malignant"),
                             positive="pathology")
    assert names == ("regular", "pathology") and [r.label for r in two] == ["regular", "pathology", "regular"]
    many, names = task_labels(_labelled("a", "b", "c"), "folders", ("benign", "malignant"), positive=["b", "c"])
    assert names == ("not b/c", "b/c") and [r.label for r in many] == ["not b/c", "b/c", "b/c"]
    for source in ("phantom", "busv"):  # labelled as the notebook's classes already
        kept, names = task_labels(_labelled("malignant", "benign"), source, ("benign", "malignant"))
        assert [r.label for r in kept] == ["malignant", "benign"] and names == ("benign", "malignant")
    with pytest.raises(ValueError, match=r"folders: labels \['high', 'low'\] are not this notebook's classes .*"
                                         r"-p positive '\[\"low\"\]'"):
        task_labels(_labelled("low", "high"), "folders", ("benign", "malignant"))

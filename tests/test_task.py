"""Any source, any task: the task mapping, the splits, frames of any shape, still images from any source, and the
same data listed three ways (source, manifest, class folders) splitting and training alike."""
import csv
import os
import random
from pathlib import Path

import numpy as np
import pytest

from usnb import io
from usnb.cache import ClipCache
from usnb.datasets import VideoRecord
from usnb.errors import DataError, LeakageError
from usnb.splits import kfold
from usnb.task import check_task, task_splits

from conftest import POCUS


def _records(n_patients: int = 10, clips: int = 2, split: str = "") -> list[VideoRecord]:
    """`clips` clips per patient; patients alternate between two labels."""
    return [VideoRecord(f"p{p}_{c}", Path(f"p{p}_{c}.mp4"), "high" if p % 2 else "low", f"p{p}", split=split)
            for p in range(n_patients) for c in range(clips)]


# ======================================================================================= splits
def test_without_a_split_patients_are_split_by_fraction_stratified_and_never_shared():
    parts, notes = task_splits(_records(20))
    assert {s: len(v) for s, v in parts.items()} == {"train": 24, "val": 8, "test": 8}  # 60/20/20 of 20 patients
    for part in parts.values():
        assert {r.label for r in part} == {"high", "low"}
    patients = [{r.patient_id for r in part} for part in parts.values()]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])
    assert notes == ["split by patient, stratified by class: train 60%, val 20%, test 20% (split seed 0)"]
    reversed_test = task_splits(list(reversed(_records(20))))[0]["test"]  # the same patients, listed backwards
    assert {r.video_id for r in reversed_test} == {r.video_id for r in parts["test"]}


def test_k_fold_tests_each_patient_once_and_keeps_a_validation_part_in_training():
    records = _records(20)
    tested = []
    for fold in range(5):
        parts, notes = task_splits(records, folds=5, fold=fold)
        assert parts["val"] and parts["train"] and {r.split for r in parts["test"]} == {"test"}
        check_task(parts, ("low", "high"))  # both classes everywhere, no patient in two parts
        tested += [r.video_id for r in parts["test"]]
        assert notes[0].startswith(f"fold {fold + 1} of 5 by patient")
    assert sorted(tested) == sorted(r.video_id for r in records)
    with pytest.raises(ValueError, match="fold must be 0 .. 4 for folds=5, got 5"):
        task_splits(records, folds=5, fold=5)


def test_k_fold_does_not_depend_on_the_order_the_source_lists_its_clips():
    records = _records(12)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    for (train_a, test_a), (train_b, test_b) in zip(kfold(records, 4), kfold(shuffled, 4)):
        assert [r.video_id for r in test_a] == [r.video_id for r in test_b]
        assert [r.video_id for r in train_a] == [r.video_id for r in train_b]


def test_the_sources_own_split_is_kept():
    records = _records(4, split="train") + _records(2, split="test")
    records[-1].patient_id = records[-2].patient_id = "q"  # test patients of their own
    parts, notes = task_splits(records)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [8, 0, 4] and notes == ["the source's own split"]


@pytest.mark.bad_input
def test_data_that_cannot_be_split_or_scored_is_refused_with_the_fix():
    mixed = _records(6)
    mixed[0].split = "train"
    with pytest.raises(ValueError, match="1 of 12 clips have a split and 11 do not; fill the split column for every "
                                         "clip or for none"):
        task_splits(mixed)
    with pytest.raises(ValueError, match=r"too few patients of class\(es\) \{'high': 2, 'low': 2\} to split into 3 "
                                         "parts .* add clips of other patients, or use fewer folds"):
        task_splits(_records(4))
    with pytest.raises(ValueError, match=r"too few patients of class\(es\) \{'high': 3, 'low': 3\} to split into 5"):
        task_splits(_records(6), folds=5)
    with pytest.raises(ValueError, match=r"5-fold by patient needs at least 5 patients of each class; class\(es\) "
                                         r"\{'high': 3, 'low': 3\} have fewer. Fix: fewer folds"):
        kfold(_records(6), 5)  # notebook 04's folds
    one_class = [r for r in _records(8) if r.label == "low"]
    with pytest.raises(ValueError, match=r"only one class \(\['low'\]\) after the task's mapping"):
        task_splits(one_class)
    parts = {"train": _records(4, split="train"), "test": [r for r in _records(4, split="test") if r.label == "low"]}
    with pytest.raises(DataError, match=r"m.csv: the test split has no clip of class\(es\) \['high'\]"):
        check_task(parts, ("low", "high"), "m.csv")
    with pytest.raises(DataError, match=r"labels \['odd'\] are outside the task's classes"):
        check_task({"train": _records(2) + [VideoRecord("x", Path("x.mp4"), "odd", "z")], "test": _records(2)},
                   ("low", "high"))
    with pytest.raises(LeakageError, match="patient p0 is in 'train'"):
        check_task({"train": _records(2), "test": _records(2)}, ("low", "high"))


# ======================================================================================= frames of any shape
def test_fit_geometry_pads_crops_or_stretches():
    assert io.fit_geometry((50, 100), (32, 32), "pad") == ((16, 32), (8, 0))
    assert io.fit_geometry((50, 100), (32, 32), "crop") == ((32, 64), (0, -16))
    assert io.fit_geometry((50, 100), (32, 32), "stretch") == ((32, 32), (0, 0))
    square = ((32, 32), (0, 0))  # a square frame: every fit is the same resize
    assert io.fit_geometry((64, 64), (32, 32), "pad") == io.fit_geometry((64, 64), (32, 32), "crop") == square
    frame = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4, 1)
    padded = io.place(frame, (5, 4), (1, 0))
    assert np.array_equal(padded[:, 1:4], frame) and not padded[:, 0].any() and not padded[:, 4].any()
    assert np.array_equal(io.place(frame, (3, 2), (0, -1)), frame[:, :, 1:3])
    with pytest.raises(ValueError, match=r"frame_fit must be one of \['pad', 'crop', 'stretch'\], got 'fill'"):
        io.fit_geometry((1, 1), (1, 1), "fill")


@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_a_wide_clip_is_cached_square_and_its_box_lands_on_its_lesion(tmp_path, fit):
    """A 40 x 80 frame folder with a bright 10 x 20 block: after the cache's resize and pad / crop / stretch, the box
    mapped by `ClipCache.boxes` covers exactly the bright pixels."""
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    frame = np.zeros((40, 80), np.uint8)
    frame[10:20, 40:60] = 255
    for t in range(2):
        Image.fromarray(frame).save(folder / f"{t:06d}.png")
    record = VideoRecord("clip", folder, "high", "p", boxes={0: [(40, 10, 20, 10)]})
    cache = ClipCache(tmp_path / "cache", size=(32, 32), fit=fit)
    cached = np.asarray(cache.get(record))[0, :, :, 0]
    assert cached.shape == (32, 32)
    (x, y, w, h), = cache.boxes(record, record.boxes[0])
    expected = {"pad": (16, 12, 8, 4), "crop": (16, 8, 16, 8), "stretch": (16, 8, 8, 8)}[fit]
    assert (x, y, w, h) == pytest.approx(expected)
    inside = cached[int(y) + 1:int(y + h) - 1, int(x) + 1:int(x + w) - 1]
    assert inside.min() > 200  # the box's interior is the bright block
    bright = np.argwhere(cached > 128)
    assert bright[:, 0].min() >= y - 1 and bright[:, 0].max() <= y + h and bright[:, 1].min() >= x - 1 \
        and bright[:, 1].max() <= x + w
    if fit == "pad":
        assert not cached[:7].any() and not cached[25:].any()  # black bars above and below the 16 px high frame
    assert ClipCache(tmp_path / "cache", size=(32, 32), fit="crop").key(folder) != \
        ClipCache(tmp_path / "cache", size=(32, 32), fit="pad").key(folder)


def test_a_wide_still_image_keeps_its_aspect_when_asked(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 40), 200, np.uint8)).save(tmp_path / "wide.png")
    padded = io.read_image(tmp_path / "wide.png", grayscale=True, size=(16, 16), fit="pad")[..., 0]
    assert padded.shape == (16, 16) and not padded[:4].any() and not padded[12:].any() and padded[4:12].min() == 200
    assert io.read_image(tmp_path / "wide.png", grayscale=True, size=(16, 16))[..., 0].min() == 200  # stretched


# ======================================================================================= still images, any source
def _image_folders(root: Path, labels=("benign", "malignant"), n: int = 2) -> Path:
    from PIL import Image

    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((24, 48), 40 + 100 * i, np.uint8)).save(root / label / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def phantom16(tmp_path_factory):
    """16 breast sweeps of 8 frames at 32 px, half malignant, 4 stills."""
    from usnb.phantom import generate

    return generate("breast", tmp_path_factory.mktemp("t16") / "breast", n=16, size=32, frames=8, seed=1,
                    positive_fraction=0.5, n_images=4, workers=1)


def test_kganet_takes_phantom_videos_with_a_folder_of_still_images(phantom16, tmp_path):
    from usnb.recipes import kganet as K
    from usnb.view import FieldOfView

    stills = _image_folders(tmp_path / "stills", labels=("benign", "malignant", "normal"))
    data = K.load_data("phantom", FieldOfView(16), data_dir=phantom16, images="folders", image_dir=stills,
                       drop="normal")
    assert sorted((r.label, Path(r.path).name) for r in data.images) == [
        ("benign", "img0.png"), ("benign", "img1.png"), ("malignant", "img0.png"), ("malignant", "img1.png")]
    assert K.rows(data) == list(K.TABLE2_ROWS)
    own = K.load_data("phantom", FieldOfView(16), data_dir=phantom16)  # the phantom's own stills
    assert len(own.images) == 4 and own.notes[-1].startswith("still images: 4 from phantom")


def test_a_video_only_source_trains_the_rows_without_images(phantom16, tmp_path):
    from usnb.recipes import kganet as K
    from usnb.view import FieldOfView

    root = _as_folders(phantom16, tmp_path / "folders")
    data = K.load_data("folders", FieldOfView(16), data_dir=root, positive="malignant")
    assert data.images == [] and K.rows(data) == ["w/o image guidance"]
    assert data.classes == ("benign", "malignant")
    model, history = K.train_row("w/o image guidance", data, K.get_profile("small", train_steps=2, size=16,
                                 widths=(4, 4, 4, 4), train_batch=2, train_frames=4, eval_frames=4,
                                 num_workers=0), 0, tmp_path / "out", progress=False)
    assert np.isfinite(history[-1]["loss"])


def _as_folders(phantom: Path, root: Path, with_patients: bool = True) -> Path:
    """The phantom's clips as ROOT/<label>/<clip> symlinks, with patients.csv."""
    rows = list(csv.DictReader(open(phantom / "manifest.csv")))
    for row in rows:
        link = root / row["label"] / Path(row["path"]).name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((phantom / row["path"]).resolve(), link)
    if with_patients:
        with open(root / "patients.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["clip", "patient_id"])
            w.writerows([(f"{r['label']}/{Path(r['path']).name}", r["patient_id"]) for r in rows])
    return root


def test_folders_and_a_split_less_manifest_of_the_same_clips_split_alike(phantom16, tmp_path):
    from usnb.breast import load_breast
    from usnb.view import FieldOfView

    folders = _as_folders(phantom16, tmp_path / "folders")
    rows = list(csv.DictReader(open(phantom16 / "manifest.csv")))
    random.Random(0).shuffle(rows)  # a manifest lists the clips in any order
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "patient_id"])
        w.writerows([(str((phantom16 / r["path"]).resolve()), "tumour" if r["label"] == "malignant" else "none", "",
                      r["patient_id"]) for r in rows])
    a = load_breast("folders", FieldOfView(16), folders, positive="malignant", folds=4, fold=1)
    b = load_breast("manifest", FieldOfView(16), tmp_path / "m.csv", positive="tumour", folds=4, fold=1)
    assert a.classes == ("benign", "malignant") and b.classes == ("none", "tumour")
    for part in ("train", "val", "test"):
        assert [Path(r.path).name for r in a.clips[part]] == [Path(r.path).name for r in b.clips[part]]  # same order
    assert "benign <- benign" in a.mapping() and "tumour <- tumour" in b.mapping()


@pytest.mark.slow
@pytest.mark.skipif(not POCUS.is_dir(), reason="real POCUS subset not found: set USNB_POCUS_DIR")
def test_lung_study_on_pocus_a_manifest_and_class_folders_of_it_gives_the_same_split_and_numbers(tmp_path):
    """The lung notebook's first fold on the real POCUS clips, read three ways, at a tiny training length."""
    from usnb.datasets import load_pocus
    from usnb.recipes import lung_ssl as S
    from usnb.splits import assign_splits

    records = [r for r in load_pocus(POCUS) if r.label != "uncertain"]
    folders, rows = tmp_path / "folders", []
    for r in records:
        label = "regular" if r.label == "regular" else "pathology"
        link = folders / label / Path(r.path).name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(r.path).resolve(), link)
        rows.append((str(Path(r.path).resolve()), label, "", r.patient_id, f"{label}/{link.name}"))
    with open(tmp_path / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "split", "patient_id")] + [row[:4] for row in rows])
    with open(folders / "patients.csv", "w", newline="") as f:
        csv.writer(f).writerows([("clip", "patient_id")] + [(row[4], row[3]) for row in rows])
    P = S.get_profile("small", ssl_steps=2, supervised_steps=2, frames=4, size=16)
    results = []
    for dataset, root, positive in (("pocus", POCUS, None), ("manifest", tmp_path / "m.csv", "pathology"),
                                    ("folders", folders, "pathology")):
        data = S.load_data(dataset, P, data_dir=root, positive=positive, max_clip_frames=64)
        assert data.classes == ("regular", "pathology") and len(data.clips["all"]) == 130
        train, test = kfold(data.clips["all"], k=5, by="patient", seed=0)[0]
        inner = assign_splits(train, {"train": 0.8, "val": 0.2}, by="patient", seed=0)
        split = {"train": [r for r in inner if r.split == "train"], "val": [r for r in inner if r.split == "val"],
                 "test": test}
        study = S.run_study(data, split, P, 0, tmp_path / dataset, algorithms=("BYOL",), fractions=(1.0,),
                            temporal_ablation=False, fine_tune_fractions=(1.0,), progress=False,
                            echo=lambda *a: None)
        results.append(({s: [Path(r.path).name for r in v] for s, v in split.items()}, (data.mean, data.std),
                        {n: round(m["auc"], 6) for n, m in study.rows.items()}))
    assert results[0] == results[1] == results[2]


@pytest.mark.bad_input
@pytest.mark.parametrize("family", ["breast", "lung"])
def test_a_source_without_a_folder_names_the_fix_in_every_notebook_family(family):
    """data_dir None and nothing at USNB_DATA_DIR/<dataset>: one message, whichever notebook reads it."""
    from usnb.breast import load_breast
    from usnb.lung import load_lung
    from usnb.view import FieldOfView

    with pytest.raises(ValueError, match=r"dataset='folders' needs data_dir: the folder holding the data \(or put it "
                                         r"at .*usnb_data/folders, or set USNB_FOLDERS_DIR\)"):
        load_breast("folders", FieldOfView(16)) if family == "breast" else load_lung("folders", 16)


def test_train_clips_are_the_training_split_in_t_frames_cropped_where_asked(tmp_path):
    import torch

    from usnb.breast import load_breast, train_clips
    from usnb.phantom import generate
    from usnb.view import FieldOfView

    root = generate("breast", tmp_path / "breast", n=16, size=32, frames=8, seed=1, positive_fraction=0.5, n_images=0,
                    workers=1)  # both classes in every split
    data = load_breast("phantom", FieldOfView(32, 0.75), root)
    clips, prepare = train_clips(data, 4, (0.8, 1.0))
    assert len(clips) == len(data.clips["train"]) and prepare is data.view and clips.mode == "segments"
    torch.manual_seed(0)
    x, y = clips[0]
    size = data.view.cache_size  # cropped and resized back to the cache's size in the loader
    assert x.shape == (4, 1, size, size) and x.dtype == torch.uint8
    assert y == data.classes.index(data.clips["train"][0].label)
    raw, prepare = train_clips(data, 4, (0.8, 1.0), augment_on="device")
    assert raw.transform is None and prepare is not data.view  # the crop runs on the batch, on the model's device
    assert prepare(raw[0][0][None], 4).shape == (1, 4, 1, 32, 32)  # cropped, flipped, field of view, standardised

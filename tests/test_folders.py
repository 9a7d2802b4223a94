"""The `folders` source: ROOT/<label>/<clip>, patients from patients.csv or a name pattern."""
from pathlib import Path

import numpy as np
import pytest

from usnb import io
from usnb.datasets import load_folders
from usnb.errors import DataError, DataWarning
from usnb.sources import load


def _video(path: Path, value: int = 60) -> Path:
    return io.write_video(path, np.full((3, 16, 16), value, np.uint8))


def _frames(folder: Path, n: int = 3) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for t in range(n):
        Image.fromarray(np.full((16, 16), 20 * t, np.uint8)).save(folder / f"{t:06d}.png")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "lung"
    _video(root / "high" / "p01_a.mp4")
    _video(root / "high" / "p01_b.avi")
    _frames(root / "low" / "p02_a")
    _video(root / "low" / "p03_a.mov")
    return root


def test_each_class_folder_is_a_label_and_each_clip_its_own_patient_with_a_warning(root):
    with pytest.warns(DataWarning, match=r"no patients.csv and no patient_pattern: each of the 4 clips"):
        records = load_folders(root)
    assert [(r.video_id, r.label, r.patient_id, r.split) for r in records] == [
        ("high/p01_a.mp4", "high", "high/p01_a.mp4", ""), ("high/p01_b.avi", "high", "high/p01_b.avi", ""),
        ("low/p02_a", "low", "low/p02_a", ""), ("low/p03_a.mov", "low", "low/p03_a.mov", "")]
    assert records[2].read().shape == (3, 16, 16, 3) and records[0].read().shape[0] == 3


def test_patients_from_a_name_pattern_or_patients_csv(root, recwarn):
    records = load_folders(root, patient_pattern=r"^(p\d+)_")
    assert [r.patient_id for r in records] == ["p01", "p01", "p02", "p03"]
    (root / "patients.csv").write_text("clip,patient_id\nhigh/p01_a.mp4,A\nhigh/p01_b.avi,A\nlow/p02_a,B\n"
                                       "low/p03_a.mov,C\n")
    assert [r.patient_id for r in load("folders", root)] == ["A", "A", "B", "C"]  # found beside the classes
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


@pytest.mark.bad_input
def test_a_clip_without_a_patient_is_named(root):
    (root / "patients.csv").write_text("clip,patient_id\nhigh/p01_a.mp4,A\n")
    with pytest.raises(DataError, match=r"3 clip\(s\) have no patient in .*patients.csv: \['high/p01_b.avi', "):
        load_folders(root)
    (root / "patients.csv").unlink()
    with pytest.raises(DataError, match=r"1 clip\(s\) have no patient matched by patient_pattern '\^\(p0\[12\]\)_'"):
        load_folders(root, patient_pattern=r"^(p0[12])_")
    with pytest.raises(ValueError, match="has no group"):
        load_folders(root, patient_pattern=r"^p\d+_")


@pytest.mark.bad_input
def test_other_entries_are_counted_hidden_ones_ignored_and_a_broken_frame_folder_named(root):
    (root / "high" / "notes.txt").write_text("x")
    (root / "high" / ".DS_Store").write_text("x")
    (root / "low" / "empty").mkdir()
    with pytest.warns(DataWarning, match=r"2 entries are neither videos nor frame folders and were left out"):
        assert len(load_folders(root, patient_pattern=r"^(p\d+)_")) == 4
    (root / "low" / "p02_a" / "000005.png").write_bytes((root / "low" / "p02_a" / "000000.png").read_bytes())
    with pytest.raises(DataError, match=r"p02_a: gap in frame numbering"):
        load_folders(root, patient_pattern=r"^(p\d+)_")


@pytest.mark.bad_input
def test_a_folder_without_classes_or_clips_is_an_error(tmp_path):
    with pytest.raises(DataError, match="holds no class folders"):
        load_folders(tmp_path)
    (tmp_path / "benign").mkdir()
    with pytest.raises(DataError, match=r"no clips in its class folders \['benign'\]"):
        load_folders(tmp_path)

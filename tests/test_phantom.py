import json

import numpy as np
import pytest

from usnb.phantom import PhantomSpec, generate, load_phantom, load_phantom_images
from usnb.phantom.breast import ground_truth
from usnb.phantom.speckle import RAYLEIGH_MEAN_OVER_STD, envelope, scatterers


def test_speckle_envelope_is_rayleigh():
    """Fully developed speckle in a homogeneous region: envelope mean/std = sqrt(pi/(4-pi)) = 1.913."""
    rng = np.random.default_rng(0)
    refl = np.ones((8, 128, 128), np.float32)
    env = envelope(refl, scatterers(rng, refl.shape, rho=0.8))
    ratio = env.mean() / env.std()
    assert RAYLEIGH_MEAN_OVER_STD == pytest.approx(1.913, abs=1e-3)
    assert ratio == pytest.approx(RAYLEIGH_MEAN_OVER_STD, rel=0.02)
    # and the statistic does tell: a non-speckle envelope (abs of a real Gaussian) gives 1.32
    half = np.abs(rng.standard_normal(100_000))
    assert half.mean() / half.std() == pytest.approx(1.32, abs=0.02)


def test_same_seed_same_manifest_and_frames(tiny_breast, tmp_path):
    again = generate("breast", tmp_path / "again", n=8, size=64, frames=12, seed=5, n_images=4, workers=2)
    assert (again / "manifest.csv").read_text() == (tiny_breast / "manifest.csv").read_text()
    for a, b in zip(load_phantom(tiny_breast), load_phantom(again)):
        assert np.array_equal(a.read(), b.read())
        assert a.meta == b.meta
    other = generate("breast", tmp_path / "other", n=8, size=64, frames=12, seed=6, n_images=0, workers=1)
    assert not np.array_equal(load_phantom(other)[0].read(), load_phantom(tiny_breast)[0].read())


def test_phantom_contents(tiny_breast):
    clips = load_phantom(tiny_breast)
    assert len(clips) == 8
    info = json.loads((tiny_breast / "phantom.json").read_text())
    assert info["clips"] == 8 and info["spec"]["size"] == 64
    for c in clips:
        frames = c.read(grayscale=True)
        assert frames.shape == (12, 64, 64, 1)
        assert c.split in ("train", "val", "test") and c.patient_id
        vis = c.meta["visibility"]
        assert len(vis) == 12 and max(vis) == 1.0 and c.keyframe == int(np.argmax(vis))
        # a box exactly where the lesion is visible
        assert set(c.boxes) == {i for i, v in enumerate(c.meta["boxes"]) if v}
    # the two sweeps of one patient share the lesion features and the split
    by_patient = {}
    for c in clips:
        by_patient.setdefault(c.patient_id, []).append(c)
    for group in by_patient.values():
        assert len({c.split for c in group}) == 1 and len({c.label for c in group}) == 1
        assert len({json.dumps({k: v for k, v in c.meta["features"].items() if k != "radius_px"}) for c in group}) == 1
    images = load_phantom_images(tiny_breast)
    assert len(images) == 4
    assert images[0].read().shape == (64, 64, 3) and images[0].read_mask().any()


def test_lesion_is_darker_than_tissue_in_its_box(tiny_breast):
    c = load_phantom(tiny_breast)[0]
    frames = c.read(grayscale=True)[..., 0].astype(float)
    x, y, w, h = c.boxes[c.keyframe][0]
    inner = frames[c.keyframe, y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4].mean()
    assert inner < frames[c.keyframe].mean()  # hypoechoic lesion


def test_ground_truth_boxes():
    mask = np.zeros((3, 10, 10), np.float32)
    mask[1, 2:5, 3:8] = 1
    gt = ground_truth(mask)
    assert gt["boxes"] == [None, [3, 2, 5, 3], None]
    assert gt["visibility"] == [0.0, 1.0, 0.0] and gt["keyframe"] == 1
    assert ground_truth(np.zeros((2, 4, 4)))["keyframe"] is None


def test_lung_phantom(tmp_path):
    out = generate("lung", tmp_path / "lung", n=6, size=64, frames=10, seed=1, workers=1)
    clips = load_phantom(out)
    assert {c.label for c in clips} == {"normal", "consolidation"}
    for c in clips:
        boxed = [i for i, b in enumerate(c.meta["boxes"]) if b]
        if c.label == "normal":
            assert not boxed
        else:  # breathing moves the consolidation in and out of view: boxed in some frames, not all
            assert 0 < len(boxed) <= 10
            frames = c.read(grayscale=True)[..., 0].astype(float)
            x, y, w, h = c.boxes[boxed[0]][0]
            below_pleura = frames[boxed[0], y:y + h].mean()
            assert frames[boxed[0], y:y + h, x:x + w].mean() > 0.8 * below_pleura  # tissue-like, not dark air
        assert c.meta["features"]["b_lines"] >= 0


def test_spec_is_validated():
    with pytest.raises(ValueError, match="even"):
        PhantomSpec(size=113)
    with pytest.raises(ValueError, match="kind"):
        PhantomSpec(kind="liver")


def test_class_ratio_is_about_three_to_one():
    from usnb.phantom import _plan

    tasks = _plan(PhantomSpec(n=300, seed=0))
    share = np.mean([t["label"] == "malignant" for t in tasks])
    assert len(tasks) == 300 and 0.2 < share < 0.32
    assert {t["split"] for t in tasks} == {"train", "val", "test"}


def test_generate_refuses_to_overwrite_a_foreign_folder(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a phantom folder"):
        generate("lung", precious, n=4, size=32, frames=2, workers=1)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert not list(tmp_path.glob("*.partial-*"))


def test_extra_test_clips_join_the_test_split_and_leave_every_other_clip_as_it_was():
    from usnb.phantom import _plan

    base = _plan(PhantomSpec(kind="breast", n=40, seed=3))
    more = _plan(PhantomSpec(kind="breast", n=40, seed=3, extra_test=25))
    assert more[:len(base)] == base  # train, val and the first test clips: same ids, splits, labels, render seeds
    extra = more[len(base):]
    assert len(extra) == 25 and {t["split"] for t in extra} == {"test"}
    assert not {t["patient_id"] for t in extra} & {t["patient_id"] for t in base}  # new patients only
    assert len({tuple(t["seed"]) for t in more}) == len({t["patient_id"] for t in more})  # one lesion per patient
    assert "-x25-" in PhantomSpec(extra_test=25).folder_name() and "-x" not in PhantomSpec().folder_name()
    with pytest.raises(ValueError, match="extra_test"):
        PhantomSpec(extra_test=-1)

from pathlib import Path

import numpy as np
import pytest
import torch

from usnb import sampling
from usnb.cache import ClipCache
from usnb.phantom import load_phantom
from usnb.transforms import to_video, video_augment


@pytest.mark.bad_input
def test_uniform_indices_spread_and_short_clip_rule():
    assert sampling.uniform_indices(32, 8).tolist() == [2, 6, 10, 14, 18, 22, 26, 30]
    short = sampling.uniform_indices(5, 8)
    assert short.tolist() == [0, 0, 1, 2, 2, 3, 4, 4]  # repeated in order, never padded
    assert (np.diff(short) >= 0).all()
    assert sampling.uniform_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        sampling.uniform_indices(0, 4)


def test_random_crop_is_consecutive_and_inside():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sampling.random_crop_indices(40, 16, rng, stride=2)
        assert idx.min() >= 0 and idx.max() < 40 and (np.diff(idx) == 2).all()
    assert sampling.random_crop_indices(5, 16, rng).tolist() == sampling.uniform_indices(5, 16).tolist()


def test_segment_indices_take_one_frame_per_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        idx = sampling.segment_indices(32, 8, rng)
        assert [i // 4 for i in idx] == list(range(8))  # frame k comes from segment [4k, 4k + 4)
        seen.update(idx.tolist())
    assert seen == set(range(32))  # every frame can be drawn
    assert sampling.segment_indices(5, 8, rng).tolist() == sampling.uniform_indices(5, 8).tolist()
    assert len(sampling.sample_indices(30, 7, "segments", rng)) == 7


def test_aspect_keeping_crop():
    frames = torch.zeros(2, 1, 40, 40, dtype=torch.uint8)
    frames[:, :, 10:30, 15:25] = 255  # a box twice as tall as wide
    torch.manual_seed(0)
    for _ in range(10):
        out = video_augment(40, scale=(0.8, 1.0), ratio=(1.0, 1.0))(frames)
        rows, cols = np.nonzero(out[0, 0].numpy() > 127)
        assert 1.7 < (np.ptp(rows) + 1) / (np.ptp(cols) + 1) < 2.3  # still twice as tall


def test_all_indices_cap():
    assert sampling.all_indices(10).tolist() == list(range(10))
    assert len(sampling.all_indices(500, max_frames=128)) == 128
    with pytest.raises(ValueError, match="sampling mode"):
        sampling.sample_indices(10, 4, "middle")


def test_augmentation_is_identical_across_frames():
    torch.manual_seed(0)
    frame = np.random.default_rng(0).integers(0, 255, (40, 40, 1), dtype=np.uint8)
    clip = np.repeat(frame[None], 6, axis=0)  # six identical frames
    aug = video_augment(size=24, scale=(0.3, 0.6), degrees=10, brightness=0.3, contrast=0.3)
    for _ in range(5):
        out = aug(to_video(clip))
        assert out.shape == (6, 1, 24, 24)
        assert all(torch.equal(out[0], out[i]) for i in range(1, 6))
    a, b = aug(to_video(clip)), aug(to_video(clip))
    assert not torch.equal(a, b)  # but a new draw per clip


def test_cache_decodes_once_and_matches_decoder(tiny_breast, tmp_path, monkeypatch):
    record = load_phantom(tiny_breast)[0]
    cache = ClipCache(tmp_path / "cache", size=(32, 32), grayscale=True)
    first = cache.get(record)
    assert first.shape == (12, 32, 32, 1) and first.dtype == np.uint8
    assert np.array_equal(first, record.read(grayscale=True, size=(32, 32)))
    # a second get must not decode: break the decoder and read again
    monkeypatch.setattr(type(record), "read", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    assert np.array_equal(cache.get(record), first)
    assert not list((tmp_path / "cache").glob("*.tmp-*"))


def test_clip_dataset_samples_from_the_cache(tiny_breast, tmp_path):
    from usnb.data import ClipDataset, PairedDataset, ImageDataset
    from usnb.phantom import load_phantom_images

    records = load_phantom(tiny_breast)
    cache = ClipCache(tmp_path / "c", size=(32, 32))
    ds = ClipDataset(records, cache, ("benign", "malignant"), num_frames=4, mode="uniform")
    clip, label = ds[0]
    assert clip.shape == (4, 1, 32, 32) and clip.dtype == torch.uint8
    assert label == int(records[0].label == "malignant")
    full = torch.from_numpy(np.array(cache.get(records[0]))).permute(0, 3, 1, 2)
    assert torch.equal(clip, full[sampling.uniform_indices(12, 4)])
    torch.manual_seed(0)
    rand = ClipDataset(records, cache, ("benign", "malignant"), num_frames=4, mode="random")
    starts = {int(torch.nonzero((full == rand[0][0][0]).all(dim=(1, 2, 3)))[0]) for _ in range(20)}
    assert len(starts) > 1  # random crops move
    images = ImageDataset(load_phantom_images(tiny_breast), ("benign", "malignant"), size=(32, 32))
    pairs = PairedDataset(ds, images)
    assert len(pairs) == max(len(ds), len(images)) and len(pairs[5]) == 4
    with pytest.raises(ValueError, match="not one of"):
        ClipDataset(records, cache, ("benign",), num_frames=4)


@pytest.mark.bad_input
def test_clip_shorter_than_t_repeats_frames_and_says_how_many(tiny_breast, tmp_path):
    from usnb.data import ClipDataset
    from usnb.errors import DataWarning

    records = load_phantom(tiny_breast)[:3]  # 12 frames each
    cache = ClipCache(tmp_path / "c", size=(32, 32))
    with pytest.warns(DataWarning, match=r"3 of 3 clips have fewer than T=16 frames \(shortest: .*\.mp4, 12 frames\)"
                                         r".*repeat in temporal order.*Fix: lower num_frames"):
        ds = ClipDataset(records, cache, ("benign", "malignant"), num_frames=16)
    clip, _ = ds[0]
    full = torch.from_numpy(np.array(cache.get(records[0]))).permute(0, 3, 1, 2)
    assert clip.shape == (16, 1, 32, 32) and torch.equal(clip, full[sampling.uniform_indices(12, 16)])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # long enough clips, or every frame asked for: no warning
        ClipDataset(records, cache, ("benign", "malignant"), num_frames=12)
        ClipDataset(records, cache, ("benign", "malignant"), num_frames=16, mode="all")


@pytest.mark.bad_input
def test_interrupted_cache_write_leaves_no_clip_behind(tiny_breast, tmp_path, monkeypatch):
    record = load_phantom(tiny_breast)[0]
    cache = ClipCache(tmp_path / "cache", size=(32, 32))

    def save_half_then_stop(file, frames):
        Path(file).write_bytes(b"\x93NUMPY half a clip")
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(np, "save", save_half_then_stop)
        cache.get(record)
    assert list((tmp_path / "cache").iterdir()) == []  # neither the clip nor a temporary file
    assert cache.get(record).shape == (12, 32, 32, 1)


@pytest.mark.bad_input
def test_clip_gone_since_listing_is_named_by_the_cache(tiny_breast, tmp_path):
    import shutil
    from usnb.errors import DataError

    copy = tmp_path / "copy"
    shutil.copytree(tiny_breast, copy)
    records = load_phantom(copy)
    records[1].path.unlink()
    with pytest.raises(DataError, match="file does not exist") as err:
        ClipCache(tmp_path / "cache").prefill(records, progress=False)
    assert err.value.path == records[1].path


@pytest.mark.bad_input
@pytest.mark.parametrize("damage", ["truncated", "zeroed", "foreign", "changed"])
def test_a_damaged_cache_entry_is_decoded_again_with_a_warning_naming_the_clip(tiny_breast, tmp_path, damage):
    from usnb.errors import DataWarning

    record = load_phantom(tiny_breast)[0]
    good = ClipCache(tmp_path / "cache", size=(32, 32)).get(record).copy()
    entry = ClipCache(tmp_path / "cache", size=(32, 32)).file(record)
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "zeroed":
        entry.write_bytes(bytes(len(data)))
    elif damage == "foreign":
        np.save(entry, np.zeros((3, 5), np.float32))
    else:  # a valid clip of the right shape, other pixels: only the checksum tells
        np.save(entry, 255 - good)
    fresh = ClipCache(tmp_path / "cache", size=(32, 32))  # a new process: nothing verified yet
    with pytest.warns(DataWarning, match=rf"cache entry of {record.path}.*decoding the clip again"):
        again = fresh.get(record)
    assert np.array_equal(again, good)


@pytest.mark.bad_input
def test_a_full_or_read_only_cache_folder_is_named_with_the_fix(tiny_breast, tmp_path, monkeypatch):
    import errno

    from usnb.errors import DataError

    def no_space(file, frames):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", no_space)  # what a full disk (or, for a user, a read-only folder) does to a save
    with pytest.raises(DataError, match=r"cannot write the clip cache \(No space left on device\).*USNB_CACHE_DIR") as err:
        ClipCache(tmp_path / "cache", size=(32, 32)).get(load_phantom(tiny_breast)[0])
    assert err.value.path == tmp_path / "cache" and not list((tmp_path / "cache").iterdir())


def test_prefill_verifies_cached_entries_so_training_reads_only(tiny_breast, tmp_path, monkeypatch):
    records = load_phantom(tiny_breast)[:3]
    ClipCache(tmp_path / "cache", size=(32, 32)).prefill(records, progress=False)
    fresh = ClipCache(tmp_path / "cache", size=(32, 32))
    fresh.prefill(records, progress=False)
    assert set(fresh._checked) == {fresh.file(r).name for r in records}
    monkeypatch.setattr(ClipCache, "_problem", lambda *a: (_ for _ in ()).throw(AssertionError("verified again")))
    assert all(fresh.get(r).shape == (12, 32, 32, 1) for r in records)  # no second check in the loop


def test_a_clip_longer_than_max_frames_is_cached_thinned_and_maps_back_to_its_frames(tmp_path, monkeypatch):
    from usnb import io
    from usnb.datasets.records import VideoRecord
    from usnb.errors import DataWarning
    from usnb.evaluate import all_frames, predict, visibility_of
    from usnb.view import FieldOfView

    video = np.stack([np.full((16, 16), 4 * t, np.uint8) for t in range(50)])  # frame t has grey level 4 t
    path = io.write_video(tmp_path / "long.mp4", video, crf=0)
    record = VideoRecord("long", path, "b", "p", boxes={26: [(1, 1, 4, 4)]}, meta={"visibility": list(range(50))})
    kept = sampling.uniform_indices(50, 8)  # [3, 9, 15, 21, 28, 34, 40, 46]
    asked = []
    read = VideoRecord.read
    monkeypatch.setattr(VideoRecord, "read", lambda self, **k: asked.append(k.get("indices")) or read(self, **k))
    cache = ClipCache(tmp_path / "c", size=(16, 16), max_frames=8)
    with pytest.warns(DataWarning, match=r"1 of 1 clips are longer than 8 frames \(e.g. .*long.mp4\)"):
        cache.prefill([record], progress=False)
    assert [list(a) for a in asked] == [kept.tolist()]  # decoded by index: only the kept frames
    thinned = cache.get(record)
    assert thinned.shape == (8, 16, 16, 1)
    assert np.abs(thinned[:, 8, 8, 0].astype(int) - 4 * kept).max() <= 2  # frame k of the cache is frame kept[k]
    assert cache.native(record).tolist() == kept.tolist()

    class Mean(torch.nn.Module):  # a model that only passes its input through
        def forward(self, x):
            return {"logits": torch.zeros(len(x), 2), "video_feature": x.mean(dim=(1, 2, 3, 4))[:, None]}

    preds = predict(Mean(), [record], cache, FieldOfView(16), ["a", "b"], all_frames(4), device=torch.device("cpu"))
    assert preds.frames[0].tolist() == sampling.uniform_indices(8, 4).tolist()  # positions in the cache
    assert preds.native[0].tolist() == kept[sampling.uniform_indices(8, 4)].tolist()  # frames of the file
    assert visibility_of(preds)[0].tolist() == kept[sampling.uniform_indices(8, 4)].tolist()

    whole = ClipCache(tmp_path / "c", size=(16, 16), max_frames=None)  # every frame: another entry
    assert len(whole.get(record)) == 50 and whole.native(record).tolist() == list(range(50))
    with pytest.raises(ValueError, match=r"max_frames \(a notebook's max_clip_frames\) must be a whole number >= 1 or None"):
        ClipCache(tmp_path / "c", max_frames=0)

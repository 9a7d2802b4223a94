"""Reliability cases beyond test_io/test_datasets/test_train: odd inputs, a bad notebook parameter, a repeatable recipe."""
import numpy as np
import pytest
import torch

from usnb import io
from usnb.cli import main
from usnb.data import ClipDataset
from usnb.datasets.records import VideoRecord
from usnb.errors import DataError, DataWarning
from usnb.view import FieldOfView


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.bad_input
def test_a_text_file_posing_as_a_video_names_the_file(tmp_path):
    path = tmp_path / "notes.mov"
    path.write_text("this is not a video")
    with pytest.raises(DataError, match="notes.mov.*cannot decode") as err:
        io.read_video(path)
    assert "ffmpeg" in str(err.value)


@pytest.mark.bad_input
def test_clip_shorter_than_t_repeats_frames_in_order(tmp_path):
    path = io.write_video(tmp_path / "short.mp4", np.arange(3)[:, None, None].repeat(16, 1).repeat(16, 2).astype(np.uint8) * 80)
    record = VideoRecord("short", path, "benign", "p1", "train")
    from usnb.cache import ClipCache

    for mode in ("uniform", "random", "segments"):
        with pytest.warns(DataWarning, match="fewer than T=8 frames"):  # said, not silent
            dataset = ClipDataset([record], ClipCache(tmp_path / mode, size=(16, 16)), ["benign"], num_frames=8,
                                  mode=mode)
        clip, _ = dataset[0]
        level = (clip.float().mean((1, 2, 3)) / 80).round()  # which of the 3 frames (0, 80, 160 grey)
        assert clip.shape[0] == 8 and (level.diff() >= 0).all()  # 8 frames in temporal order, never padded
        assert set(level.tolist()) == {0.0, 1.0, 2.0}  # every frame is used


@pytest.mark.bad_input
@pytest.mark.slow
def test_notebook_run_with_a_bad_parameter_names_the_cell_and_the_parameter(tmp_path, capsys):
    assert main(["run", "kganet", "--out", str(tmp_path / "bad"), "-p", "train_steps", "-3"]) == 1
    err = capsys.readouterr().err
    assert "03_kganet.ipynb: FAILED at cell" in err and "train_steps = -3 (int) is not an integer >= 1" in err


# ----------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    from usnb.phantom import generate
    from usnb.recipes import kganet as K

    root = generate("breast", tmp_path / "p", n=16, size=32, frames=8, seed=1, positive_fraction=0.5, n_images=6,
                    workers=1)
    profile = K.get_profile("small", size=24, widths=(4, 8), train_frames=4, train_batch=2, train_steps=4)
    runs = []
    for k in range(2):
        data = K.load_data("phantom", FieldOfView(profile.size, profile.fov), data_dir=root)
        model, history = K.train_row("KGA-Net", data, profile, seed=3, out_dir=tmp_path / f"run{k}", progress=False)
        metrics, preds = K.evaluate(model, data)
        runs.append((metrics, preds["test"].probs, model.state_dict(), history))
    same = lambda a, b: np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    assert runs[0][0].keys() == runs[1][0].keys() and all(same(v, runs[1][0][k]) for k, v in runs[0][0].items())
    assert np.array_equal(runs[0][1], runs[1][1])
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])
    assert [h["loss"] for h in runs[0][3]] == [h["loss"] for h in runs[1][3]]



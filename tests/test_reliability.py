"""Reliability: the bad inputs the other test files do not cover, determinism, no network, safe checkpoints."""
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from usnb import io, params
from usnb.cli import main
from usnb.data import ClipDataset
from usnb.datasets import load, load_pocus
from usnb.datasets.records import VideoRecord
from usnb.errors import DataError
from usnb.train import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.bad_input
@pytest.mark.parametrize("source", ["busv", "busi", "pocus", "manifest"])
def test_missing_data_folder_names_the_folder(tmp_path, source):
    with pytest.raises(DataError) as err:
        load(source, tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.bad_input
def test_empty_data_folder_is_an_error_not_an_empty_list(tmp_path):
    (tmp_path / "pocus_videos").mkdir()
    with pytest.raises(DataError, match="no video files found"):
        load_pocus(tmp_path)
    (tmp_path / "frames").mkdir()
    with pytest.raises(DataError, match="holds no image frames"):
        io.read_clip(tmp_path / "frames")


@pytest.mark.bad_input
def test_zero_frame_video_names_the_file(tmp_path):
    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as container:  # a valid mp4 with a video stream and no frame in it
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    with pytest.raises(DataError, match="zero.mp4") as err:
        io.read_video(path)
    assert "Fix:" in str(err.value)


@pytest.mark.bad_input
def test_a_text_file_posing_as_a_video_names_the_file(tmp_path):
    path = tmp_path / "notes.mov"
    path.write_text("this is not a video")
    with pytest.raises(DataError, match="notes.mov.*cannot decode") as err:
        io.read_video(path)
    assert "ffmpeg" in str(err.value)


@pytest.mark.bad_input
def test_grayscale_rgb_and_rgba_frames_in_one_folder_read_alike(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    grey = np.full((6, 6), 90, np.uint8)
    Image.fromarray(grey, "L").save(folder / "000000.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(folder / "000001.png")
    Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 40)]), "RGBA").save(folder / "000002.png")
    clip = io.read_clip(folder)
    assert clip.shape == (3, 6, 6, 3) and clip.dtype == np.uint8 and (clip == 90).all()
    assert (io.read_clip(folder, grayscale=True) == 90).all()


@pytest.mark.bad_input
def test_unreadable_file_names_the_permission_fix(tmp_path, monkeypatch):
    path = io.write_video(tmp_path / "locked.mp4", np.zeros((2, 16, 16), np.uint8))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode))
    with pytest.raises(DataError, match=r"locked.mp4: file is not readable \(permissions\).*chmod a\+r"):
        io.read_video(path)  # (tests run as root, who reads any file: the permission answer is simulated)


@pytest.mark.bad_input
def test_clip_shorter_than_t_repeats_frames_in_order(tmp_path):
    path = io.write_video(tmp_path / "short.mp4", np.arange(3)[:, None, None].repeat(16, 1).repeat(16, 2).astype(np.uint8) * 80)
    record = VideoRecord("short", path, "benign", "p1", "train")
    from usnb.cache import ClipCache

    for mode in ("uniform", "random", "segments"):
        clip, _ = ClipDataset([record], ClipCache(tmp_path / "cache", size=(16, 16)), ["benign"], num_frames=8,
                              mode=mode)[0]
        level = (clip.float().mean((1, 2, 3)) / 80).round()  # which of the 3 frames (0, 80, 160 grey)
        assert clip.shape[0] == 8 and (level.diff() >= 0).all()  # 8 frames in temporal order, never padded
        assert set(level.tolist()) == {0.0, 1.0, 2.0}  # every frame is used


@pytest.mark.bad_input
@pytest.mark.parametrize("check, value, message", [
    (lambda v: params.fraction("alpha", v), 1.5, r"alpha = 1.5 must be in \[0, 1\]"),
    (lambda v: params.fraction("beta", v), -0.1, r"beta = -0.1 must be in \[0, 1\]"),
    (lambda v: params.fraction("alpha", v), "0.5", r"alpha = '0.5' must be a number in \[0, 1\]"),
    (lambda v: params.positive_int("iterations", v), 0, "iterations = 0 must be an int >= 1"),
    (lambda v: params.positive_int("iterations", v), 2.5, "iterations = 2.5 must be an int >= 1"),
    (lambda v: params.choice("profile", v, ["small", "paper"]), "huge", r"profile = 'huge' must be one of"),
    (lambda v: params.subset("baselines", v, ["R3D"]), "R3D", "must be a list drawn from"),
], ids=["alpha-above-1", "beta-below-0", "alpha-as-text", "zero-iterations", "float-iterations", "unknown-profile",
        "baselines-not-a-list"])
def test_notebook_parameter_of_wrong_type_or_range(check, value, message):
    with pytest.raises(ValueError, match=message) as err:
        check(value)
    assert "fix: pass e.g. `-p" in str(err.value)


def test_good_parameters_pass_through():
    assert params.fraction("alpha", 0) == 0.0 and params.fraction("beta", 1) == 1.0
    assert params.positive_int("iterations", None, allow_none=True) is None
    assert params.subset("baselines", ("R3D",), ["R3D", "MViT"]) == ["R3D"]


@pytest.mark.bad_input
def test_notebook_run_with_a_bad_parameter_names_the_cell_and_the_parameter(tmp_path, capsys):
    assert main(["run", "kganet", "--out", str(tmp_path / "bad"), "-p", "iterations", "-3"]) == 1
    err = capsys.readouterr().err
    assert "03_kganet.ipynb: FAILED at cell" in err and "iterations = -3 must be an int >= 1" in err


@pytest.mark.bad_input
def test_interrupted_checkpoint_write_leaves_the_old_checkpoint_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    save_checkpoint(path, {"w": torch.ones(3)})
    real_save = torch.save

    def dying_save(obj, f):
        real_save(obj, f)
        Path(f).write_bytes(Path(f).read_bytes()[:20])  # half written ...
        raise KeyboardInterrupt  # ... and the user pressed Ctrl-C

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.zeros(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))


# ----------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    from usnb.phantom import generate
    from usnb.recipes import kganet as K

    root = generate("breast", tmp_path / "p", n=16, size=32, frames=8, seed=1, positive_fraction=0.5, n_images=6,
                    workers=1)
    profile = K.get_profile("small", size=24, widths=(4, 8), train_frames=4, clips_per_batch=2, iterations=4)
    runs = []
    for k in range(2):
        data = K.load_data("phantom", K.field_of_view(profile), data_dir=root)
        model, history = K.train_row("KGA-Net", data, profile, seed=3, out_dir=tmp_path / f"run{k}", progress=False)
        metrics, preds = K.evaluate(model, data)
        runs.append((metrics, preds["test"].probs, model.state_dict(), history))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])
    assert [h["loss"] for h in runs[0][3]] == [h["loss"] for h in runs[1][3]]


# ------------------------------------------------------------------------------------------ no network
GUARD = '''
import socket

_LOCAL = ("127.0.0.1", "::1", "localhost")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        raise OSError(f"usnb test: network blocked ({address[0]})")
    return _connect(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and host not in _LOCAL:
        raise OSError(f"usnb test: name lookup blocked ({host})")
    return _getaddrinfo(host, *args, **kwargs)
'''
INSTALL = "\nsocket.socket.connect = _guarded_connect\nsocket.getaddrinfo = _guarded_getaddrinfo\n"


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """Block every non-loopback connection and name lookup, here and in child processes (notebook kernels)."""
    import socket

    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD + INSTALL)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")])))
    namespace = {}
    exec(GUARD, namespace)  # noqa: S102 - the same guard in this process, undone by monkeypatch
    monkeypatch.setattr(socket.socket, "connect", namespace["_guarded_connect"])
    monkeypatch.setattr(socket, "getaddrinfo", namespace["_guarded_getaddrinfo"])
    return guard


def test_children_inherit_the_network_guard(no_network):
    code = "import socket; print(socket.socket.connect.__name__, socket.getaddrinfo.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["_guarded_connect", "_guarded_getaddrinfo"]  # checked without sending anything


def test_a_notebook_runs_end_to_end_without_network(no_network, tmp_path):
    from usnb.notebooks import find_notebooks, run_notebook
    from usnb.phantom import generate

    root = generate("breast", tmp_path / "p", n=16, size=32, frames=8, seed=1, positive_fraction=0.5, n_images=6,
                    workers=1)
    result = run_notebook(find_notebooks(["kganet"])[0], tmp_path / "run",
                          {"profile": "small", "seed": 0, "data_dir": str(root), "iterations": 2})
    assert result.ok, result.error
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "fig3e_attention_vs_distance.png").exists()

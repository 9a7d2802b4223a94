"""Reliability, round three: nothing the user owns is overwritten, one executor per run folder, every bad file named.

One test (or one parametrized case) per class of fault; each asserts the message a user sees and that nothing of
theirs changed."""
import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
import torch
from torch.utils.data import TensorDataset

from usnb import params
from usnb.cache import ClipCache
from usnb.cli import main
from usnb.datasets import load_busi, load_busv, load_manifest
from usnb.datasets.records import VideoRecord
from usnb.errors import DataError, DataWarning
from usnb.phantom import generate, load_phantom

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.bad_input


# ------------------------------------------------------------------------------- the user's files and runs
def _fake_run(folder: Path, status="ok", metrics=None) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"notebook": "notebooks/03_kganet.ipynb", "out_dir": str(folder)}))
    text = status if isinstance(status, str) and status != "ok" else json.dumps(
        {"ok": True, "error": "", "seconds": 1.0, "notebook": "03_kganet.ipynb", "parameters": {"seed": 0}})
    (folder / "status.json").write_text(text)
    if metrics is not None:
        (folder / "metrics.json").write_text(metrics)
    return folder


def test_report_of_a_folder_without_runs_writes_nothing_and_fails(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    (mine / "report.md").write_text("my notes")
    assert main(["report", str(mine)]) == 2
    assert f"no runs under {mine}" in capsys.readouterr().err
    assert (mine / "index.html").read_text() == "my page" and (mine / "report.md").read_text() == "my notes"
    assert sorted(p.name for p in mine.iterdir()) == ["index.html", "report.md"]
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_report_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    _fake_run(tmp_path / "03_kganet" / "seed0")
    (tmp_path / "index.html").write_text("my page")
    assert main(["report", str(tmp_path)]) == 2
    assert "index.html that usnb did not write" in capsys.readouterr().err
    assert (tmp_path / "index.html").read_text() == "my page" and not (tmp_path / "report.md").exists()
    (tmp_path / "index.html").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0  # its own files are rewritten


@pytest.mark.parametrize("status, metrics, why", [
    ('{"ok": tr', None, "status.json is not JSON, half-written or corrupt"),
    (b"\xff\xfe not text", None, "status.json cannot be read"),
    ('{"ok": true, "notebook": "03_kganet.ipynb", "parameters": null}', None, "status.json: parameters is None"),
    ("ok", '{"paper": "KGA-Net", "profile": "small", "dataset": "phantom", "seed": 0, "rows": null}',
     "metrics.json: rows is None"),
    ("ok", '{"paper": "KGA-Net", "profile": "small", "dataset": "phantom", "seed": 0, "rows": {"A": {"auc": null, '
           '"acc": "high"}}}', "metrics.json: row 'A' is not"),
])
def test_report_lists_a_damaged_run_and_reports_the_others(tmp_path, capsys, status, metrics, why):
    _fake_run(tmp_path / "03_kganet" / "seed1")
    bad = tmp_path / "03_kganet" / "seed0"
    if isinstance(status, bytes):
        _fake_run(bad, "x")
        (bad / "status.json").write_bytes(status)
    else:
        _fake_run(bad, status, metrics)
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: damaged run" in err and why in err
    report = (tmp_path / "report.md").read_text()
    assert "## 03_kganet, seed 0: DAMAGED" in report and why in report and "2 runs, 1 failed" in report
    from usnb.batch import is_finished, plan

    runs = plan(["kganet"], tmp_path, [0, 1])  # the damaged folder neither stops the plan nor counts as finished
    assert not is_finished(runs[0])


def test_a_half_written_executed_notebook_leaves_the_report_whole(tmp_path):
    run = _fake_run(tmp_path / "03_kganet" / "seed0")
    (run / "03_kganet.ipynb").write_text('{"cells": [')
    assert main(["report", str(tmp_path)]) == 0
    assert "03_kganet.ipynb" in (tmp_path / "index.html").read_text()


def test_run_refuses_a_folder_that_is_not_a_run_folder(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "parameters.json").write_text("my parameters")
    (mine / "checkpoints").mkdir()
    assert main(["run", "data_tour", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"--out {mine} is not a usnb run folder: it holds checkpoints/, parameters.json" in err
    assert (mine / "parameters.json").read_text() == "my parameters"
    assert sorted(p.name for p in mine.iterdir()) == ["checkpoints", "parameters.json"]
    assert main(["run", "data_tour", "--seeds", "0", "1", "--out", str(mine)]) == 2  # a batch into it too
    assert "is not a usnb batch folder: it holds checkpoints/, parameters.json" in capsys.readouterr().err


def test_resumable_folders_are_not_refused(tmp_path, capsys):
    from usnb.batch import plan

    batch = tmp_path / "batch"  # a batch of the user's own notebook, a .DS_Store, submitit's logs
    _fake_run(batch / "my-study" / "seed0").joinpath("status.json").write_text(json.dumps(
        {"ok": True, "notebook": "my-study.ipynb", "parameters": {"seed": 0}}))
    (batch / ".DS_Store").write_text("x")
    (batch / "submitit").mkdir()
    nb = tmp_path / "my-study.ipynb"
    nb.write_text((REPO / "notebooks" / "00_data_tour.ipynb").read_text())
    assert len(plan([str(nb)], batch, [0, 1])) == 2
    single = tmp_path / "single"
    (single / "submitit").mkdir(parents=True)  # a SLURM job that never started
    assert len(plan([str(nb)], single, [0])) == 1
    with pytest.raises(FileExistsError, match="is not a usnb run folder"):  # one run into a batch folder: refused
        plan([str(nb)], batch, [0])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(mine)]) == 2
    assert "usnb demo: --out" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "mine"


def _sleeper(path: Path, pid_file: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("seed = 0\nout_dir = None")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)")]
    nbformat.write(nb, path)
    return path


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
@pytest.mark.slow
def test_a_killed_run_takes_its_executor_and_kernel_with_it(tmp_path, sig):
    kernel_pid = tmp_path / "kernel.pid"
    nb, out = _sleeper(tmp_path / "99_sleep.ipynb", kernel_pid), tmp_path / "run"
    # a run started from a terminal: hang-ups at their default even where this test runs under nohup (which a run
    # inherits, and keeps honouring: test_a_run_under_nohup_survives_the_hang_up)
    proc = subprocess.Popen([sys.executable, "-m", "usnb.cli", "run", str(nb), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    deadline = time.time() + 120
    while not kernel_pid.exists() or not kernel_pid.read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.3)
    lock = json.loads((out / "run.lock").read_text())
    assert lock["pid"] == proc.pid and isinstance(lock["executor"], int)  # the lock names the executor too
    kernel = int(kernel_pid.read_text())
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while not (_gone(lock["executor"]) and _gone(kernel)):
        assert time.time() < deadline, f"executor or kernel still running after {sig.name}"
        time.sleep(0.3)
    assert not (out / "status.json").exists()  # unfinished: the next usnb run redoes it


@pytest.mark.slow
def test_a_run_under_nohup_survives_the_hang_up(tmp_path):
    kernel_pid = tmp_path / "kernel.pid"
    nb, out = _sleeper(tmp_path / "99_sleep.ipynb", kernel_pid), tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "usnb.cli", "run", str(nb), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does
    deadline = time.time() + 120
    while not kernel_pid.exists() or not kernel_pid.read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.3)
    executor = json.loads((out / "run.lock").read_text())["executor"]
    proc.send_signal(signal.SIGHUP)  # the terminal closes
    time.sleep(3)
    assert proc.poll() is None and not _gone(executor) and not _gone(int(kernel_pid.read_text()))
    proc.terminate()
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while not (_gone(executor) and _gone(int(kernel_pid.read_text()))):
        assert time.time() < deadline
        time.sleep(0.3)


def test_a_lock_whose_batch_died_but_whose_executor_runs_refuses_a_second_executor(tmp_path):
    from usnb.batch import _take_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                   "executor": os.getpid()}))
    why = _take_lock(tmp_path)
    assert why and f"its executor pid {os.getpid()}" in why and f"kill {os.getpid()}" in why
    (tmp_path / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                   "executor": dead.pid}))
    assert _take_lock(tmp_path) is None  # both gone: taken over


def test_phantom_regeneration_keeps_empty_folders_and_links_it_did_not_make(tmp_path, capsys):
    out = tmp_path / "lung"
    args = ["phantom", "--kind", "lung", "--out", str(out), "--n", "4", "--size", "32", "--frames", "2"]
    assert main(args) == 0
    (out / "my_empty").mkdir()
    (out / "videos" / "link.mp4").symlink_to(tmp_path / "elsewhere.mp4")  # leads nowhere
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 thing(s) it did not write" in err and "my_empty/" in err and "videos/link.mp4 (a symbolic link)" in err
    assert (out / "my_empty").is_dir() and (out / "videos" / "link.mp4").is_symlink()


def test_phantom_onto_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert main(["phantom", "--out", str(tmp_path / "f"), "--n", "4"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and (tmp_path / "f").read_text() == "mine"


def test_phantom_into_the_current_folder_and_onto_a_full_disk(tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["phantom", "--kind", "lung", "--out", ".", "--n", "4", "--size", "32", "--frames", "2"]) == 0
    assert (here / "phantom.json").exists()

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("usnb.phantom._write", full)
    assert main(["phantom", "--kind", "lung", "--out", str(tmp_path / "new"), "--n", "4", "--size", "32"]) == 1
    err = capsys.readouterr().err
    assert f"could not write the phantom to {tmp_path / 'new'} (No space left on device)" in err
    assert "Fix: free space" in err and "Traceback" not in err and not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------- a damaged cache during a run
def test_a_cache_entry_damaged_during_a_run_is_named_and_decoded_again(tiny_breast, tmp_path):
    record = load_phantom(tiny_breast)[0]
    cache = ClipCache(tmp_path / "cache", size=(32, 32))
    clean = np.array(cache.get(record))
    entry = cache.file(record)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # truncated while the run goes on
    with pytest.warns(DataWarning, match=f"{entry.name}: the cache entry of .*changed size while this process"):
        assert np.array_equal(cache.get(record), clean)
    frames = np.load(entry, mmap_mode="r+")
    frames[0, 0, 0, 0] ^= 0xFF  # damaged in place, same size
    frames.flush()
    del frames
    with pytest.warns(DataWarning, match="changed in place while this process used it"):
        assert np.array_equal(cache.get(record), clean)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(cache.get(record), clean)  # an intact entry reads without a word
        entry.unlink()  # the cache cleared: decoded again without a word
        assert np.array_equal(cache.get(record), clean)


# ------------------------------------------------------------------------------------- BUSV annotation JSON
def _busv(tmp_path: Path, images=None, annotations=None, raw: bytes | None = None) -> Path:
    root = tmp_path / "busv"
    frames = root / "rawframes" / "benign" / "v1"
    frames.mkdir(parents=True)
    from PIL import Image

    for t in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * t, np.uint8)).save(frames / f"{t:06d}.png")
    doc = {"images": images if images is not None else [{"id": 1, "file_name": "benign/v1/000000.png"}],
           "annotations": annotations if annotations is not None else []}
    path = root / "imagenet_vid_train.json"
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    return root


@pytest.mark.parametrize("kw, message", [
    ({"raw": '{"images": [], "annotations": [], "note": "café"}'.encode("latin-1")}, "is not UTF-8 text"),
    ({"images": [{"id": 7}]}, "image id 7 has no file_name"),
    ({"images": [{"id": 7, "file_name": "benign/v1/first.png"}]}, "image id 7: frame name 'benign/v1/first.png'"),
    ({"annotations": [{"id": 3, "image_id": 1, "bbox": [1, 2, 3]}]}, r"annotation id 3 \(image 1\): bbox \[1, 2, 3\]"),
    ({"annotations": [{"id": 4, "image_id": 1, "bbox": ["1", "2", "3", "4"]}]}, "annotation id 4 .*four numbers"),
    ({"annotations": [{"id": 5, "image_id": 1, "bbox": [10, 10, 20, 20]}]},
     r"benign/v1: box \(x 10, y 10, w 20, h 20\) on frame 0 reaches outside the 16 x 16 px frame"),
    ({"images": [{"id": 1, "file_name": "benign/v1/000009.png"}],
      "annotations": [{"id": 6, "image_id": 1, "bbox": [1, 1, 4, 4]}]}, "a box on frame 9, beyond the clip's 3 frames"),
])
def test_busv_annotation_faults_name_the_json_and_the_entry(tmp_path, kw, message):
    root = _busv(tmp_path, **kw)
    with pytest.raises(DataError, match=message) as err:
        load_busv(root)
    assert str(root) in str(err.value) and "Fix:" in str(err.value)


def test_busv_boxes_of_images_the_file_does_not_list_are_counted(tmp_path):
    root = _busv(tmp_path, annotations=[{"id": 8, "image_id": 99, "bbox": [1, 1, 2, 2]}])
    with pytest.warns(DataWarning, match=r"skipped 1 box\(es\) of images the file does not list \(annotation ids \[8\]"):
        assert load_busv(root)[0].boxes == {}


# ------------------------------------------------------------------------------------ checkpoints, weights
def _tiny():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 2)


def _step(net, batch, device):
    x, y = (b.to(device) for b in batch)
    return torch.nn.functional.cross_entropy(net(x), y), {}


@pytest.mark.parametrize("content, message", [
    (torch.zeros(3), r"holds a tensor of shape \(3,\), not a usnb training checkpoint"),
    ({"model": {}, "history": [], "fingerprint": "x", "epoch": 0, "optimizer": {}, "scheduler": {}},
     "not a usnb training checkpoint: it lacks torch_rng"),
])
def test_a_file_that_is_not_a_training_checkpoint_is_named_and_kept(tmp_path, content, message):
    from usnb.train import Schedule, TrainConfig, fit

    path = tmp_path / "given.pt"
    torch.save(content, path)
    before = path.read_bytes()
    x = torch.randn(8, 4)
    with pytest.raises(RuntimeError, match=f"given.pt: {message}.*Fix: move it away"):
        fit(_tiny(), TensorDataset(x, (x[:, 0] > 0).long()), _step, TrainConfig(Schedule(2, 4)), checkpoint=path,
            progress=False)
    assert path.read_bytes() == before  # not overwritten


def test_a_weights_file_of_another_network_or_a_bare_tensor_is_named(tmp_path):
    from usnb.models.backbones import resnet_backbone

    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(RuntimeError, match=r"linear.pth: holds the weights of another network: 0 of \d+ tensors of "
                                           r"ResNet-18 .*it has e.g. \['weight', 'bias'\].*Fix: pass a torchvision"):
        resnet_backbone(18, weights=tmp_path / "linear.pth")
    torch.save(torch.zeros(2, 2), tmp_path / "bare.pth")
    with pytest.raises(RuntimeError, match=r"bare.pth: holds a tensor of shape \(2, 2\), not the weights of ResNet-18"):
        resnet_backbone(18, weights=tmp_path / "bare.pth")


def test_timesformer_weights_of_another_network_are_refused(tmp_path):
    from usnb.models.timesformer import TimeSformer, load_pretrained

    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "linear.pth")
    encoder = TimeSformer(img_size=32, patch=16, frames=2, dim=32, depth=1, heads=2)
    with pytest.raises(ValueError, match="linear.pth: weights file holds neither a ViT .* nor a TimeSformer"):
        load_pretrained(encoder, tmp_path / "linear.pth")


# ----------------------------------------------------------------------------------------- manifest rows
def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    from usnb import io

    io.write_video(tmp_path / "a.mp4", np.zeros((4, 16, 16), np.uint8))
    io.write_video(tmp_path / "b.mp4", np.full((4, 16, 16), 90, np.uint8))
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "split", "patient_id", "annotation"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_manifest_links_that_loop_or_lead_nowhere_are_named(tmp_path):
    (tmp_path / "loop1.mp4").symlink_to(tmp_path / "loop2.mp4")
    (tmp_path / "loop2.mp4").symlink_to(tmp_path / "loop1.mp4")
    path = _manifest(tmp_path, [{"path": "loop1.mp4", "label": "benign", "split": "", "patient_id": "p1"}])
    with pytest.raises(DataError, match=r"m.csv: row 2: path 'loop1.mp4' (cannot be followed|is a symbolic link that "
                                        r"leads nowhere)"):
        load_manifest(path)
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    path = _manifest(tmp_path, [{"path": "dangling.mp4", "label": "benign", "split": "", "patient_id": "p1"}])
    with pytest.raises(DataError, match=r"row 2: path 'dangling.mp4' is a symbolic link that leads nowhere \(to .*gone"):
        load_manifest(path)


def test_a_csv_field_over_the_size_limit_is_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('path,label,split,patient_id\na.mp4,benign,,"p1' + "x" * 200_000 + "\n")  # an unclosed quote
    with pytest.raises(DataError, match=r"m.csv: row \d+: not a CSV row \(field larger than field limit"):
        load_manifest(path)


def test_two_rows_with_one_video_id_are_refused(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"video_id": "same"}))
    (tmp_path / "b.json").write_text(json.dumps({"video_id": "same"}))
    path = _manifest(tmp_path, [{"path": "a.mp4", "label": "benign", "split": "", "patient_id": "p1",
                                 "annotation": "a.json"},
                                {"path": "b.mp4", "label": "benign", "split": "", "patient_id": "p2",
                                 "annotation": "b.json"}])
    with pytest.raises(DataError, match="m.csv: row 3: video_id 'same' is also row 2's"):
        load_manifest(path)


def test_numeric_video_ids_and_line_breaks_in_free_text_are_accepted(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"video_id": 17}))
    path = _manifest(tmp_path, [{"path": "a.mp4", "label": "benign", "split": "", "patient_id": "p1",
                                 "annotation": "a.json"}])
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(["b.mp4", "benign", "", "p2", ""])
    text = path.read_text().replace("path,label,split,patient_id,annotation", "path,label,split,patient_id,annotation,notes")
    path.write_text(text.replace("a.json\r\n", 'a.json,"two\nlines"\r\n'))
    assert [r.video_id for r in load_manifest(path)] == ["17", "b.mp4"]


def test_folder_names_with_control_characters_are_refused(tmp_path):
    from PIL import Image

    from usnb.datasets import load_folders

    for name in ("ok", "bad\tname"):
        for t in range(2):
            (tmp_path / "benign" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "benign" / name / f"{t:06d}.png")
    with pytest.raises(DataError, match=r"clip 'benign/bad\\tname' .*holds a control character"):
        load_folders(tmp_path)


@pytest.mark.parametrize("column", ["label", "patient_id", "path"])
def test_control_characters_in_ids_and_labels_are_refused(tmp_path, column):
    row = {"path": "a.mp4", "label": "benign", "split": "", "patient_id": "p1"}
    row[column] = row[column][:2] + "\x00" + row[column][2:]
    with pytest.raises(DataError, match=f"m.csv: row 2: {column} .* holds a control character"):
        load_manifest(_manifest(tmp_path, [row]))


def test_busi_images_of_another_format_are_counted(tmp_path):
    from PIL import Image

    base = tmp_path / "busi"
    for label in ("benign", "malignant"):
        (base / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(base / label / f"{label} (1).png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(base / label / f"{label} (1)_mask.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(base / "benign" / "benign (2).jpg")
    with pytest.warns(DataWarning, match=r"1 image\(s\) that are not PNG left out \(e.g. .*benign \(2\).jpg\)"):
        assert len(load_busi(base)) == 2


# --------------------------------------------------------------------------------- numbers and parameters
def test_huge_numbers_are_refused_not_overflowed():
    with pytest.raises(ValueError, match=r"train_steps = 1000000.*\(401 characters\) \(int\) is not an integer of at "
                                         r"most 9223372036854775807"):
        params.number("train_steps", 10**400, low=1, integer=True)
    with pytest.raises(ValueError, match="is not a number"):
        params.number("lr", float("inf"))


@pytest.mark.parametrize("argv, message", [
    (["data", "check", "manifest", "x", "--folds", "0"], "--folds: 0 folds: a k-fold split needs 2 to 20 folds"),
    (["data", "check", "manifest", "x", "--folds", "1"], "--folds: 1 folds"),
    (["data", "check", "manifest", "x", "--folds", "-2"], "--folds: -2 folds"),
    (["run", "kganet", "--out", "x", "--gpus", "0"], "--gpus: 0 is not >= 1"),
    (["run", "kganet", "--out", "x", "--parallel", "-1"], "--parallel: -1 is not >= 1"),
    (["phantom", "--out", "x", "--n", "zero"], "--n: 'zero' is not a whole number"),
])
def test_out_of_range_command_line_numbers_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# --------------------------------------------------------------------------------- small data of the user's
def test_a_training_split_smaller_than_the_batch_clips_the_batch_with_a_warning():
    from usnb.train import Schedule, TrainConfig, batch_notes, fit

    x = torch.randn(3, 4)
    seen = []
    step = lambda net, batch, device: (seen.append(len(batch[0])), _step(net, batch, device))[1]  # noqa: E731
    with pytest.warns(DataWarning, match="the training split has 3 items, fewer than the batch of 8: each step takes "
                                         "a batch of 3 .the same 5 steps."):
        history = fit(_tiny(), TensorDataset(x, torch.tensor([0, 1, 0])), step, TrainConfig(Schedule(5, 8)),
                      progress=False)
    assert seen == [3] * 5 and len(history) >= 1
    from usnb.recipes import kganet

    notes = batch_notes(kganet.get_profile("small"), 3)
    assert len(notes) == 1 and "the training split has 3 clips, fewer than the batch of stage(s) train (" in notes[0]
    assert batch_notes(kganet.get_profile("small"), 10_000) == []
    from usnb.recipes import lung_ssl

    kfold = batch_notes(lung_ssl.get_profile("small"), {"all": {"normal": 10, "consolidation": 10}}, folds=5)
    assert "has 12 clips" in kfold[0]  # notebook 04's k-fold: 80 % of 4 of 5 folds of 20 clips
    assert batch_notes(lung_ssl.get_profile("small"), {"train": {"normal": 20, "consolidation": 20}}) == []


def test_data_check_says_a_split_is_smaller_than_a_batch_first(tmp_path):
    from usnb.data_check import data_check

    lines = []
    data_check("phantom", generate("breast", tmp_path / "p", n=16, size=32, frames=4, seed=1, positive_fraction=0.5,
                                   n_images=0, workers=1), echo=lines.append)
    notes = [line for line in lines if line.startswith("note: notebook 01 MVCC, small profile")]  # 8 training clips
    assert notes and "has 8 clips, fewer than the batch of stage(s) pretrain (16), finetune (16)" in notes[0]
    assert not [line for line in lines if "notebook 03 KGA-Net, small" in line]  # its batch of 8 fits


def test_a_default_task_does_not_require_the_labels_it_only_drops():
    from usnb.task import task_labels

    records = [VideoRecord(f"v{i}", Path(f"v{i}.mp4"), label, f"p{i}", source="pocus")
               for i, label in enumerate(["covid", "regular", "pneumonia", "regular"])]  # no `uncertain`, no `viral`
    task, classes = task_labels(records, "pocus", ("normal", "consolidation"))
    assert classes == ("regular", "pathology")
    assert [r.label for r in task] == ["pathology", "regular", "pathology", "regular"]


def test_a_notebook_list_parameter_given_one_name_is_a_one_item_list():
    assert params.names("baselines", "R(2+1)D", ["I3D", "R(2+1)D"]) == ["R(2+1)D"]
    assert params.names("baselines", ("I3D",), ["I3D", "R(2+1)D"]) == ["I3D"]
    with pytest.raises(ValueError, match=r"baselines = 'R3D' \(str\) is not one of \['I3D', 'R\(2\+1\)D'\]"):
        params.names("baselines", ["R3D"], ["I3D", "R(2+1)D"])
    with pytest.raises(ValueError, match="is not a name or a list of names among"):
        params.names("baselines", 3, ["I3D"])
    with pytest.raises(ValueError, match=r"""several are a list: `-p baselines '\["I3D", "CSN"\]'`"""):
        params.names("baselines", "I3D, CSN", ["I3D", "CSN"])

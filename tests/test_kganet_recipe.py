"""The KGA-Net recipe: data assembly, the row switches, training rows end to end, prediction and explanations."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from usnb.metrics import paper_vs_ours
from usnb.evaluate import visibility_of
from usnb.recipes import kganet as K
from usnb.view import FieldOfView, field_of_view


@pytest.fixture(scope="module")
def phantom16(phantom16_stills):
    """The tiny phantom with 6 stills (`tests/conftest.py`)."""
    return phantom16_stills


@pytest.fixture
def tiny(phantom16, tmp_path):
    profile = K.get_profile("small", size=24, fov=0.75, widths=(4, 8), train_frames=4, train_batch=2, train_steps=3)
    return K.load_data("phantom", field_of_view(profile), data_dir=phantom16), profile


def test_rows_switch_the_paper_components():
    assert list(K.TABLE2_ROWS) == list(K.PAPER_TABLE2)  # every Table 2 row is trained
    assert K.TABLE2_ROWS["w/o image guidance"] == K.Row(images=False, attention=True, coherence=True)
    assert K.TABLE2_ROWS["w/o coherence loss & attention"] == K.Row(images=True, attention=False, coherence=False)
    paper = K.PROFILES["paper"]  # Sec. 4.1
    s = paper.train
    assert (s.lr, s.warmup, s.milestones, s.steps) == (0.005, 1000, (4000, 6000), 8000)
    assert (paper.backbone, paper.eval_frames, 2 * s.batch, s.optimizer) == ("resnet50", 128, 16, "sgd")
    with pytest.raises(ValueError, match="profile must be one of"):
        K.get_profile("huge")


def test_paper_schedule_counts_iterations():
    from usnb.train import lr_factor, stage_config

    config = stage_config(K.PROFILES["paper"], "train", seed=0)
    assert config.schedule.steps == 8000 and config.schedule.milestones == (4000, 6000)  # whatever the data size
    assert lr_factor(config.schedule, 499) == pytest.approx(0.5)  # warmup
    assert lr_factor(config.schedule, 4500) == pytest.approx(0.1) and lr_factor(config.schedule, 7000) == pytest.approx(0.01)


def test_load_data_splits_and_unknown_dataset(tiny, phantom16):
    data, _ = tiny
    assert set(data.clips) == {"train", "val", "test"} and len(data.images) == 6
    assert sum(len(v) for v in data.clips.values()) == 16
    with pytest.raises(ValueError, match="dataset must be"):
        K.load_data("kinetics", FieldOfView(32), data_dir=phantom16)


def test_image_guidance_pairs_clips_and_images_one_to_one(tiny):
    data, profile = tiny
    paired, _ = K.train_dataset(data, profile, K.Row())
    clip, label, image, image_label = paired[0]
    assert clip.shape == (4, 1, 32, 32) and image.shape == (1, 32, 32) and clip.dtype == torch.uint8  # cache size
    assert field_of_view(profile)(clip, dims=4).shape == (4, 1, 24, 24)  # the model sees the central 24 px
    alone, _ = K.train_dataset(data, profile, K.Row(images=False))
    assert len(alone[0]) == 2  # clips only: row 1 has no images


@pytest.mark.parametrize("name", list(K.TABLE2_ROWS))
def test_each_row_trains_predicts_and_reloads(tiny, tmp_path, name):
    data, profile = tiny
    model, history = K.train_row(name, data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert len(history) >= 1 and all(np.isfinite(h["loss"]) for h in history)
    assert ("coherence" in history[0]) == K.TABLE2_ROWS[name].coherence
    metrics, preds = K.evaluate(model, data, max_frames=128)
    assert 0 <= metrics["auc"] <= 1 and set(preds) == {"val", "test"}
    p = preds["test"]
    assert all(len(w) == 8 == len(f) for w, f in zip(p.outputs["weights"], p.frames))  # every frame of the 8-frame clips
    if not K.TABLE2_ROWS[name].attention:
        assert all(np.allclose(w, 1) for w in p.outputs["weights"])
    again, _ = K.train_row(name, data, profile, seed=0, out_dir=tmp_path, progress=False)  # loads the checkpoint
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_augmentation_on_the_device_trains_a_row(tiny, tmp_path):
    """augment_on='device' (the paper profile's path): the loader yields raw uint8 crops-to-be, the step augments."""
    data, profile = tiny
    profile = replace(profile, augment_on="device")
    dataset, _ = K.train_dataset(data, profile, K.Row())
    clip = dataset[0][0]
    assert clip.dtype == torch.uint8 and clip.shape[-1] == data.view.cache_size  # not cropped in the loader
    model, history = K.train_row("KGA-Net", data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert all(np.isfinite(h["loss"]) for h in history)
    assert K.PROFILES["paper"].augment_on == "device" and K.PROFILES["small"].augment_on == "loader"


def test_attention_distance_visibility_and_localisation(tiny, tmp_path):
    data, profile = tiny
    model, _ = K.train_row("KGA-Net", data, profile, seed=0, out_dir=tmp_path, progress=False)
    _, preds = K.evaluate(model, data)
    p = preds["test"]
    w, d = K.attention_vs_distance(model, p)
    vis = np.concatenate(visibility_of(p))
    assert w.shape == d.shape == vis.shape == (8 * len(p.records),)
    assert (d >= 0).all() and ((vis >= 0) & (vis <= 1)).all()
    loc = K.localisation(model, data.clips["test"], data)
    assert 0 <= loc["pointing_game"] <= 1 and 0 <= loc["topk_iou"] <= 1 and loc["clips"] >= 1
    assert 0 < loc["chance_pointing"] < 1


def test_paper_vs_ours_puts_the_papers_number_beside_ours():
    ours = {"KGA-Net": [{"auc": 0.9, "acc": 0.8}, {"auc": 0.8, "acc": 0.7}], "extra": {"auc": 0.5, "acc": 0.5}}
    table = paper_vs_ours(ours, {"KGA-Net": {"auc": 0.9467, "acc": 0.8974}}, "phantom", "BUSV", keys=("auc", "acc"))
    header, row, extra = table.header(), *table.cells()
    assert header[1:3] == ["AUC ours", "AUC paper"] and table.caption == "ours: phantom; paper: BUSV"
    assert table.to_markdown().startswith("*ours: phantom; paper: BUSV*\n\n|  | AUC ours | AUC paper |")
    assert row[:3] == ["KGA-Net", "85.00(7.07)", "94.67"] and extra[2] == "nan"


def test_small_cnn_norm_choice():
    from usnb.models.backbones import SmallCNN

    bn, gn = SmallCNN(widths=(4, 8), norm="batch"), SmallCNN(widths=(4, 8), norm="group")
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 4
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in gn.modules()) == 4
    assert bn(torch.randn(2, 1, 32, 32)).shape == (2, 8)
    with pytest.raises(ValueError, match="norm must be"):
        SmallCNN(norm="layer")


def test_a_table1_baseline_trains_and_is_scored(tiny, tmp_path):
    data, profile = tiny
    one_step = replace(profile, train=replace(profile.train, steps=1))
    metrics, history, probs = K.train_baseline("R(2+1)D", data, one_step, seed=0, out_dir=tmp_path)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert set(metrics) >= {"auc", "acc", "sen", "spe"} and 0 <= metrics["acc"] <= 1
    assert len(probs["test"]) == len(data.clips["test"]) and ((probs["test"] >= 0) & (probs["test"] <= 1)).all()
    for name in ("I3D", "SlowFast", "CSN"):  # ours, CPU-sized in the small profile: every Table 1 row but MViT
        _, history, probs = K.train_baseline(name, data, one_step, seed=0, out_dir=tmp_path)
        assert np.isfinite(history[0]["loss"]) and len(probs["val"]) == len(data.clips["val"])
    assert K.baseline_unfit("MViT", profile) and not K.baseline_unfit("MViT", K.PROFILES["paper"])
    with pytest.raises(ValueError, match="MViT takes 16 frames of 224 px"):
        K.train_baseline("MViT", data, profile, seed=0, out_dir=tmp_path)


def test_paper_profile_path_runs_on_a_tiny_scale(tiny, tmp_path):
    """ResNet-50, SGD with warmup and step decay: the paper profile's code path, shrunk to seconds on a CPU."""
    data, _ = tiny
    profile = replace(K.get_profile("paper", size=24, fov=0.75, train_frames=2, train_batch=2, train_steps=2,
                                    train_warmup=1, train_milestones=(1,), num_workers=0), weights=None)  # None: random init
    model, history = K.train_row("KGA-Net", data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert type(model.backbone).__name__ == "ResNet" and model.backbone.out_dim == 2048
    assert history[-1]["lr"] == pytest.approx(0.005 * 0.1)  # past the milestone
    metrics, _ = K.evaluate(model, data)
    assert 0 <= metrics["acc"] <= 1

"""The CLMAN recipe end to end at a tiny scale: SimCLR pretraining, rows that share a network, Table 3 heads on frozen
features, the attention figures' data and Grad-CAM localisation."""
import numpy as np
import pytest
import torch

from usnb.evaluate import frame_features, visibility_correlation, visibility_of
from usnb.recipes import clman as C
from usnb.view import field_of_view


@pytest.fixture(scope="module")
def trained(phantom16, tmp_path_factory):
    profile = C.get_profile("small", size=24, width=4, train_frames=4, finetune_batch=4, finetune_steps=2,
                            simclr_batch=4, simclr_frames=2, simclr_steps=2, head_steps=2, eval_frames=8)
    data = C.load_data("phantom", field_of_view(profile), data_dir=phantom16)
    out = tmp_path_factory.mktemp("clman")
    simclr, history, config = C.pretrain(data, profile, seed=0, out_dir=out, progress=False)
    names = ["ResNet18 + GN + NL (ours)", "Without CL Guided", "With CL (ours)", "With Average"]
    rows = C.train_rows(names, data, profile, 0, out, pretrained=(simclr, config), echo=lambda *_: None)
    return data, profile, out, simclr, config, history, rows


def test_rows_that_share_a_network_share_its_result(trained):
    data, profile, out, simclr, config, history, rows = trained
    assert np.isfinite(history[-1]["loss"]) and set(rows) == {"ResNet18 + GN + NL (ours)", "Without CL Guided",
                                                               "With CL (ours)", "With Average"}
    assert rows["ResNet18 + GN + NL (ours)"] is rows["Without CL Guided"]  # Table 1's last row is Table 2's first
    assert rows["With CL (ours)"] is not rows["With Average"]
    full = rows["With CL (ours)"]
    assert 0 <= full.metrics["auc"] <= 1 and set(full.preds) == {"val", "test"}
    # the contrastive row starts from the SimCLR backbone: its stem differs from a row trained from scratch
    assert not torch.equal(full.model.backbone.conv1.weight, rows["Without CL Guided"].model.backbone.conv1.weight)


def test_contrastive_rows_need_the_pretrained_backbone(trained):
    data, profile, out, *_ = trained
    with pytest.raises(ValueError, match="starts from the SimCLR backbone"):
        C.train_row("With CL (ours)", data, profile, 0, out)


def test_attention_figures_and_localisation(trained):
    data, profile, out, simclr, config, history, rows = trained
    p = rows["With CL (ours)"].preds["test"]
    mass = C.attention_per_frame(p)
    assert all(np.isclose(m.sum(), 1, atol=1e-5) and len(m) == len(v) for m, v in zip(mass, visibility_of(p)))
    with pytest.raises(ValueError, match="no multi-meta attention"):
        C.attention_per_frame(rows["With Average"].preds["test"])
    corr = visibility_correlation(mass, p)
    assert -1 <= corr["pooled_rho"] <= 1
    loc = C.localisation(rows["With CL (ours)"].model, data.clips["test"], data, profile.eval_frames)
    assert 0 <= loc["pointing_game"] <= 1 and loc["clips"] >= 1


def test_table3_heads_on_frozen_features(trained):
    data, profile, out, simclr, config, history, rows = trained
    features = frame_features(simclr.backbone, data, profile.eval_frames)
    assert {s: len(f) for s, f in features.items()} == {s: len(r) for s, r in data.clips.items()}
    assert all(f.shape == (8, simclr.backbone.out_dim) for f in features["test"])  # every frame of the 8-frame clips
    metrics, head, probs = C.train_head("With LSTM", features, data, profile, 0, out, config)
    assert 0 <= metrics["auc"] <= 1 and probs["test"].shape == (len(data.clips["test"]),)

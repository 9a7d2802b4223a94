"""The MVCC recipe: rows, profiles, data, views at inference, masked pretraining + fine-tuning end to end, figures."""
import numpy as np
import pytest
import torch

from usnb.models.mvcc import masked_fraction, strategy_ratios
from usnb.recipes import mvcc as M
from usnb.view import field_of_view, frames


@pytest.fixture
def tiny(phantom16):
    profile = M.get_profile("small", size=16, fov=0.75, patch=8, frames=4, dim=16, depth=1, heads=2, decoder_dim=8,
                            decoder_heads=2, pretrain_steps=1, finetune_steps=4, finetune_batch=4, pretrain_batch=4, pretrain_warmup=1, finetune_warmup=1,
                            eval_views=2)
    return M.load_data("phantom", field_of_view(profile), data_dir=phantom16), profile


def test_rows_switch_pretraining_and_the_contrastive_loss():
    assert list(M.TABLE1_ROWS) == [r for r in M.PAPER_TABLE1 if r not in M.OTHER_RECIPES]  # every row trained here
    assert set(M.OTHER_RECIPES) == {"USCL", "CVRL"}  # ... or by its own recipe (usnb.recipes.uscl, cvrl)
    assert M.TABLE1_ROWS["Baseline"] == M.Row(None, None)
    assert M.TABLE1_ROWS["MVCC"] == M.Row("dual", "cscl") and M.TABLE1_ROWS["MVCC-Frame"].pretrain == "frame"
    paper = M.PROFILES["paper"]  # Sec. 3: ViT-B/16 TimeSformer at 224 px, SGD lr 0.0075, lambda 0.1
    assert (paper.dim, paper.depth, paper.heads, paper.patch, paper.size) == (768, 12, 12, 16, 224)
    assert (paper.finetune.optimizer, paper.finetune.lr, paper.lam) == ("sgd", 0.0075, 0.1)
    assert M.PROFILES["small"].grid == (4, 4, 4)


@pytest.mark.bad_input
def test_profile_refuses_mask_ratios_that_hide_everything():
    with pytest.raises(ValueError, match=r"alpha = 0.99 \(float\) is not a number in \[0, 0.95\]"):
        M.get_profile("small", alpha=0.99)
    with pytest.raises(ValueError, match="profile must be one of"):
        M.get_profile("huge")


def test_view_indices_spread_views_over_the_video():
    views = M.view_indices(32, 4, 2)
    assert [v.tolist() for v in views] == [[2, 10, 18, 26], [6, 14, 22, 30]]  # floor((i + (v + .5) / 2) * 8)
    assert M.view_indices(3, 4, 1)[0].max() == 2  # a short video repeats frames, never past its end


def test_load_data_splits_and_refuses_an_unknown_dataset(tiny, phantom16):
    data, profile = tiny
    assert set(data.clips) == {"train", "val", "test"} and sum(map(len, data.clips.values())) == 16
    assert data.images == [] and data.view.cache_size == round(16 / 0.75)
    with pytest.raises(ValueError, match=r"dataset must be one of \['phantom', 'busv', 'pocus', 'manifest', "
                                         r"'folders'\], got 'kinetics'"):
        M.load_data("kinetics", field_of_view(profile), data_dir=phantom16)


def test_mvcc_row_pretrains_fine_tunes_predicts_and_reloads(tiny, tmp_path):
    data, profile = tiny
    model, histories = M.train_row("MVCC", data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert set(histories) == {"pretrain", "finetune"} and len(histories["finetune"]) == 2
    assert all(np.isfinite(h["loss"]) for h in histories["pretrain"] + histories["finetune"])
    metrics, preds = M.evaluate(model, data, profile)
    assert 0 <= metrics["auc"] <= 1 and set(preds) == {"val", "test"}
    p = preds["test"]
    assert p.video_features.shape == (len(data.clips["test"]), profile.dim) and p.probs.shape == p.labels.shape
    again, _ = M.train_row("MVCC", data, profile, seed=0, out_dir=tmp_path, progress=False)  # loads the checkpoints
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, again_preds = M.evaluate(again, data, profile)
    assert np.array_equal(again_preds["test"].probs, p.probs)


def test_prediction_averages_the_views(tiny, tmp_path):
    """P(malignant) of a video is the mean over its views of each view's own P (eval_views = 2)."""
    data, profile = tiny
    model, _ = M.train_row("Baseline", data, profile, seed=0, out_dir=tmp_path, progress=False)
    record = data.clips["test"][0]
    n = len(data.cache.get(record))
    model.eval()
    with torch.no_grad():
        per_view = [float(model(data.view(frames(data.cache.get(record), idx), dims=4)).softmax(-1)[0, 1])
                    for idx in M.view_indices(n, profile.frames, profile.eval_views)]
    p = M.predict(model, [record], data, profile)
    assert p.probs[0] == pytest.approx(np.mean(per_view), abs=1e-6)


def test_masks_gradcam_and_localisation(tiny, tmp_path):
    data, profile = tiny
    masks = M.mask_examples(profile, seed=0)
    t, n = profile.frames, (profile.size // profile.patch) ** 2
    assert all(m.shape == (t, n) for m in masks.values())
    assert masks["MVCC-Frame"].all(1).sum() == round(profile.alpha * t)  # frame level: whole frames hidden
    dual = masked_fraction(t, n, *strategy_ratios("dual", profile.alpha, profile.beta))
    assert dual == pytest.approx(float(masks["MVCC"].float().mean()))  # the share the rounding rule predicts
    model, _ = M.train_row("Baseline", data, profile, seed=0, out_dir=tmp_path, progress=False)
    record = data.clips["test"][0]
    x = M.clip_tensor(record, data, M.view_indices(len(data.cache.get(record)), profile.frames, 1)[0])
    with M.gradcam(model, profile) as gradcam:
        cam = gradcam(x, target_class=1)
    assert cam.shape == (1, profile.frames, profile.size, profile.size) and torch.isfinite(cam).all()
    loc = M.localisation(model, data.clips["test"], data, profile)
    assert 0 <= loc["pointing_game"] <= 1 and 0 < loc["chance_pointing"] < 1 and loc["clips"] >= 1

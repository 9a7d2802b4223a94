"""The USCL recipe: mixed frame pairs from one clip, NT-Xent on the projections, pretraining + fine-tuning end to end
with reload, the paper profile's facts, bad profiles refused."""
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import usnb.train
from usnb.data import MixedFramePairs, interpolate_pair
from usnb.evaluate import view_indices
from usnb.models.contrastive import nt_xent
from usnb.recipes import uscl as U
from usnb.view import field_of_view, frames


@pytest.fixture
def tiny(phantom16):
    profile = U.get_profile("small", size=16, fov=0.75, frames=4, proj_dim=8, pretrain_steps=2, pretrain_batch=4,
                            finetune_steps=2, finetune_batch=4, pretrain_warmup=1, finetune_warmup=1, eval_views=2)
    return U.load_data("phantom", field_of_view(profile), data_dir=phantom16), profile


def test_pairs_mix_three_distinct_frames_of_one_clip(tiny):
    data, _ = tiny
    pairs = MixedFramePairs(data.clips["train"], data.cache, augment=lambda f: f, alpha=0.5)  # no augmentation
    torch.manual_seed(0)
    for i, record in enumerate(pairs.records):
        clip = torch.from_numpy(np.array(data.cache.get(record))).permute(0, 3, 1, 2).float()  # (T, C, H, W)
        state = torch.get_rng_state()
        idx, x, lam = pairs.parts(i)
        assert len(set(idx.tolist())) == 3 and idx.max() < len(clip) and 0 < lam < 1
        assert torch.equal(x.float(), clip[idx])  # all three frames come from clip i
        torch.set_rng_state(state)  # the same draws again, through __getitem__
        views = pairs[i]
        assert views.shape == (2, *clip.shape[1:]) and views.dtype == torch.float32
        anchor = clip[idx[1]]
        torch.testing.assert_close(views[0], lam * clip[idx[0]] + (1 - lam) * anchor)
        torch.testing.assert_close(views[1], lam * clip[idx[2]] + (1 - lam) * anchor)
    lams = np.array([pairs.parts(0)[2] for _ in range(2000)])  # Beta(0.5, 0.5): mean 1/2, U-shaped
    assert abs(lams.mean() - 0.5) < 0.03
    assert 0.35 < np.mean((lams < 0.1) | (lams > 0.9)) < 0.47  # 0.41 for Beta(0.5, 0.5), 0.2 if uniform


def test_short_clips_give_their_frames_unmixed():
    class Cache:  # a clip of n frames (n, H, W, 1) whose frame k is all k
        def __init__(self, n):
            self.clip = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2)

        def get(self, record):
            return self.clip

        def prefill(self, records):
            pass

    two = MixedFramePairs(["r"], Cache(2), augment=lambda f: f)[0]
    assert two[0].eq(0).all() and two[1].eq(1).all()  # the two frames, lam = 1
    one = MixedFramePairs(["r"], Cache(1), augment=lambda f: f + 1)[0]
    assert one.eq(1).all()  # the one frame, augmented twice
    assert torch.equal(interpolate_pair(torch.zeros(1), torch.ones(1), torch.full((1,), 2.0), 0.25),
                       torch.tensor([[0.75], [1.25]]))  # (lam x1 + (1 - lam) anchor, lam x3 + (1 - lam) anchor)


def test_pretraining_loss_is_nt_xent_on_the_projections(tiny):
    data, profile = tiny
    pairs = U.pair_dataset(data, profile)
    batch = torch.stack([pairs[i] for i in range(4)])  # (B, 2, 1, H, W) float pixels at the cache size
    model = U.build_pretrainer(profile)
    loss, logs = U.make_pretrain_step(data.view, profile.temperature)(model, batch, torch.device("cpu"))
    z = model(data.view(batch, dims=3))  # each view cut to the field of view and standardised on its own
    assert z.shape == (4, 2, profile.proj_dim)
    torch.testing.assert_close(loss, nt_xent(z[:, 0], z[:, 1], profile.temperature))
    assert 0 <= float(logs["top1"]) <= 1


def test_uscl_row_pretrains_fine_tunes_predicts_and_reloads(tiny, tmp_path, monkeypatch):
    data, profile = tiny
    model, histories = U.train_row(data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert set(histories) == {"pretrain", "finetune"}
    assert [h[-1]["step"] for h in histories.values()] == [2, 2]
    assert all(np.isfinite(h["loss"]) for h in histories["pretrain"] + histories["finetune"])
    metrics, preds = U.evaluate(model, data, profile)
    assert 0 <= metrics["auc"] <= 1 and set(preds) == {"val", "test"}
    for split, p in preds.items():
        assert p.probs.shape == p.labels.shape == (len(data.clips[split]),) and ((p.probs >= 0) & (p.probs <= 1)).all()
        assert p.video_features.shape == (len(data.clips[split]), model.backbone.out_dim)
    record = data.clips["test"][0]  # P(malignant) of a video: the mean over its views of each view's P
    clip = data.cache.get(record)
    with torch.no_grad():
        per_view = [float(model(data.view(frames(clip, idx), dims=4))["logits"].softmax(-1)[0, 1])
                    for idx in view_indices(len(clip), profile.frames, profile.eval_views)]
    assert preds["test"].probs[0] == pytest.approx(np.mean(per_view), abs=1e-6)

    def no_training(*args, **kwargs):
        raise AssertionError("fit called: the finished checkpoints were not reused")

    monkeypatch.setattr(usnb.train, "fit", no_training)
    again, again_histories = U.train_row(data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert again_histories == histories
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, again_preds = U.evaluate(again, data, profile)
    assert np.array_equal(again_preds["test"].probs, preds["test"].probs)


def test_paper_profile_follows_uscl_code():
    paper = U.PROFILES["paper"]
    assert (paper.backbone, paper.weights, paper.size) == ("resnet18", None, 224)  # 2-D ResNet-18, random init (code)
    assert (paper.pretrain.batch, paper.pretrain.lr, paper.pretrain.weight_decay) == (32, 3e-4, 1e-4)
    assert (paper.temperature, paper.alpha, paper.proj_dim) == (0.5, 0.5, 256)
    assert (paper.finetune.optimizer, paper.finetune.lr) == ("sgd", 0.0075)  # fine-tuned as MVCC's rows (Sec. 3)
    assert paper.pretrain.steps == 300 * (2697 // 32)  # 300 epochs of MVCC's training videos
    net = U.build_pretrainer(dataclasses.replace(paper, weights=None))  # no download in tests
    assert net.backbone.out_dim == 512
    assert [(m.in_features, m.out_features) for m in net.projection if isinstance(m, torch.nn.Linear)] == \
        [(512, 512), (512, 256)]  # g: Linear(512, 512)-ReLU-Linear(512, 256)
    assert U.PAPER_ROW["sen"] == pytest.approx(0.5127)  # MVCC's Table 1


@pytest.mark.bad_input
def test_bad_profiles_are_refused():
    with pytest.raises(ValueError, match="profile must be one of"):
        U.get_profile("huge")
    with pytest.raises(ValueError, match=r"backbone = 'vgg16' \(str\) is not one of \['resnet18', 'small'\]"):
        U.get_profile("small", backbone="vgg16")
    with pytest.raises(ValueError, match="temperature = 0.0"):
        U.get_profile("small", temperature=0.0)
    with pytest.raises(ValueError, match="loads a ResNet-18"):
        U.get_profile("small", weights="imagenet")
    with pytest.raises(ValueError, match="alpha > 0"):
        MixedFramePairs([], None, augment=lambda f: f, alpha=0.0)


def test_recipe_imports_no_other_recipe():
    path = Path(U.__file__)
    found = {n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.module}
    others = {p.stem for p in path.parent.glob("*.py")} - {"uscl", "__init__"}
    assert not {m.split(".")[-1] for m in found} & others

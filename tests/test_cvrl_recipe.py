"""The CVRL recipe: the temporal interval sampler, the temporally consistent augmentation, R3D-50 against published
sizes, pretraining + fine-tuning end to end with reload, the paper profile's facts, bad choices refused."""
import numpy as np
import pytest
import torch

import usnb.train
from usnb.gpu_augment import ConsistentAugment
from usnb.models.cvrl import CVRL, r3d_resnet
from usnb.models.resnet3d import Bottleneck3d
from usnb.recipes import cvrl as C
from usnb.sampling import decreasing_interval, interval_pair_indices
from usnb.view import field_of_view


@pytest.fixture
def tiny(phantom16):
    profile = C.get_profile("small", size=16, fov=0.75, frames=4, width=4, proj_hidden=16, proj_dim=8,
                            pretrain_steps=2, finetune_steps=2, pretrain_batch=4, finetune_batch=4,
                            pretrain_warmup=1, finetune_warmup=1, eval_views=2)
    return C.load_data("phantom", field_of_view(profile), data_dir=phantom16), profile


def test_interval_sampler_prefers_close_clips_and_keeps_both_inside():
    rng = np.random.default_rng(0)
    c = 18  # start positions of an 8-frame, stride-2 clip in a 32-frame video
    gaps = np.array([decreasing_interval(c, rng) for _ in range(20_000)])
    freq = np.bincount(gaps, minlength=c) / len(gaps)
    assert gaps.min() >= 0 and gaps.max() <= c - 1
    assert freq[:6].sum() > 2 * freq[-6:].sum()  # P(t small) > P(t large)
    expected = (2 * (c - np.arange(c)) - 1) / c**2  # P(t) proportional to -t + c, binned
    assert np.abs(freq - expected).max() < 0.01
    for _ in range(2_000):
        a, b = interval_pair_indices(32, 8, 2, rng)
        for clip in (a, b):
            assert clip.min() >= 0 and clip.max() <= 31 and (np.diff(clip) == 2).all()
    a, b = interval_pair_indices(10, 8, 2, rng)  # too short for stride 2: stride 1
    assert (np.diff(a) == 1).all() and max(a.max(), b.max()) <= 9
    a, b = interval_pair_indices(5, 8, 2, rng)  # shorter than T: frames repeat in temporal order
    assert np.array_equal(a, b) and (np.diff(a) >= 0).all() and a.max() == 4


def test_augmentation_is_the_same_for_every_frame_of_a_clip():
    """A clip constant over time stays constant over time; two copies of it get different crops."""
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (1, 1, 1, 40, 40), dtype=torch.uint8, generator=g)
    x = frame.expand(2, 6, 1, 40, 40).contiguous()  # (B, T, C, H, W): two copies of a static clip
    aug = ConsistentAugment(24, fov=0.75)
    for blur_p, solarize_p in ((1.0, 0.0), (0.1, 0.2), (1.0, 1.0)):
        out = aug(x, blur_p, solarize_p, generator=g)
        assert out.shape == (2, 6, 1, 24, 24) and torch.isfinite(out).all()
        assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)  # every frame alike
        assert not torch.allclose(out[0], out[1])  # each clip its own draw
        assert out.mean((1, 2, 3, 4)).abs().max() < 1e-4  # standardised per clip


def test_r3d50_matches_published_sizes_and_keeps_time_kernels_in_res4_res5():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # mmaction2 configs/recognition/slowonly/metafile.yml, SlowOnly R50 on Kinetics-400: 32,454,096
    assert n(r3d_resnet(50, 400, stem_time=1, stem_time_stride=1)) == 32_454_096
    # tensorflow/models official/projects/video_ssl/README.md: "R3D-50 (1x) 31.7M" (the backbone, no head)
    assert round(n(r3d_resnet(50, None)) / 1e6, 1) == 31.7
    net = r3d_resnet(50, None, width=8, in_channels=1)
    kernels = [[b.conv_a.kernel_size[0] for b in stage] for stage in net.body]
    assert kernels == [[1] * 3, [1] * 4, [3] * 6, [3] * 3]  # temporal kernels only in res4 and res5
    assert all(b.conv_b.kernel_size[0] == 1 for b in net.modules() if isinstance(b, Bottleneck3d))
    assert net.stem[0].kernel_size == (5, 7, 7) and net.stem[0].stride == (2, 2, 2)
    x = torch.randn(2, 1, 16, 32, 32)  # (B, 1, T, H, W): grey
    assert net.body(net.stem(x)).shape == (2, 256, 8, 1, 1) and net(x).shape == (2, 256)


def test_infonce_pulls_the_two_clips_of_a_video_together():
    torch.manual_seed(0)
    model = CVRL(r3d_resnet(50, None, width=4, in_channels=1), hidden=16, dim=8, temperature=0.1).eval()
    v = torch.randn(4, 4, 1, 16, 16)  # (B, T, 1, H, W)
    same, other = model(v, v), model(v, v.roll(1, 0))
    assert same < other and torch.isfinite(same)


def test_cvrl_row_pretrains_fine_tunes_predicts_and_reloads(tiny, tmp_path, monkeypatch):
    data, profile = tiny
    model, histories = C.train_row(data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert set(histories) == {"pretrain", "finetune"}
    assert [h[-1]["step"] for h in histories.values()] == [2, 2]
    assert all(np.isfinite(h["loss"]) for h in histories["pretrain"] + histories["finetune"])
    metrics, preds = C.evaluate(model, data, profile)
    assert 0 <= metrics["auc"] <= 1 and set(preds) == {"val", "test"}
    p = preds["test"]
    assert p.video_features.shape == (len(data.clips["test"]), 32 * profile.width)
    assert p.probs.shape == p.labels.shape

    def no_training(*args, **kwargs):
        raise AssertionError("fit called: the finished checkpoints were not reused")

    monkeypatch.setattr(usnb.train, "fit", no_training)
    again, _ = C.train_row(data, profile, seed=0, out_dir=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, again_preds = C.evaluate(again, data, profile)
    assert np.array_equal(again_preds["test"].probs, p.probs)


def test_paper_profile_holds_the_papers_facts():
    P = C.PROFILES["paper"]
    assert (P.frames, P.stride, P.size, P.depth, P.width) == (16, 2, 224, 50, 64)  # R3D-50, 16 x 2 frames, 224 px
    assert (P.stem_time, P.stem_time_stride) == (5, 2)  # the public yaml's stem
    assert (P.proj_layers, P.proj_hidden, P.proj_dim, P.temperature) == (3, 2048, 128, 0.1)
    assert (P.crop_area, P.crop_ratio, P.blur_p, P.solarize_p) == ((0.3, 1.0), (0.5, 2.0), (1.0, 0.1), (0.0, 0.2))
    s = P.pretrain  # LARS, cosine, weight decay 1e-6; lr 0.32 at batch 1024, linearly scaled to our batch
    assert (s.optimizer, s.schedule, s.weight_decay) == ("lars", "cosine", 1e-6)
    assert s.lr == pytest.approx(0.32 * s.batch / 1024)
    assert C.PAPER_ROW["acc"] == pytest.approx(0.7921)  # MVCC's Table 1 CVRL row


@pytest.mark.bad_input
def test_bad_profiles_are_refused():
    with pytest.raises(ValueError, match="profile must be one of"):
        C.get_profile("kinetics")
    with pytest.raises(ValueError, match=r"blur_p = 1.5 \(float\) is not a number in \[0, 1\]"):
        C.get_profile("small", blur_p=(1.5, 0.1))
    with pytest.raises(ValueError, match="temperature"):
        C.get_profile("small", temperature=0.0)
    with pytest.raises(ValueError, match="depth must be one of"):
        C.build_encoder(C.get_profile("small", depth=18))

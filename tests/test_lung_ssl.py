"""Lung SSL (Chen, Rubin et al.): Table 2 augmentations, BYOL's EMA and stop-gradient, NT-Xent, occlusion, weighted IoU."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from usnb import augment_st as A
from usnb.explain import occlusion, weighted_iou
from usnb.models.contrastive import byol_loss, nt_xent
from usnb.models.lung_ssl import BYOL, Darknet3D, EncoderClassifier, VideoSimCLR
from usnb.models.summary import n_params
from usnb.probe import fit_probe
from usnb.recipes import lung_ssl as L
from usnb.splits import fraction_subset


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny 3-D convolutions: one thread is fastest, and far faster on a busy machine (idle OpenMP threads spin)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _labelled_clip(b=2, t=8, size=6):
    """Frame i of every clip has the value i everywhere: (B, 1, T, H, W)."""
    return torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(b, 1, t, size, size).clone()


def _frame_values(x):
    """(B, 1, T, H, W) of constant frames -> (B, T) the value of each frame (checks the frames are constant)."""
    flat = x.flatten(3)
    assert torch.equal(flat.amin(-1), flat.amax(-1)), "a frame is not constant"
    return flat[:, 0, :, 0]


def _tiny_encoder():
    torch.manual_seed(0)
    return Darknet3D(1, (4, 8, 8), (1, 1), (1, 2), (1, 2, 2))


# ---------------------------------------------------------------- temporal augmentations: exact effects


def test_reversed_order_on_a_labelled_clip():
    out = A.take_frames(_labelled_clip(), A.reversed_order(8).expand(2, 8))
    assert _frame_values(out).tolist() == [[7, 6, 5, 4, 3, 2, 1, 0]] * 2


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_shuffled_order_permutes_exactly_k_chosen_frames(k):
    for seed in range(20):
        order = A.shuffled_order(8, k, torch.Generator().manual_seed(seed))
        values = _frame_values(A.take_frames(_labelled_clip(1), order[None]))[0]
        assert sorted(values.tolist()) == list(range(8))  # a permutation: no frame lost or repeated
        moved = (values != torch.arange(8)).nonzero().flatten()
        assert len(moved) <= k and (k >= 2 or len(moved) == 0)
        assert sorted(values[moved].tolist()) == moved.tolist()  # the moved frames swap among their positions


def test_shuffled_order_moves_frames_when_asked():
    moved = [int((A.shuffled_order(8, 4, torch.Generator().manual_seed(s)) != torch.arange(8)).sum())
             for s in range(50)]
    assert max(moved) == 4 and np.mean(moved) > 2


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_replaced_order_copies_other_frames_into_exactly_k_positions(k):
    for seed in range(20):
        order = A.replaced_order(8, k, torch.Generator().manual_seed(seed))
        values = _frame_values(A.take_frames(_labelled_clip(1), order[None]))[0]
        changed = (values != torch.arange(8)).nonzero().flatten()
        assert len(changed) == k  # a replaced frame never copies itself
        assert all(0 <= v < 8 for v in values.tolist())


def test_random_pipeline_temporal_only_keeps_frames_from_the_clip_and_follows_the_probabilities():
    aug = A.SpatioTemporalAugment(spatial=False)
    g = torch.Generator().manual_seed(0)
    out = _frame_values(aug(_labelled_clip(400), g))
    reversed_ = (out == torch.arange(7, -1, -1)).all(1).float().mean()
    unchanged = (out == torch.arange(8)).all(1).float().mean()
    # reversal alone p = 0.5 * P(no shuffle/replace change) ~ 0.5 * (0.5 + 0.5 * 2/5) * (0.5 + 0.5 / 5) = 0.21
    assert 0.12 < reversed_ < 0.30 and 0.12 < unchanged < 0.30
    assert ((out >= 0) & (out < 8)).all()
    no_t = A.SpatioTemporalAugment(spatial=False, temporal=False)
    assert torch.equal(no_t(_labelled_clip()), _labelled_clip())


# ---------------------------------------------------------------- spatial augmentations: the same on every frame


def test_spatial_augmentations_are_identical_across_frames():
    torch.manual_seed(0)
    frame = torch.rand(3, 1, 1, 16, 16)
    clip = frame.expand(3, 1, 8, 16, 16).clone()  # 8 identical frames
    out = A.SpatioTemporalAugment(temporal=False)(clip, torch.Generator().manual_seed(1))
    assert torch.equal(out, out[:, :, :1].expand_as(out))  # still 8 identical frames
    assert not torch.allclose(out, clip)  # and changed
    assert not torch.allclose(out[0], out[1])  # with other parameters per clip


def test_each_spatial_transform_alone():
    x = torch.rand(2, 1, 3, 8, 8)
    zero, one = torch.zeros(2), torch.ones(2)
    assert torch.allclose(A.affine(x, zero, torch.zeros(2, 2), one), x, atol=1e-6)  # identity
    shifted = A.affine(x, zero, torch.tensor([[0.25, 0.0], [0.0, 0.0]]), one)  # 0.25 of 8 px = 2 px right
    assert torch.allclose(shifted[0, ..., 2:], x[0, ..., :-2], atol=1e-6) and (shifted[0, ..., :2] == 0).all()
    rotated = A.affine(x, torch.tensor([90.0, 0.0]), torch.zeros(2, 2), one)
    assert torch.allclose(rotated[0], torch.rot90(x[0], 1, dims=(-2, -1)), atol=1e-5) or \
        torch.allclose(rotated[0], torch.rot90(x[0], -1, dims=(-2, -1)), atol=1e-5)
    flipped = A.hflip(x, torch.tensor([True, False]))
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    assert torch.allclose(A.color_jitter(x, one, one), x)
    half = torch.full((2, 1, 3, 8, 8), 0.5)
    assert torch.allclose(A.color_jitter(half, torch.tensor([1.2, 0.8]), torch.tensor([1.3, 0.7])),
                          torch.tensor([0.6, 0.4]).view(2, 1, 1, 1, 1).expand_as(half))  # flat: contrast does nothing
    erased = A.erase(x + 1, torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]]))
    assert (erased[0, :, :, 1:4, 2:6] == 0).all() and (erased[0] == 0).sum() == 3 * 12 and (erased[1] > 0).all()


def test_erase_boxes_follow_table2_ranges():
    boxes = A.erase_boxes(500, 32, 32, (0.02, 0.1), (0.3, 3.3), p=0.5, generator=torch.Generator().manual_seed(0))
    drawn = boxes[boxes[:, 2] > 0]
    assert 0.4 < len(drawn) / 500 < 0.6
    area = (drawn[:, 2] * drawn[:, 3]).float() / 32 ** 2
    assert area.min() > 0.01 and area.max() < 0.13  # (0.02, 0.1) up to pixel rounding
    assert ((drawn[:, 0] + drawn[:, 2]) <= 32).all() and ((drawn[:, 1] + drawn[:, 3]) <= 32).all()


@pytest.mark.bad_input
def test_augment_refuses_a_clip_without_batch_dims():
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        A.SpatioTemporalAugment()(torch.rand(8, 16, 16))


# ---------------------------------------------------------------- BYOL: EMA and stop-gradient; losses


def test_byol_ema_update_equals_its_formula_and_the_target_gets_no_gradient():
    model = BYOL(_tiny_encoder(), hidden=16, dim=8, tau=0.99)
    with torch.no_grad():  # make online and target differ
        for p in list(model.encoder.parameters()) + list(model.projector.parameters()):
            p.add_(torch.randn_like(p))
    online = {k: v.clone() for k, v in {**{f"e.{k}": v for k, v in model.encoder.state_dict().items()},
                                        **{f"p.{k}": v for k, v in model.projector.state_dict().items()}}.items()}
    target = {k: v.clone() for k, v in {**{f"e.{k}": v for k, v in model.target_encoder.state_dict().items()},
                                        **{f"p.{k}": v for k, v in model.target_projector.state_dict().items()}}.items()}
    model.update_target()
    after = {**{f"e.{k}": v for k, v in model.target_encoder.state_dict().items()},
             **{f"p.{k}": v for k, v in model.target_projector.state_dict().items()}}
    for k, v in after.items():
        if v.is_floating_point():  # Eq. (1): xi <- tau xi + (1 - tau) theta
            assert torch.allclose(v, 0.99 * target[k] + 0.01 * online[k], atol=1e-6), k
    assert not torch.equal(after["e.features.0.0.weight"], target["e.features.0.0.weight"])

    x1, x2 = torch.rand(4, 1, 4, 8, 8), torch.rand(4, 1, 4, 8, 8)
    model(x1, x2).backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert all(p.grad is None for p in model.target_projector.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_fit_updates_the_byol_target_after_every_step():
    from torch.utils.data import TensorDataset
    from usnb.train import Schedule, TrainConfig, fit

    model = BYOL(_tiny_encoder(), hidden=16, dim=8, tau=0.9)
    calls = []

    def after(m, n):
        calls.append(n)
        m.update_target()

    start = model.target_encoder.features[0][0].weight.detach().clone()
    fit(model, TensorDataset(torch.rand(8, 1, 4, 8, 8)), lambda m, b, d: (m(b[0], b[0].flip(-1)), {}),
        TrainConfig(Schedule(2, 4, "adamw", lr=1e-2, weight_decay=0.0)),
        progress=False, after_step=after)
    assert calls == [1, 2]
    assert not torch.equal(model.target_encoder.features[0][0].weight, start)


def test_byol_loss_is_normalised_mse_with_stop_gradient():
    p, z = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    loss = byol_loss(p, z)
    expected = ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(1).mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert z.grad is None and p.grad is not None
    assert float(byol_loss(z.detach() * 3, z.detach())) == pytest.approx(0, abs=1e-6)


def test_nt_xent_equals_a_loop_implementation():
    torch.manual_seed(0)
    z1, z2, tau = torch.randn(4, 6), torch.randn(4, 6), 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    losses = []
    for i in range(8):
        j = (i + 4) % 8
        num = math.exp(float(z[i] @ z[j]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(8) if k != i)
        losses.append(-math.log(num / den))
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(np.mean(losses), rel=1e-5)
    assert float(nt_xent(z1, z1 * 2, 0.1)) < float(nt_xent(z1, z2, 0.1))  # agreeing views: lower loss


@pytest.mark.bad_input
def test_nt_xent_names_mismatched_views():
    with pytest.raises(ValueError, match="must both be"):
        nt_xent(torch.randn(4, 6), torch.randn(3, 6))


def test_encoder_shapes_and_trainable_counts():
    enc = _tiny_encoder()
    assert enc(torch.rand(2, 1, 4, 16, 16)).shape == (2, 8)
    frozen = EncoderClassifier(enc, 2, train_encoder=False)
    assert n_params(frozen, trainable=True) == 2 * (8 + 1)
    frozen.train()
    assert not frozen.encoder.training  # a frozen feature extractor keeps its BatchNorm statistics
    encoder_size = sum(p.numel() for p in _tiny_encoder().parameters())
    assert n_params(EncoderClassifier(_tiny_encoder(), 2), trainable=True) == encoder_size + 18
    assert VideoSimCLR(_tiny_encoder(), 16, 8)(torch.rand(3, 1, 4, 8, 8), torch.rand(3, 1, 4, 8, 8)).ndim == 0


def test_probe_loaded_into_the_classifier_gives_the_same_probabilities():
    rng = np.random.default_rng(0)
    feats, labels = rng.normal(size=(40, 8)).astype(np.float32), np.r_[np.zeros(20), np.ones(20)].astype(int)
    feats[labels == 1, 0] += 1.5
    probe = fit_probe(feats, labels)
    enc = torch.nn.Identity()
    enc.out_dim = 8
    model = EncoderClassifier(enc, 2, train_encoder=False)
    probe.load_into(model)
    p_model = model(torch.from_numpy(feats)).softmax(-1)[:, 1].detach().numpy()
    assert np.allclose(p_model, probe(feats), atol=1e-5)


def test_probe_strength_is_chosen_on_validation_auc_then_log_loss():
    from usnb.metrics import roc_data
    rng = np.random.default_rng(0)

    def draw(n):  # 40 features, 4 of them weakly informative: with 12 labelled clips the L2 strength matters
        y = np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(int)
        x = rng.normal(size=(n, 40)).astype(np.float32)
        x[:, :4] += 0.7 * y[:, None]
        return x, y

    (xt, yt), (xv, yv) = draw(12), draw(400)
    cs = (10.0, 0.001, 0.1)  # any order
    aucs = {c: roc_data(yv, fit_probe(xt, yt, c)(xv))["auc"] for c in cs}
    assert aucs[0.001] > aucs[10.0] + 0.02  # on this data the strongest regularisation generalises best
    chosen = fit_probe(xt, yt, cs, val=(xv, yv))
    assert chosen.c == 0.001 == max(cs, key=aucs.get)
    assert np.allclose(chosen(xv), fit_probe(xt, yt, 0.001)(xv))
    # equal AUCs (the separable training clips as validation: 1.0 for every c) go to the lowest log-loss, here the
    # weakest regularisation, whose probabilities are the most confident
    assert {roc_data(yt, fit_probe(xt, yt, c)(xt))["auc"] for c in cs} == {1.0}
    assert fit_probe(xt, yt, cs, val=(xt, yt)).c == 10.0
    assert fit_probe(xt, yt, (0.5,)).c == 0.5  # one value: no validation needed
    with pytest.raises(ValueError, match="validation clips of both classes"):
        fit_probe(xt, yt, cs)
    with pytest.raises(ValueError, match="validation clips of both classes"):
        fit_probe(xt, yt, cs, val=(xv[:5], np.zeros(5, int)))


@pytest.mark.bad_input
def test_study_needs_the_full_label_fraction():
    with pytest.raises(ValueError, match="fractions must include 1.0"):
        L.run_study(None, {}, L.get_profile("small"), 0, "unused", fractions=(0.5, 0.1))


def test_fraction_subsets_are_stratified_and_nested():
    from usnb.datasets.records import VideoRecord
    recs = [VideoRecord(f"v{i}", f"v{i}.mp4", "consolidation" if i % 3 else "normal", f"p{i}") for i in range(60)]
    subsets = {f: {r.video_id for r in fraction_subset(recs, f)} for f in L.FRACTIONS}
    assert len(subsets[1.0]) == 60 and len(subsets[0.1]) == 2 + 4 and len(subsets[0.05]) == 1 + 2
    for big, small in zip(L.FRACTIONS, L.FRACTIONS[1:]):
        assert subsets[small] <= subsets[big]


# ---------------------------------------------------------------- occlusion and the weighted IoU


def test_occlusion_finds_the_voxels_the_model_reads():
    class Reader(torch.nn.Module):  # logit of class 1 = mean of the top-left 2x2 of frame 1
        def forward(self, x):
            s = x[:, 0, 1, :2, :2].mean((1, 2)) * 10
            return torch.stack([torch.zeros_like(s), s], 1)

    x = torch.ones(1, 4, 6, 6)
    sal = occlusion(Reader(), x, window=(1, 1, 2, 2), stride=(1, 1, 2, 2))
    assert sal.shape == x.shape
    assert (sal[0, 1, :2, :2] > 0.4).all() and sal[0, 1, :2, :2].sum() == pytest.approx(float(sal.sum()))


def test_weighted_iou_on_hand_made_maps_and_boxes():
    s = np.zeros((10, 10))
    s[2:4, 3:8] = 1.0  # one region, exactly the box (x=3, y=2, w=5, h=2): 10 pixels = the top 10 %
    assert weighted_iou(s, [[(3, 2, 5, 2)]]) == pytest.approx(1.0)
    assert weighted_iou(s, [[(3, 2, 5, 4)]]) == pytest.approx(0.5)  # box twice the region's box
    s2 = np.zeros((10, 10))
    s2[0:2, 0:3] = 1.0  # region A: 6 pixels, its box is the ground truth
    s2[8:10, 8:10] = 1.0  # region B: 4 pixels, far from it
    assert weighted_iou(s2, [[(0, 0, 3, 2)]]) == pytest.approx(6 / 10 * 1.0 + 4 / 10 * 0.0)
    # a region's *box* counts, not its pixels: an L-shaped region has the enclosing box 3 x 3
    s3 = np.zeros((10, 10))
    s3[0:3, 0] = 1.0
    s3[2, 0:3] = 1.0
    s3[5, 4:9] = 0.5  # the top 10 pixels: the L (5 pixels) and this bar (5 pixels, far from the box)
    assert weighted_iou(s3[None], [[(0, 0, 3, 3)]]) == pytest.approx((5 * 1.0 + 5 * 0.0) / 10)
    assert weighted_iou(s3[None], [[(0, 0, 3, 3)]], k=0.05) == pytest.approx(1.0)  # top 5: the L alone
    assert math.isnan(weighted_iou(s, [None]))  # no box: undefined


@pytest.mark.bad_input
def test_weighted_iou_refuses_a_bad_fraction():
    with pytest.raises(ValueError, match="fraction of the pixels"):
        weighted_iou(np.zeros((4, 4)), [[(0, 0, 1, 1)]], k=0)


def test_gallery_shows_each_table2_augmentation_alone_then_all():
    clip = torch.rand(1, 1, 8, 12, 12, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    g = A.gallery(clip, seed=3)
    assert list(g) == ["original", "affine", "flip", "colour jitter", "noise sd 0.03", "erasing", "reversed",
                       "shuffled 4", "replaced 4", "all (spatial + temporal)"]
    assert g["original"] is clip and all(v.shape == clip.shape and 0 <= v.min() <= v.max() <= 1 for v in g.values())
    assert torch.equal(g["flip"], clip.flip(-1)) and torch.equal(g["reversed"], clip.flip(2))
    noise = g["noise sd 0.03"] - clip  # one noise image, the same on every frame (no clipping: clip in [0.1, 0.9])
    assert torch.allclose(noise, noise[:, :, :1].expand_as(noise), atol=1e-6) and 0.01 < float(noise.std()) < 0.06
    erased = g["erasing"] == 0  # one box, zero on every frame, the rest untouched
    assert erased.any() and torch.equal(erased, erased[:, :, :1].expand_as(erased))
    assert torch.equal(g["erasing"][~erased], clip[~erased])
    frames = {tuple(f.flatten().tolist()) for f in clip[0, 0]}
    for name in ("shuffled 4", "replaced 4"):
        got = [tuple(f.flatten().tolist()) for f in g[name][0, 0]]
        assert set(got) <= frames and sum(a != tuple(b.flatten().tolist()) for a, b in zip(got, clip[0, 0])) <= 4
    shuffled = sorted(tuple(f.flatten().tolist()) for f in g["shuffled 4"][0, 0])
    assert shuffled == sorted(frames)  # a permutation: every frame once
    again = A.gallery(clip, seed=3)
    assert all(torch.equal(again[k], v) for k, v in g.items())  # seeded: the same draws
    assert not torch.equal(A.gallery(clip, seed=4)["affine"], g["affine"])


def test_saliency_localisation_scores_boxed_clips_against_seeded_noise():
    from usnb.datasets.records import VideoRecord
    from usnb.evaluate import saliency_localisation

    sal = np.zeros((2, 10, 10))
    sal[:, 2:4, 3:8] = 1.0  # exactly the box (x=3, y=2, w=5, h=2) on both frames: IoU 1
    box = {0: [(3, 2, 5, 2)], 1: [(3, 2, 5, 4)]}  # frame 1: box twice the region's: IoU 0.5
    recs = [VideoRecord(f"v{i}", None, "present", "p", boxes={0: [(0, 0, 1, 1)]} if i != 1 else {}) for i in range(4)]
    called = []

    def saliency(record):
        called.append(record.video_id)
        return sal, np.arange(2)

    boxes = lambda record, idx: {} if record.video_id == "v2" else box  # noqa: E731 - v2: no box in its frames
    out = saliency_localisation(saliency, recs, boxes)
    assert called == ["v0", "v2", "v3"]  # a record without boxes is not even looked at
    rng = np.random.default_rng(0)  # the chance level: uniform noise, drawn in clip order from seed 0
    chance = [weighted_iou(rng.random(sal.shape), box) for _ in range(2)]
    assert out == {"weighted_iou": pytest.approx(0.75), "chance": pytest.approx(np.mean(chance)), "clips": 2}
    assert saliency_localisation(saliency, recs, boxes, k=0.05)["clips"] == 2
    with pytest.raises(ValueError, match="needs ground-truth boxes"):
        saliency_localisation(saliency, recs[1:3], boxes)


def test_n_params_counts_all_or_trainable_parameters():
    model = EncoderClassifier(_tiny_encoder(), 2, train_encoder=False)
    total = sum(p.numel() for p in model.encoder.parameters()) + 2 * (model.encoder.out_dim + 1)
    assert n_params(model) == total and n_params(model, trainable=True) == 2 * (8 + 1)

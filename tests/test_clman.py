"""CLMAN: NT-Xent, multi-meta attention (Eq. 3-6), the deformed ResNet-18, the Table 3 aggregators, LARS."""
import math

import pytest
import torch

from usnb.models.clman import (AGGREGATORS, CLMAN, DeformedResNet18, FrameSimCLR, MultiMetaAttention, NonLocalBlock,
                               VideoHead, make_aggregator, multi_meta_pool)
from usnb.models.contrastive import nt_xent
from usnb.train import LARS, Schedule, TrainConfig, make_optimizer


def _nt_xent_literal(z1, z2, tau):
    """SimCLR (Chen et al. 2020, Algorithm 1) written out: s_ij = cos(z_i, z_j), pairs (2k-1, 2k)."""
    z = []
    for a, b in zip(z1, z2):
        z += [a, b]  # z_{2k-1}, z_{2k}: the two views of sample k
    n2 = len(z)

    def sim(i, j):
        return float(torch.dot(z[i], z[j]) / (z[i].norm() * z[j].norm()))

    def ell(i, j):
        den = sum(math.exp(sim(i, k) / tau) for k in range(n2) if k != i)
        return -math.log(math.exp(sim(i, j) / tau) / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n2 // 2)) / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_simclr_formula(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(_nt_xent_literal(z1, z2, tau), rel=1e-5)


def test_nt_xent_is_low_for_matching_views_and_high_for_swapped_ones():
    z = torch.eye(4) * 3
    assert float(nt_xent(z, z, 0.1)) < 1e-3
    assert float(nt_xent(z, z.roll(1, dims=0), 0.1)) > 5


@pytest.mark.bad_input
def test_nt_xent_rejects_mismatched_views():
    with pytest.raises(ValueError, match=r"z1 and z2 must both be \(B, D\)"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 3), 0.0)


def test_multi_meta_equals_average_pooling_when_scores_are_equal():
    torch.manual_seed(0)
    feats = torch.randn(3, 6, 8)
    pooled, attn = multi_meta_pool(feats, torch.full_like(feats, 0.7))
    assert torch.allclose(attn, torch.full_like(attn, 1 / 6))
    assert torch.allclose(pooled, feats.mean(1), atol=1e-6)
    # the module too: a last filter with zero weights gives every frame the same score tanh(b)
    mma = MultiMetaAttention(8)
    with torch.no_grad():
        mma.filters[-1].weight.zero_()
    assert torch.allclose(mma(feats), make_aggregator("average", 8)(feats), atol=1e-6)


def test_multi_meta_tends_to_max_pooling_in_the_extreme_case():
    """Scores that rank frames like the features, sharpened (e = c F, c -> inf): A becomes one-hot at each
    dimension's largest frame and Eq. (6) becomes max pooling."""
    torch.manual_seed(1)
    feats = torch.randn(2, 5, 4)
    gaps = [float((multi_meta_pool(feats, c * feats)[0] - feats.amax(1)).abs().max()) for c in (1, 10, 1000)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-4
    assert not torch.allclose(multi_meta_pool(feats, feats)[0], feats.amax(1), atol=1e-2)


def test_multi_meta_softmax_runs_over_frames_for_every_dimension():
    torch.manual_seed(2)
    feats = torch.randn(2, 5, 4)
    scores = torch.randn(2, 5, 4)
    pooled, attn = multi_meta_pool(feats, scores)
    assert torch.allclose(attn.sum(1), torch.ones(2, 4))
    loop = torch.stack([torch.stack([sum(math.exp(scores[b, t, i]) / sum(math.exp(scores[b, j, i]) for j in range(5))
                                         * feats[b, t, i] for t in range(5)) for i in range(4)]) for b in range(2)])
    assert torch.allclose(pooled, loop.float(), atol=1e-5)


@pytest.mark.parametrize("name", ["multi-meta", "average", "max", "self-attention", "external"])
def test_aggregator_does_not_depend_on_frame_order(name):
    torch.manual_seed(3)
    agg = make_aggregator(name, 16).eval()
    feats = torch.randn(2, 7, 16)
    perm = torch.randperm(7)
    assert torch.allclose(agg(feats), agg(feats[:, perm]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
@pytest.mark.parametrize("t", [1, 2, 5, 37])
def test_every_aggregator_takes_any_clip_length(name, t):
    torch.manual_seed(4)
    head = VideoHead(16, name).eval()
    out = head(torch.randn(3, t, 16))
    assert out["logits"].shape == (3, 2) and torch.isfinite(out["logits"]).all()


def test_lstm_depends_on_frame_order():
    torch.manual_seed(5)
    agg = make_aggregator("lstm", 8)
    feats = torch.randn(1, 6, 8)
    assert not torch.allclose(agg(feats), agg(feats.flip(1)), atol=1e-4)


def test_non_local_block_is_the_identity_at_init():
    torch.manual_seed(6)
    block = NonLocalBlock(16)
    x = torch.randn(2, 16, 5, 4)
    assert torch.equal(block(x), x)
    net = DeformedResNet18(width=8, norm="group", non_local=True)
    assert len(net.non_local_blocks()) == 2
    for nl in net.non_local_blocks():
        assert float(nl.w_z.weight.detach().abs().sum()) == 0
        y = torch.randn(3, nl.theta.in_channels, 4, 4)
        assert torch.equal(nl(y), y)


def test_non_local_block_matches_a_loop_once_trained():
    """Embedded Gaussian: y_i = sum_j softmax_j(theta_i . phi_j) g_j, z = W_z y + x, written per position."""
    torch.manual_seed(7)
    block = NonLocalBlock(4)
    torch.nn.init.normal_(block.w_z.weight)
    x = torch.randn(1, 4, 2, 3)
    th, ph, g = (m(x)[0].flatten(1).t() for m in (block.theta, block.phi, block.g))  # (HW, C')
    y = torch.stack([sum(torch.softmax(torch.stack([th[i] @ ph[j] for j in range(6)]), 0)[j] * g[j] for j in range(6))
                     for i in range(6)])  # (HW, C')
    z = x + block.w_z(y.t().reshape(1, -1, 2, 3))
    assert torch.allclose(block(x), z, atol=1e-5)


def test_table1_switches():
    for norm, nl in [("batch", False), ("group", False), ("batch", True), ("group", True)]:
        net = DeformedResNet18(width=8, norm=norm, non_local=nl)
        norms = {type(m).__name__ for m in net.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))}
        assert norms == {"GroupNorm" if norm == "group" else "BatchNorm2d"}
        assert len(net.non_local_blocks()) == (2 if nl else 0)
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 64)
    assert sum(p.numel() for p in DeformedResNet18(in_channels=3, width=64, norm="batch", non_local=False).parameters()) \
        == 11_176_512  # torchvision's resnet18 without its fc


@pytest.mark.bad_input
def test_bad_switches_are_named():
    with pytest.raises(ValueError, match="norm must be one of"):
        DeformedResNet18(norm="layer")
    with pytest.raises(ValueError, match="aggregator must be one of"):
        make_aggregator("mean", 8)
    with pytest.raises(ValueError, match=r"clip must be \(B, T, C, H, W\)"):
        CLMAN(DeformedResNet18(width=8))(torch.randn(2, 1, 32, 32))


def test_clman_forward_and_simclr_shapes():
    torch.manual_seed(8)
    model = CLMAN(DeformedResNet18(width=8, stem_pool=False))
    out = model(torch.randn(2, 5, 1, 32, 32))
    assert out["logits"].shape == (2, 2) and out["frame_features"].shape == (2, 5, 64)
    assert out["attention"].shape == (2, 5, 64)
    assert FrameSimCLR(DeformedResNet18(width=8), proj_dim=16)(torch.randn(3, 2, 1, 32, 32)).shape == (3, 2, 16)


# ---------------------------------------------------------------- LARS (usnb.train)


def test_lars_trust_ratio_on_a_known_tensor():
    w = torch.tensor([[3.0, 4.0]])  # ||w|| = 5
    g = torch.tensor([[0.6, 0.8]])  # ||g|| = 1
    assert float(LARS.trust_ratio(w, g, weight_decay=0.0, eta=0.001)) == pytest.approx(0.005)
    assert float(LARS.trust_ratio(w, g, weight_decay=0.1, eta=0.001)) == pytest.approx(0.001 * 5 / (1 + 0.5))
    assert float(LARS.trust_ratio(torch.zeros(1, 2), g, 0.1, 0.001)) == 1.0

    p = torch.nn.Parameter(w.clone())
    p.grad = g.clone()
    opt = LARS([p], lr=2.0, momentum=0.0, weight_decay=0.1, trust_coefficient=0.001)
    opt.step()
    local = 0.001 * 5 / 1.5
    assert torch.allclose(p.detach(), w - 2.0 * local * (g + 0.1 * w))


def test_lars_momentum_and_1d_exclusion():
    w, b = torch.nn.Parameter(torch.tensor([[3.0, 4.0]])), torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = LARS([w, b], lr=1.0, momentum=0.5, weight_decay=0.1, trust_coefficient=0.01)
    for _ in range(2):
        w.grad, b.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5, 0.5])
        opt.step()
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.5 - 0.75, -1.0 - 0.5 - 0.75]))  # plain SGD, no decay


def test_make_optimizer_builds_lars_with_the_trust_coefficient():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, TrainConfig(Schedule(1, 8, "lars", lr=0.3, weight_decay=1e-6, trust_coefficient=0.02)))
    assert isinstance(opt, LARS) and opt.param_groups[0]["trust_coefficient"] == 0.02
    with pytest.raises(ValueError, match="'sgd', 'adamw' or 'lars'"):
        make_optimizer(model, TrainConfig(Schedule(1, 8, "lamb")))


@pytest.mark.bad_input
def test_lars_rejects_bad_settings():
    with pytest.raises(ValueError, match="trust_coefficient > 0"):
        LARS(torch.nn.Linear(2, 2).parameters(), lr=0.1, trust_coefficient=0)


# ---------------------------------------------------------------- recipe pieces


def test_elastic_warp_is_the_identity_without_displacement_and_keeps_dtype():
    from usnb.transforms import ElasticWarp, simclr_augment

    torch.manual_seed(9)
    x = torch.randint(0, 255, (1, 20, 24), dtype=torch.uint8)
    assert torch.equal(ElasticWarp(0.0)(x), x)
    y = ElasticWarp(0.1)(x)
    assert y.dtype == torch.uint8 and y.shape == x.shape and not torch.equal(y, x)
    assert simclr_augment(24)(x).shape == (1, 24, 24)


def test_frame_views_and_simclr_step(tiny_breast):
    from usnb.cache import ClipCache
    from usnb.data import FrameViews
    from usnb.transforms import simclr_augment
    from usnb.phantom import load_phantom
    from usnb.recipes import clman as C
    from usnb.view import FieldOfView

    records = load_phantom(tiny_breast)[:2]
    cache = ClipCache(size=(40, 40))
    views = FrameViews(records, cache, frames=3, augment=simclr_augment(40))
    item = views[0]
    assert item.shape == (3, 2, 1, 40, 40) and item.dtype == torch.uint8
    torch.manual_seed(0)
    model = FrameSimCLR(DeformedResNet18(width=4, stem_pool=False), proj_dim=8)
    loss, logs = C.make_simclr_step(FieldOfView(32, 0.8), 0.5)(model, torch.stack([views[0], views[1]]), "cpu")
    assert loss.ndim == 0 and math.log(2 * 6 - 1) - 1 < float(loss.detach()) < math.log(2 * 6 - 1) + 1  # near chance at init
    assert 0 <= float(logs["top1"]) <= 1


@pytest.mark.bad_input
def test_recipe_names_bad_choices():
    from usnb.recipes import clman as C

    with pytest.raises(ValueError, match="profile must be one of"):
        C.get_profile("huge")
    with pytest.raises(ValueError, match="table3 must be 'full' or 'frozen'"):
        C.get_profile("small", table3="half")
    with pytest.raises(ValueError, match="dataset must be one of .* got 'busi' .BUSI holds still images: give it to "
                                         "KGA-Net as images='busi'"):
        C.load_data("busi", C.FieldOfView(64))


def test_every_paper_row_has_a_network_and_paper_numbers_are_fractions():
    from usnb.recipes import clman as C

    for table in ("Table 1", "Table 2", "Table 3"):
        assert set(C.PAPER_TABLES[table]) <= set(C.ROWS)
    for rows in C.PAPER_TABLES.values():
        for metrics in rows.values():
            assert set(metrics) == {"acc", "ap", "sen", "spe", "f1", "auc"} and all(0 < v < 1 for v in metrics.values())
    assert C.ROWS["ResNet18 + GN + NL (ours)"] == C.ROWS["Without CL Guided"]  # one network, two rows
    small = C.trained_rows(C.get_profile("small"))
    assert set(small["frozen heads"]) == set(C.PAPER_TABLE3) and C.FULL_ROW in small["fine-tuned"]
    assert C.trained_rows(C.get_profile("paper"))["frozen heads"] == []


def test_model_summary_lists_blocks_with_output_shapes_and_leaves_the_model_as_it_was():
    from usnb.models.summary import model_summary
    from usnb.recipes import clman as C

    torch.manual_seed(0)
    model = C.build_model(C.get_profile("small"))
    x = torch.randn(1, 4, 1, 64, 64)
    before = model(x)["logits"]
    s = model_summary(model, x, depth=2)
    rows = {name: (kind, shape, n) for name, kind, shape, n in s.rows}
    assert rows["backbone"][0] == "DeformedResNet18" and rows["backbone"][1] == "4x64"  # 4 frames, 64 features
    assert rows["head.classifier"][1:] == ("1x2", 130) and rows["head"][1] == "logits 1x2, video_feature 1x64"
    assert s.total == sum(p.numel() for p in model.parameters()) == rows["backbone"][2] + rows["head"][2]
    assert torch.equal(model(x)["logits"], before) and model.training  # no hook left, mode restored
    assert s.to_markdown().splitlines()[-1] == f"| **total** | | | **{s.total:,}** ({s.total:,} trainable) |"


def test_top1_positive_counts_rows_whose_nearest_partner_is_their_own():
    import torch.nn.functional as F

    from usnb.models.contrastive import top1_positive

    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # cosine: row 0 -> (1, .71, 0): its own; row 1 -> (0, .71, 1): row 2; row 2 -> (.71, 1, .71): row 1
    assert float(top1_positive(z1, z2)) == pytest.approx(1 / 3)
    assert float(top1_positive(5 * z1, z1)) == 1.0 and float(top1_positive(z1, z1.roll(1, 0))) == 0.0
    z = torch.randn(6, 2, 4, requires_grad=True)  # as CLMAN's SimCLR step logs it: (N*M, 2, d)
    zn = F.normalize(z.detach().float(), dim=-1)
    sim = zn[:, 0] @ zn[:, 1].t()
    top1 = top1_positive(z[:, 0], z[:, 1])
    assert not top1.requires_grad and float(top1) == float((sim.argmax(1) == torch.arange(6)).float().mean())

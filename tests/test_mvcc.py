"""MVCC: masks, divided attention, the MAE loss, C-SCL (Eq. 1-7) and SCL against literal implementations."""
import math

import pytest
import torch
import torch.nn.functional as F

from usnb.models.mvcc import (MaskedVideoModel, correlation_contrastive_loss, dual_level_mask, mae_loss, mask_counts,
                              mvcc_loss, round_half_up, supcon_loss)
from usnb.models.timesformer import (DividedBlock, TimeSformer, TimeSformerClassifier, gather_visible, load_pretrained,
                                     patchify, unpatchify)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("t,n,alpha,beta", [(8, 16, 0.5, 0.75), (16, 196, 0.5, 0.75), (8, 64, 0.3125, 0.5),
                                            (8, 16, 0.0, 0.75), (8, 16, 0.5, 0.0), (5, 9, 0.3, 0.5)])
def test_dual_level_mask_exact_counts(t, n, alpha, beta):
    g = torch.Generator().manual_seed(0)
    mask = dual_level_mask(6, t, n, alpha, beta, generator=g)  # (B, t, n)
    t_masked, n_masked = round_half_up(alpha * t), round_half_up(beta * n)
    assert mask.shape == (6, t, n) and mask.dtype == torch.bool
    whole = mask.all(2)  # frames masked entirely
    for clip_whole, clip in zip(whole, mask):
        assert int(clip_whole.sum()) == t_masked
        kept = clip[~clip_whole]  # (t', n)
        assert (kept.sum(1) == n_masked).all()  # round(beta n) patches of every kept frame
    total = t_masked * n + (t - t_masked) * n_masked
    assert (mask.sum((1, 2)) == total).all()
    assert abs(total / (t * n) - (alpha + (1 - alpha) * beta)) <= 0.5 / t + 0.5 / n  # alpha + (1-alpha) beta


def test_rounding_goes_half_up():
    assert mask_counts(8, 16, 0.3125, 0.5) == (3, 8)  # 2.5 frames -> 3 (round() would give 2)
    assert mask_counts(4, 6, 0.125, 0.25) == (1, 2)  # 0.5 -> 1, 1.5 -> 2
    assert round_half_up(2.5) == 3 and round(2.5) == 2


def test_masks_differ_between_clips_and_frames():
    mask = dual_level_mask(4, 8, 16, 0.5, 0.75, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(mask[0], mask[1])
    kept = mask[0][~mask[0].all(1)]
    assert not all(torch.equal(kept[0], k) for k in kept[1:])  # patches drawn anew per kept frame


@pytest.mark.bad_input
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (0.5, 1.0), (0.95, 0.0), (-0.1, 0.5)])
def test_mask_that_hides_everything_is_refused(alpha, beta):
    with pytest.raises(ValueError, match="alpha|beta"):
        dual_level_mask(2, 8, 16, alpha, beta)


# ---------------------------------------------------------------- divided space-time attention


def _block(dim=16, heads=2, seed=0):
    torch.manual_seed(seed)
    block = DividedBlock(dim, heads)
    torch.nn.init.normal_(block.temporal_fc.weight, std=0.3)  # zero at init: make the temporal branch count
    return block.eval()


def _changed(f, x, i):
    """Which output tokens change when input token i is perturbed."""
    y = f(x)
    x2 = x.clone()
    x2[:, i] += torch.randn(x.shape[-1])
    return ((f(x2) - y).abs().amax(-1) > 1e-6)[0]  # (L,)


def test_temporal_attention_mixes_only_the_same_patch_position():
    t, n, d = 4, 6, 16
    block, x = _block(d), torch.randn(1, t * n, d)
    frame, pos = 2, 3
    changed = _changed(lambda z: block.temporal(z, t), x, frame * n + pos).reshape(t, n)
    expected = torch.zeros(t, n, dtype=torch.bool)
    expected[:, pos] = True  # the same position in every frame, nothing else
    assert torch.equal(changed, expected)


def test_spatial_attention_mixes_only_patches_of_one_frame():
    t, n, d = 4, 6, 16
    block, x = _block(d), torch.randn(1, t * n, d)
    changed = _changed(lambda z: block.spatial(z, t), x, 1 * n + 4).reshape(t, n)
    expected = torch.zeros(t, n, dtype=torch.bool)
    expected[1] = True  # every patch of frame 1, no other frame
    assert torch.equal(changed, expected)


def test_full_block_mixes_space_time_in_one_step():
    t, n, d = 3, 4, 16
    block, x = _block(d), torch.randn(1, t * n, d)
    changed = _changed(lambda z: block(z, t), x, 0)  # temporal then spatial: every token is reached
    assert changed.all()


def test_masked_path_equals_reshape_path_when_nothing_is_masked():
    t, n, d = 4, 6, 16
    block, x = _block(d), torch.randn(2, t * n, d)
    mask = torch.zeros(2, t, n, dtype=torch.bool)
    vis, t_keep, same = gather_visible(x.reshape(2, t, n, d), mask)
    assert t_keep == t and torch.equal(vis, x)
    torch.testing.assert_close(block(vis, t, same), block(x, t), atol=1e-5, rtol=1e-5)


def test_masked_temporal_attention_links_visible_tokens_of_one_position():
    t, n, d = 4, 6, 16
    block = _block(d)
    mask = dual_level_mask(1, t, n, 0.25, 0.5, generator=torch.Generator().manual_seed(3))
    tok = torch.randn(1, t, n, d)
    vis, t_keep, same = gather_visible(tok, mask)
    idx = torch.nonzero(~mask.reshape(1, -1))[:, 1]
    changed = _changed(lambda z: block.temporal(z, t_keep, same), vis, 0)
    assert torch.equal(changed, idx % n == idx[0] % n)


def test_encoder_sees_only_visible_tokens():
    torch.manual_seed(0)
    enc = TimeSformer(img_size=16, patch=4, frames=4, dim=16, depth=2, heads=2).eval()
    x = torch.randn(2, 4, 1, 16, 16)
    mask = dual_level_mask(2, 4, 16, 0.5, 0.75, generator=torch.Generator().manual_seed(0))
    out = enc(x, mask)
    assert out.shape == (2, 2 * 4, 16)  # t' = 2 kept frames x n' = 4 visible patches
    noisy = unpatchify(torch.where(mask[..., None], torch.randn(2, 4, 16, 16), patchify(x, 4)), 4, (4, 4))
    torch.testing.assert_close(enc(noisy, mask), out)  # masked pixels do not matter
    assert enc(x).shape == (2, 4 * 16, 16)


@pytest.mark.parametrize("stem", ["linear", "conv"])
def test_visible_path_equals_full_path_when_nothing_is_masked(stem):
    torch.manual_seed(0)
    enc = TimeSformer(img_size=16, patch=4, frames=4, dim=16, depth=2, heads=2, stem=stem).eval()
    for block in enc.blocks:
        torch.nn.init.normal_(block.temporal_fc.weight, std=0.3)
    x = torch.randn(2, 4, 1, 16, 16)
    torch.testing.assert_close(enc(x, torch.zeros(2, 4, 16, dtype=torch.bool)), enc(x), atol=1e-5, rtol=1e-5)
    mask = dual_level_mask(2, 4, 16, 0.25, 0.5, generator=torch.Generator().manual_seed(0))
    noisy = unpatchify(torch.where(mask[..., None], torch.randn(2, 4, 16, 16), patchify(x, 4)), 4, (4, 4))
    torch.testing.assert_close(enc(noisy, mask), enc(x, mask))


def test_patchify_roundtrip():
    x = torch.randn(2, 3, 1, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 3, 6, 16)
    assert torch.equal(p[0, 1, 4], x[0, 1, 0, 4:8, 4:8].reshape(-1))  # patch (row 1, col 1) of a 2 x 3 grid
    assert torch.equal(unpatchify(p, 4, (2, 3)), x)


# ---------------------------------------------------------------- MAE loss


def test_mae_loss_has_no_gradient_from_visible_patches():
    pred = torch.randn(2, 4, 16, 8, requires_grad=True)
    target = torch.randn(2, 4, 16, 8)
    mask = dual_level_mask(2, 4, 16, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
    for norm_pix in (False, True):
        pred.grad = None
        mae_loss(pred, target, mask, norm_pix=norm_pix).backward()
        assert (pred.grad[~mask] == 0).all() and (pred.grad[mask] != 0).any()
    expected = ((pred - target) ** 2).mean(-1)[mask].mean()
    torch.testing.assert_close(mae_loss(pred, target, mask), expected)


def test_masked_video_model_reconstructs_every_patch_and_loss_falls():
    torch.manual_seed(0)
    enc = TimeSformer(img_size=16, patch=4, frames=4, dim=16, depth=1, heads=2)
    mvm = MaskedVideoModel(enc, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    ramp = torch.linspace(-1, 1, 16)
    x = (ramp[None, :] * ramp[:, None]).expand(4, 4, 1, 16, 16) * torch.tensor([1.0, -1.0, 0.5, 2.0])[:, None, None, None, None]
    mask = dual_level_mask(4, 4, 16, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
    assert mvm(x, mask).shape == (4, 4, 16, 16)
    opt = torch.optim.AdamW(mvm.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = mvm.loss(x, mask)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


# ---------------------------------------------------------------- contrastive losses


def _cscl_loop(q, labels, tau):
    """Eq. (1)-(7) written out query by query, as in the paper."""
    pulls, pushes = [], []
    for i in range(len(q)):
        P = [j for j in range(len(q)) if j != i and labels[j] == labels[i]]
        N = [j for j in range(len(q)) if labels[j] != labels[i]]
        sim = lambda y, z: float(y @ z) / (float(y.norm()) * float(z.norm()))  # noqa: E731
        if P:
            e = [math.exp(sim(q[i], q[j]) / tau) for j in P]
            q_hat = sum(e[k] / sum(e) * q[j] for k, j in enumerate(P))  # Eq. (1)-(2)
            pulls.append(float((q[i] - q_hat).abs().mean()))  # Eq. (5)
        if N:
            e = [math.exp(sim(q[i], q[j]) / tau) for j in N]
            q_check = sum(e[k] / sum(e) * q[j] for k, j in enumerate(N))  # Eq. (3)-(4)
            pushes.append(max(1 - float((q[i] - q_check).abs().mean()), 0.0))  # Eq. (6)
    pull = sum(pulls) / len(pulls) if pulls else 0.0
    push = sum(pushes) / len(pushes) if pushes else 0.0
    return pull + push, pull, push  # Eq. (7)


@pytest.mark.parametrize("seed", range(4))
def test_cscl_matches_a_loop_over_eq_1_to_7(seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(10, 6, generator=g, dtype=torch.float64) * 0.4  # small: the hinge of Eq. (6) is active for some
    labels = torch.randint(0, 2, (10,), generator=g)
    labels[0], labels[1] = 0, 1
    loss, parts = correlation_contrastive_loss(q, labels, tau=0.1)
    ref, pull, push = _cscl_loop(q, labels, 0.1)
    assert abs(float(loss) - ref) < 1e-6 and abs(float(parts["pull"]) - pull) < 1e-6
    assert abs(float(parts["push"]) - push) < 1e-6


def test_cscl_without_positive_or_negative_is_defined():
    q = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    # query 4 is the only one of its class: no positive -> left out of L_pull, still a query of L_push
    labels = torch.tensor([0, 0, 0, 0, 1])
    loss, parts = correlation_contrastive_loss(q, labels)
    ref, pull, push = _cscl_loop(q.detach(), labels, 0.1)
    assert abs(loss.item() - ref) < 1e-6
    loss.backward()
    assert torch.isfinite(q.grad).all()
    # one class only: no negatives anywhere -> L_push = 0; L_pull as usual
    q.grad = None
    loss, parts = correlation_contrastive_loss(q, torch.zeros(5, dtype=torch.long))
    assert float(parts["push"]) == 0 and float(parts["pull"]) > 0
    loss.backward()
    assert torch.isfinite(q.grad).all()
    # every sample alone in its class: no positives -> L_pull = 0
    _, parts = correlation_contrastive_loss(q, torch.arange(5))
    assert float(parts["pull"]) == 0


def test_cscl_pulls_similar_positives_more():
    """Eq. (2): the positive most similar to the query gets the largest weight in q_hat."""
    q = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-0.2, 1.0]])
    labels = torch.tensor([0, 0, 0])
    q.requires_grad_(True)
    loss, _ = correlation_contrastive_loss(q, labels, tau=0.1)
    sim = F.normalize(q, dim=1) @ F.normalize(q, dim=1).T
    assert sim[0, 1] > sim[0, 2]
    q_hat0 = torch.softmax(sim[0, 1:] / 0.1, 0) @ q[1:]
    assert (q_hat0 - q[1]).norm() < (q_hat0 - q[2]).norm()


def _supcon_literal(q, labels, tau):
    """Khosla et al. (2020), Eq. 2 (L^sup_out), anchor by anchor; mean over anchors that have positives."""
    z = [v / v.norm() for v in q]
    losses = []
    for i in range(len(z)):
        P = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not P:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i)
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in P) / len(P))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("seed", range(3))
def test_supcon_matches_khosla_formula(seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(9, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 0, 2, 1, 0])  # class 2 has one sample: an anchor without positives
    loss, _ = supcon_loss(q, labels, tau=0.5)
    assert abs(float(loss) - _supcon_literal(q, labels, 0.5)) < 1e-6
    assert float(supcon_loss(q, torch.arange(9))[0]) == 0  # no anchor has a positive


@pytest.mark.bad_input
def test_contrastive_losses_check_shapes():
    with pytest.raises(ValueError, match="q must be"):
        correlation_contrastive_loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="q must be"):
        supcon_loss(torch.randn(4, 3, 2), torch.zeros(4, dtype=torch.long))


def test_eq8_total_loss():
    torch.manual_seed(0)
    model = TimeSformerClassifier(TimeSformer(img_size=16, patch=4, frames=4, dim=16, depth=1, heads=2))
    x, y = torch.randn(6, 4, 1, 16, 16), torch.tensor([0, 1, 0, 1, 0, 1])
    loss, logs = mvcc_loss(model, x, y, "cscl", lam=0.1)
    torch.testing.assert_close(loss, logs["cls"] + 0.1 * logs["con"])
    logits, q = model(x, return_features=True)
    torch.testing.assert_close(logs["con"], correlation_contrastive_loss(q, y)[0].detach())
    base, logs = mvcc_loss(model, x, y, None)
    torch.testing.assert_close(base, F.cross_entropy(logits, y))


# ---------------------------------------------------------------- pretrained weights


def test_imagenet_offline_warns_and_keeps_random_weights(monkeypatch):
    from torchvision.models import ViT_B_16_Weights

    def offline(self, *a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(type(ViT_B_16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    enc = TimeSformer(img_size=16, patch=4, frames=2, dim=16, depth=1, heads=2)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.warns(UserWarning, match="random weights"):
        missing = load_pretrained(enc, "imagenet")
    assert set(missing) == set(before)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_loads_a_local_torchvision_vit(tmp_path):
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=64)
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    enc = TimeSformer(img_size=32, patch=8, frames=4, dim=16, depth=2, heads=2)
    missing = load_pretrained(enc, path)
    assert missing == ["time_embed"]  # a ViT has no temporal positions
    sd = vit.state_dict()
    qkv = sd["encoder.layers.encoder_layer_1.self_attention.in_proj_weight"]
    assert torch.equal(enc.blocks[1].attn.qkv.weight, qkv) and torch.equal(enc.blocks[1].temporal_attn.qkv.weight, qkv)
    assert (enc.blocks[1].temporal_fc.weight == 0).all()
    torch.testing.assert_close(enc.patch_embed.proj.weight, sd["conv_proj.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(enc.pos_embed[0], sd["encoder.pos_embedding"][0, 1:])
    assert torch.equal(enc.blocks[0].mlp.fc2.weight, sd["encoder.layers.encoder_layer_0.mlp.3.weight"])


@pytest.mark.bad_input
def test_weights_of_the_wrong_width_or_a_missing_file_are_refused(tmp_path):
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=64)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    with pytest.raises(ValueError, match="do not fit the encoder"):
        load_pretrained(TimeSformer(img_size=32, patch=8, frames=2, dim=32, depth=1, heads=2), tmp_path / "vit.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pretrained(TimeSformer(img_size=32, patch=8, frames=2, dim=16, depth=1, heads=2), tmp_path / "nope.pth")


@pytest.mark.bad_input
def test_encoder_refuses_a_clip_of_the_wrong_size():
    enc = TimeSformer(img_size=16, patch=4, frames=4, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="does not fit the encoder"):
        enc(torch.randn(1, 4, 1, 20, 20))


def test_masked_fraction_counts_whole_frames_and_patches_of_kept_frames():
    from usnb.models.mvcc import masked_fraction

    assert masked_fraction(8, 16, 0.3125, 0.5) == (3 * 16 + 5 * 8) / (8 * 16)  # 3 frames whole + 8 of 16 in 5
    assert masked_fraction(4, 16, 0.5, 0.0) == 0.5 and masked_fraction(4, 16, 0.0, 0.75) == 0.75
    mask = dual_level_mask(3, 4, 16, 0.5, 0.75, generator=torch.Generator().manual_seed(0))
    assert masked_fraction(4, 16, 0.5, 0.75) == float(mask.float().mean()) == 0.875
    with pytest.raises(ValueError, match="nothing stays visible"):
        masked_fraction(4, 16, 0.9, 0.0)

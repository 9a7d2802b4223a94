import math

import numpy as np
import pytest
import torch
from torch import nn

from usnb.explain import GradCAM, box_mask, pointing_game, topk_iou, tsne

K = 8  # channels; class 0 reads channels [:K/2] from patch P0 only, class 1 reads [K/2:] from P1 only


def _two_patch_mask(shape, p0, p1):
    """(K, *grid) mask: channels [:K/2] kept at index p0 of the grid, [K/2:] at p1."""
    mask = torch.zeros(K, *shape)
    mask[(slice(0, K // 2), *p0)] = 1
    mask[(slice(K // 2, K), *p1)] = 1
    return mask


class Keep(nn.Module):
    """Multiplies features by a fixed mask: the target layer, zero outside the known patches."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, f):
        return (f.reshape(-1, *self.mask.shape) * self.mask).reshape(f.shape)


def _head():
    head = nn.Linear(K, 2, bias=False)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, : K // 2] = 1
        head.weight[1, K // 2:] = 1
    return head


def _positive(conv):
    with torch.no_grad():
        conv.weight.abs_()
        conv.bias.zero_()
    return conv


class FrameNet(nn.Module):
    """Per-frame 2-D CNN, x: (B, T=3, 1, 16, 16); P0 moves with the frame (feature cols 1+2t), P1 is fixed."""

    def __init__(self):
        super().__init__()
        self.conv = _positive(nn.Conv2d(1, K, 3, stride=2, padding=1))  # 16 -> 8
        masks = [_two_patch_mask((8, 8), (slice(1, 3), slice(1 + 2 * t, 3 + 2 * t)), (slice(5, 7), slice(5, 7)))
                 for t in range(3)]
        self.keep = Keep(torch.stack(masks))  # (T, K, 8, 8)
        self.head = _head()

    def forward(self, x):
        b, t = x.shape[:2]
        f = self.keep(torch.relu(self.conv(x.flatten(0, 1))))  # (B*T, K, 8, 8)
        return self.head(f.reshape(b, t, K, 8, 8).mean((1, 3, 4)))


class Net3d(nn.Module):
    """3-D CNN, x: (B, 1, T=4, 16, 16) -> features (B, K, 2, 8, 8); P0 at feature t=1, P1 at t=0."""

    def __init__(self):
        super().__init__()
        self.conv = _positive(nn.Conv3d(1, K, 3, stride=2, padding=1))
        self.keep = Keep(_two_patch_mask((2, 8, 8), (1, slice(1, 3), slice(5, 7)), (0, slice(5, 7), slice(1, 3))))
        self.head = _head()

    def forward(self, x):
        return self.head(self.keep(torch.relu(self.conv(x))).mean((2, 3, 4)))


class TokenEmbed(nn.Module):
    """Patchify (4x4 per frame) -> linear -> token mask -> CLS first: (B, T=2, 1, 16, 16) -> (B, 1 + 32, K)."""

    def __init__(self):
        super().__init__()
        self.proj = _positive(nn.Linear(16, K))
        mask = _two_patch_mask((32,), (18,), (13,))  # token 18 = (t=1, h=0, w=2); 13 = (t=0, h=3, w=1)
        self.register_buffer("mask", mask.T)  # (N, K)
        self.cls = nn.Parameter(torch.zeros(1, 1, K))

    def forward(self, x):
        b, t = x.shape[:2]
        patches = x.reshape(b, t, 4, 4, 4, 4).permute(0, 1, 2, 4, 3, 5).reshape(b, t * 16, 16)  # (B, N, 16)
        tokens = torch.relu(self.proj(patches)) * self.mask  # (B, N, K)
        return torch.cat([self.cls.expand(b, -1, -1), tokens], 1)


class TokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = TokenEmbed(), _head()

    def forward(self, x):
        return self.head(self.embed(x)[:, 1:].mean(1))


def _assert_peak(cam_frame, rows, cols):
    r, c = np.unravel_index(int(cam_frame.argmax()), cam_frame.shape)
    assert rows[0] <= r <= rows[1] and cols[0] <= c <= cols[1], (r, c, rows, cols)


def _input(shape, seed=0):
    return 0.5 + 0.5 * torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_gradcam_frames_finds_the_patch_of_each_frame_and_class():
    model = FrameNet()
    x = _input((2, 3, 1, 16, 16))
    with GradCAM(model, model.keep, kind="frames") as gradcam:
        cam = gradcam(x, target_class=[0, 1]).numpy()  # clip 0 explains class 0, clip 1 class 1
        assert cam.shape == (2, 3, 16, 16) and cam.dtype == np.float32
        for t in range(3):
            _assert_peak(cam[0, t], (2, 5), (2 + 4 * t, 5 + 4 * t))  # P0: feature rows 1-2, cols 1+2t..2+2t
            outside = np.ones((16, 16), bool)
            outside[1:7, 1 + 4 * t:7 + 4 * t] = False  # the patch and a 1-pixel rim reached by bilinear upsampling
            assert (cam[0, t][outside] == 0).all()
            _assert_peak(cam[1, t], (10, 13), (10, 13))  # P1
        np.testing.assert_allclose(cam.reshape(2, -1).max(1), 1, atol=1e-6)
        assert cam.min() >= 0
    assert not model.keep._forward_hooks  # the context manager removed the hook


def test_gradcam_3d_is_upsampled_in_time_and_space():
    model = Net3d()
    x = _input((1, 1, 4, 16, 16))
    gradcam = GradCAM(model, model.keep, kind="3d")
    cam0, cam1 = gradcam(x, 0)[0].numpy(), gradcam(x, 1)[0].numpy()
    gradcam.close()
    assert cam0.shape == (4, 16, 16)
    t, r, c = np.unravel_index(int(cam0.argmax()), cam0.shape)
    assert t in (2, 3) and 2 <= r <= 5 and 10 <= c <= 13  # P0: feature t=1 -> frames 2-3
    assert (cam0[0] == 0).all()  # frame 0 sees only feature t=0, where class 0 has no evidence
    t, r, c = np.unravel_index(int(cam1.argmax()), cam1.shape)
    assert t in (0, 1) and 10 <= r <= 13 and 2 <= c <= 5
    assert (cam1[3] == 0).all()
    assert not model.keep._forward_hooks


def test_gradcam_tokens_with_cls_on_a_grid():
    model = TokenNet()
    x = _input((1, 2, 1, 16, 16))
    with GradCAM(model, model.embed, kind="tokens", token_grid=(2, 4, 4), has_cls=True) as gradcam:
        cam0, cam1 = gradcam(x, 0)[0].numpy(), gradcam(x, 1)[0].numpy()
    assert cam0.shape == (2, 16, 16)
    _assert_peak(cam0[1], (0, 3), (8, 11))  # token 18 = (t=1, h=0, w=2)
    assert (cam0[0] == 0).all()
    _assert_peak(cam1[0], (12, 15), (4, 7))  # token 13 = (t=0, h=3, w=1)
    assert (cam1[1] == 0).all()


def test_predicted_class_and_single_logit():
    model = FrameNet()
    x = _input((2, 3, 1, 16, 16), seed=1)
    with GradCAM(model, model.keep) as gradcam:
        pred = model(x).argmax(1)
        torch.testing.assert_close(gradcam(x), gradcam(x, pred))
        torch.testing.assert_close(gradcam.logits, model(x).detach())

    class Margin(nn.Module):  # one logit: class 1 minus class 0
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            logits = self.net(x)
            return logits[:, 1] - logits[:, 0]  # (B,)

    with GradCAM(Margin(), model.keep) as gradcam:
        _assert_peak(gradcam(x)[0, 0].numpy(), (10, 13), (10, 13))  # None -> the logit itself (class 1)
        _assert_peak(gradcam(x, 0)[0, 0].numpy(), (2, 5), (2, 5))  # class 0 -> minus the logit


def test_gradcam_leaves_the_model_as_it_was():
    model = FrameNet().train()
    x = _input((1, 3, 1, 16, 16))
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen model still explains
    with GradCAM(model, model.keep) as gradcam:
        gradcam(x)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_gradcam_wrong_layer_or_grid_names_the_fix():
    model = FrameNet()
    with GradCAM(model, model.keep, kind="3d") as gradcam, pytest.raises(ValueError, match="kind='frames'"):
        gradcam(_input((1, 3, 1, 16, 16)))  # a per-frame model explained as a 3-D one
    token_model = TokenNet()
    with GradCAM(token_model, token_model.embed, kind="tokens", token_grid=(2, 4, 4)) as gradcam:
        with pytest.raises(ValueError, match="has_cls"):
            gradcam(_input((1, 2, 1, 16, 16)))
    with pytest.raises(ValueError, match="token_grid"):
        GradCAM(token_model, token_model.embed, kind="tokens")
    with pytest.raises(ValueError, match="kind must be"):
        GradCAM(model, model.keep, kind="2d")


# ---------------------------------------------------------------- localisation scores

BOX = (2, 3, 4, 2)  # x, y, w, h: rows 3-4, cols 2-5


def _peak(r, c, shape=(10, 10)):
    s = np.zeros(shape)
    s[r, c] = 1
    return s


def test_pointing_game_hits_and_misses():
    assert pointing_game(_peak(4, 5), [BOX]) == 1.0  # (H, W) map with a plain list of boxes
    assert pointing_game(_peak(5, 5), [BOX]) == 0.0
    both = np.stack([_peak(4, 5), _peak(0, 0), _peak(3, 2)])
    assert pointing_game(both, {0: [BOX], 1: [BOX]}) == 0.5  # frame 2 has no box: not counted
    assert pointing_game(both, [BOX, None, [BOX, (0, 0, 1, 1)]]) == 1.0
    assert pointing_game(torch.tensor(both), [[BOX], [(0, 0, 1, 1)], None]) == 1.0
    assert pointing_game(_peak(6, 5), [BOX], tolerance=2) == 1.0  # 2 rows below the box
    assert pointing_game(_peak(6, 5), [BOX], tolerance=1.5) == 0.0
    assert math.isnan(pointing_game(both, {}))
    assert math.isnan(pointing_game(both, [None, [], None]))
    with pytest.raises(ValueError, match="3 saliency frames"):
        pointing_game(both, [BOX, BOX])
    with pytest.raises(ValueError, match="frames \\[5\\]"):
        pointing_game(both, {5: [BOX]})


def test_topk_iou_exact_values():
    indicator = box_mask([BOX], (10, 10)).astype(float)
    assert indicator.sum() == 8
    assert topk_iou(indicator, [BOX], k=8 / 100) == 1.0
    assert topk_iou(indicator, [BOX], k=16 / 100) == 0.5  # 8 box pixels among 16 chosen
    two = [BOX, (7, 7, 2, 2)]
    union = box_mask(two, (10, 10)).astype(float)
    maps = np.stack([union, np.zeros((10, 10)), union])
    assert topk_iou(maps, {0: two, 2: two}, k=12 / 100) == 1.0
    assert topk_iou(1 - indicator, [BOX], k=8 / 100) == 0.0
    assert math.isnan(topk_iou(maps, {}))
    with pytest.raises(ValueError, match="fraction"):
        topk_iou(indicator, [BOX], k=0)


def test_tsne_shape_and_determinism():
    feats = np.random.default_rng(0).normal(size=(24, 6)).astype(np.float32)
    a, b = tsne(feats, seed=3), tsne(torch.from_numpy(feats), seed=3)
    assert a.shape == (24, 2)
    np.testing.assert_allclose(a, b)
    assert tsne(feats[:7]).shape == (7, 2)  # perplexity defaults to (N - 1) / 3 = 2
    with pytest.raises(ValueError, match="at least 3"):
        tsne(feats[:2])

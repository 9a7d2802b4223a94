"""SlowFast and P3D ResNet: published sizes, SlowFast's pathways and lateral fusion, P3D's A/B/C units, narrow
variants that train."""
import pytest
import torch
import torchvision

from usnb.models.p3d import P3DBottleneck, p3d_resnet
from usnb.models.slowfast import SlowFast, slowfast_resnet


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_slowfast_sizes_are_the_published_ones():
    """mmaction2, configs/recognition/slowfast/metafile.yml (400 classes): slowfast_r50_4x16x1 34,479,288 (34.5 M),
    slowfast_r50_8x8x1 (alpha 4, 7x1x1 lateral kernel) 34,565,560, slowfast_r101_8x8x1 62,912,312. Exact counts, so
    the test is exact; built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        r50 = slowfast_resnet(50, num_classes=400)
        r50_8x8 = SlowFast(50, num_classes=400, alpha=4, fusion_kernel=7)
        r101_8x8 = SlowFast(101, num_classes=400, alpha=4, fusion_kernel=7)
    assert _count(r50) == 34_479_288 and round(_count(r50) / 1e6, 1) == 34.5
    assert _count(r50_8x8) == 34_565_560
    assert _count(r101_8x8) == 62_912_312


def test_slowfast_pathways_and_lateral_fusion_have_table_1s_shapes():
    """SlowFast 4x16 R50 on 32 frames of 224 px (Table 1): Slow T/alpha = 4 frames, Fast 32; Fast channels beta = 1/8
    of the Slow ones at every stage; each Slow stage reads C + 2*beta*C channels. Shapes on the meta device."""
    with torch.device("meta"):
        net = slowfast_resnet(50, num_classes=400)
        seen = {}
        for i in range(4):
            net.slow_stages[i].register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("slow in", i), a[0].shape))
            net.slow_stages[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("slow", i), o.shape))
            net.fast_stages[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("fast", i), o.shape))
            net.laterals[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("lateral", i), o.shape))
        assert net(torch.zeros(1, 3, 32, 224, 224)).shape == (1, 400)
    slow_in = [64, 256, 512, 1024]  # C leaving the stem, res2, res3, res4
    for i, (c, size) in enumerate(zip([256, 512, 1024, 2048], [56, 28, 14, 7])):  # res2-res5
        assert seen[("slow", i)] == (1, c, 4, size, size)
        assert seen[("fast", i)] == (1, c // 8, 32, size, size)
        assert seen[("lateral", i)] == (1, 2 * slow_in[i] // 8, 4, 2 * size if i else size, 2 * size if i else size)
        assert seen[("slow in", i)][1] == slow_in[i] + 2 * slow_in[i] // 8  # C + 2*beta*C
        assert seen[("slow in", i)][2] == 4
    assert net.fc.in_features == 2048 + 256


def test_slowfast_temporal_kernels_and_stems_are_table_1s():
    net = slowfast_resnet(50, width=16)
    assert net.slow_stem[0].kernel_size == (1, 7, 7) and net.fast_stem[0].kernel_size == (5, 7, 7)
    assert [s[0].conv_a.kernel_size[0] for s in net.slow_stages] == [1, 1, 3, 3]
    assert [s[0].conv_a.kernel_size[0] for s in net.fast_stages] == [3, 3, 3, 3]
    assert all(lat.kernel_size == (5, 1, 1) and lat.stride == (8, 1, 1) for lat in net.laterals)


@pytest.mark.bad_input
def test_slowfast_refuses_a_clip_whose_frames_alpha_does_not_divide_and_an_unknown_depth():
    net = slowfast_resnet(50, width=16)
    with pytest.raises(ValueError, match="T=12 frames, alpha=8"):
        net(torch.zeros(1, 3, 12, 32, 32))
    with pytest.raises(ValueError, match="depth must be one of .50, 101, 152., got 34"):
        slowfast_resnet(34)
    with pytest.raises(ValueError, match="whole number of channels"):
        slowfast_resnet(50, width=4)


def test_p3d_units_compute_fig_3():
    """A = T(S(u)), B = S(u) + T(u), C = S(u) + T(S(u)); with T's weights at zero (T(.) = ReLU(BN(0)) = 0 in eval
    mode) A gives nothing, B and C the spatial path S(u)."""
    torch.manual_seed(0)
    blocks = {unit: P3DBottleneck(8, 4, unit) for unit in "ABC"}
    for b in blocks.values():  # the same weights in all three
        b.load_state_dict(blocks["A"].state_dict())
        b.eval()
    u = torch.randn(2, 4, 5, 6, 6)  # (B, planes, T, H, W)
    s, t = blocks["A"].spatial, blocks["A"].temporal
    with torch.no_grad():
        expected = {"A": t(s(u)), "B": s(u) + t(u), "C": s(u) + t(s(u))}
        for unit, b in blocks.items():
            assert torch.allclose(b.st(u), expected[unit])
        assert not torch.allclose(blocks["A"].st(u), blocks["C"].st(u))
        for b in blocks.values():
            b.temporal[0].weight.zero_()
        assert not blocks["A"].st(u).any()
        assert torch.allclose(blocks["B"].st(u), s(u)) and torch.allclose(blocks["C"].st(u), s(u))
        assert blocks["B"](torch.randn(2, 8, 5, 6, 6)).shape == (2, 16, 5, 6, 6)


def test_p3d_mixes_a_b_c_in_turn_over_the_network_and_res5_is_2d():
    """The authors' Caffe model: res2a A, res2b B, res2c C, res3a A, ... (counted across stages), res5 2-D. P3D-199:
    ResNet-152 and one temporal convolution in each of its 47 res2-res4 blocks."""
    units = [b.unit for s in p3d_resnet(50, width=16).stages for b in s]
    assert units == list("ABC" * 4 + "A") + ["2D"] * 3
    with torch.device("meta"):
        deep = p3d_resnet(152, num_classes=400)
    temporal = [m for m in deep.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 1, 1)]
    assert len(temporal) == 47 and 152 + len(temporal) == 199


def test_p3d_sizes_are_the_reference_implementations():
    """qijiezhao/pseudo-3d-pytorch (p3d_model.py) with 400 classes: P3D199 66,492,240 and P3D63 25,745,232 parameters
    (counted from its code; neither the paper nor the port prints a count): torchvision's ResNet-152 / ResNet-50 with
    400 classes plus one 3x1x1 convolution (planes^2 * 3) and its BN (2 * planes) per res2-res4 block."""
    with torch.device("meta"):
        p199, p63 = p3d_resnet(152, num_classes=400), p3d_resnet(50, num_classes=400)
        r152 = torchvision.models.resnet152(num_classes=400)
        r50 = torchvision.models.resnet50(num_classes=400)

    def extra(blocks):
        return sum(n * (3 * p * p + 2 * p) for n, p in zip(blocks, (64, 128, 256)))

    assert _count(p199) == _count(r152) + extra((3, 8, 36)) == 66_492_240
    assert _count(p63) == _count(r50) + extra((3, 4, 6)) == 25_745_232


@pytest.mark.bad_input
def test_p3d_refuses_an_unknown_depth_and_unit():
    with pytest.raises(ValueError, match="depth must be one of .50, 101, 152., got 18"):
        p3d_resnet(18)
    with pytest.raises(ValueError, match="unit must be 'A', 'B', 'C' or '2D', got 'D'"):
        P3DBottleneck(8, 4, "D")


@pytest.mark.parametrize("build", [slowfast_resnet, p3d_resnet])
def test_narrow_variant_is_a_quarter_as_wide_runs_on_a_small_clip_and_takes_sgd_steps(build):
    with torch.device("meta"):
        full = build(50, num_classes=3)
    torch.manual_seed(0)
    narrow = build(50, num_classes=3, width=16)
    widths = [m.out_channels for m in narrow.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [4 * c for c in widths] == [m.out_channels for m in full.modules() if isinstance(m, torch.nn.Conv3d)]
    assert 4 * narrow.fc.in_features == full.fc.in_features
    x, y = torch.randn(2, 3, 8, 64, 64), torch.tensor([0, 2])
    opt = torch.optim.SGD(narrow.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in narrow.parameters()]
    for _ in range(2):
        logits = narrow(x)
        assert logits.shape == (2, 3)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(), loss.backward(), opt.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, narrow.parameters()))


@pytest.mark.parametrize("build", [slowfast_resnet, p3d_resnet])
def test_loss_falls_on_a_separable_toy_set(build):
    torch.manual_seed(0)
    net = build(50, num_classes=2, width=16)
    x = torch.randn(8, 3, 8, 32, 32)
    y = torch.tensor([0, 1] * 4)
    x[y == 1] += 1.5  # class 1: brighter clips
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and all(torch.isfinite(torch.tensor(losses)))

"""I3D ResNet-50 and ir-CSN: published sizes, the 3-D layout each follows, narrow CPU variants that train."""
import pytest
import torch

from usnb.models.csn import ir_csn
from usnb.models.i3d import i3d_resnet
from usnb.models.resnet3d import Bottleneck3d

NARROW = [(i3d_resnet, 50), (ir_csn, 50), (ir_csn, 152)]


def _count(m: torch.nn.Module, with_bn: bool = True) -> int:
    return sum(p.numel() for mod in m.modules() if with_bn or not isinstance(mod, torch.nn.BatchNorm3d)
               for p in mod.parameters(recurse=False))


def _blocks(m: torch.nn.Module) -> list[Bottleneck3d]:
    return [b for b in m.modules() if isinstance(b, Bottleneck3d)]


def test_sizes_at_the_published_configuration():
    """400 classes. Exact counts: mmaction2's configs/recognition/i3d/metafile.yml (I3D R50, 28,043,472) and
    configs/recognition/csn/metafile.yml (ir-CSN-152 29,703,568; ir-CSN-50 13,131,152). The authors' VMZ model zoo
    (facebookresearch/VMZ, c2/tutorials/model_zoo.md) gives ir-CSN-152 29.6 M, to 0.1 M: met by the weights without
    the BN scales and shifts, so within the +-0.05 M its rounding allows."""
    i3d, csn152, csn50 = i3d_resnet(50, num_classes=400), ir_csn(152, num_classes=400), ir_csn(50, num_classes=400)
    assert _count(i3d) == 28_043_472
    assert _count(csn152) == 29_703_568 and abs(_count(csn152, with_bn=False) / 1e6 - 29.6) <= 0.05
    assert _count(csn50) == 13_131_152
    assert len(_blocks(i3d)) == len(_blocks(csn50)) == 16 and len(_blocks(csn152)) == 50


def test_i3d_inflates_the_first_conv_of_9_blocks_and_halves_time_once():
    net = i3d_resnet(width=8)
    assert net.stem[0].kernel_size == (5, 7, 7) and net.stem[0].stride == (1, 2, 2)
    assert [b.conv_a.kernel_size[0] for b in _blocks(net)] == [3, 3, 3, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 1, 3, 1]
    assert all(b.conv_b.kernel_size == (1, 3, 3) and b.conv_b.groups == 1 for b in _blocks(net))
    with torch.no_grad():
        features = net.eval().body(net.stem(torch.randn(1, 3, 8, 32, 32)))
    assert features.shape == (1, 8 * 8 * 4, 4, 1, 1)  # T 8 -> 4 (pool after res2), H, W / 32


def test_ir_csn_is_depthwise_in_its_3x3x3_and_strides_time_in_res3_to_res5():
    net = ir_csn(50, width=8)
    assert net.stem[0].kernel_size == (3, 7, 7) and net.stem[0].stride == (1, 2, 2)
    for b in _blocks(net):
        assert b.conv_b.kernel_size == (3, 3, 3) and b.conv_b.groups == b.conv_b.in_channels == b.conv_b.out_channels
        assert b.conv_a.groups == b.conv_c.groups == 1 and b.conv_a.kernel_size == b.conv_c.kernel_size == (1, 1, 1)
    with torch.no_grad():
        features = net.eval().body(net.stem(torch.randn(1, 3, 8, 32, 32)))
    assert features.shape == (1, 8 * 8 * 4, 1, 1, 1)  # T 8 -> 4 -> 2 -> 1, H, W / 32


@pytest.mark.parametrize("build, depth", NARROW)
def test_narrow_variant_keeps_the_depth_gives_logits_and_takes_two_sgd_steps(build, depth):
    torch.manual_seed(0)
    net = build(depth, num_classes=3, width=16)
    assert len(_blocks(net)) == {50: 16, 152: 50}[depth]  # the same depth as at full width
    assert net.fc.in_features == 2048 // 4  # every stage a quarter as wide
    x, y = torch.randn(2, 3, 4, 64, 64), torch.tensor([0, 2])
    assert net(x).shape == (2, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    before = net.fc.weight.detach().clone()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        assert torch.isfinite(loss)
    assert not torch.equal(before, net.fc.weight)


@pytest.mark.parametrize("build, depth", NARROW)
def test_loss_falls_on_a_separable_toy_set(build, depth):
    torch.manual_seed(0)
    net = build(depth, num_classes=2, width=16)
    x = torch.randn(8, 3, 4, 32, 32)
    y = torch.tensor([0, 1] * 4)
    x[y == 1] += 1.0  # class 1: brighter clips
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.bad_input
def test_unsupported_depths_and_inputs_are_refused():
    with pytest.raises(ValueError, match=r"I3D depth must be one of \[50\], got 101"):
        i3d_resnet(101)
    with pytest.raises(ValueError, match=r"ir-CSN depth must be one of \[50, 152\], got 34"):
        ir_csn(34)
    with pytest.raises(ValueError, match=r"expected a clip batch \(B, 3, T, H, W\)"):
        ir_csn(50, width=8)(torch.randn(2, 3, 32, 32))

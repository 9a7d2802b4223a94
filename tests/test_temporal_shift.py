"""TSM and TIN (CLMAN's Table 4 baselines): what the shift moves, TIN's interlacing at whole and zero offsets, sizes."""
import pytest
import torch

from usnb.models.temporal_shift import (TemporalInterlace, TemporalShift, interlace, shift_time,
                                        temporal_shift_resnet)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_tsm_moves_one_eighth_each_way_and_leaves_the_rest():
    x = torch.randn(2 * 4, 16, 3, 3)  # (N*T, C, H, W), T = 4, C = 16: folds of 2 channels
    y = TemporalShift(frames=4)(x).view(2, 4, 16, 3, 3)
    v = x.view(2, 4, 16, 3, 3)
    assert torch.equal(y[:, :3, :2], v[:, 1:, :2]) and not y[:, 3, :2].any()  # channels 0-1: frame t sees t + 1
    assert torch.equal(y[:, 1:, 2:4], v[:, :3, 2:4]) and not y[:, 0, 2:4].any()  # channels 2-3: t sees t - 1
    assert torch.equal(y[:, :, 4:], v[:, :, 4:])  # the other 12 channels (3/4) unchanged


def test_tin_interlacing_is_a_shift_at_whole_offsets_identity_at_zero_and_linear_between():
    x = torch.randn(2, 5, 8, 2, 2)  # (N, T, C, H, W), 4 groups of 2 channels
    whole = torch.tensor([[1.0, -1.0, 2.0, 0.0]] * 2)
    out = interlace(x, whole)
    for g, s in enumerate((1, -1, 2, 0)):
        assert torch.allclose(out[:, :, 2 * g:2 * g + 2], shift_time(x[:, :, 2 * g:2 * g + 2], s))
    assert torch.allclose(interlace(x, torch.zeros(2, 4)), x)
    half = interlace(x, torch.full((2, 4), 0.25))
    assert torch.allclose(half, 0.75 * x + 0.25 * shift_time(x, 1), atol=1e-6)


def test_tin_module_is_the_identity_with_zero_offsets_and_unit_weights():
    tin = TemporalInterlace(channels=16, frames=4)
    with torch.no_grad():  # offset network -> 4 (sigmoid(0) - 0.5) = 0; weight network -> 2 sigmoid(0) = 1
        for m in (tin.offset_conv, tin.offset_fc1, tin.offset_fc2, tin.weight_conv):
            m.weight.zero_(), m.bias.zero_()
    x = torch.randn(8, 16, 3, 3)
    assert torch.allclose(tin(x), x)
    offsets, weights = TemporalInterlace(channels=16, frames=4).offsets_and_weights(x.view(2, 4, 16, 3, 3)[:, :, :4])
    assert torch.allclose(offsets[:, :2], -offsets[:, 2:]) and offsets.abs().max() < 2  # (o1, o2, -o1, -o2)
    assert weights.shape == (2, 4, 4) and ((weights > 0) & (weights < 2)).all()


def test_sizes_at_the_papers_configuration():
    """TSM ResNet-50, 400 classes: 24.3 M parameters (TSM paper, Table 1). TIN adds per block an offset network
    (conv1d C/4 -> 1, k 3; fc T -> T; fc T -> 2) and a weight network (conv1d C/4 -> 2, k 3); no published count."""
    tsm = temporal_shift_resnet("tsm", 50, num_classes=400, frames=8)
    assert _count(tsm) == 24_327_632 and round(_count(tsm) / 1e6, 1) == 24.3
    tin = temporal_shift_resnet("tin", 50, num_classes=400, frames=8)
    extra = sum((c // 4 * 3 + 1) + (8 * 8 + 8) + (8 * 2 + 2) + (c // 4 * 2 * 3 + 2)
                for c in [64, 256, 256] + [256] + [512] * 3 + [512] + [1024] * 5 + [1024] + [2048] * 2)
    assert _count(tin) == _count(tsm) + extra


@pytest.mark.parametrize("kind, depth, width", [("tsm", 50, 8), ("tin", 18, 16), ("tin", 34, 16), ("tin", 50, 16)])
def test_each_trains_on_a_tiny_clip_and_its_loss_falls_on_a_separable_toy_set(kind, depth, width):
    torch.manual_seed(0)
    net = temporal_shift_resnet(kind, depth, num_classes=2, frames=4, width=width)
    x = torch.randn(8, 3, 4, 32, 32)
    y = torch.tensor([0, 1] * 4)
    x[y == 1, 0] += 1.5  # class 1: a brighter red channel
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] and all(torch.isfinite(torch.tensor(losses)))
    with pytest.raises(ValueError, match="built for T=4 frames, got 3"):
        net(x[:, :, :3])

"""The torchvision video baselines of KGA-Net's Table 1 and CLMAN's Table 4."""
import re

import pytest
import torch

from usnb import baselines
from usnb.view import FieldOfView


def test_video_baselines_build_with_a_two_class_head():
    torch.manual_seed(0)
    net = baselines.video_baseline("R(2+1)D")
    assert net(torch.randn(1, 3, 4, 32, 32)).shape == (1, 2)
    assert baselines.video_baseline("S3D").classifier[-1].out_channels == 2
    with pytest.raises(ValueError, match="baseline must be one of"):
        baselines.video_baseline("I4D")


def test_baseline_step_treats_images_as_static_videos():
    torch.manual_seed(0)
    net = baselines.video_baseline("R3D")
    batch = (torch.randint(0, 255, (2, 4, 1, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]),
             torch.randint(0, 255, (2, 1, 32, 32), dtype=torch.uint8), torch.tensor([1, 1]))
    loss, _ = baselines.make_step(FieldOfView(32), images=True)(net, batch, torch.device("cpu"))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_clips_only_step_and_prediction():
    torch.manual_seed(0)
    net = baselines.video_baseline("MC3", num_classes=2)
    batch = (torch.randint(0, 255, (2, 4, 1, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]))
    loss, _ = baselines.make_step(FieldOfView(32))(net, batch, torch.device("cpu"))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert baselines.as_rgb_video(torch.zeros(2, 4, 1, 8, 8)).shape == (2, 3, 4, 8, 8)


def test_our_table4_baselines_build_small_or_full_and_say_they_have_no_kinetics_weights():
    torch.manual_seed(0)
    small = baselines.video_baseline("TIN Res18", frames=4, small=True)
    assert small(torch.randn(1, 3, 4, 32, 32)).shape == (1, 2)
    full = baselines.video_baseline("TSM", num_classes=2, frames=8)
    assert sum(p.numel() for p in full.parameters()) == 23_512_130  # ResNet-50 + a 2-class head
    with pytest.warns(UserWarning, match="TSM: no Kinetics weights are available to usnb here; training from random"):
        baselines.video_baseline("TSM", weights="kinetics", frames=4, small=True)
    batch = (torch.randint(0, 255, (2, 4, 1, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]))
    loss, _ = baselines.make_step(FieldOfView(32))(small, batch, torch.device("cpu"))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", list(baselines.OURS) + list(baselines.VIDEO_RESNETS))
def test_each_baseline_learns_a_separable_toy_set_at_cpu_size(name):
    """Every row we build (TSM, TIN, I3D, SlowFast, CSN, P3D, TimeSformer) and torchvision's narrowed R3D, MC3,
    R(2+1)D, small: (B, 2) logits on 4 frames of 32 px, and the loss falls over a few Adam steps when class 1's clips
    are brighter."""
    torch.manual_seed(0)
    net = baselines.video_baseline(name, frames=4, small=True, size=32)
    y = torch.tensor([0, 1] * 4)
    x = torch.rand(8, 3, 4, 32, 32) * 0.5 + y[:, None, None, None, None] * 0.5  # (B, 3, T, H, W)
    assert net(x).shape == (8, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name, published, convs", [
    ("R3D", 33_371_472, ["Conv3DSimple"] * 4),
    ("MC3", 11_695_440, ["Conv3DSimple"] + ["Conv3DNoTemporal"] * 3),
    ("R(2+1)D", 31_505_325, ["Conv2Plus1D"] * 4)])
def test_torchvisions_video_resnets_are_narrowed_in_the_small_profile(name, published, convs):
    """R3D, MC3, R(2+1)D keep torchvision's network at the paper's size (its published parameter counts, 400 classes)
    and, small, the same network at stem width 16: every stage 1/4 as wide, each stage's convolution type kept, the
    (2+1)-D middle width by Tran et al.'s rule (as many parameters as the 3-D convolution), R(2+1)D's stem 45/64."""
    assert sum(p.numel() for p in baselines.video_baseline(name, num_classes=400).parameters()) == published
    net = baselines.video_baseline(name, frames=4, small=True, size=32)
    assert net.stem[0].out_channels == (11 if name == "R(2+1)D" else 16)
    widths = [getattr(net, f"layer{i}")[0].conv2[1].num_features for i in (1, 2, 3, 4)]
    assert widths == [16, 32, 64, 128] and net.fc.in_features == 128
    assert [type(getattr(net, f"layer{i}")[-1].conv1[0]).__name__ for i in (1, 2, 3, 4)] == convs
    if name == "R(2+1)D":
        block = net.layer2[1]  # 32 -> 32 channels: middle width 32*32*27 // (32*9 + 3*32) = 72
        assert block.conv1[0][0].out_channels == 72
        spatial, temporal = block.conv1[0][0], block.conv1[0][3]
        assert spatial.weight.numel() + temporal.weight.numel() <= 32 * 32 * 27
    assert 0.04 < sum(p.numel() for p in net.parameters()) / published < 0.08  # about 1/16: every width 1/4
    said = re.escape(name) + ": the small profile narrows it to stem width 16.*random weights"
    with pytest.warns(UserWarning, match=said):
        baselines.video_baseline(name, weights="kinetics", frames=4, small=True)


@pytest.mark.slow
def test_timesformer_row_is_vit_b16_at_the_papers_size():
    """TimeSformer (Bertasius, Wang, Torresani, ICML 2021, arXiv:2102.05095), divided space-time attention, ViT-B/16,
    8 frames of 224 px: the paper's Table 1 gives 121.4 M parameters (400 classes); ours counts 121.56 M (0.13 % more:
    the pieces the paper's figure rounds or leaves out are not stated)."""
    net = baselines.video_baseline("TimeSformer", num_classes=400, frames=8, size=224)
    n = sum(p.numel() for p in net.parameters())
    assert n == 121_564_816 and abs(n - 121.4e6) / 121.4e6 < 0.002
    assert net(torch.randn(1, 3, 8, 224, 224)).shape == (1, 400)


@pytest.mark.bad_input
def test_our_baselines_load_local_weights_and_refuse_a_file_of_another_network(tmp_path, capsys):
    """Kinetics weights come from a local file: the tensors that match load (a head for another class count stays at
    random init), what loaded is printed; another network's file or a missing file is refused, naming it."""
    torch.manual_seed(0)
    donor = baselines.video_baseline("I3D", num_classes=400, frames=4, small=True)
    path = tmp_path / "i3d_k400.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}}, path)
    net = baselines.video_baseline("I3D", num_classes=2, weights=str(path), frames=4, small=True)
    said = capsys.readouterr().out
    assert "I3D:" in said and "loaded from" in said and "left at random init" in said
    heads = {k for k, v in net.state_dict().items() if v.shape != donor.state_dict()[k].shape}
    assert heads and all(torch.equal(v, donor.state_dict()[k]) for k, v in net.state_dict().items() if k not in heads)
    torch.save(baselines.video_baseline("CSN", frames=4, small=True).state_dict(), tmp_path / "csn.pth")
    with pytest.raises(ValueError, match=r"csn.pth: only \d+ of \d+ tensors of I3D match"):
        baselines.video_baseline("I3D", weights=str(tmp_path / "csn.pth"), frames=4, small=True)
    torch.save(baselines.video_baseline("R3D", frames=4).state_dict(), tmp_path / "r3d_full.pth")  # paper's width
    with pytest.raises(ValueError, match=r"r3d_full.pth: only 21 of 122 tensors of R3D match by name and shape; 101 "
                                         r"more match by name but have other shapes: weights of R3D at another width"):
        baselines.video_baseline("R3D", weights=str(tmp_path / "r3d_full.pth"), frames=4, small=True)
    with pytest.raises(FileNotFoundError, match=r"nope.pth: weights file not found. Fix: pass a local .pth"):
        baselines.video_baseline("P3D", weights=str(tmp_path / "nope.pth"), frames=4, small=True)

import json

import pytest
import torch

from usnb.models.backbones import SmallCNN, resnet_backbone
from usnb.models.kganet import CenterLoss, KGANet, coherence_loss, kganet_loss
from usnb.report import write_metrics


def test_center_loss_value_and_wen_update():
    center = CenterLoss(num_classes=2, dim=2, alpha=0.5)
    center.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    center.started.fill_(True)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    # 1/2 mean(||x - c_y||^2) = 1/2 * (1 + 4 + 4) / 3 = 1.5
    assert float(center(x, y)) == pytest.approx(1.5)
    # Wen's rule: c_0 -= 0.5 * ((c_0 - x_0) + (c_0 - x_1)) / (1 + 2) = 0.5 * (-1, -2) / 3 negated
    assert torch.allclose(center.centers[0], torch.tensor([1 / 6, 2 / 6]))
    assert torch.allclose(center.centers[1], torch.tensor([1.0 + 0.5 * 2 / 2, 1.0]))
    center.eval()
    before = center.centers.clone()
    center(x, y)
    assert torch.equal(before, center.centers)  # no update at evaluation


def test_center_starts_at_the_first_class_mean():
    center = CenterLoss(num_classes=2, dim=2, alpha=0.5)
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    y = torch.tensor([0, 0, 1])
    # class 0 starts at (2, 1): loss 1/2 mean(||x - c_y||^2) = 1/2 * (2 + 2 + 0) / 3; Wen's step is then 0
    assert float(center(x, y)) == pytest.approx(2 / 3)
    assert torch.allclose(center.centers, torch.tensor([[2.0, 1.0], [5.0, 5.0]]))
    assert center.started.all()
    center(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))  # now Wen's rule: c_0 -= 0.5 * (c_0 - x) / 2
    assert torch.allclose(center.centers[0], torch.tensor([1.5, 1.0]))


def test_coherence_loss_by_hand():
    w = torch.tensor([[0.5, 0.0]])  # 1 - w = (0.5, 1)
    feats = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # distances to center (0, 0): d = (3, 1)
    centers = torch.zeros(1, 2)
    labels = torch.tensor([0])
    gram_w = torch.tensor([[0.25, 0.5], [0.5, 1.0]]) / 1.25
    gram_d = torch.tensor([[9.0, 3.0], [3.0, 1.0]]) / 10.0
    expected = (gram_w - gram_d).norm()
    assert float(coherence_loss(w, feats, centers, labels)) == pytest.approx(float(expected))
    # attention that follows the distances exactly (1 - w proportional to d) costs nothing
    w_ok = 1 - torch.tensor([[0.9, 0.3]])
    assert float(coherence_loss(w_ok, feats, centers, labels)) == pytest.approx(0.0, abs=1e-6)


def test_kganet_shapes_and_attention_switch():
    torch.manual_seed(0)
    net = KGANet(SmallCNN(widths=(8, 16)))
    out = net(torch.randn(2, 5, 1, 32, 32), torch.randn(3, 1, 32, 32))
    assert out["logits"].shape == (2, 2) and out["weights"].shape == (2, 5)
    assert out["frame_logits"].shape == (2, 5, 2) and out["image_logits"].shape == (3, 2)
    assert ((out["weights"] > 0) & (out["weights"] < 1)).all()
    avg = KGANet(SmallCNN(widths=(8, 16)), attention=False)
    clip = torch.randn(1, 4, 1, 32, 32)
    o = avg(clip)
    assert torch.allclose(o["video_feature"], o["frame_features"].mean(1))  # Table 2 row 2: averaging


def test_kganet_loss_terms():
    torch.manual_seed(0)
    net = KGANet(SmallCNN(widths=(8, 16)))
    clips, labels = torch.randn(2, 4, 1, 32, 32), torch.tensor([0, 1])
    loss, logs = kganet_loss(net, clips, labels, torch.randn(2, 1, 32, 32), torch.tensor([1, 0]))
    assert set(logs) == {"ce_video", "ce_image_frames", "center", "coherence"}
    assert float(loss.detach()) == pytest.approx(sum(float(v.detach()) for v in logs.values()), rel=1e-5)  # Eq. (4), lambda = 1
    loss.backward()
    assert net.attn_fc.weight.grad.abs().sum() > 0
    loss2, logs2 = kganet_loss(net, clips, labels, coherence=False)  # w/o image guidance, w/o coherence
    assert set(logs2) == {"ce_video", "ce_image_frames", "center"}


def test_imagenet_weights_without_network_fall_back_with_a_clear_message(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")
    with pytest.warns(UserWarning, match="could not download ImageNet weights.*weights='path/to/resnet18.pth'"):
        net = resnet_backbone(18, in_channels=1, weights="imagenet")
    assert net(torch.randn(1, 1, 64, 64)).shape == (1, 512)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        resnet_backbone(18, weights="/nope/resnet18.pth")


def test_local_weights_file_is_loaded(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    net = resnet_backbone(18, in_channels=3, weights=tmp_path / "r18.pth")
    assert torch.equal(net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_metrics_json_contract(tmp_path):
    row = {"acc": 0.9, "sen": 0.8, "spe": 1.0, "pre": 1.0, "f1": 0.89, "auc": 0.95, "ap": 0.93}
    path = write_metrics(tmp_path, "kganet", "small", "phantom", 0, 12.34, {"KGA-Net": row})
    data = json.loads(path.read_text())
    assert data["rows"]["KGA-Net"]["auc"] == 0.95 and data["seconds"] == 12.3
    with pytest.raises(ValueError, match="not a fraction"):
        write_metrics(tmp_path, "kganet", "small", "phantom", 0, 1, {"x": {**row, "auc": 94.67}})
    with pytest.raises(ValueError, match="lacks"):
        write_metrics(tmp_path, "kganet", "small", "phantom", 0, 1, {"x": {"acc": 0.5}})


class _NotATensor:
    pass


@pytest.mark.bad_input
def test_weights_file_carrying_a_pickled_object_is_refused(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save({**resnet18().state_dict(), "extra": _NotATensor()}, path)
    with pytest.raises(RuntimeError, match=r"r18.pth: checkpoint holds pickled Python objects \(.*_NotATensor\)"):
        resnet_backbone(18, weights=path)

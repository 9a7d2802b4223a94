"""2-D backbones: frames `(N, C, H, W)` -> features `(N, D)`; ImageNet weights when the user has them."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import load_checkpoint, load_weights_into


class SmallCNN(nn.Module):
    """Four strided conv blocks (GroupNorm or BatchNorm, ReLU) and global pooling: the CPU-sized backbone."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128), norm: str = "group"):
        super().__init__()
        if norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {norm!r}")
        make_norm = (lambda w: nn.GroupNorm(4, w)) if norm == "group" else nn.BatchNorm2d
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), make_norm(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), make_norm(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        return self.features(x).mean(dim=(2, 3))  # (N, D)


def resnet_backbone(depth: int = 50, in_channels: int = 1, weights: str | Path | None = None) -> nn.Module:
    """torchvision ResNet-18/50 without its classifier; `weights`: None, 'imagenet' or a local .pth file.

    'imagenet' downloads torchvision's weights; without network it warns and keeps random weights (zero-initialised
    residual branches).
    Grayscale input uses the mean of the pretrained RGB filters.
    """
    from torchvision import models

    builders = {18: (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
                50: (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2)}
    if depth not in builders:
        raise ValueError(f"ResNet depth must be 18 or 50, got {depth}")
    build, imagenet = builders[depth]
    # random weights: each residual block starts as the identity (its last BN scale 0; Goyal et al. 2017,
    # arXiv:1706.02677), so that activations do not grow block by block before BN's running statistics settle;
    # loaded weights replace this
    net = build(weights=None, zero_init_residual=True)
    state = None
    if weights == "imagenet":
        try:
            state = imagenet.get_state_dict(progress=False)
        except Exception as err:  # noqa: BLE001 - no network: say so and go on with random weights
            warnings.warn(f"could not download ImageNet weights for ResNet-{depth} ({type(err).__name__}); "
                          f"training from random weights. Fix: pass weights='path/to/resnet{depth}.pth' "
                          "(a torchvision state dict) or run where the internet is reachable", stacklevel=2)
    elif weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file not found. Fix: pass a torchvision ResNet-{depth} "
                                    "state dict (.pth) or weights=None")
        state = load_checkpoint(path)
    if state is not None:
        load_weights_into(net, state, weights if weights != "imagenet" else "ImageNet weights", f"ResNet-{depth}",
                          f"pass a torchvision ResNet-{depth} state dict (.pth), or weights=None")
    if in_channels != 3:
        conv = net.conv1
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        with torch.no_grad():
            net.conv1.weight.copy_(conv.weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1))
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net

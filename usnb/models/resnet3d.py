"""The 3-D ResNet skeleton that I3D (`usnb.models.i3d`) and ir-CSN (`usnb.models.csn`) share.

A stem, ResNet's four stages of bottleneck blocks (He et al., "Deep Residual Learning for Image Recognition",
arXiv:1512.03385: 3/4/6/3 blocks at depth 50, 3/8/36/3 at 152; `width`, 2, 4 and 8 `width` inner channels, four times
that out; the first block of stages 2-4 halves H and W in its 3x3 convolution), global average pooling over
(T, H, W) and a dropout-free linear head. Each network's builder chooses what is 3-D: which kernels reach over time,
where time is strided, which convolutions are depthwise.

Initialisation as PySlowFast's `slowfast/utils/weight_init_helper.py` (ZERO_INIT_FINAL_BN, FC_INIT_STD 0.01): He
normal (fan-out) for every convolution, the last BN of each residual branch at zero so that each block starts as the
identity, the head N(0, 0.01) with zero bias.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

STAGE_BLOCKS = {50: (3, 4, 6, 3), 152: (3, 8, 36, 3)}  # blocks in res2..res5 (ResNet paper, Table 1)


def stage_blocks(depth: int, supported: Sequence[int], network: str) -> tuple[int, ...]:
    """Blocks per stage at `depth`; a ValueError naming the depths `network` is built for otherwise."""
    if depth not in supported:
        raise ValueError(f"{network} depth must be one of {sorted(supported)}, got {depth}")
    return STAGE_BLOCKS[depth]


class Bottleneck3d(nn.Module):
    """ResNet's bottleneck in 3-D: conv_a (time_a x 1 x 1, C_in -> planes), conv_b (time_b x 3 x 3, planes -> planes,
    `groups` groups, the block's stride), conv_c (1 x 1 x 1, planes -> 4 planes), each followed by BN, with ReLU after
    the first two and after the sum with the shortcut (a strided 1 x 1 x 1 conv and BN where the shape changes)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: tuple[int, int, int] = (1, 1, 1), time_a: int = 1,
                 time_b: int = 1, groups: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv_a = nn.Conv3d(in_channels, planes, (time_a, 1, 1), padding=(time_a // 2, 0, 0), bias=False)
        self.bn_a = nn.BatchNorm3d(planes)
        self.conv_b = nn.Conv3d(planes, planes, (time_b, 3, 3), stride=stride, padding=(time_b // 2, 1, 1),
                                groups=groups, bias=False)
        self.bn_b = nn.BatchNorm3d(planes)
        self.conv_c = nn.Conv3d(planes, out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(out)  # the residual branch's last BN: zero at initialisation
        changes_shape = in_channels != out or stride != (1, 1, 1)
        self.shortcut = (nn.Sequential(nn.Conv3d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm3d(out))
                         if changes_shape else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, T, H, W)
        y = F.relu(self.bn_a(self.conv_a(x)))  # (B, planes, T, H, W)
        y = F.relu(self.bn_b(self.conv_b(y)))  # (B, planes, T/st, H/s, W/s)
        y = self.bn_c(self.conv_c(y))  # (B, 4 planes, T/st, H/s, W/s)
        return F.relu(y + self.shortcut(x))


def stem(width: int, time: int) -> nn.Sequential:
    """conv time x 7 x 7 (stride (1, 2, 2)), BN, ReLU, max pool 1 x 3 x 3 (stride (1, 2, 2)):
    (B, 3, T, H, W) -> (B, width, T, H/4, W/4)."""
    return nn.Sequential(nn.Conv3d(3, width, (time, 7, 7), stride=(1, 2, 2), padding=(time // 2, 3, 3), bias=False),
                         nn.BatchNorm3d(width), nn.ReLU(inplace=True),
                         nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))


BlockMaker = Callable[[int, int, int, int, int], nn.Module]


def residual_stages(width: int, blocks: Sequence[int], make_block: BlockMaker) -> list[nn.Sequential]:
    """ResNet's stages: stage i holds blocks[i] bottlenecks of width * 2**i inner channels.
    make_block(i, j, in_channels, planes, down) builds block j of stage i; down is 2 where it halves H and W
    (the first block of stages 2-4), else 1."""
    stages, in_channels = [], width
    for i, n in enumerate(blocks):
        planes = width * 2 ** i
        stage = []
        for j in range(n):
            stage.append(make_block(i, j, in_channels, planes, 2 if i > 0 and j == 0 else 1))
            in_channels = planes * Bottleneck3d.expansion
        stages.append(nn.Sequential(*stage))
    return stages


class VideoResNet(nn.Module):
    """stem -> body -> global average pool over (T, H, W) -> linear: x (B, 3, T, H, W) -> logits (B, num_classes)."""

    def __init__(self, stem: nn.Module, body: nn.Sequential, features: int, num_classes: int):
        super().__init__()
        self.stem, self.body = stem, body
        self.fc = nn.Linear(features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, Bottleneck3d):
                nn.init.zeros_(m.bn_c.weight)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch (B, 3, T, H, W), got shape {tuple(x.shape)}")
        x = self.body(self.stem(x))  # (B, C, T', H', W')
        return self.fc(x.mean(dim=(2, 3, 4)))  # (B, num_classes)

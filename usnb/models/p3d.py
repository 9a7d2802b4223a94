"""Pseudo-3D ResNet: bottlenecks whose 3x3x3 convolution is split into a spatial and a temporal one.

Qiu, Yao, Mei, "Learning Spatio-Temporal Representation with Pseudo-3D Residual Networks", ICCV 2017,
arXiv:1711.10305. Facts from the paper (Fig. 3 and its text) and the authors' Caffe model
(ZhaofanQiu/pseudo-3d-residual-networks, prototxt/deploy_p3d_resnet_kinetics.prototxt); the PyTorch port
qijiezhao/pseudo-3d-pytorch (p3d_model.py) and GluonCV's p3d.py build the same network.

* S is a 1x3x3 convolution (space), T a 3x1x1 one (time), each followed by BN and ReLU (Caffe model, ports). The units
  (Fig. 3): P3D-A, S then T in cascade, T(S(u)); P3D-B, S and T in parallel, S(u) + T(u); P3D-C, S then T with a
  shortcut from S, S(u) + T(S(u)). Each sits between a 1x1x1 reduction and a 1x1x1 expansion (x4) convolution in
  a residual bottleneck whose sum with the shortcut is followed by ReLU.
* The paper's P3D ResNet mixes the three in turn, A, B, C, A, B, C, ..., counted over the whole network, not restarted
  per stage (the Caffe model: res2a A, res2b B, res2c C, res3a A, ..., res4b4 A). Its base is ResNet-152 ("P3D-199":
  152 layers and 47 temporal convolutions); here ResNet-50 ("P3D-63", as the PyTorch port) by default, 101 and 152.
* res2-res4 are P3D blocks; res5 is a 2-D ResNet stage (Caffe model and ports), here a 1x3x3 convolution run on every
  frame (the same weights as the 2-D stage; the same computation where, as in the paper's 16-frame clips, one frame
  is left).
* Stem: a 1x7x7 convolution, spatial stride 2, BN, ReLU, a 3x3 max pool, spatial stride 2. Time is halved by max
  pooling (kernel 2, stride 2) in the stem and before res3, res4 and res5 (16 frames -> 1); as Caffe's pooling,
  a last incomplete window still gives a frame (ceil mode), so short clips, down to 1 frame, run too.
* Spatial stride 2 in the first 1x1x1 convolution of res3-res5 and in the shortcut's projection (Caffe model).
* Head: global average pooling, dropout 0.5, a linear layer (Caffe model).

Where the Caffe model differs from the paper's figures without changing any weight shape: its P3D-B block has no
ReLU after T before the sum (a ReLU follows the sum), its P3D-C block averages S and T (weights 0.5, 0.5). Here the
figures' plain sums.

Sizes: the PyTorch port's P3D199 with 400 classes is ResNet-152's 58,963,408 parameters (torchvision, 400 classes)
plus one 3x1x1 convolution and its BN per P3D block (47 blocks: 7,528,832), 66,492,240; P3D-63 (ResNet-50 base)
25,745,232.
"""
from __future__ import annotations

import torch
from torch import nn

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
UNITS = ("A", "B", "C")


def conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int, int], padding: tuple[int, int, int] = (0, 0, 0),
                 stride: tuple[int, int, int] = (1, 1, 1)) -> nn.Sequential:
    """A convolution, BN and ReLU (S, T and the bottleneck's reduction)."""
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class P3DBottleneck(nn.Module):
    """A residual bottleneck with the P3D unit `unit` ('A', 'B', 'C'; '2D': S alone, res5) between a 1x1x1
    reduction (spatial stride here) and a 1x1x1 expansion. x: (B, C_in, T, H, W) -> (B, 4*planes, T, H/s, W/s)."""

    def __init__(self, cin: int, planes: int, unit: str, stride: int = 1):
        super().__init__()
        if unit not in (*UNITS, "2D"):
            raise ValueError(f"P3D unit must be 'A', 'B', 'C' or '2D', got {unit!r}")
        self.unit = unit
        self.reduce = conv_bn_relu(cin, planes, (1, 1, 1), stride=(1, stride, stride))
        self.spatial = conv_bn_relu(planes, planes, (1, 3, 3), padding=(0, 1, 1))  # S
        self.temporal = conv_bn_relu(planes, planes, (3, 1, 1), padding=(1, 0, 0)) if unit != "2D" else None  # T
        self.expand = nn.Conv3d(planes, 4 * planes, 1, bias=False)
        self.bn_expand = nn.BatchNorm3d(4 * planes)  # zero-initialised: the block starts as its shortcut
        cout = 4 * planes
        self.shortcut = (nn.Sequential(nn.Conv3d(cin, cout, 1, stride=(1, stride, stride), bias=False),
                                       nn.BatchNorm3d(cout)) if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def st(self, u: torch.Tensor) -> torch.Tensor:
        """Fig. 3's unit on u: (B, planes, T, H, W) -> the same shape."""
        if self.unit == "A":
            return self.temporal(self.spatial(u))  # T(S(u))
        if self.unit == "B":
            return self.spatial(u) + self.temporal(u)  # S(u) + T(u)
        if self.unit == "C":
            s = self.spatial(u)
            return s + self.temporal(s)  # S(u) + T(S(u))
        return self.spatial(u)  # 2D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.st(self.reduce(x))  # (B, planes, T, H/s, W/s)
        return self.relu(self.bn_expand(self.expand(out)) + self.shortcut(x))  # (B, 4*planes, T, H/s, W/s)


class P3DResNet(nn.Module):
    """P3D ResNet-`depth` (see the module docstring). x: (B, 3, T, H, W) -> logits (B, num_classes). `width`: the
    stem's channels (64 in the paper; 16 gives every stage 1/4 the width)."""

    def __init__(self, depth: int = 50, num_classes: int = 2, width: int = 64, dropout: float = 0.5):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"P3D ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        self.stem = nn.Sequential(
            nn.Conv3d(3, width, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        self.time_pool = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1), ceil_mode=True)
        self.stages = nn.ModuleList()
        cin, count = width, 0  # count: P3D blocks so far, for the A, B, C cycle
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            stage = []
            for j in range(blocks):
                unit = "2D" if i == 3 else UNITS[count % len(UNITS)]
                count += unit != "2D"
                stage.append(P3DBottleneck(cin, width * 2 ** i, unit, stride=2 if i > 0 and j == 0 else 1))
                cin = 4 * width * 2 ** i
            self.stages.append(nn.Sequential(*stage))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, P3DBottleneck):
                nn.init.zeros_(m.bn_expand.weight)
        nn.init.normal_(self.fc.weight, std=0.001), nn.init.zeros_(self.fc.bias)  # the Caffe model's fc filler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.time_pool(self.stem(x))  # (B, 3, T, H, W) -> (B, C, ceil(T/2), H/4, W/4)
        for i, stage in enumerate(self.stages):
            x = stage(self.time_pool(x) if i else x)  # time halved before res3, res4, res5
        return self.fc(self.dropout(x.mean((2, 3, 4))))  # (B, num_classes)


def p3d_resnet(depth: int = 50, num_classes: int = 2, width: int = 64) -> nn.Module:
    """P3D ResNet-`depth` (50, 101 or 152; 152 is the paper's P3D-199): A, B, C blocks in turn in res2-res4.
    Input (B, 3, T, H, W), output logits (B, num_classes). width=16: the same network, every stage 1/4 as wide."""
    return P3DResNet(depth, num_classes, width)

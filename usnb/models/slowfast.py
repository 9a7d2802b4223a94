"""SlowFast R50: a slow, wide pathway and a fast, thin one, joined by lateral connections.

Feichtenhofer, Fan, Malik, He, "SlowFast Networks for Video Recognition", ICCV 2019, arXiv:1812.03982. The
configuration followed is the paper's Table 1 (SlowFast 4x16, R50) and its Sec. 3 (checked against PySlowFast,
facebookresearch/SlowFast, and mmaction2's resnet3d_slowfast.py):

* alpha = 8: the Fast pathway sees alpha times the frames of the Slow one; beta = 1/8: it has beta times the
  channels at every stage (stem 8, res2-res5 32/64/128/256 against the Slow pathway's 64, 256/512/1024/2048).
* Stems: Slow 1x7x7, Fast 5x7x7 convolution, spatial stride 2, then a 1x3x3 max pool, stride 2 (Table 1); no temporal
  stride anywhere, so the Slow pathway keeps T/alpha frames and the Fast one T frames to the head.
* Residual stages res2-res5: bottlenecks of 3, 4, 6, 3 blocks (ResNet-50), each a Tx1x1, a 1x3x3 and a 1x1x1
  convolution; the temporal kernel T sits in the first one (Table 1; PySlowFast's _TEMPORAL_KERNEL_BASIS, mmaction2's
  3x1x1 inflate style): Slow 1, 1, 3, 3 (temporal convolutions only in res4 and res5, the paper's "non-degenerate"
  kernels), Fast 3 in every stage. Spatial stride 2 in the 1x3x3 convolution of the first block of res3-res5
  (PySlowFast's STRIDE_1X1 False), a 1x1x1 projection with BN on the shortcut where the shape changes.
* Lateral connections Fast -> Slow after the stem, res2, res3 and res4 (Sec. 3): a time-strided convolution,
  5x1x1 kernel, stride alpha, 2*beta*C output channels, concatenated to the Slow pathway's C channels, so the
  Slow pathway's next stage reads C + 2*beta*C channels. As mmaction2's resnet3d_slowfast.py, the lateral is a bare
  convolution; PySlowFast (FuseFastToSlow) adds BN and ReLU after it (+928 parameters at R50).
* Head: global average pooling of each pathway, concatenation (2048 + 256 channels), dropout 0.5 (PySlowFast's
  DROPOUT_RATE), one linear layer.

Frames: the input is one clip (B, 3, T, H, W) as the Fast pathway sees it (T divisible by alpha); the Slow pathway
takes every alpha-th frame of it, frames 0, alpha, 2*alpha, ... (as mmaction2's resample; PySlowFast's PackPathway
takes T/alpha evenly spaced frames including the last one). Each lateral convolution's window is centred on the
frames the Slow pathway keeps. tau, the Slow pathway's stride in the video, is set by how the clip was sampled: for
SlowFast 4x16, 32 frames taken every 2nd frame of the video.

Sizes: 34,479,288 parameters at R50 with 400 classes, the count mmaction2 publishes for
slowfast_r50_4x16x1_256e_kinetics400_rgb (configs/recognition/slowfast/metafile.yml).
"""
from __future__ import annotations

import torch
from torch import nn

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
SLOW_TEMPORAL_KERNELS = (1, 1, 3, 3)  # res2-res5 (Table 1)
FAST_TEMPORAL_KERNELS = (3, 3, 3, 3)


class Bottleneck(nn.Module):
    """Table 1's residual block: Tx1x1 -> 1x3x3 (spatial stride) -> 1x1x1 convolutions, each with BN, ReLU after
    the first two; the sum with the shortcut is followed by ReLU. x: (B, C_in, T, H, W) -> (B, C_out, T, H/s, W/s)."""

    def __init__(self, cin: int, inner: int, cout: int, temporal_kernel: int, stride: int = 1):
        super().__init__()
        self.conv_a = nn.Conv3d(cin, inner, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False)
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn_b = nn.BatchNorm3d(inner)
        self.conv_c = nn.Conv3d(inner, cout, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(cout)  # zero-initialised: the block starts as its shortcut
        self.shortcut = (nn.Sequential(nn.Conv3d(cin, cout, 1, stride=(1, stride, stride), bias=False),
                                       nn.BatchNorm3d(cout)) if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn_a(self.conv_a(x)))  # (B, inner, T, H, W)
        out = self.relu(self.bn_b(self.conv_b(out)))  # (B, inner, T, H/s, W/s)
        return self.relu(self.bn_c(self.conv_c(out)) + self.shortcut(x))  # (B, C_out, T, H/s, W/s)


def res_stage(cin: int, inner: int, cout: int, blocks: int, temporal_kernel: int, stride: int) -> nn.Sequential:
    """One res stage: `blocks` bottlenecks, the first one with the spatial stride and the projection shortcut."""
    return nn.Sequential(*[Bottleneck(cin if i == 0 else cout, inner, cout, temporal_kernel, stride if i == 0 else 1)
                           for i in range(blocks)])


def stem(temporal_kernel: int, cout: int) -> nn.Sequential:
    """Table 1's stem: a Tx7x7 convolution (spatial stride 2), BN, ReLU, a 1x3x3 max pool (spatial stride 2)."""
    return nn.Sequential(
        nn.Conv3d(3, cout, (temporal_kernel, 7, 7), stride=(1, 2, 2), padding=(temporal_kernel // 2, 3, 3),
                  bias=False),
        nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))


class SlowFast(nn.Module):
    """SlowFast ResNet-`depth` (see the module docstring). x: (B, 3, T, H, W), T divisible by alpha -> logits
    (B, num_classes). `width`: the Slow pathway's stem channels (64 in the paper; 16 gives every stage 1/4 the
    width); the Fast pathway has beta times as many at every stage."""

    def __init__(self, depth: int = 50, num_classes: int = 2, width: int = 64, alpha: int = 8, beta: float = 1 / 8,
                 fusion_kernel: int = 5, dropout: float = 0.5):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"SlowFast depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        fast_width = round(width * beta)
        if fast_width < 1 or abs(fast_width - width * beta) > 1e-6:
            raise ValueError(f"width * beta must be a whole number of channels, got {width} * {beta}")
        if alpha < 1:
            raise ValueError(f"alpha (frames of the Fast pathway per Slow frame) must be >= 1, got {alpha}")
        self.alpha = alpha
        self.slow_stem, self.fast_stem = stem(1, width), stem(5, fast_width)
        self.laterals, self.slow_stages, self.fast_stages = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        slow_c, fast_c = width, fast_width  # channels leaving the stem, then each stage
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            self.laterals.append(nn.Conv3d(fast_c, 2 * fast_c, (fusion_kernel, 1, 1), stride=(alpha, 1, 1),
                                           padding=(fusion_kernel // 2, 0, 0), bias=False))
            stride = 1 if i == 0 else 2
            self.slow_stages.append(res_stage(slow_c + 2 * fast_c, width * 2 ** i, 4 * width * 2 ** i, blocks,
                                              SLOW_TEMPORAL_KERNELS[i], stride))
            self.fast_stages.append(res_stage(fast_c, fast_width * 2 ** i, 4 * fast_width * 2 ** i, blocks,
                                              FAST_TEMPORAL_KERNELS[i], stride))
            slow_c, fast_c = 4 * width * 2 ** i, 4 * fast_width * 2 ** i
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(slow_c + fast_c, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]  # x: (B, 3, T, H, W)
        if t % self.alpha:
            raise ValueError(f"SlowFast needs the clip's T divisible by alpha: got T={t} frames, alpha={self.alpha}")
        slow = self.slow_stem(x[:, :, ::self.alpha])  # (B, C, T/alpha, H/4, W/4)
        fast = self.fast_stem(x)  # (B, beta*C, T, H/4, W/4)
        for lateral, slow_stage, fast_stage in zip(self.laterals, self.slow_stages, self.fast_stages):
            slow = torch.cat([slow, lateral(fast)], dim=1)  # (B, C + 2*beta*C, T/alpha, h, w)
            slow, fast = slow_stage(slow), fast_stage(fast)
        pooled = torch.cat([slow.mean((2, 3, 4)), fast.mean((2, 3, 4))], dim=1)  # (B, C_slow + C_fast)
        return self.fc(self.dropout(pooled))  # (B, num_classes)


def _init(net: nn.Module) -> None:
    """He init for convolutions, BN at (1, 0) except the last BN of each residual branch at 0, the classifier as
    PySlowFast (normal, std 0.01; bias 0)."""
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01), nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn_c.weight)


def slowfast_resnet(depth: int = 50, num_classes: int = 2, width: int = 64, alpha: int = 8,
                    beta: float = 1 / 8) -> nn.Module:
    """SlowFast ResNet-`depth` (50, 101 or 152), the paper's 5x1x1 lateral kernel. Input (B, 3, T, H, W), T divisible
    by alpha; output logits (B, num_classes). width=16: the same network, every stage 1/4 as wide."""
    return SlowFast(depth, num_classes, width, alpha, beta)

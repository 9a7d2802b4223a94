"""I3D ResNet-50: a ResNet-50 inflated to 3-D, the "I3D R50" of the PySlowFast model zoo.

* Carreira, Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset", CVPR 2017,
  arXiv:1705.07750: inflation, i.e. a 2-D image network made 3-D by giving its kernels a temporal extent.
* Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018, arXiv:1711.07971 (Table 1, ResNet-50 C2D/I3D):
  the ResNet-50 form of I3D, which Feichtenhofer et al.'s PySlowFast reimplements as `i3d` and which this module
  follows, in its 8-frame Kinetics configuration (configs/Kinetics/c2/I3D_8x8_R50.yaml).

The configuration, fact by fact, with where each is read (PySlowFast, facebookresearch/SlowFast):
* stem: conv 5 x 7 x 7, 64 channels, stride (1, 2, 2), padding (2, 3, 3), BN, ReLU, then max pool 1 x 3 x 3,
  stride (1, 2, 2), padding (0, 1, 1) (`_TEMPORAL_KERNEL_BASIS["i3d"]` conv1 [5] and the stem stride in
  slowfast/models/video_model_builder.py; the pool in slowfast/models/stem_helper.py, ResNetBasicStem);
* bottleneck: the first 1 x 1 x 1 convolution is the inflated one (T x 1 x 1), the 3 x 3 stays 1 x 3 x 3 and carries
  the spatial stride (resnet_helper.BottleneckTransform "Tx1x1, 1x3x3, 1x1x1"; STRIDE_1X1: False in the config);
* which blocks are inflated (T = 3, else 1), the basis cycled over each stage's blocks: res2 [3], res3 [3, 1],
  res4 [3, 1], res5 [1, 3] (`_TEMPORAL_KERNEL_BASIS["i3d"]`; NUM_BLOCK_TEMP_KERNEL [[3], [4], [6], [3]] covers every
  block), i.e. 3 + 2 + 3 + 1 = 9 of the 16 blocks; mmaction2's configs/_base_/models/i3d_r50.py inflates the same
  blocks (inflate ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)), conv1 (5, 7, 7));
* time: no temporal stride anywhere but a max pool 2 x 1 x 1, stride 2, after res2 (`_POOL1["i3d"] = [[2, 1, 1]]`),
  so T frames leave res5 as T / 2 (mmaction2 instead strides time by 2 in conv1 and pool1 for its 32-frame input);
  a clip therefore needs T >= 2;
* init: ZERO_INIT_FINAL_BN: True, c2_msra_fill convolutions (`usnb.models.resnet3d`); PySlowFast's head has dropout
  0.5, ours none.

Size: 28,043,472 parameters with 400 classes, the count mmaction2 publishes for its I3D R50
(configs/recognition/i3d/metafile.yml, i3d_r50_32x2x1_100e_8xb8_kinetics400_rgb; the temporal strides change no
weight). `width` < 64 narrows every stage alike (the same network at CPU size). Input (B, 3, T, H, W).
"""
from __future__ import annotations

from torch import nn

from .resnet3d import Bottleneck3d, VideoResNet, residual_stages, stage_blocks, stem

I3D_TIME_KERNELS = ((3,), (3, 1), (3, 1), (1, 3))  # conv_a's temporal kernel, cycled over res2..res5's blocks


def i3d_resnet(depth: int = 50, num_classes: int = 2, width: int = 64) -> nn.Module:
    """I3D ResNet-`depth` (50 only, PySlowFast's `i3d`): x (B, 3, T, H, W), T >= 2 -> logits (B, num_classes)."""
    blocks = stage_blocks(depth, (50,), "I3D")

    def block(i: int, j: int, in_channels: int, planes: int, down: int) -> nn.Module:
        kernels = I3D_TIME_KERNELS[i]
        return Bottleneck3d(in_channels, planes, stride=(1, down, down), time_a=kernels[j % len(kernels)])

    res2, res3, res4, res5 = residual_stages(width, blocks, block)
    time_pool = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))  # halves T after res2
    body = nn.Sequential(res2, time_pool, res3, res4, res5)
    return VideoResNet(stem(width, time=5), body, 8 * width * Bottleneck3d.expansion, num_classes)

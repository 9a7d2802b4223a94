"""ir-CSN: the interaction-reduced channel-separated 3-D ResNet.

Tran, Wang, Torresani, Feiszli, "Video Classification with Channel-Separated Convolutional Networks", ICCV 2019,
arXiv:1904.02811. A 3-D ResNet whose bottleneck keeps its 1 x 1 x 1 convolutions (the only place channels interact)
and makes its 3 x 3 x 3 convolution depthwise (groups = channels): the paper's interaction-reduced bottleneck (ir-CSN);
ir-CSN-152 is its main model.

The configuration, fact by fact, with where each is read (the authors' VMZ, facebookresearch/VMZ, and mmaction2's
port of it, whose converted VMZ weights load into that layout):
* stem: conv 3 x 7 x 7, 64 channels, stride (1, 2, 2), padding (1, 3, 3), BN, ReLU, max pool 1 x 3 x 3, stride
  (1, 2, 2), padding (0, 1, 1) (VMZ pt/vmz/models/utils.py BasicStem_Pool; mmaction2 ResNet3dCSN conv1_kernel
  (3, 7, 7), conv1_stride_t 1, pool1_stride_t 1);
* bottleneck: 1 x 1 x 1, then a 3 x 3 x 3 depthwise convolution carrying the block's stride, then 1 x 1 x 1
  (VMZ Conv3DDepthwise, groups = in_planes; mmaction2 CSNBottleneck3d bottleneck_mode 'ir', inflate_style '3x3x3');
* strides: the first block of res3, res4 and res5 strides by 2 in time as well as in space, in its depthwise
  convolution and its projection shortcut (VMZ `get_downsample_stride` (s, s, s); mmaction2 temporal_strides
  (1, 2, 2, 2)), so T frames leave res5 as T / 8 (rounded up); no temporal pool (mmaction2 with_pool2=False);
* depth: 3/4/6/3 blocks (50), 3/8/36/3 (152) (VMZ layers [3, 8, 36, 3]; mmaction2 arch_settings).

Size with 400 classes: ir-CSN-152 29,703,568 parameters, ir-CSN-50 13,131,152, as mmaction2 publishes them
(configs/recognition/csn/metafile.yml). The authors' VMZ model zoo (c2/tutorials/model_zoo.md, README.md) gives
ir-CSN-152 29.6 M: that is our count without the BN scales and shifts (29,552,144). `width` < 64 narrows every stage
alike (the same network at CPU size). Input (B, 3, T, H, W).
"""
from __future__ import annotations

from torch import nn

from .resnet3d import Bottleneck3d, VideoResNet, residual_stages, stage_blocks, stem


def ir_csn(depth: int = 152, num_classes: int = 2, width: int = 64) -> nn.Module:
    """ir-CSN-`depth` (50 or 152): x (B, 3, T, H, W) -> logits (B, num_classes)."""
    blocks = stage_blocks(depth, (50, 152), "ir-CSN")

    def block(i: int, j: int, in_channels: int, planes: int, down: int) -> nn.Module:
        return Bottleneck3d(in_channels, planes, stride=(down, down, down), time_b=3, groups=planes)  # depthwise

    body = nn.Sequential(*residual_stages(width, blocks, block))
    return VideoResNet(stem(width, time=3), body, 8 * width * Bottleneck3d.expansion, num_classes)

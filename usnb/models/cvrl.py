"""CVRL's networks: the R3D-50 encoder, the MLP projection head and the InfoNCE loss on two clips of one video.

Qian, Meng, Gong, Yang, Wang, Belongie, Cui, "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021,
arXiv:2008.03800; public code: tensorflow/models, official/projects/video_ssl (read for every fact below).

* R3D-50 (`r3d_resnet`): the slow-only 3-D ResNet-50 of SlowFast's Slow pathway (Feichtenhofer et al.,
  arXiv:1812.03982, Table 1): ResNet-50's 3/4/6/3 bottlenecks whose first 1 x 1 convolution reaches over time
  (T x 1 x 1, then 1 x 3 x 3 with the spatial stride, then 1 x 1 x 1) with T = 1, 1, 3, 3 in res2..res5: temporal
  kernels only in res4 and res5. CVRL's stem is a 5 x 7 x 7 convolution with stride (2, 2, 2), BN, ReLU, then a
  1 x 3 x 3 max pool, stride (1, 2, 2), so its 16 input frames leave the stem as 8 and keep that to the head
  (configs/experiments/cvrl_pretrain_k600_200ep.yaml: block temporal kernels [1,1,1] [1,1,1,1] [3]*6 [3]*3, no
  temporal stride in the blocks, stem_conv_temporal_kernel_size 5, stem_conv_temporal_stride 2,
  stem_pool_temporal_stride 1; modeling/backbones/resnet_3d.py and layers/nn_blocks_3d.py BottleneckBlock3D).
  stem_time=1, stem_time_stride=1 is SlowFast's slow-only stem (1 x 7 x 7).
* Sizes: 31,672,128 parameters without a head, the "R3D-50 (1x) 31.7M" of the public code's README; with the
  slow-only stem and a 400-class head 32,454,096, the count mmaction2 publishes for SlowOnly R50
  (configs/recognition/slowonly/metafile.yml, slowonly_r50_8x8x1_256e_kinetics400_rgb).
* Projection head (`cvrl_projection`): 3 hidden layers of 2048 units (linear, BN, ReLU), then a linear layer to
  128 (VideoSSLModel: hidden_layer_num 3, hidden_dim 2048, projection_dim 128, BN in the MLP). The paper's
  "3-layer MLP" is read with the public code: three hidden layers before the 128-d output.
* Loss: InfoNCE on the L2-normalised projections with temperature 0.1 (SSLLosses.temperature; losses.py), the two
  clips of a video a positive pair, every other clip of the batch a negative: `usnb.models.contrastive.nt_xent`,
  averaged over the 2N clips (losses.py sums its two directions, twice this value).

Input: grey clips. The 3-D network reads (B, 1, T, H, W) (in_channels=1; 3 for the paper's RGB count); `CVRL` and
`R3DClassifier` take usnb's clip batches (B, T, 1, H, W) and move the channel axis themselves. Init as
`usnb.models.resnet3d.VideoResNet` (He fan-out, the last BN of each residual branch at zero).
"""
from __future__ import annotations

import torch
from torch import nn

from .contrastive import nt_xent
from .resnet3d import Bottleneck3d, VideoResNet, residual_stages, stage_blocks

R3D_TIME_KERNELS = (1, 1, 3, 3)  # conv_a's temporal kernel in res2..res5: temporal only in res4 and res5


def r3d_stem(in_channels: int, width: int, time: int, time_stride: int) -> nn.Sequential:
    """conv time x 7 x 7 (stride (time_stride, 2, 2)), BN, ReLU, max pool 1 x 3 x 3 (stride (1, 2, 2)):
    (B, C, T, H, W) -> (B, width, T / time_stride, H / 4, W / 4)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, width, (time, 7, 7), stride=(time_stride, 2, 2), padding=(time // 2, 3, 3), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))


def r3d_resnet(depth: int = 50, num_classes: int | None = 400, width: int = 64, in_channels: int = 3,
               stem_time: int = 5, stem_time_stride: int = 2) -> VideoResNet:
    """CVRL's R3D-`depth` (50 or 152): x (B, in_channels, T, H, W) -> logits (B, num_classes), or the pooled feature
    (B, 32 width) when num_classes is None. `width` < 64 narrows every stage alike (the same network at CPU size)."""
    blocks = stage_blocks(depth, (50, 152), "R3D")

    def block(i: int, j: int, c_in: int, planes: int, down: int) -> nn.Module:
        return Bottleneck3d(c_in, planes, stride=(1, down, down), time_a=R3D_TIME_KERNELS[i])

    body = nn.Sequential(*residual_stages(width, blocks, block))
    features = 8 * width * Bottleneck3d.expansion
    net = VideoResNet(r3d_stem(in_channels, width, stem_time, stem_time_stride), body, features, num_classes or 1)
    if num_classes is None:
        net.fc = nn.Identity()
    net.features = features
    return net


def cvrl_projection(dim_in: int, hidden: int = 2048, dim_out: int = 128, hidden_layers: int = 3) -> nn.Sequential:
    """`hidden_layers` x (linear, BN, ReLU) of `hidden` units, then linear to `dim_out`: (B, dim_in) -> (B, dim_out)."""
    layers, d = [], dim_in
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, dim_out))


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """usnb's clip batch (B, T, C, H, W) -> the 3-D network's (B, C, T, H, W)."""
    if x.dim() != 5:
        raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(x.shape)}")
    return x.transpose(1, 2)


class CVRL(nn.Module):
    """Encoder + projection head; `forward(v1, v2)` is the InfoNCE loss of two clips per video, v1, v2:
    (B, T, C, H, W), row i of both from video i. Both clips pass the encoder as one batch of 2B (BN over both)."""

    def __init__(self, encoder: VideoResNet, hidden: int = 2048, dim: int = 128, hidden_layers: int = 3,
                 temperature: float = 0.1):
        super().__init__()
        self.encoder, self.temperature = encoder, temperature
        self.head = cvrl_projection(encoder.features, hidden, dim, hidden_layers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> projections z (B, dim), before normalisation."""
        return self.head(self.encoder(channels_first(x)))

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.embed(torch.cat([v1, v2])).chunk(2)  # (B, dim) each
        return nt_xent(z1, z2, self.temperature)  # InfoNCE, tau = 0.1


class R3DClassifier(nn.Module):
    """The (pretrained) encoder and a linear head: x (B, T, C, H, W) -> logits (B, K), with
    `return_features=True` also the pooled feature (B, D) that `usnb.evaluate.predict` keeps as the video feature."""

    def __init__(self, encoder: VideoResNet, num_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.features, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        f = self.encoder(channels_first(x))  # (B, D)
        logits = self.fc(f)
        return (logits, f) if return_features else logits

"""Chen, Rubin et al. (2022), lung ultrasound SSL: a 3-D Darknet-53 encoder, BYOL and SimCLR (`VideoSimCLR`), a linear head.

Sec. 3.2: the online network (3-D encoder, projection MLP with one hidden layer of 4096, BYOL's predictor) learns to
predict the target network's projection of another augmentation of the same video; the target is an exponential
moving average (EMA, 0.99) of the online network. Sec. 3.4: after pretraining, a fully-connected layer on the
encoder's features classifies videos, with the encoder frozen ("SSL feature extractor") or trained ("SSL fine-tuned").
Clips are `(B, C, T, H, W)`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..checkpoints import ema_update
from .contrastive import byol_loss, nt_xent


def conv_bn(c_in: int, c_out: int, kernel: int, stride=1) -> nn.Sequential:
    """Darknet's unit in 3-D: convolution, BatchNorm, LeakyReLU(0.1)."""
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm3d(c_out), nn.LeakyReLU(0.1, inplace=True))


class DarkResidual(nn.Module):
    """Darknet-53 residual block: 1x1x1 conv to half the channels, 3x3x3 conv back, plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels // 2, 1), conv_bn(channels // 2, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Darknet3D(nn.Module):
    """Darknet-53 (Redmon and Farhadi, YOLOv3) with 3-D convolutions: clips (B, C, T, H, W) -> features (B, D).

    widths[0]: the stem; stage i downsamples (stride (temporal_strides[i], 2, 2)) to widths[i + 1] and stacks
    blocks[i] residual blocks. The defaults are Darknet-53 (52 convolutions + the paper's FC layer = 53).
    `stem_stride` (1, 2, 2) halves the frames at once (the CPU-sized variant). Activations run channels-last
    (`torch.channels_last_3d`): several times faster for 3-D convolutions on a CPU, same numbers.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024),
                 blocks: tuple[int, ...] = (1, 2, 8, 8, 4), temporal_strides: tuple[int, ...] = (1, 2, 2, 2, 1),
                 stem_stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        if not len(widths) == len(blocks) + 1 == len(temporal_strides) + 1:
            raise ValueError(f"Darknet3D needs len(widths) = len(blocks) + 1 = len(temporal_strides) + 1, got "
                             f"{len(widths)}, {len(blocks)}, {len(temporal_strides)}")
        layers = [conv_bn(in_channels, widths[0], 3, stride=stem_stride)]
        for c_in, c_out, n, st in zip(widths[:-1], widths[1:], blocks, temporal_strides):
            layers += [conv_bn(c_in, c_out, 3, stride=(st, 2, 2)), *[DarkResidual(c_out) for _ in range(n)]]
        self.features = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T, H, W)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.features(x).mean(dim=(2, 3, 4))  # global average pool: (B, D)


def darknet53_3d(in_channels: int = 1) -> Darknet3D:
    """The paper profile's encoder: Darknet-53's widths and blocks, 3-D kernels."""
    return Darknet3D(in_channels)


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """BYOL's projector / predictor: Linear, BatchNorm, ReLU, Linear (one hidden layer; 4096 in the paper)."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim_out))


class BYOL(nn.Module):
    """Online (encoder, projector, predictor) and target (encoder, projector) networks (Sec. 3.2, Fig. 1).

    `model(v1, v2)` is BYOL's symmetric loss on two views (B, C, T, H, W); `update_target()` the EMA step, called after each optimizer step
    (`usnb.train.fit(..., after_step=...)`). The target's parameters have requires_grad=False: the optimizer skips them.
    """

    def __init__(self, encoder: nn.Module, hidden: int = 4096, dim: int = 256, tau: float = 0.99):
        super().__init__()
        if not 0 <= tau <= 1:
            raise ValueError(f"EMA momentum tau must lie in [0, 1], got {tau}")
        self.encoder, self.tau = encoder, tau
        self.projector = mlp(encoder.out_dim, hidden, dim)
        self.predictor = mlp(dim, hidden, dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def online(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> prediction q_theta(z_theta): (B, dim)."""
        return self.predictor(self.projector(self.encoder(x)))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> target projection z'_xi: (B, dim), no gradient (stop-gradient)."""
        return self.target_projector(self.target_encoder(x))

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """BYOL Eq. (2)-(3), symmetric: L = ||q(v1) - z'(v2)||^2 + ||q(v2) - z'(v1)||^2 (normalised vectors)."""
        return byol_loss(self.online(v1), self.target(v2)) + byol_loss(self.online(v2), self.target(v1))

    @torch.no_grad()
    def update_target(self) -> None:
        """BYOL Eq. (1): xi <- tau * xi + (1 - tau) * theta (BatchNorm statistics averaged alike)."""
        ema_update(self.target_encoder.state_dict(), self.encoder.state_dict(), self.tau)
        ema_update(self.target_projector.state_dict(), self.projector.state_dict(), self.tau)


class VideoSimCLR(nn.Module):
    """Encoder + projection MLP trained with NT-Xent (Chen et al. 2020): the paper's alternative (Table 3)."""

    def __init__(self, encoder: nn.Module, hidden: int = 4096, dim: int = 256, temperature: float = 0.5):
        super().__init__()
        self.encoder, self.temperature = encoder, temperature
        self.projector = mlp(encoder.out_dim, hidden, dim)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """NT-Xent of the projections of two views (B, C, T, H, W)."""
        return nt_xent(self.projector(self.encoder(v1)), self.projector(self.encoder(v2)), self.temperature)


class EncoderClassifier(nn.Module):
    """Encoder + a fully-connected layer (Sec. 3.4): clips (B, C, T, H, W) -> logits (B, K).

    Features are standardised by fixed buffers (`mean`, `std`: 0 and 1 unless set, e.g. from the labelled training
    features of a linear probe) before the layer. `train_encoder=False` freezes the encoder (its parameters and its
    BatchNorm statistics): only the layer's K * (D + 1) parameters are trainable.
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 2, train_encoder: bool = True):
        super().__init__()
        self.encoder, self.train_encoder = encoder, train_encoder
        self.register_buffer("mean", torch.zeros(encoder.out_dim))
        self.register_buffer("std", torch.ones(encoder.out_dim))
        self.fc = nn.Linear(encoder.out_dim, num_classes)
        encoder.requires_grad_(train_encoder)

    def train(self, mode: bool = True) -> "EncoderClassifier":
        super().train(mode)
        if not self.train_encoder:
            self.encoder.eval()  # a frozen feature extractor keeps its BatchNorm statistics
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) - self.mean) / self.std  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, K)

"""2-D ResNets that see time by moving channels between frames: TSM and TIN (CLMAN's Table 4 baselines).

* TSM, Lin, Gan, Han, "TSM: Temporal Shift Module for Efficient Video Understanding", ICCV 2019, arXiv:1811.08383:
  in the residual branch of every block, before its first convolution, 1/8 of the channels move one frame back in
  time, 1/8 one frame forward, the rest stay (the paper's residual shift, shift_div 8); zeros come in at the clip's
  ends. 24.3 M parameters at ResNet-50 with 400 classes (the paper's Table 1).
* TIN, Shao, Qian, Liu, "Temporal Interlacing Network", AAAI 2020, arXiv:2001.06499: the same place, but 1/4 of the
  channels (shift_div 4) in four groups move by learned, fractional offsets (o1, o2, -o1, -o2), read by linear
  interpolation between the two nearest whole shifts; an offset network (pooled features -> conv1d -> fc -> ReLU ->
  fc -> 4 (sigmoid - 0.5), within (-2, 2)) and a weight network (conv1d -> 2 sigmoid, within (0, 2), one weight per
  frame and group pair) read the clip itself. Offsets of 0 and weights of 1 are the identity; offsets of +-1 the
  TSM-like shift. Its facts are from the paper and its public code (deepcs233/TIN; mmaction2's resnet_tin.py).

Both classify each frame with the 2-D network and average the frames' logits (TSN's consensus). Input: (B, 3, T, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shift_time(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x: (N, T, ...) -> out[:, t + shift] = x[:, t] (zeros where nothing moves in)."""
    if shift == 0:
        return x
    out = torch.zeros_like(x)
    if shift > 0:
        out[:, shift:] = x[:, :-shift]
    else:
        out[:, :shift] = x[:, -shift:]
    return out


class TemporalShift(nn.Module):
    """TSM's shift (its Fig. 1b, residual variant): x (N*T, C, H, W) -> the same shape, channels [0, C/div) read
    from the next frame, [C/div, 2C/div) from the previous one, the rest unchanged."""

    def __init__(self, frames: int, div: int = 8):
        super().__init__()
        self.frames, self.div = frames, div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        x = x.view(nt // self.frames, self.frames, c, h, w)  # (N, T, C, H, W)
        fold = c // self.div
        out = torch.cat([shift_time(x[:, :, :fold], -1),  # frame t sees t + 1
                         shift_time(x[:, :, fold:2 * fold], 1),  # frame t sees t - 1
                         x[:, :, 2 * fold:]], dim=2)
        return out.view(nt, c, h, w)


class TemporalInterlace(nn.Module):
    """TIN's interlacing (its Fig. 2 and Eq. 1-3): x (N*T, C, H, W) -> the same shape; channels [0, C/div) in four
    equal groups move by offsets (o1, o2, -o1, -o2) learned from the clip and are scaled per frame by (w1, w2, w1, w2);
    the rest pass unchanged."""

    groups = 2  # offset pairs: each offset is used as itself and negated

    def __init__(self, channels: int, frames: int, div: int = 4):
        super().__init__()
        self.frames, self.div = frames, div
        folds = channels // div
        if folds % (2 * self.groups):
            raise ValueError(f"TIN needs channels / {div} divisible by {2 * self.groups}, got {channels} channels")
        self.offset_conv = nn.Conv1d(folds, 1, 3, padding=1)  # offset network: (N, C', T) -> (N, 1, T)
        self.offset_fc1, self.offset_fc2 = nn.Linear(frames, frames), nn.Linear(frames, self.groups)
        nn.init.constant_(self.offset_fc2.bias, 0.5108)  # 4 (sigmoid(0.5108) - 0.5) = 0.5: offsets start at +-0.5
        self.weight_conv = nn.Conv1d(folds, self.groups, 3, padding=1)  # weight network: (N, C', T) -> (N, 2, T)
        nn.init.zeros_(self.weight_conv.bias)

    def offsets_and_weights(self, part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """part: (N, T, C', H, W) -> offsets (N, 4) within (-2, 2), weights (N, T, 4) within (0, 2)."""
        pooled = part.mean(dim=(3, 4)).transpose(1, 2)  # (N, C', T)
        o = self.offset_fc2(F.relu(self.offset_fc1(self.offset_conv(pooled)[:, 0])))  # (N, 2)
        o = 4 * (torch.sigmoid(o) - 0.5)
        w = 2 * torch.sigmoid(self.weight_conv(pooled)).transpose(1, 2)  # (N, T, 2)
        return torch.cat([o, -o], 1), torch.cat([w, w], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        x = x.view(nt // self.frames, self.frames, c, h, w)  # (N, T, C, H, W)
        folds = c // self.div
        part = x[:, :, :folds]
        offsets, weights = self.offsets_and_weights(part)
        moved = interlace(part, offsets) * weights.repeat_interleave(folds // 4, dim=2)[..., None, None]
        return torch.cat([moved, x[:, :, folds:]], dim=2).view(nt, c, h, w)


def interlace(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """TIN's differentiable shift: x (N, T, C, H, W) in len(offsets[0]) equal channel groups, group g moved in time
    by the fractional offsets[:, g] (N, G): linear interpolation between the whole shifts floor(o) and floor(o) + 1."""
    n, t, c, h, w = x.shape
    g = offsets.shape[1]
    low = torch.floor(offsets)
    frac = offsets - low  # (N, G): weight of the upper shift
    steps = torch.arange(t, device=x.device, dtype=x.dtype)
    # source frame of each output frame, for the lower shift: out[t] = x[t - s]
    out = torch.zeros_like(x)
    for k, weight in ((low, 1 - frac), (low + 1, frac)):
        src = steps[None, :, None] - k[:, None, :]  # (N, T, G)
        valid = ((src >= 0) & (src < t)).to(x.dtype)
        index = src.clamp(0, t - 1).long()  # (N, T, G)
        index = index.repeat_interleave(c // g, dim=2)[..., None, None].expand(n, t, c, h, w)
        gathered = torch.gather(x, 1, index)  # (N, T, C, H, W)
        scale = (valid * weight[:, None, :]).repeat_interleave(c // g, dim=2)[..., None, None]
        out = out + gathered * scale
    return out


class FrameConsensus(nn.Module):
    """A 2-D classifier run on every frame of a clip (B, 3, T, H, W); the frames' logits averaged (TSN)."""

    def __init__(self, net: nn.Module, frames: int):
        super().__init__()
        self.net, self.frames = net, frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, T, H, W)
        b, c, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"this network was built for T={self.frames} frames, got {t}")
        logits = self.net(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, K)
        return logits.view(b, t, -1).mean(1)  # (B, K)


def _resnet(depth: int, num_classes: int, width: int) -> nn.Module:
    """torchvision's ResNet-18/34/50 (random weights, zero-initialised residual branches); `width` < 64 narrows
    every stage alike (the same network at CPU size)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    layers = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}
    if depth not in layers:
        raise ValueError(f"ResNet depth must be 18, 34 or 50, got {depth}")
    block, counts = layers[depth]
    net = ResNet(block, counts, num_classes=num_classes, zero_init_residual=True)
    if width == 64:
        return net
    net.inplanes = width  # rebuild the stages narrower with torchvision's own block maker
    net.conv1, net.bn1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width)
    for i, (n, stride) in enumerate(zip(counts, (1, 2, 2, 2))):
        setattr(net, f"layer{i + 1}", net._make_layer(block, width * 2 ** i, n, stride=stride))
    net.fc = nn.Linear(8 * width * block.expansion, num_classes)
    for m in net.modules():  # as torchvision initialises its own: He init, residual branches start at zero
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (BasicBlock, Bottleneck)):
            nn.init.zeros_((m.bn2 if isinstance(m, BasicBlock) else m.bn3).weight)
    return net


def temporal_shift_resnet(kind: str, depth: int = 50, num_classes: int = 2, frames: int = 8,
                          width: int = 64) -> FrameConsensus:
    """TSM ('tsm') or TIN ('tin') on ResNet-`depth`: the shift or interlace module before the first convolution of
    every residual block (inside the residual branch), the frames' logits averaged. Input (B, 3, frames, H, W)."""
    if kind not in ("tsm", "tin"):
        raise ValueError(f"kind must be 'tsm' or 'tin', got {kind!r}")
    net = _resnet(depth, num_classes, width)
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in stage:
            move = (TemporalShift(frames) if kind == "tsm" else
                    TemporalInterlace(block.conv1.in_channels, frames))
            block.conv1 = nn.Sequential(move, block.conv1)
    return FrameConsensus(net, frames)

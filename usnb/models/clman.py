"""CLMAN (Huang et al., Front. Oncol. 2022): a deformed ResNet-18 per frame, SimCLR pretraining, multi-meta attention.

- Sec. 3.1, Eq. (1): f_t = Theta(v_t), a ResNet-18 whose residual blocks use GroupNorm (switch `norm`) and with
  non-local blocks (embedded Gaussian, Wang et al. 2018) after stages 3 and 4 (switch `non_local`): Table 1.
- Sec. 3.2, Eq. (2): f_bar = MLP(Theta(tau(v))), two augmented views per frame, NT-Xent loss (Chen et al. 2020; `usnb.models.contrastive.nt_xent`).
- Sec. 3.3, Eq. (3)-(6): multi-meta attention, a softmax over frames for every feature dimension; and the
  aggregators Table 3 compares it with (average, max pooling, LSTM, self-attention, external attention, EMSA).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, or GroupNorm with at least 4 channels per group and at most 32 groups (Wu & He's default 32 groups
    would make a narrow CPU-sized network's 8-channel stage an instance norm, which erases each frame's contrast)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(min(32, max(1, channels // 4)), channels), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 convs, each followed by the norm; identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class NonLocalBlock(nn.Module):
    """Non-local block, embedded Gaussian (Wang et al. 2018, Eq. 1-3 there): z = W_z y + x,
    y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j).

    W_z (a 1x1 conv) starts at zero, so the block is the identity at initialisation (Wang et al. zero-init the BN
    after W_z to the same end) and a pretrained network is unchanged by inserting it.
    """

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        inner = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.w_z = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.w_z.weight)
        nn.init.zeros_(self.w_z.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        phi = self.phi(x).flatten(2)  # (N, C', HW)
        g = self.g(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        attn = torch.softmax(theta @ phi, dim=-1)  # (N, HW, HW): f(x_i, x_j) / C(x), embedded Gaussian
        y = (attn @ g).transpose(1, 2).reshape(n, -1, h, w)  # (N, C', H, W)
        return x + self.w_z(y)  # z = W_z y + x


class DeformedResNet18(nn.Module):
    """Sec. 3.1: ResNet-18 (2-2-2-2 basic blocks) for grayscale frames (N, C, H, W) -> features f_t (N, D).

    norm: "batch" (vanilla) | "group" (GroupNorm in every residual block and the stem);
    non_local: a non-local block after stage 3 and after stage 4. `width` 64 is the paper's ResNet-18 (D = 512);
    smaller widths make a CPU-sized network of the same shape. `stem_pool=False` drops the stem's max pool
    (for small frames: 64 px would leave 2 x 2 positions in stage 4 otherwise).
    """

    def __init__(self, in_channels: int = 1, width: int = 64, norm: str = "group", non_local: bool = True,
                 stem_pool: bool = True):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.norm, self.non_local = norm, non_local
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = _norm(norm, width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        c = width
        for i, w in enumerate(widths, start=1):
            blocks = [BasicBlock(c, w, 1 if i == 1 else 2, norm), BasicBlock(w, w, 1, norm)]
            if non_local and i in (3, 4):
                blocks.append(NonLocalBlock(w))
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            c = w
        self.out_dim = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not any(m is nl.w_z for nl in self.non_local_blocks()):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def non_local_blocks(self) -> list[NonLocalBlock]:
        return [m for m in self.modules() if isinstance(m, NonLocalBlock)]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> stage-4 map (N, D, h, w)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))  # Eq. (1): f_t = Theta(v_t), (N, D)


# ---------------------------------------------------------------- Sec. 3.2: contrastive pretraining


def projection_head(dim: int, hidden: int | None = None, out: int = 128) -> nn.Sequential:
    """Eq. (2)'s MLP: Linear-ReLU-Linear on top of Theta (SimCLR's projection head g)."""
    hidden = hidden or dim
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class FrameSimCLR(nn.Module):
    """Eq. (2): f_bar = MLP(Theta(tau(v))); views (B, V, C, H, W) -> projections (B, V, d)."""

    def __init__(self, backbone: nn.Module, proj_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.projection = projection_head(backbone.out_dim, out=proj_dim)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        b, v = views.shape[:2]
        return self.projection(self.backbone(views.flatten(0, 1))).view(b, v, -1)


# ---------------------------------------------------------------- Sec. 3.3: aggregating frames


def multi_meta_pool(features: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (5)-(6): features F (B, T, m), scores e (B, T, m) -> F_bar (B, m) and attention A (B, T, m).

    A softmax over frames for every feature dimension separately (Eq. 5), then F_bar = sum_t A^t o F^t (Eq. 6).
    """
    if features.shape != scores.shape or features.ndim != 3:
        raise ValueError(f"features and scores must both be (B, T, m), got {tuple(features.shape)} and "
                         f"{tuple(scores.shape)}")
    attn = torch.softmax(scores, dim=1)  # Eq. (5): A^t_i = exp(e^t_i) / sum_j exp(e^j_i)
    return (attn * features).sum(dim=1), attn  # Eq. (6): F_bar = sum_t A^t o F^t


class MultiMetaAttention(nn.Module):
    """Eq. (3)-(6): frame features F^t (B, T, m) -> F_bar (B, m); any T (the softmax runs over the frames given).

    Eq. (4): E_l = tanh(W_l E_{l-1} + b_l) for l = 1..depth with E_0 = F^t, a cascade of fully connected filters per
    frame; the last E_l (m values per frame) are the scores e^t that Eq. (5) normalises over frames.
    """

    def __init__(self, dim: int, depth: int = 2, hidden: int | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (fully connected + tanh filters), got {depth}")
        hidden = hidden or dim
        sizes = [dim] + [hidden] * (depth - 1) + [dim]
        self.filters = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out_dim = dim
        self.last_attention: torch.Tensor | None = None

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        e = features  # Eq. (3): F^t, (B, T, m)
        for fc in self.filters:
            e = torch.tanh(fc(e))  # Eq. (4)
        return e  # e^t: (B, T, m)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled, attn = multi_meta_pool(features, self.scores(features))
        self.last_attention = attn.detach()  # (B, T, m): for the heat map
        return pooled


class AveragePool(nn.Module):
    """Table 3 'Average': F_bar = mean_t F^t (Eq. 6 with every A^t_i = 1 / T)."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, m)
        return features.mean(dim=1)


class MaxPool(nn.Module):
    """Table 3 'Max-pooling': F_bar_i = max_t F^t_i (Eq. 6 with A one-hot at each dimension's largest frame)."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, m)
        return features.amax(dim=1)


class LSTMPool(nn.Module):
    """Table 3 'LSTM': a one-layer LSTM over the frames in order; its last hidden state (B, hidden)."""

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden or dim, batch_first=True)
        self.out_dim = hidden or dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, hidden)
        _, (h, _) = self.lstm(features)
        return h[-1]


class SelfAttentionPool(nn.Module):
    """Table 3 'Self-attention' (Vaswani et al. 2017): one scaled dot-product attention layer over the frames
    with a residual connection and layer norm, then the mean over frames."""

    def __init__(self, dim: int, heads: int = 1):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, m)
        y, _ = self.attn(features, features, features, need_weights=False)
        return self.norm(features + y).mean(dim=1)


class ExternalAttentionPool(nn.Module):
    """Table 3 'External attention' (Guo et al. 2021): two learnable memories M_k, M_v (S x m) shared by all clips;
    A = double-normalise(F M_k^T) (softmax over frames, then l1 over the S memory slots), out = A M_v; residual,
    layer norm, mean over frames."""

    def __init__(self, dim: int, slots: int = 32):
        super().__init__()
        self.m_k = nn.Linear(dim, slots, bias=False)
        self.m_v = nn.Linear(slots, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, m)
        attn = torch.softmax(self.m_k(features), dim=1)  # (B, T, S): softmax over frames
        attn = attn / attn.sum(dim=2, keepdim=True).clamp_min(1e-9)  # l1 over slots
        return self.norm(features + self.m_v(attn)).mean(dim=1)


class EfficientMHSAPool(nn.Module):
    """Table 3 'Efficient multi-head self-attention' (EMSA, ResT, Zhang & Yang 2021) on the frame sequence:
    keys and values shortened by a strided depthwise convolution over time (`reduction`), multi-head attention
    whose heads are mixed by a 1x1 convolution with instance norm on the attention maps; residual, layer norm,
    mean over frames."""

    def __init__(self, dim: int, heads: int = 4, reduction: int = 2):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.reduce = (nn.Conv1d(dim, dim, reduction + 1, stride=reduction, padding=reduction // 2, groups=dim)
                       if reduction > 1 else nn.Identity())
        self.reduce_norm = nn.LayerNorm(dim)
        self.mix = nn.Conv2d(heads, heads, 1)  # mixes the heads' attention maps
        self.attn_norm = nn.InstanceNorm2d(heads)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, m) -> (B, m)
        b, t, m = features.shape
        h, d = self.heads, m // self.heads
        q = self.q(features).view(b, t, h, d).transpose(1, 2)  # (B, h, T, d)
        short = self.reduce_norm(self.reduce(features.transpose(1, 2)).transpose(1, 2)) if t > 1 else features
        k, v = self.kv(short).view(b, short.shape[1], 2, h, d).permute(2, 0, 3, 1, 4)  # each (B, h, T', d)
        attn = self.mix(q @ k.transpose(-2, -1) * self.scale)  # (B, h, T, T')
        attn = torch.softmax(self.attn_norm(attn) if attn.shape[-1] > 1 else attn, dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(b, t, m))  # (B, T, m)
        return self.norm(features + y).mean(dim=1)


AGGREGATORS = {
    "multi-meta": MultiMetaAttention,
    "average": AveragePool,
    "max": MaxPool,
    "lstm": LSTMPool,
    "self-attention": SelfAttentionPool,
    "external": ExternalAttentionPool,
    "emsa": EfficientMHSAPool,
}


def make_aggregator(name: str, dim: int) -> nn.Module:
    """An aggregator of Table 3 by name: frame features (B, T, m) -> video feature (B, out_dim)."""
    if name not in AGGREGATORS:
        raise ValueError(f"aggregator must be one of {sorted(AGGREGATORS)}, got {name!r}")
    return AGGREGATORS[name](dim)


class VideoHead(nn.Module):
    """Aggregator + linear classifier: frame features (B, T, m) -> logits (B, K) (also trained on cached features)."""

    def __init__(self, dim: int, aggregator: str = "multi-meta", num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.aggregate = make_aggregator(aggregator, dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.aggregate.out_dim, num_classes)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.ndim != 3:
            raise ValueError(f"frame features must be (B, T, m), got {tuple(features.shape)}")
        video = self.aggregate(features)  # (B, m')
        return {"logits": self.classifier(self.dropout(video)), "video_feature": video}


class CLMAN(nn.Module):
    """Frames (B, T, C, H, W) -> per-frame features F^t (Eq. 1, 3) -> aggregated F_bar (Eq. 6) -> logits (B, K)."""

    def __init__(self, backbone: nn.Module, aggregator: str = "multi-meta", num_classes: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head = VideoHead(backbone.out_dim, aggregator, num_classes, dropout)

    def frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """clip: (B, T, C, H, W) -> (B, T, m)."""
        if clip.ndim != 5:
            raise ValueError(f"clip must be (B, T, C, H, W), got {tuple(clip.shape)}; add the batch dim")
        b, t = clip.shape[:2]
        return self.backbone(clip.flatten(0, 1)).view(b, t, -1)

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.frame_features(clip)  # (B, T, m)
        out = self.head(feats)
        out["frame_features"] = feats
        attn = getattr(self.head.aggregate, "last_attention", None)
        if attn is not None:
            out["attention"] = attn  # (B, T, m), multi-meta attention only
        return out

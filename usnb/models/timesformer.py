"""TimeSformer (Bertasius et al., ICML 2021) with divided space-time attention, and the MAE decoder of MVCC.

Every block applies temporal attention (each patch position attends to the same position in the other frames),
then spatial attention (each patch attends to the patches of its own frame), then an MLP; attention is
`torch.nn.functional.scaled_dot_product_attention`. No CLS token: the clip feature is the mean of the tokens
(as MAE fine-tuning does), so the encoder's output `(B, t*n, D)` is a token grid in (t, h, w) row-major order,
the layout `usnb.explain.GradCAM(kind="tokens")` reads.

The encoder can run on the visible tokens of a masked clip only (`mask`, from `usnb.models.mvcc.dual_level_mask`):
every kept frame then holds the same number of visible patches, so spatial attention reshapes to (B*t', n', D);
temporal attention connects tokens of the same patch position across kept frames through a boolean mask.

Weights: `load_pretrained(encoder, path_or_'imagenet')` reads a torchvision `vit_b_16` state dict, a timm-style ViT
or a TimeSformer checkpoint (Kinetics) from a local file; 'imagenet' asks torchvision (offline: a warning and random
weights).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import load_checkpoint, state_dict_of


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """x: (B, T, C, H, W) -> patches (B, T, N, p*p*C), N = (H/p)*(W/p) in row-major (h, w) order."""
    b, t, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"frame size {h}x{w} is not a multiple of the patch size {patch}; resize the clip")
    x = x.reshape(b, t, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(p: torch.Tensor, patch: int, grid: tuple[int, int], channels: int = 1) -> torch.Tensor:
    """patches (B, T, N, p*p*C) -> (B, T, C, H, W): the inverse of `patchify`."""
    b, t, n, _ = p.shape
    gh, gw = grid
    x = p.reshape(b, t, gh, gw, patch, patch, channels).permute(0, 1, 6, 2, 4, 3, 5)
    return x.reshape(b, t, channels, gh * patch, gw * patch)


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention (timm names: qkv, proj)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} must divide into {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B', L, D); attn_mask: bool (B', 1, L, L), True where a query may attend -> (B', L, D)."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).reshape(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B', h, L, d_h)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # softmax(q k^T / sqrt(d_h)) v
        return self.proj(out.transpose(1, 2).reshape(b, length, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DividedBlock(nn.Module):
    """TimeSformer block: x + temporal_fc(T-attn(x)), then x + S-attn(x), then x + MLP(x) (pre-norm).

    Names follow the TimeSformer code (temporal_norm1, temporal_attn, temporal_fc, norm1, attn, norm2, mlp), so
    its checkpoints load directly. temporal_fc starts at zero: a fresh block is a ViT block (as in TimeSformer).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_attn = Attention(dim, heads)
        self.temporal_fc = nn.Linear(dim, dim)
        nn.init.zeros_(self.temporal_fc.weight), nn.init.zeros_(self.temporal_fc.bias)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def temporal(self, x: torch.Tensor, frames: int, same_position: torch.Tensor | None = None) -> torch.Tensor:
        """x + temporal_fc(T-attn(x)): each token attends to the tokens at its patch position in the t frames.

        x: (B, t*n, D) tokens, frame-major (all n tokens of frame 0 first). same_position: None for the full grid
        (attention by reshaping to (B*n, t, D)), else bool (B, 1, L, L), True where two visible tokens share a
        patch position (a masked clip: the visible positions differ between frames).
        """
        b, length, d = x.shape
        n = length // frames
        h = self.temporal_norm1(x)
        if same_position is None:  # (B, t, n, D) -> (B*n, t, D): one sequence per patch position
            h = h.reshape(b, frames, n, d).transpose(1, 2).reshape(b * n, frames, d)
            h = self.temporal_attn(h).reshape(b, n, frames, d).transpose(1, 2).reshape(b, length, d)
        else:
            h = self.temporal_attn(h, attn_mask=same_position)
        return x + self.temporal_fc(h)

    def spatial(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x + S-attn(x): each token attends to the n tokens of its own frame, (B, t*n, D) -> (B*t, n, D)."""
        b, length, d = x.shape
        return x + self.attn(self.norm1(x).reshape(b * frames, length // frames, d)).reshape(b, length, d)

    def forward(self, x: torch.Tensor, frames: int, same_position: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, t*n, D) -> (B, t*n, D): temporal, then spatial attention, then the MLP."""
        x = self.spatial(self.temporal(x, frames, same_position), frames)
        return x + self.mlp(self.norm2(x))


class ConvStem(nn.Module):
    """Per-patch convolutional embedding (small profile): each p x p patch alone -> (D,).

    Three 3x3 stride-2 conv + BatchNorm + ReLU layers run on every patch separately (zero padding at the patch
    border), so a token depends on its own patch only, as with the linear embedding, and masked patches stay
    invisible. Early convolutions make small transformers train faster and more stably (Xiao et al., NeurIPS 2021).
    """

    def __init__(self, patch: int, in_channels: int, dim: int, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        layers, c, side = [], in_channels, patch
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c, side = w, (side + 1) // 2
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c * side * side, dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches: (M, C, p, p) -> tokens (M, D)."""
        return self.proj(self.features(patches).flatten(1))


class TimeSformer(nn.Module):
    """Clip (B, T, C, H, W) -> tokens (B, T*N, D) after the final LayerNorm; with `mask` the visible ones only.

    patch embedding (a linear map of each p x p patch, as a strided conv) + spatial pos_embed (N, D) +
    time_embed (T, D), then `depth` divided space-time blocks.
    """

    def __init__(self, img_size: int = 224, patch: int = 16, frames: int = 16, in_channels: int = 1, dim: int = 768,
                 depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0, stem: str = "linear"):
        super().__init__()
        if stem not in ("linear", "conv"):
            raise ValueError(f"stem must be 'linear' (ViT) or 'conv' (per-patch CNN), got {stem!r}")
        if img_size % patch:
            raise ValueError(f"img_size {img_size} is not a multiple of patch {patch}")
        self.img_size, self.patch, self.frames, self.in_channels, self.dim = img_size, patch, frames, in_channels, dim
        self.grid = (img_size // patch, img_size // patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.stem = stem
        self.patch_embed = nn.Module()
        if stem == "linear":
            self.patch_embed.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)  # a linear map of each patch
        else:
            self.patch_embed.conv = ConvStem(patch, in_channels, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, dim))  # spatial, (1, N, D)
        self.time_embed = nn.Parameter(torch.zeros(1, frames, dim))  # temporal, (1, T, D)
        nn.init.trunc_normal_(self.pos_embed, std=0.02), nn.init.trunc_normal_(self.time_embed, std=0.02)
        self.blocks = nn.ModuleList(DividedBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init_linear)

    def _check(self, x: torch.Tensor) -> None:
        b, t, c, h, w = x.shape
        if (c, h, w) != (self.in_channels, self.img_size, self.img_size) or t > self.frames:
            raise ValueError(f"clip {tuple(x.shape)} does not fit the encoder: it takes (B, T<={self.frames}, "
                             f"{self.in_channels}, {self.img_size}, {self.img_size}); resize or resample the clip")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C, H, W) -> all tokens with positions (B, T, N, D)."""
        self._check(x)
        b, t, c, h, w = x.shape
        if self.stem == "linear":
            tok = self.patch_embed.proj(x.reshape(b * t, c, h, w)).flatten(2).transpose(1, 2)  # (B*T, N, D)
        else:
            p = self.patch
            patches = patchify(x, p).reshape(-1, p, p, c).permute(0, 3, 1, 2)  # (B*T*N, C, p, p)
            tok = self.patch_embed.conv(patches)
        tok = tok.reshape(b, t, self.num_patches, self.dim)
        return tok + self.pos_embed[:, None] + self.time_embed[:, :t, None]  # (B, T, N, D)

    def embed_visible(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Embed only the visible patches: (B, t'*n', D) tokens with positions, t', same-position mask (B, 1, L, L)."""
        self._check(x)
        b, t, c, h, w = x.shape
        p = self.patch
        patches, t_keep, same = gather_visible(patchify(x, p), mask)  # (B, L, p*p*C)
        if self.stem == "linear":
            weight = self.patch_embed.proj.weight.permute(0, 2, 3, 1).reshape(self.dim, -1)  # same order as patchify
            tok = patches @ weight.T + self.patch_embed.proj.bias
        else:
            tok = self.patch_embed.conv(patches.reshape(-1, p, p, c).permute(0, 3, 1, 2)).reshape(b, patches.shape[1], -1)
        # positions of the whole (t, n) grid, then the visible ones gathered: the backward of a gather scatters into
        # distinct slots and is deterministic, where indexing the embeddings with repeated positions (idx % n)
        # accumulated their gradients in a thread-dependent order (a masked row's weights changed run to run)
        grid = self.pos_embed[:, None] + self.time_embed[:, :t, None]  # (1, T, N, D)
        pos, _, _ = gather_visible(grid.expand(b, -1, -1, -1), mask)  # (B, L, D)
        return tok + pos, t_keep, same

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C, H, W); mask: bool (B, T, N), True = masked -> (B, T*N, D), or (B, t'*n', D) visible only.

        With a mask only the visible patches are embedded and attended: masked pixels cannot reach the output.
        """
        if mask is None:
            tok = self.embed(x)
            b, t, n, d = tok.shape
            tok, frames, same = tok.reshape(b, t * n, d), t, None
        else:
            tok, frames, same = self.embed_visible(x, mask)
        for block in self.blocks:
            tok = block(tok, frames, same)
        return self.norm(tok)


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear) and not (m.weight == 0).all():  # temporal_fc keeps its zero init
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def visible_index(mask: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """mask: bool (B, T, N), True = masked -> flat indices (B, t'*n') of visible tokens in (t, n) order, t', n'.

    Every clip must keep the same number of frames and every kept frame the same number of patches (as
    `dual_level_mask` guarantees); otherwise the batch cannot be one tensor and this raises.
    """
    b, t, n = mask.shape
    visible = ~mask
    per_frame = visible.sum(2)  # (B, T)
    kept = per_frame > 0
    t_keep = kept.sum(1)
    n_keep = per_frame.max(1).values
    if (t_keep != t_keep[0]).any() or (n_keep != n_keep[0]).any() or (per_frame[kept] != n_keep[0]).any():
        raise ValueError("mask must keep the same number of frames per clip and of patches per kept frame; "
                         "make it with usnb.models.mvcc.dual_level_mask")
    idx = torch.nonzero(visible.reshape(b, t * n), as_tuple=False)[:, 1].reshape(b, -1)  # sorted: (t, n) order
    return idx, int(t_keep[0]), int(n_keep[0])


def gather_visible(tok: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor]:
    """tok: (B, T, N, D), mask (B, T, N) -> visible tokens (B, t'*n', D), t', same-position mask (B, 1, L, L)."""
    b, t, n, d = tok.shape
    idx, t_keep, _ = visible_index(mask)
    vis = tok.reshape(b, t * n, d).gather(1, idx[..., None].expand(-1, -1, d))
    pos = idx % n  # patch position of every visible token
    same = (pos[:, :, None] == pos[:, None, :])[:, None]  # (B, 1, L, L)
    return vis, t_keep, same


class MAEDecoder(nn.Module):
    """Lightweight transformer decoder (He et al. 2021): encoded visible tokens + mask tokens, positional
    embeddings on all of them, divided space-time blocks, a linear map to the pixels of each patch."""

    def __init__(self, encoder: TimeSformer, dim: int = 384, depth: int = 4, heads: int = 6):
        super().__init__()
        self.frames, self.n = encoder.frames, encoder.num_patches
        self.embed = nn.Linear(encoder.dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.n, dim))
        self.time_embed = nn.Parameter(torch.zeros(1, self.frames, dim))
        for p in (self.mask_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.blocks = nn.ModuleList(DividedBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, encoder.patch ** 2 * encoder.in_channels)
        self.apply(_init_linear)

    def forward(self, visible: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """visible: (B, t'*n', D_enc) encoded visible tokens, mask: (B, T, N) -> pixels (B, T, N, p*p*C)."""
        b, t, n = mask.shape
        idx, _, _ = visible_index(mask)
        v = self.embed(visible)  # (B, L_vis, D_dec)
        full = self.mask_token.expand(b, t * n, -1).clone()
        full = full.scatter(1, idx[..., None].expand(-1, -1, v.shape[-1]), v)  # (B, T*N, D_dec)
        full = (full.reshape(b, t, n, -1) + self.pos_embed[:, None] + self.time_embed[:, :t, None]).reshape(b, t * n, -1)
        for block in self.blocks:
            full = block(full, t)
        return self.pred(self.norm(full)).reshape(b, t, n, -1)


class TimeSformerClassifier(nn.Module):
    """Encoder + mean of the tokens + linear head: `forward(x)` -> logits (B, K); `features(x)` -> q (B, D)."""

    def __init__(self, encoder: TimeSformer, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02), nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).mean(1)  # (B, D): q = En(x)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        q = self.features(x)
        logits = self.head(self.dropout(q))
        return (logits, q) if return_features else logits


# ---------------------------------------------------------------- pretrained weights


def _from_torchvision_vit(state: dict) -> dict:
    """torchvision vit_b_16 keys -> timm names (patch_embed.proj, pos_embed with CLS, blocks.i.*)."""
    out = {"patch_embed.proj.weight": state["conv_proj.weight"], "patch_embed.proj.bias": state["conv_proj.bias"],
           "pos_embed": state["encoder.pos_embedding"], "norm.weight": state["encoder.ln.weight"],
           "norm.bias": state["encoder.ln.bias"]}
    i = 0
    while f"encoder.layers.encoder_layer_{i}.ln_1.weight" in state:
        src, dst = f"encoder.layers.encoder_layer_{i}.", f"blocks.{i}."
        lin = ("mlp.0", "mlp.3") if src + "mlp.0.weight" in state else ("mlp.linear_1", "mlp.linear_2")
        for a, b in [("ln_1", "norm1"), ("ln_2", "norm2"), ("self_attention.in_proj", "attn.qkv"),
                     ("self_attention.out_proj", "attn.proj"), (lin[0], "mlp.fc1"), (lin[1], "mlp.fc2")]:
            for p in ("weight", "bias"):
                key = f"{src}{a}_{p}" if a == "self_attention.in_proj" else f"{src}{a}.{p}"
                out[f"{dst}{b}.{p}"] = state[key]
        i += 1
    return out


def convert_state(state: dict, encoder: TimeSformer) -> dict:
    """A ViT (torchvision or timm) or TimeSformer state dict -> this encoder's keys and shapes.

    CLS positions are dropped; spatial (and temporal) position tables are resized by interpolation; RGB patch
    filters are summed over colour for grayscale input (a grey frame copied to RGB gives the same tokens); a ViT
    has no temporal attention, so each block's temporal attention starts as a copy of its spatial attention with
    temporal_fc at zero (TimeSformer's own initialisation from ImageNet).
    """
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    if "conv_proj.weight" in state:
        state = _from_torchvision_vit(state)
    if "patch_embed.proj.weight" not in state:
        raise ValueError("weights file holds neither a ViT (torchvision/timm) nor a TimeSformer state dict "
                         "(no patch embedding found); pass vit_b_16 / TimeSformer weights")
    mine = encoder.state_dict()
    out = {}
    w = state["patch_embed.proj.weight"]
    if w.shape[1] != encoder.in_channels:
        w = w.sum(1, keepdim=True).repeat(1, encoder.in_channels, 1, 1) / encoder.in_channels
    if w.shape[-1] != encoder.patch:
        w = F.interpolate(w, size=(encoder.patch, encoder.patch), mode="bicubic", align_corners=False)
    out["patch_embed.proj.weight"], out["patch_embed.proj.bias"] = w, state["patch_embed.proj.bias"]
    pos = state["pos_embed"].reshape(-1, state["pos_embed"].shape[-1])
    side = int(math.isqrt(pos.shape[0]))
    pos = pos[pos.shape[0] - side * side:]  # drop CLS
    if side * side != encoder.num_patches:
        pos = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=encoder.grid, mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    out["pos_embed"] = pos.reshape(1, encoder.num_patches, -1)
    if "time_embed" in state:
        te = state["time_embed"]  # (1, T0, D)
        if te.shape[1] != encoder.frames:
            te = F.interpolate(te.transpose(1, 2), size=encoder.frames, mode="linear", align_corners=False).transpose(1, 2)
        out["time_embed"] = te
    for k, v in state.items():
        if k.startswith("blocks.") or k.startswith("norm."):
            out[k] = v
    for k in list(mine):
        if ".temporal_" in k and k not in out:  # a ViT: temporal attention from the spatial one
            src = k.replace("temporal_norm1", "norm1").replace("temporal_attn", "attn")
            if "temporal_fc" in k:
                out[k] = torch.zeros_like(mine[k])
            elif src in out:
                out[k] = out[src].clone()
    wrong = [k for k in out if k in mine and out[k].shape != mine[k].shape]
    if wrong:
        raise ValueError(f"weights do not fit the encoder: {wrong[0]} is {tuple(out[wrong[0]].shape)}, the encoder "
                         f"has {tuple(mine[wrong[0]].shape)}; use weights of the same width and depth (ViT-B: dim 768, "
                         "12 blocks)")
    return {k: v for k, v in out.items() if k in mine}


def load_pretrained(encoder: TimeSformer, weights: str | Path | None) -> list[str]:
    """Load ImageNet ViT or Kinetics TimeSformer weights into `encoder`; returns the keys left at random init.

    weights: None (random), 'imagenet' (torchvision's vit_b_16; offline it warns and keeps random weights), or a
    local file: a torchvision vit_b_16 state dict, a timm ViT or a TimeSformer checkpoint (`model.` prefixes ok).
    """
    if weights is None:
        return list(encoder.state_dict())
    if weights == "imagenet":
        try:
            from torchvision.models import ViT_B_16_Weights
            state = ViT_B_16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as err:  # noqa: BLE001 - no network: say so and go on with random weights
            warnings.warn(f"could not download ImageNet ViT-B/16 weights ({type(err).__name__}); the TimeSformer "
                          "starts from random weights. Fix: pass weights='path/to/vit_b_16.pth' (a torchvision or "
                          "timm state dict, or a Kinetics TimeSformer checkpoint) or run where the internet is reachable",
                          stacklevel=2)
            return list(encoder.state_dict())
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file not found. Fix: pass a ViT-B/16 or TimeSformer state dict "
                                    "(.pth), weights='imagenet' or weights=None")
        state = state_dict_of(load_checkpoint(path), path, "a ViT-B/16 or TimeSformer",
                              "pass a ViT-B/16 or TimeSformer state dict (.pth), weights='imagenet' or weights=None")
    try:
        converted = convert_state(state, encoder)
    except ValueError as err:  # neither a ViT nor a TimeSformer, or another width: said with the file's name
        raise ValueError(f"{weights}: {err}") from err
    missing, _ = encoder.load_state_dict(converted, strict=False)
    if len(missing) == len(encoder.state_dict()) and weights != "imagenet":  # not one tensor fitted: another network
        raise RuntimeError(f"{weights}: holds the weights of another network: none of its {len(state)} tensors fit "
                           f"the TimeSformer (it has e.g. {list(state)[:3]}). Fix: pass a ViT-B/16 or TimeSformer "
                           "state dict (.pth), weights='imagenet' or weights=None")
    return list(missing)

"""USCL (Chen et al., MICCAI 2021, arXiv:2011.13066): a 2-D backbone pretrained by contrasting mixed frame pairs.

Pretraining: backbone f and SimCLR's projection head g (Linear-ReLU-Linear, `clman.FrameSimCLR`) on the two views of
each clip's positive pair (`usnb.data.MixedFramePairs`), NT-Xent (`contrastive.nt_xent`) over the batch: the other
clips' views are the negatives. Fine-tuning (MVCC's USCL row): f on each of T frames, the features averaged, a linear
head (`FrameAverageClassifier`).
"""
from __future__ import annotations

import torch
from torch import nn

from .clman import FrameSimCLR, VideoHead
from .contrastive import nt_xent, top1_positive

USCLPretrainer = FrameSimCLR  # views (B, 2, C, H, W) -> projections z = g(f(x)) (B, 2, d)


def pair_loss(model: nn.Module, views: torch.Tensor, temperature: float = 0.5) -> tuple[torch.Tensor, dict]:
    """views: (B, 2, C, H, W), row i the positive pair of clip i -> (NT-Xent on the projections z (B, 2, d), logs)."""
    z = model(views)  # (B, 2, d)
    return nt_xent(z[:, 0], z[:, 1], temperature), {"top1": top1_positive(z[:, 0], z[:, 1])}


class FrameAverageClassifier(nn.Module):
    """Clip (B, T, C, H, W) -> the backbone on every frame (B, T, m) -> mean over frames (B, m) -> linear logits (B, K).

    Returns {"logits", "video_feature" (the mean), "frame_features"}, as `usnb.evaluate.predict` reads them."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head = VideoHead(backbone.out_dim, "average", num_classes, dropout)

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        if clip.ndim != 5:
            raise ValueError(f"clip must be (B, T, C, H, W), got {tuple(clip.shape)}; add the batch dim")
        b, t = clip.shape[:2]
        feats = self.backbone(clip.flatten(0, 1)).view(b, t, -1)  # (B, T, m)
        return {**self.head(feats), "frame_features": feats}

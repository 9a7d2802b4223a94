"""KGA-Net (Sun et al., MICCAI 2023): keyframe-guided frame attention with center and coherence losses.

A 2-D backbone is shared by the video branch (frame attention, Eq. 1) and the still-image branch
(cross-entropy + center loss). The coherence loss (Eq. 2-3) makes the attention weights follow the
frames' distances to the image feature centers; the total loss is Eq. 4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KGANet(nn.Module):
    """Backbone + frame attention + classification head; `attention=False` averages frames (Table 2 row 2)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2, attention: bool = True):
        super().__init__()
        self.backbone = backbone
        dim = backbone.out_dim
        self.attention = attention
        self.attn_fc = nn.Linear(dim, 1)
        self.head = nn.Linear(dim, num_classes)
        self.center = CenterLoss(num_classes, dim)

    def frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """clip: (B, T, C, H, W) -> frame features F_i: (B, T, D)."""
        b, t = clip.shape[:2]
        return self.backbone(clip.flatten(0, 1)).view(b, t, -1)

    def forward(self, clip: torch.Tensor, images: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """clip: (B, T, C, H, W), images: (B', C, H, W) or None -> logits (B, K), weights w (B, T),
        frame features (B, T, D) and their logits (B, T, K), F_V (B, D); image logits and features if given."""
        feats = self.frame_features(clip)  # (B, T, D)
        if self.attention:
            weights = torch.sigmoid(self.attn_fc(feats)).squeeze(-1)  # Eq. (1): w_i = Sigmoid(FC(F_i))
        else:
            weights = torch.ones(feats.shape[:2], device=feats.device, dtype=feats.dtype)
        # F_V = sum_i w_i F_i (Sec. 3.1), divided by N so clips of any length (T=16 in training, up to 128
        # at inference) give one feature scale; for a fixed N this is the paper's sum up to a constant.
        video = (weights.unsqueeze(-1) * feats).mean(dim=1)  # (B, D)
        out = {"logits": self.head(video), "weights": weights, "frame_features": feats,
               "frame_logits": self.head(feats), "video_feature": video}
        if images is not None:  # the image branch: same backbone, same head
            out["image_features"] = self.backbone(images)
            out["image_logits"] = self.head(out["image_features"])
        return out


class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016): L_C = 1/2 mean_i ||x_i - c_{y_i}||^2; centers follow Wen's update rule
    c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j), not gradient descent.

    A center starts at the mean of its class's first training features (zeros until then): starting every
    center at the origin would pull all features towards 0 and stall the classifier early in training.
    """

    def __init__(self, num_classes: int, dim: int, alpha: float = 0.5):
        super().__init__()
        self.alpha = alpha
        self.register_buffer("centers", torch.zeros(num_classes, dim))
        self.register_buffer("started", torch.zeros(num_classes, dtype=torch.bool))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """features: (B, D), labels: (B,) -> scalar loss; updates the centers when training."""
        if self.training:
            with torch.no_grad():
                x = features.detach().float()
                for j in labels.unique():
                    if not self.started[j]:
                        self.centers[j] = x[labels == j].mean(dim=0)
                        self.started[j] = True
        centers = self.centers[labels]  # (B, D)
        loss = 0.5 * (features - centers).pow(2).sum(dim=1).mean()
        if self.training:
            with torch.no_grad():
                for j in labels.unique():
                    sel = labels == j
                    delta = (self.centers[j] - x[sel]).sum(dim=0) / (1 + sel.sum())
                    self.centers[j] -= self.alpha * delta
        return loss


def coherence_loss(weights: torch.Tensor, frame_features: torch.Tensor, centers: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Eq. (2)-(3): || Gram(1 - w) - Gram(d) ||_2 averaged over the batch.

    weights: (B, T) attention w; frame_features: (B, T, D); centers: (K, D); labels: (B,).
    The distances are targets (detached): the loss trains the attention, as the paper describes.
    """
    d = (frame_features - centers[labels].unsqueeze(1)).norm(dim=-1).detach()  # Eq. (2): d_i = ||F_i - C^Y||_2
    inv = 1 - weights  # lower distance <-> stronger attention, hence 1 - w
    gram_w = inv.unsqueeze(2) * inv.unsqueeze(1) / inv.pow(2).sum(dim=1).clamp_min(1e-12)[:, None, None]
    gram_d = d.unsqueeze(2) * d.unsqueeze(1) / d.pow(2).sum(dim=1).clamp_min(1e-12)[:, None, None]
    return (gram_w - gram_d).flatten(1).norm(dim=1).mean()  # Eq. (3)


def kganet_loss(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, images: torch.Tensor | None = None,
                image_labels: torch.Tensor | None = None, coherence: bool = True, lam: float = 1.0
                ) -> tuple[torch.Tensor, dict]:
    """Eq. (4): L = L_CE^V + L_CE^I + L_Center + lambda L_Coh (lambda = 1 in the paper).

    `model` is a KGANet (or DDP around one). L_CE^I covers the images and every video frame (frame-level
    CE). Without images (Table 2 row 1, 'w/o image guidance') the centers come from the video frames.
    """
    net = model.module if hasattr(model, "module") else model
    out = model(clips, images)
    loss_video = F.cross_entropy(out["logits"], labels)
    frame_labels = labels.repeat_interleave(clips.shape[1])
    loss_frames = F.cross_entropy(out["frame_logits"].flatten(0, 1), frame_labels)
    if images is not None:
        loss_ce_i = 0.5 * (F.cross_entropy(out["image_logits"], image_labels) + loss_frames)
        loss_center = net.center(out["image_features"], image_labels)
    else:
        loss_ce_i = loss_frames
        loss_center = net.center(out["frame_features"].flatten(0, 1), frame_labels)
    loss = loss_video + loss_ce_i + loss_center
    logs = {"ce_video": loss_video, "ce_image_frames": loss_ce_i, "center": loss_center}
    if coherence:
        loss_coh = coherence_loss(out["weights"], out["frame_features"], net.center.centers, labels)
        loss = loss + lam * loss_coh
        logs["coherence"] = loss_coh
    return loss, logs

"""Self-supervised losses on two augmented views: SimCLR's NT-Xent (contrastive) and BYOL's normalised MSE.

Embeddings `z1, z2: (B, D)`: row i of both is the same clip under two augmentations (a positive pair).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR (Chen et al., ICML 2020), Eq. (1): the normalised temperature-scaled cross-entropy, averaged over all
    2B views. For view i with positive j: l(i, j) = -log exp(sim(z_i, z_j)/tau) / sum_{k != i} exp(sim(z_i, z_k)/tau),
    sim = cosine similarity; the other 2B - 2 views of the batch are the negatives."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))  # k != i
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)  # view i's partner
    return F.cross_entropy(sim, positive)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL (Grill et al., NeurIPS 2020), Eq. (2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), mean over the batch.

    p: the online prediction (B, D); z: the target projection (B, D), detached here (stop-gradient)."""
    p, z = F.normalize(p.float(), dim=1), F.normalize(z.detach().float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


@torch.no_grad()
def top1_positive(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """How often a view's nearest projection (cosine) among the other views `z2` is its positive: the fraction of
    rows i of z1 (B, D) whose most similar row of z2 is row i (chance: 1 / B)."""
    sim = F.normalize(z1.float(), dim=-1) @ F.normalize(z2.float(), dim=-1).t()
    return (sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean()

"""MVCC (Lin et al., MICCAI 2022): dual-level masking, the masked auto-encoder loss, and the contrastive losses.

- `dual_level_mask`: the strategy S: x -> x' -> x_hat of Sec. 2.1 (frame level alpha, then patch level beta).
- `mae_loss`: MSE between reconstructed and original pixels on the masked patches only.
- `correlation_contrastive_loss`: C-SCL, Eq. (1)-(7); `supcon_loss`: SCL of Khosla et al. (2020), the +SCL row.
- `mvcc_loss`: L = L_cls + lambda L_con, Eq. (8).
The encoder, decoder and classifier live in `usnb.models.timesformer`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .timesformer import MAEDecoder, TimeSformer, TimeSformerClassifier, patchify

STRATEGIES = ("dual", "patch", "frame")


def round_half_up(x: float) -> int:
    """Rounding used for mask counts: 0.5 goes up (Python's round() would send 2.5 to 2, banker's rounding)."""
    return int(math.floor(x + 0.5))


def mask_counts(t: int, n: int, alpha: float, beta: float) -> tuple[int, int]:
    """(frames masked, patches masked in each kept frame) = (round(alpha t), round(beta n)), halves rounded up.

    At least one frame and one patch per kept frame stay visible; otherwise a ValueError names the fix.
    """
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not 0 <= v < 1:
            raise ValueError(f"mask ratio {name} = {v} must lie in [0, 1); lower it so that something stays visible")
    t_masked, n_masked = round_half_up(alpha * t), round_half_up(beta * n)
    if t_masked >= t or n_masked >= n:
        raise ValueError(f"alpha = {alpha} of t = {t} frames and beta = {beta} of n = {n} patches mask "
                         f"{t_masked} frames / {n_masked} patches: nothing stays visible. Fix: lower alpha or beta")
    return t_masked, n_masked


def masked_fraction(t: int, n: int, alpha: float, beta: float) -> float:
    """Share of the t n tokens that `dual_level_mask` masks, after `mask_counts`' rounding."""
    t_masked, n_masked = mask_counts(t, n, alpha, beta)
    return (t_masked * n + (t - t_masked) * n_masked) / (t * n)


def dual_level_mask(batch: int, t: int, n: int, alpha: float, beta: float,
                    generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Dual-level masking S: x -> x' -> x_hat (Sec. 2.1) as a bool mask (B, t, n), True = masked.

    Frame level: round(alpha t) of the t frames are masked whole (x -> x', t' = t - round(alpha t) kept frames).
    Patch level: round(beta n) of the n patches of every kept frame are masked (x' -> x_hat), drawn anew per frame.
    In total alpha + (1 - alpha) beta of the tokens are masked, up to the rounding. Every clip keeps t' frames of
    n - round(beta n) patches, so visible tokens form one (B, t' (n - round(beta n)), D) tensor.
    alpha = 0: patch-only (MVCC-Patch, MAE-like); beta = 0: frame-only (MVCC-Frame).
    """
    t_masked, n_masked = mask_counts(t, n, alpha, beta)
    frame_rank = torch.rand(batch, t, generator=generator, device=device).argsort(1).argsort(1)  # random ranks
    frame_masked = frame_rank < t_masked  # (B, t): round(alpha t) frames
    patch_rank = torch.rand(batch, t, n, generator=generator, device=device).argsort(2).argsort(2)
    patch_masked = patch_rank < n_masked  # (B, t, n): round(beta n) patches per frame
    return frame_masked[:, :, None] | patch_masked


def strategy_ratios(strategy: str, alpha: float, beta: float) -> tuple[float, float]:
    """(alpha, beta) actually used by a strategy: dual (alpha, beta), patch (0, beta), frame (alpha, 0)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"masking strategy must be one of {STRATEGIES}, got {strategy!r}")
    return {"dual": (alpha, beta), "patch": (0.0, beta), "frame": (alpha, 0.0)}[strategy]


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = False) -> torch.Tensor:
    """Mean squared error on the masked patches only (visible patches give no gradient).

    pred, target: (B, T, N, P) patch pixels; mask: bool (B, T, N), True = masked.
    norm_pix: the target of each patch standardised by its own mean and std (MAE's option; sharper
    reconstructions of texture, e.g. speckle). Off by default: the paper reconstructs pixel values.
    """
    if norm_pix:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred - target) ** 2).mean(-1)  # (B, T, N)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp_min(1)


class MaskedVideoModel(torch.nn.Module):
    """De(En(x_hat)): the encoder sees the visible tokens only, the decoder reconstructs every patch."""

    def __init__(self, encoder: TimeSformer, decoder_dim: int = 384, decoder_depth: int = 4, decoder_heads: int = 6):
        super().__init__()
        self.encoder = encoder
        self.decoder = MAEDecoder(encoder, decoder_dim, decoder_depth, decoder_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C, H, W), mask (B, T, N) -> reconstructed patches x_bar (B, T, N, p*p*C)."""
        return self.decoder(self.encoder(x, mask), mask)

    def loss(self, x: torch.Tensor, mask: torch.Tensor, norm_pix: bool = False) -> torch.Tensor:
        return mae_loss(self(x, mask), patchify(x, self.encoder.patch), mask, norm_pix)


# ---------------------------------------------------------------- contrastive losses


def _pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """labels (B,) -> positives (B, B) (same label, not itself) and negatives (B, B) (another label)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _masked_softmax(sim: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of sim over the True entries of `members` (B, B); a row with none is all zeros."""
    rows = members.any(1, keepdim=True)
    s = torch.where(rows, sim.masked_fill(~members, float("-inf")), torch.zeros_like(sim))  # no NaN, no NaN grad
    return torch.softmax(s, dim=1) * rows


def correlation_contrastive_loss(q: torch.Tensor, labels: torch.Tensor, tau: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Correlation-aware contrastive loss (C-SCL), Eq. (1)-(7); every sample of the batch is a query in turn.

    q: (B, D) representations En(x); labels: (B,). Positives P of a query: the other samples with its label;
    negatives N: the samples with another label. |.| is the L1 loss: the mean absolute difference over the D
    dimensions. Returns L_con (Eq. 7) and {"pull", "push"}.
    A query with no positive in the batch has no q_hat: it is left out of the L_pull mean; one with no negative
    is left out of the L_push mean; a term with no query at all is 0 (so a one-class batch gives L_push = 0).
    """
    if q.ndim != 2 or labels.shape != q.shape[:1]:
        raise ValueError(f"q must be (B, D) and labels (B,), got {tuple(q.shape)} and {tuple(labels.shape)}")
    pos, neg = _pairs(labels)
    sim = F.normalize(q, dim=1) @ F.normalize(q, dim=1).T / tau  # sim(q, k) / tau, cosine similarity, (B, B)
    a = _masked_softmax(sim, pos)  # Eq. (2): a_{q,k+}, each row a softmax over P
    b = _masked_softmax(sim, neg)  # Eq. (4): b_{q,k-}, each row a softmax over N
    q_hat = a @ q  # Eq. (1): sum_{k+ in P} a_{q,k+} k+, (B, D)
    q_check = b @ q  # Eq. (3): sum_{k- in N} b_{q,k-} k-, (B, D)
    pull = (q - q_hat).abs().mean(1)  # Eq. (5): L_pull = |q - q_hat|, (B,)
    push = F.relu(1 - (q - q_check).abs().mean(1))  # Eq. (6): L_push = max(1 - |q - q_check|, 0), (B,)
    has_pos, has_neg = pos.any(1), neg.any(1)
    l_pull = (pull * has_pos).sum() / has_pos.sum().clamp_min(1)
    l_push = (push * has_neg).sum() / has_neg.sum().clamp_min(1)
    return l_pull + l_push, {"pull": l_pull.detach(), "push": l_push.detach()}  # Eq. (7): L_con = L_pull + L_push


def supcon_loss(q: torch.Tensor, labels: torch.Tensor, tau: float = 0.07) -> tuple[torch.Tensor, dict]:
    """Supervised contrastive loss L^sup_out (Khosla et al. 2020, Eq. 2) on L2-normalised features z = q / |q|:

    L = mean_i -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) ).
    An anchor with no positive in the batch is left out of the mean (Khosla's code would divide by zero);
    a batch where no anchor has one gives 0.
    """
    if q.ndim != 2 or labels.shape != q.shape[:1]:
        raise ValueError(f"q must be (B, D) and labels (B,), got {tuple(q.shape)} and {tuple(labels.shape)}")
    pos, _ = _pairs(labels)
    z = F.normalize(q, dim=1)
    logits = z @ z.T / tau
    eye = torch.eye(len(q), dtype=torch.bool, device=q.device)
    log_prob = logits - torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    n_pos = pos.sum(1)
    per_anchor = -(log_prob * pos).sum(1) / n_pos.clamp_min(1)
    has = n_pos > 0
    return (per_anchor * has).sum() / has.sum().clamp_min(1), {}


CONTRASTIVE = {"scl": supcon_loss, "cscl": correlation_contrastive_loss}


def mvcc_loss(model: TimeSformerClassifier, clips: torch.Tensor, labels: torch.Tensor, contrastive: str | None = "cscl",
              lam: float = 0.1, tau: float | None = None) -> tuple[torch.Tensor, dict]:
    """Eq. (8): L = L_cls + lambda L_con; contrastive None (Baseline), 'scl' (+SCL) or 'cscl' (+C-SCL, MVCC).

    clips: (B, T, C, H, W); labels (B,). tau: None uses each loss's default (C-SCL 0.1, SCL 0.07).
    """
    logits, q = model(clips, return_features=True)
    l_cls = F.cross_entropy(logits.float(), labels)
    logs = {"cls": l_cls.detach()}
    if contrastive is None:
        return l_cls, logs
    if contrastive not in CONTRASTIVE:
        raise ValueError(f"contrastive must be None, 'scl' or 'cscl', got {contrastive!r}")
    kw = {} if tau is None else {"tau": tau}
    l_con, parts = CONTRASTIVE[contrastive](q.float(), labels, **kw)
    logs.update(con=l_con.detach(), **parts)
    return l_cls + lam * l_con, logs  # Eq. (8)

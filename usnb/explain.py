"""Explanations: t-SNE of features, Grad-CAM for clip models, and localisation scores against lesion boxes.

Grad-CAM (Selvaraju et al., ICCV 2017) for three kinds of video model, all returning a CAM `(B, T, H, W)`:
- "frames": a 2-D backbone run on every frame; input `(B, T, C, H, W)`, target layer output `(B*T, K, h, w)`.
- "3d": a 3-D CNN; input `(B, C, T, H, W)`, target layer output `(B, K, t, h, w)`.
- "tokens": a video transformer; input `(B, T, C, H, W)`, target layer output `(B, N, D)` tokens in
  (t, h, w) row-major order (optionally after one CLS token), `token_grid=(t, h, w)` given by the caller.
Boxes are `(x, y, w, h)` in pixels: columns x..x+w-1, rows y..y+h-1 (as in `VideoRecord.boxes`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("frames", "3d", "tokens")


def tsne(features, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """features: (N, D) array or tensor -> (N, 2) t-SNE embedding (scikit-learn; deterministic for a seed).

    perplexity defaults to min(30, (N - 1) / 3), so that small evaluation sets work. Up to 2000 samples run on
    one OpenMP thread: bit-for-bit repeatable, and fast on a busy machine (where threads spin: 24 points took 50 s).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = features.detach().float().cpu().numpy() if torch.is_tensor(features) else np.asarray(features, np.float32)
    x = x.reshape(len(x), -1)
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {len(x)}; embed more clips")
    perplexity = min(30.0, (len(x) - 1) / 3) if perplexity is None else float(perplexity)
    if not 0 < perplexity < len(x):
        raise ValueError(f"perplexity {perplexity} must lie in (0, {len(x)}); lower it or embed more clips")
    with threadpool_limits(1 if len(x) <= 2000 else None, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


class GradCAM:
    """Grad-CAM through a forward hook on `target_layer`; `cam = gradcam(x, target_class)` -> (B, T, H, W).

    kind: "frames" (x: (B, T, C, H, W)), "3d" (x: (B, C, T, H, W)) or "tokens" (x: (B, T, C, H, W), with
    token_grid=(t, h, w) and has_cls=True when a CLS token leads). Use as a context manager or call close().
    The model is run in eval mode (its mode is restored after) and its parameters' `.grad` are left untouched.
    """

    def __init__(self, model: torch.nn.Module, target_layer: torch.nn.Module, kind: str = "frames",
                 token_grid: tuple[int, int, int] | None = None, has_cls: bool = False):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "tokens" and (token_grid is None or len(token_grid) != 3):
            raise ValueError("kind='tokens' needs token_grid=(t, h, w): the patch grid the tokens come from")
        self.model, self.kind, self.has_cls = model, kind, has_cls
        self.token_grid = tuple(int(g) for g in token_grid) if token_grid is not None else None
        self.activation: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self._handle = target_layer.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self.activation = output[0] if isinstance(output, (tuple, list)) else output

    def close(self) -> None:
        """Remove the hook (the model is as before)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> "GradCAM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _score(self, logits: torch.Tensor, target_class) -> torch.Tensor:
        """Per-clip score to explain: the target logit, (B,) -> (B,)."""
        b = logits.shape[0]
        if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
            logit = logits.reshape(b)  # a single logit: class 1 is the logit, class 0 its negative
            if target_class is None:
                return logit
            sign = torch.as_tensor(target_class, device=logit.device).reshape(-1).expand(b)
            return torch.where(sign == 0, -logit, logit)
        if logits.ndim != 2:
            raise ValueError(f"model output must be logits (B, n_classes) or (B,), got {tuple(logits.shape)}")
        if target_class is None:
            target = logits.argmax(1)
        else:
            target = torch.as_tensor(target_class, device=logits.device).long().reshape(-1).expand(b)
        return logits.gather(1, target[:, None])[:, 0]

    def _grid(self, a: torch.Tensor, b: int, t_in: int) -> torch.Tensor:
        """Target layer output -> (B, K, t, h, w) (frames: K channels per frame, t = T)."""
        if self.kind == "frames":
            if a.ndim != 4 or a.shape[0] != b * t_in:
                raise ValueError(f"kind='frames' expects the target layer to output (B*T={b * t_in}, K, h, w), got "
                                 f"{tuple(a.shape)}; pick a layer inside the per-frame 2-D backbone, or kind='3d'")
            return a.reshape(b, t_in, *a.shape[1:]).transpose(1, 2)  # (B, K, T, h, w)
        if self.kind == "3d":
            if a.ndim != 5 or a.shape[0] != b:
                raise ValueError(f"kind='3d' expects the target layer to output (B={b}, K, t, h, w), got "
                                 f"{tuple(a.shape)}; pick a 3-D conv block, or kind='frames' for a 2-D backbone")
            return a
        t, h, w = self.token_grid
        if a.ndim != 3 or a.shape[0] != b or a.shape[1] != t * h * w + int(self.has_cls):
            raise ValueError(f"kind='tokens' expects (B={b}, {'1 + ' if self.has_cls else ''}t*h*w={t * h * w}, D) "
                             f"tokens for token_grid={self.token_grid}, got {tuple(a.shape)}; "
                             "check token_grid and has_cls")
        a = a[:, 1:] if self.has_cls else a
        return a.reshape(b, t, h, w, a.shape[-1]).permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)

    def __call__(self, x: torch.Tensor, target_class=None) -> torch.Tensor:
        """x: (B, T, C, H, W) for frames/tokens, (B, C, T, H, W) for 3d -> CAM (B, T, H, W) in [0, 1] per clip.

        target_class: None (the predicted class), an int, or one class per clip.
        """
        if x.ndim != 5:
            raise ValueError(f"x must be a clip batch with 5 dims, got {tuple(x.shape)}; add the batch dim")
        b = x.shape[0]
        t_in, size = (x.shape[2], x.shape[3:]) if self.kind == "3d" else (x.shape[1], x.shape[3:])
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                self.activation = None
                logits = self.model(x.detach().requires_grad_(True))
                if self.activation is None:
                    raise RuntimeError("the target layer did not run in forward(); pass a layer the model uses")
                score = self._score(logits, target_class)
                grad, = torch.autograd.grad(score.sum(), self.activation)
        finally:
            self.model.train(was_training)
        self.logits = logits.detach()
        a = self._grid(self.activation.detach().float(), b, t_in)  # (B, K, t, h, w)
        g = self._grid(grad.float(), b, t_in)
        if self.kind == "frames":
            weights = g.mean((3, 4), keepdim=True)  # Eq. (1) of Selvaraju et al., per frame: mean over h, w
        else:
            weights = g.mean((2, 3, 4), keepdim=True)  # Eq. (1), 3-D: mean over t, h, w
        cam = F.relu((weights * a).sum(1, keepdim=True))  # Eq. (2): ReLU(sum_k alpha_k A^k), (B, 1, t, h, w)
        cam = F.interpolate(cam, size=(t_in, *size), mode="trilinear", align_corners=False)[:, 0]  # (B, T, H, W)
        peak = cam.flatten(1).amax(1).clamp_min(1e-12)
        self.activation = None
        return cam / peak[:, None, None, None]  # 0 = no positive evidence, 1 = the clip's maximum


# ---------------------------------------------------------------- localisation scores


def _saliency(saliency) -> np.ndarray:
    s = saliency.detach().float().cpu().numpy() if torch.is_tensor(saliency) else np.asarray(saliency, np.float64)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise ValueError(f"saliency must be (T, H, W) or (H, W), got shape {s.shape}")
    return s


def _is_box(b) -> bool:
    return isinstance(b, (Sequence, np.ndarray)) and len(b) == 4 and all(np.isscalar(v) for v in b)


def _box_list(entry) -> list:
    """None | (x, y, w, h) | [(x, y, w, h), ...] -> list of boxes."""
    if entry is None:
        return []
    if _is_box(entry):
        return [tuple(entry)]
    boxes = list(entry)
    if not all(_is_box(b) for b in boxes):
        raise ValueError(f"boxes must be (x, y, w, h) tuples, got {entry!r}")
    return [tuple(b) for b in boxes]


def boxes_per_frame(boxes, n_frames: int) -> dict[int, list]:
    """dict {frame: boxes} or a list with one entry per frame (None, a box, or a list of boxes) -> {frame: boxes}.

    With one frame a plain list of boxes is read as that frame's boxes. Frames without a box are left out.
    """
    if isinstance(boxes, Mapping):
        out = {int(k): _box_list(v) for k, v in boxes.items()}
    else:
        entries = list(boxes)
        if n_frames == 1 and entries and all(_is_box(b) for b in entries):
            entries = [entries]
        if len(entries) != n_frames:
            raise ValueError(f"boxes has {len(entries)} entries for {n_frames} saliency frames; give one entry "
                             "per frame (None where there is no box) or a dict {frame: boxes}")
        out = {i: _box_list(e) for i, e in enumerate(entries)}
    outside = [k for k in out if not 0 <= k < n_frames]
    if outside:
        raise ValueError(f"boxes name frames {outside} but the saliency has {n_frames} frames; "
                         "index boxes by the frames the saliency covers")
    return {k: v for k, v in out.items() if v}


def box_mask(boxes: Sequence, shape: tuple[int, int]) -> np.ndarray:
    """Union of boxes (x, y, w, h) as a boolean (H, W) mask (fractional edges round outwards)."""
    mask = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        x1, y1 = min(shape[1], int(np.ceil(x + w))), min(shape[0], int(np.ceil(y + h)))
        mask[y0:y1, x0:x1] = True
    return mask


def pointing_game(saliency, boxes, tolerance: float = 0) -> float:
    """Fraction of boxed frames whose saliency maximum lies in a box (or within `tolerance` px of one).

    saliency: (T, H, W) or (H, W); ties take the first maximum in row-major order. nan when no frame has a box.
    (Zhang et al., ECCV 2016, use tolerance=15 px.)
    """
    s = _saliency(saliency)
    frames = boxes_per_frame(boxes, len(s))
    if not frames:
        return float("nan")
    hits = []
    for t, frame_boxes in frames.items():
        r, c = np.unravel_index(np.argmax(s[t]), s[t].shape)
        dist = min(np.hypot(max(x - c, 0, c - (x + w - 1)), max(y - r, 0, r - (y + h - 1)))
                   for x, y, w, h in frame_boxes)  # pixel-centre distance to the box, 0 inside
        hits.append(dist <= tolerance)
    return float(np.mean(hits))


def _top_k_setup(saliency, boxes, k: float) -> tuple[np.ndarray, dict, int]:
    """The shared start of the top-k scores: saliency (T, H, W), its boxed frames, and n = round(k H W) pixels."""
    if not 0 < k <= 1:
        raise ValueError(f"k is a fraction of the pixels in (0, 1], got {k}")
    s = _saliency(saliency)
    return s, boxes_per_frame(boxes, len(s)), max(1, int(round(k * s.shape[1] * s.shape[2])))


def topk_iou(saliency, boxes, k: float = 0.1) -> float:
    """Mean over boxed frames of IoU(top-k fraction of pixels, union of the frame's boxes); nan without boxes."""
    s, frames, n = _top_k_setup(saliency, boxes, k)
    if not frames:
        return float("nan")
    h, w = s.shape[1:]
    ious = []
    for t, frame_boxes in frames.items():
        top = np.zeros(h * w, bool)
        top[np.argsort(-s[t].reshape(-1), kind="stable")[:n]] = True
        box = box_mask(frame_boxes, (h, w)).reshape(-1)
        union = (top | box).sum()
        ious.append((top & box).sum() / union if union else 0.0)
    return float(np.mean(ious))


# ---------------------------------------------------------------- occlusion (Zeiler and Fergus, ECCV 2014)


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: every `stride`, the last window flush with the end (all positions covered)."""
    if not 1 <= window <= length or stride < 1:
        raise ValueError(f"occlusion window {window} must lie in [1, {length}] and stride {stride} be >= 1")
    starts = list(range(0, length - window + 1, stride))
    return starts if starts[-1] == length - window else starts + [length - window]


@torch.no_grad()
def occlusion(model: torch.nn.Module, x: torch.Tensor, window: Sequence[int], stride: Sequence[int],
              target: int = 1, baseline: float = 0.0, batch_size: int = 64) -> torch.Tensor:
    """Occlusion saliency of one clip x: (C, T, H, W) (any layout: windows run over every dim of x).

    Each window of shape `window` (stepped by `stride`) is set to `baseline`; a voxel's saliency is the mean, over
    the windows that cover it, of p(target | x) - p(target | x occluded) (softmax of the model's logits), as Captum's
    `Occlusion` computes it (tests/test_crosscheck.py). One difference: where the strides do not tile an axis, our
    last window sits flush with the end, while Captum's runs past it and is cut short. Positive: hiding the voxel
    lowers the target's probability. Returns x's shape.
    """
    if len(window) != x.ndim or len(stride) != x.ndim:
        raise ValueError(f"window {tuple(window)} and stride {tuple(stride)} need one entry per dim of x "
                         f"{tuple(x.shape)} (one clip, no batch dim)")
    import itertools

    was_training = model.training
    model.eval()
    try:
        prob = lambda v: model(v).float().softmax(-1)[:, target]  # noqa: E731 - (N, ...) -> (N,)
        base = prob(x[None])[0]
        starts = [_window_starts(n, w, s) for n, w, s in zip(x.shape, window, stride)]
        slices = [tuple(slice(a, a + w) for a, w in zip(corner, window)) for corner in itertools.product(*starts)]
        total, count = torch.zeros_like(x, dtype=torch.float32), torch.zeros_like(x, dtype=torch.float32)
        for i in range(0, len(slices), batch_size):
            chunk = slices[i:i + batch_size]
            occluded = x[None].repeat(len(chunk), *[1] * x.ndim)
            for j, sl in enumerate(chunk):
                occluded[(j, *sl)] = baseline
            drop = base - prob(occluded)  # (n,)
            for j, sl in enumerate(chunk):
                total[sl] += float(drop[j])
                count[sl] += 1
    finally:
        model.train(was_training)
    return total / count


def weighted_iou(saliency, boxes, k: float = 0.1) -> float:
    """Chen et al.'s localisation score: keep the top k (10 %) of each frame's pixels, box every connected region
    (its minimum enclosing box), and score each box by its best IoU with a ground-truth box; the frame's score is the
    mean over boxes weighted by each region's pixel count (our reading of 'weighted IoU': the IoU that an average
    salient pixel's box achieves). Mean over the frames that have boxes; nan without boxes.

    saliency: (T, H, W) or (H, W); boxes: as `boxes_per_frame` ((x, y, w, h) pixels). Ties at the threshold are kept.
    """
    from scipy import ndimage

    s, frames, n = _top_k_setup(saliency, boxes, k)
    if not frames:
        return float("nan")
    h, w = s.shape[1:]
    scores = []
    for t, frame_boxes in frames.items():
        threshold = np.sort(s[t].reshape(-1))[::-1][n - 1]
        regions, count = ndimage.label(s[t] >= threshold)
        gt = [box_mask([b], (h, w)) for b in frame_boxes]
        score, pixels = 0.0, 0
        for region, found in enumerate(ndimage.find_objects(regions), start=1):
            pred = np.zeros((h, w), bool)
            pred[found] = True  # the region's minimum enclosing box
            best = max((pred & g).sum() / (pred | g).sum() for g in gt)
            size = int((regions[found] == region).sum())
            score, pixels = score + size * best, pixels + size
        scores.append(score / pixels)
    return float(np.mean(scores))

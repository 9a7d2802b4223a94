"""Evaluation shared by the breast recipes: one prediction type, video-level prediction, metrics on the held-out
splits, the Grad-CAM wrapper and localisation against lesion boxes.

A recipe says how its model reads a clip (`outputs`: the model's outputs as a dict with "logits" and "video_feature",
optionally "frame_features" and maps such as attention) and which frames it sees (`indices`: one or several views of
T frames); everything else is here. The threshold rule lives in `usnb.metrics.held_out_metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import sampling
from .data import label_index
from .datasets.records import VideoRecord
from .metrics import held_out_metrics
from .view import FieldOfView, frames, standardise


@dataclass
class Predictions:
    """Per video: label, P(positive) (mean over its views), the frames seen, features and the model's other outputs."""

    records: list[VideoRecord]
    labels: np.ndarray  # (N,)
    probs: np.ndarray  # (N,)
    frames: list[np.ndarray]  # (T_i,) indices of the first view's frames in the clip cache
    video_features: np.ndarray  # (N, D), mean over views
    frame_features: list[np.ndarray] | None = None  # (T_i, D) when the model has per-frame features
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)  # e.g. KGA-Net "weights" (T_i,)
    native: list[np.ndarray] | None = None  # (T_i,) the same frames numbered as in the file (a long clip is thinned)


def dict_outputs(model: nn.Module, x: torch.Tensor) -> dict:
    """A model that returns a dict (KGA-Net, CLMAN) on a standardised clip batch."""
    return model(x)


def all_frames(max_frames: int) -> Callable[[int], list[np.ndarray]]:
    """One view: every frame of the video, uniformly subsampled to `max_frames`."""
    return lambda n: [sampling.all_indices(n, max_frames)]


@torch.no_grad()
def predict(model: nn.Module, records: Sequence[VideoRecord], cache, view: FieldOfView, classes: Sequence[str],
            indices: Callable[[int], list[np.ndarray]], outputs: Callable = dict_outputs,
            device: torch.device | None = None, keep: Sequence[str] = ()) -> Predictions:
    """Each video's views (`indices(n_frames)` -> index arrays of equal length) through the model as one batch;
    P(class 1) and the video feature averaged over views. `keep`: per-frame outputs saved (first view)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs, seen, native, video, per_frame, kept = [], [], [], [], [], {k: [] for k in keep}
    for record in records:
        clip = cache.get(record)
        views = indices(len(clip))
        x = torch.cat([frames(clip, idx) for idx in views]).to(device)  # (V, T, 1, H, W) uint8
        out = outputs(model, view(x, dims=4))
        probs.append(float(out["logits"].float().softmax(-1)[:, 1].mean()))
        seen.append(views[0])
        native.append(cache.native(record)[views[0]])
        video.append(out["video_feature"].float().mean(0).cpu().numpy())
        if "frame_features" in out:
            per_frame.append(out["frame_features"][0].float().cpu().numpy())
        for k in keep:
            kept[k].append(out[k][0].float().cpu().numpy() if k in out else None)
    model.train(was_training)
    return Predictions(list(records), label_index(records, classes), np.array(probs), seen, np.stack(video),
                       per_frame or None, kept, native)


def patients(records: Sequence) -> list[str]:
    """The patient id of each clip: what the patient-level intervals group by (`usnb.stats`)."""
    return [r.patient_id for r in records]


def split_metrics(labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray],
                  test_patients: Sequence[str] | None = None) -> dict:
    """Test metrics from per-split labels and P(class 1): Youden's threshold on "val" where it is, else on "test"
    (`usnb.metrics.held_out_metrics`, the one threshold rule); intervals at patient level where `test_patients`
    (one id per test clip, `patients(records)`) puts several clips in one patient."""
    return held_out_metrics(labels["test"], probs["test"], labels.get("val"), probs.get("val"), groups=test_patients)


def evaluate_splits(predict_split: Callable[[Sequence[VideoRecord]], Predictions],
                    clips: Mapping[str, Sequence[VideoRecord]]) -> tuple[dict, dict[str, Predictions]]:
    """Predictions on the validation and test splits and the test metrics (Youden's threshold chosen on validation,
    on test where there is none): (metrics, {split: Predictions})."""
    preds = {s: predict_split(recs) for s, recs in clips.items() if s in ("val", "test")}
    return split_metrics({s: p.labels for s, p in preds.items()}, {s: p.probs for s, p in preds.items()},
                         patients(preds["test"].records)), preds


def visibility_of(preds: Predictions) -> list[np.ndarray]:
    """Ground-truth lesion visibility of every predicted frame (phantom annotations), per clip."""
    missing = [r.video_id for r in preds.records if "visibility" not in r.meta]
    if missing:
        raise ValueError(f"{missing[0]}: no per-frame visibility; only the phantom has it (use dataset='phantom')")
    return [np.asarray(r.meta["visibility"])[idx] for r, idx in zip(preds.records, preds.native or preds.frames)]


class VideoLogits(nn.Module):
    """A clip classifier on clips already cropped to the field of view (B, T, C, H, W), pixel values -> logits (B, K).

    Standardises inside, so that Grad-CAM maps come out on the pixels of the view (`FieldOfView.crop`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(standardise(x, dims=4))
        return out["logits"] if isinstance(out, dict) else out


def frame_gradcam(model: nn.Module, layer: nn.Module | None = None):
    """Grad-CAM per frame for a model that runs a 2-D backbone on every frame (KGA-Net, CLMAN), at `layer` (None:
    `last_stage(model.backbone)`): `with frame_gradcam(model) as cam: cam(x, target_class)`, x (B, T, 1, H, W) pixels
    of the view."""
    from .explain import GradCAM

    return GradCAM(VideoLogits(model), last_stage(model.backbone) if layer is None else layer, kind="frames")


def boxes_in_view(record: VideoRecord, indices, cache, view: FieldOfView) -> dict[int, list]:
    """The lesion boxes of the file's frames `indices` of a clip, from the file's pixels to the model's (through the
    cache's resize and pad or crop): {position in indices: [(x, y, w, h)]}; parts outside the field of view fall off."""
    return {j: view.boxes(cache.boxes(record, record.boxes[int(i)])) for j, i in enumerate(indices)
            if record.boxes.get(int(i))}


def cam_frames(gradcam, record: VideoRecord, cache, view: FieldOfView, indices, target_class: int
               ) -> tuple[np.ndarray, torch.Tensor, dict[int, list]]:
    """Grad-CAM (`usnb.explain.GradCAM` over `VideoLogits`) of one clip's frames `indices` for `target_class`:
    (the frames the model sees (T, H, W), CAM (T, H, W), boxes in the model's pixels)."""
    device = next(gradcam.model.parameters()).device
    x = view.crop(frames(cache.get(record), indices).to(device))  # (1, T, 1, H, W)
    cam = gradcam(x, target_class=target_class)[0]
    native = cache.native(record)[np.asarray(indices, dtype=int)]  # boxes are numbered by the file's frames
    return x[0, :, 0].cpu().numpy(), cam, boxes_in_view(record, native, cache, view)


def localisation(gradcam, records: Sequence[VideoRecord], cache, view: FieldOfView, classes: Sequence[str],
                 indices: Callable[[int], list[np.ndarray]], k: float = 0.1) -> dict:
    """Grad-CAM for each clip's true class on its boxed frames among the first view of `indices(n_frames)` (as
    `predict` takes them): pointing game and top-k IoU, averaged over clips.

    `chance_pointing` is what a random point scores (the mean fraction of the frame inside the boxes): the pointing
    game means something only above it. Boxes are drawn on the native frames and rescaled to the model's input.
    """
    from .explain import box_mask, pointing_game, topk_iou

    scores = {"pointing_game": [], "topk_iou": [], "chance_pointing": []}
    for record in records:
        idx = indices(len(cache.get(record)))[0]
        if not any(record.boxes.get(int(i)) for i in cache.native(record)[idx]):  # no box: no native frame read
            continue
        _, cam, boxes = cam_frames(gradcam, record, cache, view, idx, list(classes).index(record.label))
        scores["pointing_game"].append(pointing_game(cam, boxes))  # cam: (T, H, W)
        scores["topk_iou"].append(topk_iou(cam, boxes, k=k))
        scores["chance_pointing"].append(np.mean([box_mask(b, cam.shape[1:]).mean() for b in boxes.values()]))
    if not scores["pointing_game"]:
        raise ValueError("no record has a box: localisation needs ground-truth boxes (phantom, BUSV)")
    return {name: float(np.mean(v)) for name, v in scores.items()} | {"clips": len(scores["topk_iou"])}


def frame_localisation(model: nn.Module, layer: nn.Module | None, records: Sequence[VideoRecord], data,
                       classes: Sequence[str], max_frames: int = 128, k: float = 0.1) -> dict:
    """`localisation` of a per-frame 2-D model (KGA-Net, CLMAN) with Grad-CAM at `layer` (None: the backbone's
    `last_stage`), on every frame up to `max_frames` (`data`: `cache` and `view`)."""
    with frame_gradcam(model, layer) as cam:
        return localisation(cam, records, data.cache, data.view, classes, all_frames(max_frames), k)


@torch.no_grad()
def frame_features(backbone: nn.Module, data, max_frames: int = 128, device: torch.device | None = None
                   ) -> dict[str, list[np.ndarray]]:
    """Frame features (T_i, m) of every clip of every split (`data.clips`, `data.cache`, `data.view`) from a frozen
    2-D backbone, every frame up to `max_frames`: what heads trained on frozen features read (CLMAN's Table 3)."""
    device = device or next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    out = {}
    for split, records in data.clips.items():
        out[split] = []
        for record in records:
            clip = data.cache.get(record)
            x = frames(clip, sampling.all_indices(len(clip), max_frames))  # (1, T, 1, H, W)
            out[split].append(backbone(data.view(x.to(device), dims=4)[0]).float().cpu().numpy())
    backbone.train(was_training)
    return out


def view_indices(n_frames: int, t: int, views: int) -> list[np.ndarray]:
    """`views` T-frame index sets spread over a video: view v takes frame floor((i + (v + 0.5) / views) n / t)."""
    return [np.minimum(np.floor((np.arange(t) + (v + 0.5) / views) * n_frames / t).astype(int), n_frames - 1)
            for v in range(views)]


def saliency_localisation(saliency: Callable[[VideoRecord], tuple], records: Sequence[VideoRecord],
                          boxes: Callable[[VideoRecord, np.ndarray], dict], k: float = 0.1) -> dict:
    """Weighted IoU (`usnb.explain.weighted_iou`: the top `k` of the pixels, a box per connected region) of each boxed
    clip's saliency, mean over clips; `chance` is a random saliency map's (uniform noise, rng seed 0) on the same frames.
    `saliency(record)` -> (saliency (T, H, W), frame indices); `boxes(record, indices)` -> {t: [(x, y, w, h)]}."""
    from .explain import weighted_iou

    rng = np.random.default_rng(0)
    scores, chance = [], []
    for record in records:
        if not record.boxes:
            continue
        sal, idx = saliency(record)
        found = boxes(record, idx)
        if found:
            scores.append(weighted_iou(sal, found, k))
            chance.append(weighted_iou(rng.random(sal.shape), found, k))
    if not scores:
        raise ValueError("no clip has a box in its sampled frames: localisation needs ground-truth boxes (phantom)")
    return {"weighted_iou": float(np.mean(scores)), "chance": float(np.mean(chance)), "clips": len(scores)}


def last_stage(backbone: nn.Module) -> nn.Module:
    """A 2-D backbone's last convolutional stage, the layer Grad-CAM explains by default: `layer4` (ResNets, with
    CLMAN's non-local block), else `features`."""
    return backbone.layer4 if hasattr(backbone, "layer4") else backbone.features


def visibility_correlation(per_frame: Sequence[np.ndarray], preds: Predictions) -> dict:
    """Spearman's rho between a per-frame weight (one array per clip of `preds`, e.g. attention mass) and the frames'
    lesion visibility (`visibility_of`): within each clip where both vary (then averaged), and pooled over all
    frames with the weight x T per clip (1 = a uniform share of a weight that sums to 1 over the clip's frames)."""
    from scipy.stats import spearmanr

    vis = visibility_of(preds)
    within = [spearmanr(m, v)[0] for m, v in zip(per_frame, vis) if np.ptp(v) > 0 and np.ptp(m) > 0]
    pooled = spearmanr(np.concatenate([m * len(m) for m in per_frame]), np.concatenate(vis))[0]
    return {"within_clip_rho": float(np.mean(within)) if within else float("nan"), "pooled_rho": float(pooled),
            "clips": len(within)}



def predict_views(model: nn.Module, records: Sequence[VideoRecord], data, frames: int, views: int,
                  outputs: Callable = dict_outputs, device: torch.device | None = None) -> Predictions:
    """P(class 1) and the video feature per video, each the mean over `views` T-frame views spread over it
    (`view_indices`). `data` has `cache`, `view` and `classes` (MVCC, USCL, CVRL)."""
    return predict(model, records, data.cache, data.view, data.classes, lambda n: view_indices(n, frames, views),
                   outputs, device)


def evaluate_views(model: nn.Module, data, frames: int, views: int, outputs: Callable = dict_outputs,
                   device: torch.device | None = None) -> tuple[dict, dict[str, Predictions]]:
    """`predict_views` on the validation and test videos of `data.clips`: test metrics at the Youden threshold chosen
    on the validation split (the test split where there is none), and the predictions per split."""
    return evaluate_splits(lambda records: predict_views(model, records, data, frames, views, outputs, device),
                           data.clips)

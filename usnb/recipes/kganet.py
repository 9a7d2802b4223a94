"""KGA-Net recipe (Sun et al., MICCAI 2023): profiles, videos + keyframe images, Table 1-2 rows, evaluation.

The model and its losses (Eq. 1-4) live in `usnb.models.kganet`; this module feeds them the paper's data
(video clips and still keyframe images sampled 1:1 in every batch), trains each Table 2 row with the one loop
(`usnb.train.fit`), and predicts a video from up to 128 of its frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import baselines, paper_claims, params
from ..breast import CLASSES, COMPANION_IMAGES, BreastData, load_breast
from ..data import ClipDataset, ImageDataset, PairedDataset
from ..datasets.records import VideoRecord
from ..evaluate import Predictions, all_frames, evaluate_splits, frame_gradcam, frame_localisation
from ..evaluate import predict as predict_videos
from ..models.backbones import SmallCNN, resnet_backbone
from ..models.kganet import KGANet, kganet_loss
from ..train import Schedule, stage_config, train_once
from ..view import FieldOfView, clip_augment

PAPER_TABLES = paper_claims.TABLES["kganet"]  # the paper's Tables 1-2 (BUSV's test split, its runs)
PAPER_TABLE1, PAPER_TABLE2 = PAPER_TABLES["Table 1"], PAPER_TABLES["Table 2"]
# The paper's claims about its own rows (quote, section; judged on our runs by usnb.claims.judge_all) and its test
# split as (positives, negatives, cases per column), for the CIs its own numbers carry: usnb/paper_claims.py.
CLAIMS = paper_claims.CLAIMS["kganet"]
PAPER_TEST = paper_claims.paper_test("kganet")
PAPER_DATA = "BUSV (public), its own runs"


@dataclass(frozen=True)
class Row:
    """One Table 2 row: which parts of KGA-Net are on."""

    images: bool = True  # still keyframe images in every batch (image guidance); off: centers from frames
    attention: bool = True  # Eq. (1) frame attention; off: frame features averaged
    coherence: bool = True  # Eq. (3) coherence loss


TABLE2_ROWS = {
    "w/o image guidance": Row(images=False),
    "w/o coherence loss & attention": Row(attention=False, coherence=False),
    "w/o coherence loss": Row(coherence=False),
    "KGA-Net": Row(),
}


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` trains on a laptop CPU in minutes, `paper` follows Sec. 4.1."""

    EVAL_ONLY = ("name", "eval_frames")  # not in the checkpoint fingerprint (see learned_fields)
    name: str
    size: int  # frame side fed to the model, pixels
    fov: float  # field of view: the central fraction of each frame's side the model sees (1 = the whole frame)
    backbone: str  # "small" (SmallCNN) | "resnet18" | "resnet50"
    weights: str | None  # backbone init: None, "imagenet" or a local torchvision .pth
    widths: tuple[int, ...]  # SmallCNN widths (small backbone only)
    norm: str  # SmallCNN normalisation: "batch" | "group"
    train_frames: int  # T frames per training clip
    train_sampling: str  # "segments": one random frame in each of T segments | "random": T consecutive frames
    eval_frames: int  # up to this many frames per video at inference (paper: 128)
    train: Schedule  # batch: clips per step, and as many still images (the paper's 1:1 sampling, total batch 2x this)
    lam: float = 1.0  # Eq. (4): weight of the coherence loss
    crop_scale: tuple[float, float] = (0.8, 1.0)  # augmentation: random crop (area fraction, aspect kept) + flip
    num_workers: int = 0
    augment_on: str = "loader"  # "loader": torchvision on the CPU workers | "device": the batch on the model's device

    @property
    def channels_last(self) -> bool:
        """ResNets in NHWC: faster on GPUs, the same result."""
        return self.backbone != "small"


PROFILES = {
    # Sec. 4.1: ResNet-50 (ImageNet), SGD lr 0.005, warmup 1,000 iterations, x0.1 at 4,000 and 6,000,
    # 8,000 iterations, total batch 16 (8 clips + 8 images), up to 128 frames per video at inference.
    # Not in the paper (our choices): 16 training frames per clip, weight decay 1e-4, the augmentation.
    "paper": Profile("paper", size=224, fov=1.0, backbone="resnet50", weights="imagenet", widths=(), norm="batch",
                     train_frames=16, train_sampling="segments", eval_frames=128,
                     train=Schedule(8000, 8, "sgd", lr=0.005, weight_decay=1e-4, schedule="step", warmup=1000,
                                    milestones=(4000, 6000)), num_workers=4, augment_on="device"),
    # CPU-sized (our choices, on the validation split): the central 75 % of the frame at 64 px, a 4-block BatchNorm
    # CNN from scratch, AdamW + cosine, 4 frames x 1,104 steps (48 passes over the phantom's 191 training clips in
    # batches of 8). How each was chosen: docs/tuning.md#kga-net.
    "small": Profile("small", size=64, fov=0.75, backbone="small", weights=None, widths=(16, 32, 64, 128), norm="batch",
                     train_frames=4, train_sampling="segments", eval_frames=128,
                     train=Schedule(1104, 8, "adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine")),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`)."""
    return params.profile(PROFILES, name, **overrides)


def build_backbone(profile: Profile) -> nn.Module:
    """Frames (N, 1, H, W) -> features (N, D): the 2-D backbone shared by the video and image branches."""
    if profile.backbone == "small":
        return SmallCNN(in_channels=1, widths=profile.widths, norm=profile.norm)
    if profile.backbone in ("resnet18", "resnet50"):
        return resnet_backbone(int(profile.backbone[6:]), in_channels=1, weights=profile.weights)
    raise ValueError(f"backbone must be 'small', 'resnet18' or 'resnet50', got {profile.backbone!r}")


def build_model(profile: Profile, row: Row = Row()) -> KGANet:
    return KGANet(build_backbone(profile), num_classes=len(CLASSES), attention=row.attention)


# ---------------------------------------------------------------- data


def load_data(dataset: str, view: FieldOfView, images: str | bool | None = True, **source) -> BreastData:
    """Clips of any video source with still images for the image branch (`usnb.breast.load_breast`: data_dir,
    image_dir, positive, drop, folds, fold, ...): `images` True takes the source's own (the phantom's stills, BUSI with
    BUSV; none with the other sources: `rows` then leaves out the rows that need them), or an image source by name
    (busi, folders, manifest, phantom) at `image_dir`. The paper trains on every still image (BUSI has no patients in
    common with BUSV)."""
    if images is True:
        images = COMPANION_IMAGES.get(dataset)
    return load_breast(dataset, view, images=images or None, **source)


def rows(data: BreastData) -> list[str]:
    """Table 2's rows this data can train: those with the image branch need still images."""
    return [name for name, row in TABLE2_ROWS.items() if data.images or not row.images]


def train_dataset(data: BreastData, profile: Profile, row: Row):
    """(dataset, prepare): training clips (T frames, see Profile.train_sampling) paired 1:1 with still images, or
    clips alone (row 1), and `prepare(x, dims)`, the model's input from a uint8 batch. Where the crop + flip runs is
    decided once (`clip_augment`): in the loader (the datasets' transform) or on the device (in `prepare`)."""
    size = data.view.cache_size
    augment, prepare = clip_augment(data.view, profile.crop_scale, profile.augment_on)
    clips = ClipDataset(data.clips["train"], data.cache, data.classes, num_frames=profile.train_frames,
                        mode=profile.train_sampling, transform=augment)
    if not row.images:
        return clips, prepare
    images = ImageDataset(data.images, data.classes, size=(size, size), transform=augment, fit=data.cache.fit)
    return PairedDataset(clips, images), prepare


def make_step(row: Row, view: FieldOfView, lam: float = 1.0, prepare=None):
    """step_fn for `fit`: a batch of clips (and images) -> the Eq. (4) loss of this row. `prepare(x, dims)` makes the
    model's input from the uint8 batch (default `view`; see `clip_augment`)."""
    prepare = prepare or view

    def step(model, batch, device):
        clips, labels = prepare(batch[0].to(device, non_blocking=True), 4), batch[1].to(device)  # (B, T, 1, H, W)
        images = image_labels = None
        if row.images:
            images = prepare(batch[2].to(device, non_blocking=True), 3)  # (B, 1, H, W)
            image_labels = batch[3].to(device)
        return kganet_loss(model, clips, labels, images, image_labels, coherence=row.coherence, lam=lam)

    return step


def train_row(name: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
              device: torch.device | None = None, progress: bool = True) -> tuple[KGANet, list[dict]]:
    """Train one Table 2 row (or load its finished checkpoint with the same config): (model, history)."""
    row = TABLE2_ROWS[name]
    dataset, prepare = train_dataset(data, profile, row)
    config = stage_config(profile, "train", seed, row=asdict(row), dataset=data.dataset)
    return train_once(lambda: build_model(profile, row), name, dataset,
                      make_step(row, data.view, profile.lam, prepare), config, out_dir, device, progress)


# ---------------------------------------------------------------- prediction and evaluation


def predict(model: KGANet, records: Sequence[VideoRecord], data: BreastData, max_frames: int = 128,
            device: torch.device | None = None) -> Predictions:
    """The video network alone (Sec. 3.3): every frame of each video, uniformly subsampled to `max_frames`; keeps
    each frame's attention weight (`outputs["weights"]`)."""
    return predict_videos(model, records, data.cache, data.view, data.classes, all_frames(max_frames), device=device,
                          keep=("weights",))


def evaluate(model: KGANet, data: BreastData, max_frames: int = 128, device: torch.device | None = None
             ) -> tuple[dict, dict[str, Predictions]]:
    """Test metrics at the Youden threshold (chosen on the validation split when there is one; Tables 1-2)."""
    return evaluate_splits(lambda records: predict(model, records, data, max_frames, device), data.clips)


def attention_vs_distance(model: KGANet, preds: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 3e: every frame's attention weight w_i and its distance d_i = ||F_i - C^Y|| (Eq. 2) to its class center."""
    centers = model.center.centers.detach().float().cpu().numpy()  # (K, D)
    w = np.concatenate(preds.outputs["weights"])
    d = np.concatenate([np.linalg.norm(f - centers[y], axis=1) for f, y in zip(preds.frame_features, preds.labels)])
    return w, d


def gradcam(model: KGANet):
    """Grad-CAM per frame on the backbone's last stage (`with K.gradcam(model) as cam: cam(x, target_class)`)."""
    return frame_gradcam(model)  # the backbone's last stage (usnb.evaluate.last_stage)


def localisation(model: KGANet, records: Sequence[VideoRecord], data: BreastData, max_frames: int = 128,
                 k: float = 0.1) -> dict:
    """Pointing game and top-k IoU of Grad-CAM on every boxed frame (`usnb.evaluate.localisation`)."""
    return frame_localisation(model, None, records, data, data.classes, max_frames, k)


# ---------------------------------------------------------------- Table 1 video baselines (usnb.baselines)

BASELINES = ("I3D", "SlowFast", "R(2+1)D", "CSN", "MViT")  # Table 1's rows (usnb.baselines)


def baseline_unfit(name: str, profile: Profile) -> str | None:
    """Why this profile cannot train a Table 1 baseline (None: it can): MViT takes only 16 frames of 224 px."""
    return baselines.unfit(name, profile.size, profile.train_frames)


def train_baseline(name: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
                   weights: str | None = None, device: torch.device | None = None
                   ) -> tuple[dict, list[dict], dict[str, np.ndarray]]:
    """Train a Table 1 video baseline on clips + still images "treated as static videos" (Sec. 4.2) with the
    profile's schedule (CPU-sized in the small profile, see `usnb.baselines.video_baseline`): (test metrics at
    Youden's threshold, history, {split: P(malignant)})."""
    if baseline_unfit(name, profile):
        raise ValueError(baseline_unfit(name, profile))
    dataset, prepare = train_dataset(data, profile, Row())
    small = profile.name == "small"
    config = stage_config(profile, "train", seed, baseline=name, dataset=data.dataset, weights=weights, small=small)
    return baselines.train_baseline(name, dataset, prepare, config, data, data.classes, profile.train_frames, out_dir,
                                    weights, images=True, device=device, small=small)

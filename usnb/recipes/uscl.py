"""USCL recipe (Chen et al., "USCL: Pretraining Deep Ultrasound Image Diagnosis Model through Video Contrastive
Representation Learning", MICCAI 2021, arXiv:2011.13066; code github.com/983632847/USCL): the "USCL" row of MVCC's
Table 1 (Lin et al. 2022), on the user's data.

Pretraining reads the training clips without their labels: each clip gives a positive pair of two frames mixed with a
third (sample pair generation, `usnb.data.MixedFramePairs`), the other clips of the batch the negatives; a 2-D
ResNet-18 with SimCLR's projection head learns them with NT-Xent (`usnb.models.uscl`). Fine-tuning as MVCC's rows:
the pretrained backbone on each of T frames of a clip, the frame features averaged, a linear head, cross-entropy
(`usnb.train.fit`); a video is predicted from several T-frame views spread over it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import paper_claims, params
from ..breast import CLASSES, BreastData, load_breast, train_clips
from ..data import MixedFramePairs
from ..datasets.records import VideoRecord
from ..evaluate import Predictions, dict_outputs, evaluate_views, predict_views
from ..models.backbones import SmallCNN, resnet_backbone
from ..models.summary import n_params  # noqa: F401 (U.n_params in a notebook)
from ..models.uscl import FrameAverageClassifier, USCLPretrainer, pair_loss
from ..train import Schedule, TrainConfig, stage_config, train_once
from ..transforms import uscl_augment
from ..view import FieldOfView

PAPER_DATA = "US-4: 1,051 lung and liver US videos (POCUS, Butterfly, CLUST, Liver Fibrosis), 23,000+ frames"
# MVCC's Table 1 row "USCL" (MVCC's private breast videos, not ours; fractions, only the cells legible in our copy)
PAPER_ROW = paper_claims.TABLES["mvcc"]["Table 1"]["USCL"]
ROW = "USCL"


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` pretrains and fine-tunes on a 2-core CPU in about a minute, `paper` follows
    USCL's code for pretraining and MVCC's Sec. 3 for fine-tuning."""

    EVAL_ONLY = ("name", "eval_views", "channels_last")  # not in the checkpoint fingerprint (see learned_fields)
    name: str
    size: int  # frame side fed to the backbone, pixels
    fov: float  # the central fraction of each frame's side the model sees (1 = the whole frame)
    backbone: str  # "resnet18" (torchvision's, 2-D; `weights`) | "small" (usnb's SmallCNN, widths 16-128)
    weights: str | None  # backbone init: None, "imagenet" or a local torchvision ResNet-18 .pth (resnet18 only)
    frames: int  # T frames per clip when fine-tuning and predicting
    proj_dim: int  # projection head g: Linear(m, m)-ReLU-Linear(m, proj_dim)
    temperature: float  # NT-Xent tau
    alpha: float  # mixing weight lam ~ Beta(alpha, alpha)
    pretrain: Schedule  # contrastive pretraining, batch = clips (one positive pair each)
    finetune: Schedule  # the Table 1 row, batch = clips of T frames
    pair_scale: tuple[float, float] = (0.8, 1.0)  # pretraining crop area (USCL's RandomResizedCrop)
    jitter: float = 0.8  # pretraining brightness and contrast jitter (USCL's ColorJitter, s = 1)
    crop_scale: tuple[float, float] = (0.7, 1.0)  # fine-tuning: MVCC's scaling + cropping (+ flipping), once per clip
    dropout: float = 0.0
    eval_views: int = 4  # T-frame views per video at inference, spread over it; probabilities averaged
    num_workers: int = 0
    augment_on: str = "loader"  # fine-tuning crops: "loader" (CPU workers) | "device" (the batch on the model's device)
    channels_last: bool = False  # NHWC weights and activations: faster convolutions on GPUs, the same result


PROFILES = {
    # USCL's public code (train_USCL/, eval_pretrained_model/checkpoint/config.yaml): ResNet-18 (2-D), projection head
    # Linear(512, 512)-ReLU-Linear(512, 256), NT-Xent on cosine similarity with tau = 0.5, batch 32 videos, 300 epochs,
    # Adam lr 3e-4, weight decay 1e-4, cosine annealing, 224 px; pairs: 3 random frames of a video, lam ~ Beta(0.5, 0.5);
    # augmentation: random resized crop (area 0.8-1, aspect 0.8-1.25), flip, colour jitter (0.8, 0.8, 0.8, 0.2).
    # Random init, as the released config.yaml (`pretrained: False`; the paper's own text was not in our sources; pass
    # weights="imagenet" for an ImageNet start). Our choices: AdamW for Adam (usnb.train has no plain Adam; 1e-4 decoupled), cosine
    # from the first step (the code holds lr for 10 epochs first), 25,200 steps = 300 epochs of MVCC's 2,697 training
    # videos (84 batches of 32 each), grayscale frames (conv1 = the mean of the RGB filters), per-image standardisation
    # (the code: mean 0.5, std 0.25), no semi-supervised term (the code adds 0.2 x cross-entropy on labelled frames:
    # here pretraining reads no labels). Fine-tuning as MVCC's paper profile (usnb/recipes/mvcc.py): SGD lr 0.0075
    # (MVCC Sec. 3), batch 8, 10,110 steps (30 epochs), cosine, warmup 200, 16 frames, every layer trained.
    "paper": Profile("paper", size=224, fov=1.0, backbone="resnet18", weights=None, frames=16, proj_dim=256,
                     temperature=0.5, alpha=0.5,
                     pretrain=Schedule(25_200, 32, "adamw", lr=3e-4, weight_decay=1e-4, schedule="cosine"),
                     finetune=Schedule(10_110, 8, "sgd", lr=0.0075, weight_decay=1e-4, schedule="cosine", warmup=200),
                     num_workers=4, augment_on="device", channels_last=True),
    # CPU-sized (our choices, not tuned): 64 px on the central 75 %, SmallCNN (GroupNorm, widths 16-128, m = 128) from
    # random weights, projection to 64, 4 frames; 120 pretraining steps of 32 clips (24 passes over the phantom's 191
    # training clips) and 240 fine-tuning steps of 16 clips (22 passes), AdamW + cosine. USCL's tau, alpha, crops.
    "small": Profile("small", size=64, fov=0.75, backbone="small", weights=None, frames=4, proj_dim=64,
                     temperature=0.5, alpha=0.5,
                     pretrain=Schedule(120, 32, "adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup=10),
                     finetune=Schedule(240, 16, "adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=20,
                                       clip_grad=1.0)),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`); the
    backbone one of "resnet18", "small", tau and alpha > 0."""
    profile = params.profile(PROFILES, name, **overrides)
    params.choice("backbone", profile.backbone, ("resnet18", "small"))
    params.number("temperature", profile.temperature, low=1e-3)
    params.number("alpha", profile.alpha, low=1e-3)
    if profile.backbone == "small" and profile.weights:
        raise ValueError(f"weights={profile.weights!r} loads a ResNet-18; the small backbone starts from random "
                         "weights. Fix: backbone='resnet18', or weights=None")
    return profile


def build_backbone(profile: Profile) -> nn.Module:
    """The 2-D backbone: frames (N, 1, H, W) -> features (N, m)."""
    if profile.backbone == "resnet18":
        return resnet_backbone(18, in_channels=1, weights=profile.weights)
    return SmallCNN(in_channels=1)


def build_pretrainer(profile: Profile) -> USCLPretrainer:
    return USCLPretrainer(build_backbone(profile), proj_dim=profile.proj_dim)


def build_classifier(profile: Profile, backbone: nn.Module | None = None) -> FrameAverageClassifier:
    return FrameAverageClassifier(backbone or build_backbone(profile), len(CLASSES), profile.dropout)


# ---------------------------------------------------------------- data


load_data = load_breast  # (dataset, view, **source): clips by split of any source, the task mapped (usnb.breast)


def pair_dataset(data: BreastData, profile: Profile) -> MixedFramePairs:
    """The training clips as positive pairs (labels unused): frames augmented at the cache size, then mixed."""
    return MixedFramePairs(data.clips["train"], data.cache,
                           uscl_augment(data.view.cache_size, profile.pair_scale, profile.jitter), profile.alpha)


def train_dataset(data: BreastData, profile: Profile):
    """(dataset, prepare): training clips of T frames, one random frame per segment, one random crop + flip per clip
    (MVCC's fine-tuning; `usnb.breast.train_clips`)."""
    return train_clips(data, profile.frames, profile.crop_scale, profile.augment_on)


# ---------------------------------------------------------------- pretraining and the Table 1 row


def make_pretrain_step(view: FieldOfView, temperature: float):
    """step_fn: a batch (B, 2, C, H, W) of mixed pairs -> NT-Xent on their projections (`usnb.models.uscl.pair_loss`);
    each view cut to the field of view and standardised on its own."""

    def step(model, batch, device):
        return pair_loss(model, view(batch.to(device, non_blocking=True), dims=3), temperature)

    return step


def pretrain(data: BreastData, profile: Profile, seed: int, out_dir: str | Path, device: torch.device | None = None,
             progress: bool = True) -> tuple[USCLPretrainer, list[dict], TrainConfig]:
    """USCL on the training clips (no labels): (model, history, config)."""
    config = stage_config(profile, "pretrain", seed, dataset=data.dataset)
    model, history = train_once(lambda: build_pretrainer(profile), "uscl pretrain", pair_dataset(data, profile),
                                make_pretrain_step(data.view, profile.temperature), config, out_dir, device, progress)
    return model, history, config


def make_finetune_step(prepare):
    """step_fn: clips (B, T, 1, H, W) -> cross-entropy of the video logits; `prepare(x, dims)` makes the model's input
    from the uint8 batch (`train_dataset`)."""

    def step(model, batch, device):
        x, y = prepare(batch[0].to(device, non_blocking=True), 4), batch[1].to(device)
        logits = model(x)["logits"]
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}

    return step


def train_row(data: BreastData, profile: Profile, seed: int, out_dir: str | Path, device: torch.device | None = None,
              progress: bool = True) -> tuple[FrameAverageClassifier, dict]:
    """Pretrain, then fine-tune the USCL row (or load their finished checkpoints):
    (classifier, {"pretrain": history, "finetune": history})."""
    histories = {}
    pretrainer, histories["pretrain"], pre_config = pretrain(data, profile, seed, out_dir, device, progress)
    backbone = copy.deepcopy(pretrainer.backbone)  # the projection head g is dropped, as in USCL
    config = stage_config(profile, "finetune", seed, pretrain=pre_config.fingerprint(), dataset=data.dataset)
    dataset, prepare = train_dataset(data, profile)
    model, histories["finetune"] = train_once(lambda: build_classifier(profile, backbone), ROW, dataset,
                                              make_finetune_step(prepare), config, out_dir, device, progress)
    return model, histories


# ---------------------------------------------------------------- prediction and evaluation


def predict(model: FrameAverageClassifier, records: Sequence[VideoRecord], data: BreastData, profile: Profile,
            device: torch.device | None = None) -> Predictions:
    """P(malignant) and the mean frame feature per video, each the mean over `profile.eval_views` T-frame views."""
    return predict_views(model, records, data, profile.frames, profile.eval_views, dict_outputs, device)


def evaluate(model: FrameAverageClassifier, data: BreastData, profile: Profile, device: torch.device | None = None
             ) -> tuple[dict, dict[str, Predictions]]:
    """Test metrics at the Youden threshold chosen on the validation split (the test split where there is none)."""
    return evaluate_views(model, data, profile.frames, profile.eval_views, dict_outputs, device)
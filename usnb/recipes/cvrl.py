"""CVRL recipe (Qian et al., "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021,
arXiv:2008.03800), the "CVRL" row of MVCC's Table 1: contrastive pretraining of a 3-D ResNet-50 on the user's
unlabelled training clips, then fine-tuning it with a linear head and cross-entropy as MVCC fine-tunes its rows.

Pretraining: two clips of T frames (every `stride`-th) from each training video, their starts an interval apart drawn
from a decreasing distribution (`usnb.sampling.interval_pair_indices`); each clip augmented once for all its frames
(crop, flip, colour jitter, blur, solarisation; `usnb.gpu_augment.ConsistentAugment`, on the model's device); the
InfoNCE loss on their projections (`usnb.models.cvrl.CVRL`). Fine-tuning and prediction: MVCC's clips and views
(`usnb.breast.train_clips`, `usnb.evaluate.view_indices`). The networks read grey clips (B, 1, T, H, W).

Grey frames: saturation, hue and the grayscale conversion are identities, and the per-clip standardisation every usnb
model input gets removes most of a brightness or contrast change (what survives is the clipping at 0 and 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import paper_claims, params
from ..breast import CLASSES, BreastData, load_breast, train_clips
from ..data import ClipPairs
from ..datasets.records import VideoRecord
from ..evaluate import Predictions, evaluate_views, predict_views
from ..gpu_augment import ConsistentAugment
from ..models.cvrl import CVRL, R3DClassifier, r3d_resnet
from ..models.summary import n_params  # noqa: F401 (C.n_params in notebook 01)
from ..train import Schedule, TrainConfig, stage_config, train_once

PAPER_DATA = "its private breast US videos"  # MVCC's Table 1 row; the CVRL paper pretrains on Kinetics-400 / 600
PAPER_ROW = paper_claims.TABLES["mvcc"]["Table 1"]["CVRL"]  # MVCC's CVRL row (its private data, not ours)
ROW = "CVRL"


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` pretrains and fine-tunes on a 2-core CPU in about a minute, `paper` follows
    CVRL's pretraining (Sec. 4.1 and the public code) and MVCC's fine-tuning."""

    EVAL_ONLY = ("name", "eval_views")  # not in the checkpoint fingerprint (see learned_fields)
    name: str
    size: int  # frame side fed to the encoder, pixels
    fov: float  # the central fraction of each frame's side the model sees (1 = the whole frame)
    frames: int  # T frames per clip (pretraining, fine-tuning, each view at inference)
    stride: int  # pretraining clips take every stride-th frame
    width: int  # stem channels of the R3D (64: R3D-50; stages 4, 8, 16, 32 times that out)
    depth: int  # 50 (3/4/6/3 bottlenecks) or 152
    stem_time: int  # the stem's temporal kernel
    stem_time_stride: int
    proj_hidden: int  # projection MLP: hidden units, hidden layers, output
    proj_layers: int
    proj_dim: int
    temperature: float  # InfoNCE
    pretrain: Schedule  # contrastive pretraining on the training clips (labels unused)
    finetune: Schedule  # encoder + linear head, cross-entropy
    crop_area: tuple[float, float] = (0.3, 1.0)  # pretraining crop: area fraction, aspect ratio
    crop_ratio: tuple[float, float] = (0.5, 2.0)
    jitter: float = 1.0  # colour jitter strength (brightness and contrast 0.8 strength)
    blur_p: tuple[float, float] = (1.0, 0.1)  # per clip of the pair
    solarize_p: tuple[float, float] = (0.0, 0.2)
    crop_scale: tuple[float, float] = (0.7, 1.0)  # fine-tuning: MVCC's crop (aspect kept) + flip, once per clip
    eval_views: int = 4  # T-frame views per video at inference, spread over it; probabilities averaged
    num_workers: int = 0
    augment_on: str = "device"  # fine-tuning crops: "loader" (CPU workers) | "device"; pretraining: on the device


PROFILES = {
    # CVRL (Sec. 4.1; public code official/projects/video_ssl, configs/experiments/cvrl_pretrain_k600_200ep.yaml,
    # configs/video_ssl.py, dataloaders/video_ssl_input.py): R3D-50 with a 5x7x7 stem, temporal stride 2; 16 frames
    # every 2nd frame at 224 px; projection 3 x 2048 hidden -> 128; InfoNCE tau 0.1; batch 1024, lr 0.32, cosine, warmup
    # 5 epochs, weight decay 1e-6 (L2); LARS as the paper states it (the public yaml trains with momentum SGD at the
    # same lr); 800 epochs (the public README's best checkpoints; the yaml: 200); crop (0.3, 1) x (0.5, 2), flip,
    # jitter p 0.8, gray p 0.2, blur p 1 / 0.1, solarisation p 0 / 0.2. Our choices: batch 64 (128 clips of
    # 16 x 224 x 224 on one GPU) with lr 0.32 x 64 / 1024 = 0.02 (linear scaling), 800 epochs of MVCC's 2,697 training
    # videos = 33,600 steps (42 per epoch), warmup 210; the whole frame (fov 1); fine-tuning as MVCC's paper profile
    # (SGD lr 0.0075 from MVCC Sec. 3; batch 8, 10,110 steps, cosine: that recipe's choices).
    "paper": Profile("paper", size=224, fov=1.0, frames=16, stride=2, width=64, depth=50, stem_time=5,
                     stem_time_stride=2, proj_hidden=2048, proj_layers=3, proj_dim=128, temperature=0.1,
                     pretrain=Schedule(33_600, 64, "lars", lr=0.02, weight_decay=1e-6, schedule="cosine", warmup=210),
                     finetune=Schedule(10_110, 8, "sgd", lr=0.0075, weight_decay=1e-4, schedule="cosine", warmup=200),
                     num_workers=4),
    # CPU-sized (our choices): 64 px, the central 75 % of the frame, 8 frames (stride 2 in pretraining: a clip spans
    # 15 of the phantom's 32 frames), R3D-50 at width 16 (2.0 M parameters: every stage 1/4 as wide, depth kept so the
    # temporal kernels sit where the paper's do), projection 3 x 512 -> 128 (2048 scaled as the width); AdamW + cosine,
    # gradients clipped to 1, as MVCC's small rows; 88 pretraining and 110 fine-tuning steps in batches of 16
    # (8 and 10 passes over the phantom's 191 training clips, 11 batches each): 198 optimizer steps in all.
    "small": Profile("small", size=64, fov=0.75, frames=8, stride=2, width=16, depth=50, stem_time=5,
                     stem_time_stride=2, proj_hidden=512, proj_layers=3, proj_dim=128, temperature=0.1,
                     pretrain=Schedule(88, 16, "adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=10,
                                       clip_grad=1.0),
                     finetune=Schedule(110, 16, "adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=10,
                                       clip_grad=1.0)),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`); the
    temperature > 0 and the augmentation probabilities in [0, 1]."""
    profile = params.profile(PROFILES, name, **overrides)
    params.number("temperature", profile.temperature, low=1e-6)
    for key in ("blur_p", "solarize_p"):
        for p in getattr(profile, key):
            params.fraction(key, p)
    params.choice("augment_on", profile.augment_on, ("loader", "device"))
    return profile


def build_encoder(profile: Profile):
    """The R3D (grey input, no head): (B, 1, T, H, W) -> (B, 32 width)."""
    return r3d_resnet(profile.depth, None, profile.width, 1, profile.stem_time, profile.stem_time_stride)


def build_pretrainer(profile: Profile) -> CVRL:
    return CVRL(build_encoder(profile), profile.proj_hidden, profile.proj_dim, profile.proj_layers,
                profile.temperature)


def build_classifier(profile: Profile, encoder=None) -> R3DClassifier:
    return R3DClassifier(encoder if encoder is not None else build_encoder(profile), len(CLASSES))


# ---------------------------------------------------------------- data


load_data = load_breast  # (dataset, view, **source): clips by split of any source, the task mapped (usnb.breast)


def pair_augment(data: BreastData, profile: Profile) -> ConsistentAugment:
    return ConsistentAugment(profile.size, profile.crop_area, profile.crop_ratio, data.view.fraction, profile.jitter)


# ---------------------------------------------------------------- contrastive pretraining


def make_pretrain_step(profile: Profile, augment: ConsistentAugment):
    """step_fn: a batch of clip pairs (B, 2, T, 1, H, W) uint8 -> InfoNCE of the two augmented clips of each video."""

    def step(model, batch, device):
        x = batch.to(device, non_blocking=True)
        v1 = augment(x[:, 0], profile.blur_p[0], profile.solarize_p[0])  # (B, T, 1, s, s) standardised
        v2 = augment(x[:, 1], profile.blur_p[1], profile.solarize_p[1])
        return model(v1, v2), {}

    return step


def pretrain(data: BreastData, profile: Profile, seed: int, out_dir: str | Path, device: torch.device | None = None,
             progress: bool = True) -> tuple[CVRL, list[dict], TrainConfig]:
    """CVRL on the training clips (labels unused): (model, history, config)."""
    config = stage_config(profile, "pretrain", seed, dataset=data.dataset)
    dataset = ClipPairs(data.clips["train"], data.cache, profile.frames, profile.stride)
    model, history = train_once(lambda: build_pretrainer(profile), f"{ROW} pretrain", dataset,
                                make_pretrain_step(profile, pair_augment(data, profile)), config, out_dir, device,
                                progress)
    return model, history, config


def make_finetune_step(prepare):
    """step_fn: cross-entropy of the classifier; `prepare(x, dims)` the model's input from the uint8 clips."""

    def step(model, batch, device):
        x, y = prepare(batch[0].to(device, non_blocking=True), 4), batch[1].to(device)
        return torch.nn.functional.cross_entropy(model(x), y), {}

    return step


def train_row(data: BreastData, profile: Profile, seed: int, out_dir: str | Path, device: torch.device | None = None,
              progress: bool = True) -> tuple[R3DClassifier, dict]:
    """Pretrain (or load) CVRL, then fine-tune (or load) the encoder + a linear head:
    (classifier, {"pretrain": history, "finetune": history})."""
    histories = {}
    cvrl, histories["pretrain"], pre_config = pretrain(data, profile, seed, out_dir, device, progress)
    config = stage_config(profile, "finetune", seed, pretrain=pre_config.fingerprint(), dataset=data.dataset)
    dataset, prepare = train_clips(data, profile.frames, profile.crop_scale, profile.augment_on)
    model, histories["finetune"] = train_once(lambda: build_classifier(profile, cvrl.encoder), ROW, dataset,
                                              make_finetune_step(prepare), config, out_dir, device, progress)
    return model, histories


# ---------------------------------------------------------------- prediction and evaluation


def encoder_outputs(model: R3DClassifier, x: torch.Tensor) -> dict:
    """The classifier's logits (V, K) and pooled feature (V, D) for a batch of V views (B, T, 1, H, W)."""
    logits, f = model(x, return_features=True)
    return {"logits": logits, "video_feature": f}


def predict(model: R3DClassifier, records: Sequence[VideoRecord], data: BreastData, profile: Profile,
            device: torch.device | None = None) -> Predictions:
    """P(malignant) and the pooled feature per video, each the mean over `profile.eval_views` T-frame views."""
    return predict_views(model, records, data, profile.frames, profile.eval_views, encoder_outputs, device)


def evaluate(model: R3DClassifier, data: BreastData, profile: Profile, device: torch.device | None = None
             ) -> tuple[dict, dict[str, Predictions]]:
    """Test metrics at the Youden threshold chosen on the validation split (the test split where there is none)."""
    return evaluate_views(model, data, profile.frames, profile.eval_views, encoder_outputs, device)


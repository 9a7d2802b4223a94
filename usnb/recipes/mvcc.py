"""MVCC recipe (Lin et al., MICCAI 2022): profiles, data, masked video pretraining, Table 1 rows, evaluation.

The models and losses live in `usnb.models.timesformer` (TimeSformer encoder, MAE decoder) and `usnb.models.mvcc`
(dual-level masks, MAE loss, C-SCL Eq. 1-7, SCL, Eq. 8). This module pretrains the encoder as a masked auto-encoder
with one masking strategy (patch, frame or dual level), fine-tunes each Table 1 row with the one loop
(`usnb.train.fit`), and predicts a video from several T-frame views spread over it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import paper_claims, params
from ..breast import CLASSES, BreastData, load_breast, train_clips
from ..datasets.records import VideoRecord
from ..evaluate import Predictions, VideoLogits, evaluate_views, predict_views, view_indices
from ..evaluate import localisation as gradcam_localisation
from ..models.mvcc import MaskedVideoModel, dual_level_mask, mvcc_loss, strategy_ratios
from ..models.summary import n_params  # noqa: F401 (M.n_params in notebook 01)
from ..models.timesformer import TimeSformer, TimeSformerClassifier, load_pretrained, patchify, unpatchify
from ..train import Schedule, TrainConfig, stage_config, train_once
from ..view import frames

PAPER_DATA = "its private breast US videos"  # 3,854 in-house videos, 2,697 / 385 / 772 train / val / test
PAPER_TABLES = paper_claims.TABLES["mvcc"]  # the paper's Table 1 (its private data, not ours)
PAPER_TABLE1 = PAPER_TABLES["Table 1"]
# The paper's claims about its own rows (quote, section; judged on our runs by usnb.claims.judge_all) and its test
# split as (positives, negatives, cases per column), for the CIs its own numbers carry: usnb/paper_claims.py.
CLAIMS = paper_claims.CLAIMS["mvcc"]
PAPER_TEST = paper_claims.paper_test("mvcc")
OTHER_RECIPES = {"USCL": "uscl", "CVRL": "cvrl"}  # Table 1's other pretraining methods: usnb.recipes.<name>


@dataclass(frozen=True)
class Row:
    """One Table 1 row: which masked pretraining (None: none) and which contrastive loss (None: CE only)."""

    pretrain: str | None = None  # "patch" | "frame" | "dual"
    contrastive: str | None = None  # "scl" | "cscl"


TABLE1_ROWS = {
    "Baseline": Row(),  # TimeSformer, cross-entropy only (the paper: Kinetics-400 weights)
    "+SCL": Row(contrastive="scl"),
    "+C-SCL": Row(contrastive="cscl"),
    "MVCC-Patch": Row("patch", "cscl"),
    "MVCC-Frame": Row("frame", "cscl"),
    "MVCC": Row("dual", "cscl"),
}


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` runs every row on a 2-core CPU in minutes, `paper` follows Sec. 3."""

    EVAL_ONLY = ("name", "eval_views")  # not in the checkpoint fingerprint (see learned_fields)
    name: str
    size: int  # frame side fed to the encoder, pixels
    fov: float  # the central fraction of each frame's side the model sees (1 = the whole frame)
    patch: int
    frames: int  # T frames per clip
    dim: int
    depth: int
    heads: int
    stem: str  # patch embedding: "linear" (ViT, loads pretrained weights) | "conv" (a per-patch CNN, see ConvStem)
    weights: str | None  # encoder init of every row: None, "imagenet", or a local ViT / TimeSformer file
    decoder_dim: int
    decoder_depth: int
    decoder_heads: int
    alpha: float  # frame-level mask ratio
    beta: float  # patch-level mask ratio (of each kept frame)
    pretrain: Schedule  # masked video modeling, one per strategy
    finetune: Schedule  # each Table 1 row
    norm_pix: bool = False  # MAE target: raw (standardised-clip) pixels, or each patch standardised
    lam: float = 0.1  # Eq. (8)
    tau: float | None = None  # None: C-SCL 0.1, SCL 0.07
    crop_scale: tuple[float, float] = (0.7, 1.0)  # scaling + cropping (+ flipping), drawn once per clip
    dropout: float = 0.0
    eval_views: int = 4  # T-frame views per video at inference, spread over it; probabilities averaged
    num_workers: int = 0
    augment_on: str = "loader"  # crops: "loader" (CPU workers) | "device" (the batch on the model's device)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (t, h, w) of one clip."""
        return self.frames, self.size // self.patch, self.size // self.patch


PROFILES = {
    # Sec. 3: TimeSformer ViT-B/16 at 224 px; SGD lr 0.0075; lambda = 0.1; scaling, flipping, cropping. Not in the
    # paper (our choices): 16 frames, ImageNet ViT weights (Kinetics TimeSformer weights as a local file give the
    # paper's Baseline), the decoder size (MAE's, 4 blocks), alpha = 0.5, beta = 0.75 (the paper does not give
    # them), batch 8, 100 pretraining and 30 fine-tuning epochs of the paper's 2,697 training videos (33,700 and
    # 10,110 steps: 337 per epoch), AdamW for pretraining (MAE's), cosine decay, tau = 0.1 (C-SCL).
    "paper": Profile("paper", size=224, fov=1.0, patch=16, frames=16, dim=768, depth=12, heads=12, stem="linear", weights="imagenet",
                     decoder_dim=384, decoder_depth=4, decoder_heads=6, alpha=0.5, beta=0.75,
                     pretrain=Schedule(33_700, 8, "adamw", lr=1.5e-4, weight_decay=0.05, schedule="cosine", warmup=200),
                     finetune=Schedule(10_110, 8, "sgd", lr=0.0075, weight_decay=1e-4, schedule="cosine", warmup=200),
                     num_workers=4, augment_on="device"),
    # CPU-sized (our choices, on the validation split): 64 px, 4 frames, a 2-block width-64 TimeSformer with a conv
    # stem, AdamW + cosine, gradients clipped to norm 1; 88 pretraining and 990 fine-tuning steps (8 and 90 passes
    # over the phantom's 191 training clips in batches of 16). How each was chosen: docs/tuning.md#mvcc.
    "small": Profile("small", size=64, fov=0.75, patch=16, frames=4, dim=64, depth=2, heads=4, stem="conv",
                     weights=None, decoder_dim=32, decoder_depth=1, decoder_heads=4, alpha=0.5, beta=0.75,
                     pretrain=Schedule(88, 16, "adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=20,
                                       clip_grad=1.0),
                     finetune=Schedule(990, 16, "adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=20,
                                       clip_grad=1.0), augment_on="device"),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`); the mask
    ratios alpha and beta in [0, 0.95] (a clip must keep visible tokens)."""
    profile = params.profile(PROFILES, name, **overrides)
    for key in ("alpha", "beta"):
        params.number(key, getattr(profile, key), low=0, high=0.95)
    return profile


def build_encoder(profile: Profile, weights: str | None = None) -> TimeSformer:
    enc = TimeSformer(img_size=profile.size, patch=profile.patch, frames=profile.frames, in_channels=1,
                      dim=profile.dim, depth=profile.depth, heads=profile.heads, stem=profile.stem)
    load_pretrained(enc, weights)
    return enc


def build_classifier(profile: Profile, encoder: TimeSformer | None = None) -> TimeSformerClassifier:
    return TimeSformerClassifier(encoder or build_encoder(profile, profile.weights), len(CLASSES), profile.dropout)


def build_pretrainer(profile: Profile) -> MaskedVideoModel:
    return MaskedVideoModel(build_encoder(profile, profile.weights), profile.decoder_dim, profile.decoder_depth,
                            profile.decoder_heads)


# ---------------------------------------------------------------- data


load_data = load_breast  # (dataset, view, **source): clips by split of any source, the task mapped (usnb.breast)


def train_dataset(data: BreastData, profile: Profile):
    """(dataset, prepare): training clips of T frames, one random frame per segment, with a random crop (scaling +
    cropping, aspect kept) and a horizontal flip drawn once per clip (Sec. 3; `usnb.breast.train_clips`)."""
    return train_clips(data, profile.frames, profile.crop_scale, profile.augment_on)


# ---------------------------------------------------------------- masked video pretraining


def make_pretrain_step(profile: Profile, strategy: str, prepare):
    """step_fn: a batch of clips -> MSE on the masked patches of De(En(x_hat)), masks drawn by `strategy`.
    `prepare(x, dims)`: the model's input from the uint8 batch (`train_dataset`)."""
    alpha, beta = strategy_ratios(strategy, profile.alpha, profile.beta)
    t, gh, gw = profile.grid

    def step(model, batch, device):
        x = prepare(batch[0].to(device, non_blocking=True), 4)  # (B, T, 1, H, W), standardised per clip
        mask = dual_level_mask(x.shape[0], t, gh * gw, alpha, beta, device=device)  # (B, T, N), torch's RNG
        return model.loss(x, mask, profile.norm_pix), {}

    return step


def pretrain(strategy: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
             device: torch.device | None = None, progress: bool = True) -> tuple[MaskedVideoModel, list[dict], TrainConfig]:
    """Masked video modeling on the training clips (no labels): (model, history, config)."""
    alpha, beta = strategy_ratios(strategy, profile.alpha, profile.beta)
    config = stage_config(profile, "pretrain", seed, strategy=strategy, alpha=alpha, beta=beta, dataset=data.dataset)
    dataset, prepare = train_dataset(data, profile)
    model, history = train_once(lambda: build_pretrainer(profile), f"pretrain {strategy}", dataset,
                                make_pretrain_step(profile, strategy, prepare), config, out_dir, device, progress)
    return model, history, config


def make_finetune_step(row: Row, profile: Profile, prepare):
    """step_fn: Eq. (8), L = L_cls + lambda L_con (L_con: SCL or C-SCL; none for the Baseline); `prepare` as in
    `make_pretrain_step`."""

    def step(model, batch, device):
        x, y = prepare(batch[0].to(device, non_blocking=True), 4), batch[1].to(device)
        return mvcc_loss(model, x, y, row.contrastive, profile.lam, profile.tau)

    return step


def train_row(name: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
              device: torch.device | None = None, progress: bool = True) -> tuple[TimeSformerClassifier, dict]:
    """Train one Table 1 row (or load its finished checkpoints): (classifier, {"pretrain": history, "finetune": history})."""
    row = TABLE1_ROWS[name]
    histories, extra = {}, {}
    encoder = None
    if row.pretrain:
        mvm, histories["pretrain"], pre_config = pretrain(row.pretrain, data, profile, seed, out_dir, device, progress)
        encoder, extra["pretrain"] = mvm.encoder, pre_config.fingerprint()
    config = stage_config(profile, "finetune", seed, row=asdict(row), dataset=data.dataset, **extra)
    dataset, prepare = train_dataset(data, profile)
    model, histories["finetune"] = train_once(lambda: build_classifier(profile, encoder), name, dataset,
                                              make_finetune_step(row, profile, prepare), config, out_dir, device,
                                              progress)
    return model, histories


# ---------------------------------------------------------------- prediction and evaluation


def clip_tensor(record: VideoRecord, data: BreastData, indices) -> torch.Tensor:
    """uint8 frames of `record` at `indices` -> (1, T, 1, H, W) float pixels of the model's field of view."""
    return data.view.crop(frames(data.cache.get(record), indices))


def encoder_outputs(model: TimeSformerClassifier, x: torch.Tensor) -> dict:
    """The classifier's logits (V, K) and q = En(x) (V, D) for a batch of V views, as `usnb.evaluate.predict` reads them."""
    logits, q = model(x, return_features=True)
    return {"logits": logits, "video_feature": q}


def predict(model: TimeSformerClassifier, records: Sequence[VideoRecord], data: BreastData, profile: Profile,
            device: torch.device | None = None) -> Predictions:
    """P(malignant) and q = En(x) per video, each the mean over `profile.eval_views` T-frame views spread over it."""
    return predict_views(model, records, data, profile.frames, profile.eval_views, encoder_outputs, device)


def evaluate(model: TimeSformerClassifier, data: BreastData, profile: Profile, device: torch.device | None = None
             ) -> tuple[dict, dict[str, Predictions]]:
    """Test metrics at the Youden threshold chosen on the validation split (the test split where there is none)."""
    return evaluate_views(model, data, profile.frames, profile.eval_views, encoder_outputs, device)


# ---------------------------------------------------------------- figures and explanations


def mask_examples(profile: Profile, seed: int = 0, alpha: float | None = None, beta: float | None = None
                  ) -> dict[str, torch.Tensor]:
    """One mask (T, N) per strategy, drawn with a fixed generator: {"MVCC-Patch": ..., "MVCC-Frame": ..., "MVCC": ...}."""
    t, gh, gw = profile.grid
    a, b = profile.alpha if alpha is None else alpha, profile.beta if beta is None else beta
    out = {}
    for name, strategy in (("MVCC-Patch", "patch"), ("MVCC-Frame", "frame"), ("MVCC", "dual")):
        ra, rb = strategy_ratios(strategy, a, b)
        out[name] = dual_level_mask(1, t, gh * gw, ra, rb, generator=torch.Generator().manual_seed(seed))[0]
    return out


@torch.no_grad()
def reconstruct(mvm: MaskedVideoModel, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x: (1, T, 1, H, W) standardised, mask (1, T, N) -> reconstruction (T, 1, H, W), visible patches pasted back."""
    was_training = mvm.training
    mvm.eval()
    pred = mvm(x, mask)  # (1, T, N, P)
    mvm.train(was_training)
    p = torch.where(mask[..., None], pred.float(), patchify(x.float(), mvm.encoder.patch))
    return unpatchify(p, mvm.encoder.patch, mvm.encoder.grid)[0]


def gradcam(model: TimeSformerClassifier, profile: Profile):
    """Grad-CAM on the encoder's final token grid (kind="tokens"): `with M.gradcam(model, P) as cam: cam(x, 1)`, x
    (B, T, 1, H, W) pixels of the field of view -> CAM (B, T, H, W)."""
    from ..explain import GradCAM

    return GradCAM(VideoLogits(model), model.encoder.norm, kind="tokens", token_grid=profile.grid)


def localisation(model: TimeSformerClassifier, records: Sequence[VideoRecord], data: BreastData, profile: Profile,
                 k: float = 0.1) -> dict:
    """Grad-CAM for each clip's true class on its boxed frames among the T frames of the first view
    (`usnb.evaluate.localisation`)."""
    with gradcam(model, profile) as cam:
        return gradcam_localisation(cam, records, data.cache, data.view, data.classes,
                                    lambda n: view_indices(n, profile.frames, 1), k)


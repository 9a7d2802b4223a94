"""CLMAN recipe (Huang et al., Front. Oncol. 2022): profiles, SimCLR pretraining on frames, Table 1-4 rows, evaluation.

The model and the aggregators (Eq. 1-6): `usnb.models.clman`. SimCLR (LARS + cosine) pretrains the deformed ResNet-18,
each table row is fine-tuned (`usnb.train.fit`), a video is classified from all its frames.
"""
from __future__ import annotations

import time

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import baselines, paper_claims, params, probe
from ..breast import CLASSES, BreastData, load_breast, train_clips
from ..data import FrameViews, label_index
from ..datasets.records import VideoRecord
from ..evaluate import Predictions, all_frames, evaluate_splits, frame_gradcam, frame_localisation, patients
from ..evaluate import predict as predict_videos
from ..models.clman import CLMAN, DeformedResNet18, FrameSimCLR, VideoHead
from ..models.contrastive import nt_xent, top1_positive
from ..train import Schedule, TrainConfig, stage_config, train_once
from ..transforms import simclr_augment
from ..view import FieldOfView

PAPER_DATA = "its private breast US videos"  # 268 sequences, 107 test (Sec. 4.1); not released

PAPER_TABLES = paper_claims.TABLES["clman"]  # the paper's Tables 1-4 (its private test set, not our data)
PAPER_TABLE3 = PAPER_TABLES["Table 3"]
CLAIMS = paper_claims.CLAIMS["clman"]  # its claims on its rows, judged on our runs by usnb.claims.judge_all
PAPER_TEST = paper_claims.paper_test("clman")  # its test split, for the CIs its own numbers carry
BASELINES = ("R3D", "TimeSformer", "MC3", "P3D", "R(2+1)D", "TIN Res34", "TIN Res50", "TIN Res18", "TSM")  # Table 4
load_data = load_breast  # clips by split of any video source, the task mapped and split (data_cards/ for each)


@dataclass(frozen=True)
class Row:
    """One trained network: which parts of CLMAN are on."""

    norm: str = "group"  # "batch" (vanilla ResNet-18) | "group" (GroupNorm, Sec. 3.1)
    non_local: bool = True  # non-local blocks after stages 3 and 4
    contrastive: bool = True  # start from the SimCLR-pretrained backbone (Sec. 3.2)
    aggregator: str = "multi-meta"  # Eq. (3)-(6), or a Table 3 alternative


# Every paper row -> the network that fills it. One run can fill rows of two tables (the paper's own numbers show
# it: Table 1's last row is Table 2's first, Table 2's last is Table 3's last and Table 4's CLMA-Net).
ROWS = {
    "ResNet18 (vanilla)": Row("batch", False, False),
    "ResNet18 + GN": Row("group", False, False),
    "ResNet18 + NL": Row("batch", True, False),
    "ResNet18 + GN + NL (ours)": Row("group", True, False),
    "Without CL Guided": Row("group", True, False),
    "With CL (ours)": Row(),
    "With External Attention": Row(aggregator="external"),
    "With Self-attention": Row(aggregator="self-attention"),
    "With Efficient Multi-head Self-attention": Row(aggregator="emsa"),
    "With LSTM": Row(aggregator="lstm"),
    "With Average": Row(aggregator="average"),
    "With Max-pooling": Row(aggregator="max"),
    "With Multi-meta Attn (ours)": Row(),
}
FULL_ROW = "With CL (ours)"  # CLMAN: the acceptance row
FIG5 = ("R3D", "MC3", "P3D", "R(2+1)D", "TSM")  # Fig. 5: "the above five of the nine methods", with CLMAN


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` runs every table on a 2-core CPU in minutes, `paper` follows Sec. 4.3."""

    EVAL_ONLY = ("name", "eval_frames", "channels_last", "rows", "table3")  # not fingerprinted (learned_fields)
    name: str
    size: int  # frame side fed to the model, pixels
    fov: float  # central fraction of each frame's side the model sees (1 = the whole frame)
    width: int  # ResNet-18 stage-1 width (64 = the paper's ResNet-18, feature dimension m = 8 * width)
    stem_pool: bool  # the stem's max pool (off for small frames)
    train_frames: int  # T
    finetune: Schedule  # Sec. 4.3: SGD lr 1e-4, momentum 0.9, weight decay 5e-4, batch 8, 320 epochs, CE loss
    simclr: Schedule  # Sec. 3.2, 4.3: NT-Xent, LARS, lr 9e-3, weight decay 1e-6, batch 64, cosine annealing
    eval_frames: int  # up to this many frames per video at inference (all of the phantom's 32)
    crop_scale: tuple[float, float] = (0.8, 1.0)  # clip augmentation: random crop (aspect kept) + flip
    simclr_frames: int = 4  # M frames from each of simclr.batch clips (N * M frames per step, two views each)
    temperature: float = 0.5  # NT-Xent tau (not given in the paper; SimCLR's CIFAR-10 value)
    proj_dim: int = 128
    # Table 3: "full" fine-tunes a CLMAN per aggregator (the paper); "frozen" heads on SimCLR features (7 in seconds)
    table3: str = "full"
    head: Schedule = Schedule(621, 8, "adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine")  # the frozen heads
    rows: tuple[str, ...] = tuple(ROWS)  # the paper rows this profile trains
    num_workers: int = 0
    augment_on: str = "loader"  # fine-tuning crops: "loader" (CPU workers) | "device" (the batch on the model's device)
    channels_last: bool = False  # NHWC weights and activations: faster convolutions on GPUs, the same result


PROFILES = {
    # Sec. 4.3: ResNet-18 (m = 512), SGD lr 1e-4 (momentum 0.9, weight decay 5e-4), T = 16, batch 8, 320 epochs
    # (~ 8,000 steps on our 196 training clips); SimCLR with LARS lr 9e-3, weight decay 1e-6, batch 64 frames (16 clips
    # x 4), cosine annealing (the paper's 8,192 epochs are left to the user: simclr_steps). Not in the paper: 224 px,
    # the clip augmentation, tau = 0.5, LARS eta 0.001, M = 4 frames per clip.
    "paper": Profile("paper", size=224, fov=1.0, width=64, stem_pool=True, train_frames=16, eval_frames=128,
                     finetune=Schedule(8000, 8, "sgd", lr=1e-4, weight_decay=5e-4),
                     simclr=Schedule(20_000, 16, "lars", lr=9e-3, weight_decay=1e-6, schedule="cosine"),
                     simclr_frames=4, table3="full", num_workers=4, augment_on="device", channels_last=True),
    # CPU-sized (our choices, on the validation split): a width-8 ResNet-18 at 64 px on the central 75 %, AdamW +
    # cosine fine-tuning, SimCLR with LARS at lr 0.3, Table 3 on frozen features, Table 4 off: docs/tuning.md#clman.
    # Steps: 621 fine-tuning and head, 154 SimCLR (27 and 14 passes over the phantom's 191 training clips).
    "small": Profile("small", size=64, fov=0.75, width=8, stem_pool=False, train_frames=4, eval_frames=32,
                     finetune=Schedule(621, 8, "adamw", lr=3e-3, weight_decay=1e-4, schedule="cosine"),
                     simclr=Schedule(154, 16, "lars", lr=0.3, weight_decay=1e-6, schedule="cosine",
                                     trust_coefficient=0.02),
                     simclr_frames=2, table3="frozen"),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`)."""
    profile = params.profile(PROFILES, name, **overrides)
    if profile.table3 not in ("full", "frozen"):
        raise ValueError(f"table3 must be 'full' or 'frozen', got {profile.table3!r}")
    return profile


def build_backbone(profile: Profile, row: Row = Row()) -> DeformedResNet18:
    return DeformedResNet18(in_channels=1, width=profile.width, norm=row.norm, non_local=row.non_local,
                            stem_pool=profile.stem_pool)


def build_model(profile: Profile, row: Row = Row()) -> CLMAN:
    return CLMAN(build_backbone(profile, row), aggregator=row.aggregator, num_classes=len(CLASSES))


def trained_rows(profile: Profile) -> dict[str, list[str]]:
    """{'fine-tuned': paper rows fine-tuned end to end, 'frozen heads': rows trained on frozen features}."""
    frozen = [n for n in profile.rows if n in PAPER_TABLE3 and profile.table3 == "frozen"]
    return {"fine-tuned": [n for n in profile.rows if n not in frozen], "frozen heads": frozen}


# ---------------------------------------------------------------- Sec. 3.2: SimCLR pretraining on frames


def make_simclr_step(view: FieldOfView, temperature: float):
    """step_fn for `fit`: a batch (N, M, 2, C, H, W) of frame views -> NT-Xent over the N * M frames."""

    def step(model, batch, device):
        x = view(batch.to(device, non_blocking=True).flatten(0, 1), dims=3)  # (N*M, 2, 1, h, w), per frame
        z = model(x)  # (N*M, 2, d)
        return nt_xent(z[:, 0], z[:, 1], temperature), {"top1": top1_positive(z[:, 0], z[:, 1])}

    return step


def pretrain(data: BreastData, profile: Profile, seed: int, out_dir: str | Path, device: torch.device | None = None,
             progress: bool = True) -> tuple[FrameSimCLR, list[dict], TrainConfig]:
    """SimCLR on the training clips' frames (GroupNorm + non-local backbone): (model, history, config)."""
    dataset = FrameViews(data.clips["train"], data.cache, profile.simclr_frames, simclr_augment(data.view.cache_size))
    config = stage_config(profile, "simclr", seed, dataset=data.dataset)
    model, history = train_once(lambda: FrameSimCLR(build_backbone(profile, Row()), proj_dim=profile.proj_dim),
                                "simclr", dataset, make_simclr_step(data.view, profile.temperature), config, out_dir,
                                device, progress)
    return model, history, config


# ---------------------------------------------------------------- fine-tuning (Sec. 4.3), Tables 1-4, figures' data


def make_step(view: FieldOfView, prepare=None):
    """step_fn for `fit`: clips (B, T, 1, H, W) -> cross-entropy of the video logits (Sec. 4.3). `prepare(x, dims)`
    makes the model's input from the uint8 batch (default `view`; see `clip_augment`)."""
    prepare = prepare or view

    def step(model, batch, device):
        clips, labels = prepare(batch[0].to(device, non_blocking=True), 4), batch[1].to(device)
        logits = model(clips)["logits"]
        return F.cross_entropy(logits, labels), {"acc": (logits.argmax(1) == labels).float().mean()}

    return step


def train_row(name: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
              pretrained: tuple[FrameSimCLR, TrainConfig] | None = None, device: torch.device | None = None,
              progress: bool = True) -> tuple[CLMAN, list[dict]]:
    """Fine-tune one network end to end (or load its finished checkpoint): (model, history). Rows with `contrastive`
    start from `pretrained` = (SimCLR model, its config), the output of `pretrain`."""
    row = ROWS[name]
    dataset, prepare = train_clips(data, profile.train_frames, profile.crop_scale, profile.augment_on)  # T segments
    extra = {"row": asdict(row), "dataset": data.dataset}
    if row.contrastive:
        if pretrained is None:
            raise ValueError(f"row {name!r} starts from the SimCLR backbone: pass pretrained=pretrain(...)[0::2]")
        extra["simclr"] = pretrained[1].fingerprint()
    config = stage_config(profile, "finetune", seed, **extra)

    def build():
        model = build_model(profile, row)
        if row.contrastive:
            model.backbone.load_state_dict(pretrained[0].backbone.state_dict())
        return model

    return train_once(build, network(name), dataset, make_step(data.view, prepare), config, out_dir, device, progress)


def network(name: str) -> str:
    """The network that fills a paper row, as a name: rows that share a network share it (and its checkpoint)."""
    return "_".join(str(v) for v in asdict(ROWS[name]).values())


@dataclass
class Trained:
    """One fine-tuned network and what it scored: the result of every paper row it fills (`train_rows`)."""

    model: CLMAN
    history: list[dict]
    metrics: dict
    preds: dict[str, Predictions]


def train_rows(names: Sequence[str], data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
               pretrained: tuple[FrameSimCLR, TrainConfig] | None = None, device: torch.device | None = None,
               echo=print) -> dict[str, Trained]:
    """Fine-tune and evaluate the networks behind paper rows `names`, each network once, keyed by row name (Table 1's
    last row is Table 2's first: both get the same `Trained`)."""
    done, out = {}, {}
    for name in names:
        if network(name) not in done:
            t0 = time.perf_counter()
            model, history = train_row(name, data, profile, seed, out_dir, pretrained, device)
            metrics, preds = evaluate(model, data, profile.eval_frames, device)
            done[network(name)] = Trained(model, history, metrics, preds)
            echo(f"{name:<42} final loss {history[-1]['loss']:.3f}, test AUC {metrics['auc']:.3f}, "
                 f"{time.perf_counter() - t0:.0f} s")
        out[name] = done[network(name)]
    return out


def predict(model: CLMAN, records: Sequence[VideoRecord], data: BreastData, max_frames: int = 128,
            device: torch.device | None = None) -> Predictions:
    """Every frame of each video (any length; subsampled to `max_frames`) through the model; keeps the multi-meta
    attention A of Eq. (5), (T_i, m) per clip (`outputs["attention"]`, None for other aggregators)."""
    return predict_videos(model, records, data.cache, data.view, data.classes, all_frames(max_frames), device=device,
                          keep=("attention",))


def evaluate(model: CLMAN, data: BreastData, max_frames: int = 128, device: torch.device | None = None
             ) -> tuple[dict, dict[str, Predictions]]:
    """Test metrics (acc, sen, spe, pre, f1, auc, ap) at the validation split's Youden threshold; predictions."""
    return evaluate_splits(lambda records: predict(model, records, data, max_frames, device), data.clips)


def train_head(name: str, features: dict[str, list[np.ndarray]], data: BreastData, profile: Profile, seed: int,
               out_dir: str | Path, pretrained_config: TrainConfig, device: torch.device | None = None,
               progress: bool = False) -> tuple[dict, VideoHead, dict]:
    """A Table 3 aggregator + classifier on frozen features (`usnb.probe.train_head`): (metrics, head, P(malignant))."""
    row = ROWS[name]
    # the heads read features of eval_frames frames per video: an evaluation-only field elsewhere, learned here
    config = stage_config(profile, "head", seed, row=asdict(row), frozen=pretrained_config.fingerprint(),
                          feature_frames=profile.eval_frames)
    return probe.train_head(lambda m: VideoHead(m, row.aggregator, len(CLASSES)), features,
                            {s: label_index(data.clips[s], data.classes) for s in features}, profile.train_frames,
                            config, f"frozen {row.aggregator}", out_dir, device, progress,
                            patients(data.clips["test"]))


def attention_per_frame(preds: Predictions) -> list[np.ndarray]:
    """Attention mass of each frame: A^t averaged over the m feature dimensions (sums to 1 over frames)."""
    attention = preds.outputs.get("attention") or [None]
    if any(a is None for a in attention):
        raise ValueError("these predictions have no multi-meta attention (another aggregator); use a multi-meta row")
    return [a.mean(axis=1) for a in attention]


gradcam = frame_gradcam  # Grad-CAM per frame on stage 4 (+ non-local): `with C.gradcam(model) as cam: cam(x, c)`


def localisation(model: CLMAN, records: Sequence[VideoRecord], data: BreastData, max_frames: int = 128,
                 k: float = 0.1) -> dict:
    """Pointing game and top-k IoU of Grad-CAM (stage 4) on every boxed frame (`usnb.evaluate.localisation`)."""
    return frame_localisation(model, None, records, data, data.classes, max_frames, k)


def train_baseline(name: str, data: BreastData, profile: Profile, seed: int, out_dir: str | Path,
                   weights: str | None = None, device: torch.device | None = None):
    """Train a Table 4 baseline (torchvision's R3D, MC3, R(2+1)D; ours: TimeSformer, P3D, TSM, TIN; all CPU-sized in
    the small profile, `usnb.baselines`) on the clips with the fine-tuning schedule, as the paper does ("only set the
    batch size and epoch number to the same as ours"): (test metrics at val's Youden, history, {split: P(malignant)})."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {list(BASELINES)}, got {name!r}")
    dataset, prepare = train_clips(data, profile.train_frames, profile.crop_scale, profile.augment_on)
    small = profile.name == "small"
    config = stage_config(profile, "finetune", seed, baseline=name, dataset=data.dataset, weights=weights, small=small)
    return baselines.train_baseline(name, dataset, prepare, config, data, data.classes, profile.train_frames, out_dir,
                                    weights, device=device, small=small)

"""Lung SSL recipe (Chen, Rubin et al. 2022): BYOL / SimCLR pretraining of a 3-D encoder, Table 3 rows, Fig. 3.

Model and losses: `usnb.models.lung_ssl` / `.contrastive`; Table 2's augmentation: `usnb.augment_st`; occlusion and
the weighted IoU: `usnb.explain`. Here: one SSL pretraining per algorithm (shared by every row and label fraction),
probes on cached frozen features, fine-tuning and full supervision (`usnb.train.fit`), Youden's threshold."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import paper_claims, params
from ..augment_st import SpatioTemporalAugment
from ..checkpoints import state_fingerprint
from ..data import PairedDataset, Repeated, label_index
from ..datasets.records import VideoRecord
from ..evaluate import patients, saliency_localisation, split_metrics
from ..lung import LungData, Normalised, clip_boxes, clip_dataset, clip_input, embed, load_lung, predict
from ..models.lung_ssl import BYOL, Darknet3D, EncoderClassifier, VideoSimCLR, darknet53_3d
from ..models.summary import n_params
from ..probe import Probe, fit_probe
from ..splits import fraction_subset
from ..train import Schedule, seed_everything, stage_config, train_once

# 27,063 multi-center videos of 528 patients, 1,669 labelled for consolidation (1,296 train / 120 val / 253 test)
PAPER_DATA = "its private lung US videos"
PAPER_TABLES = paper_claims.TABLES["lung_ssl"]  # the paper's Table 3 (its private data, not ours)
PAPER_TABLE3 = PAPER_TABLES["Table 3"]
PAPER_TRAINABLE, PAPER_FIG3 = paper_claims.LUNG_TRAINABLE, paper_claims.LUNG_FIG3
# Its claims (quote, section; judged by usnb.claims.judge_all) and test split (pos, neg, cases per column) for its CIs
CLAIMS, PAPER_TEST = paper_claims.CLAIMS["lung_ssl"], paper_claims.paper_test("lung_ssl")
PAPER_CLAIM_ROWS = {"Fully supervised": PAPER_FIG3["Fully supervised @100%"]}  # Sec. 4.2 text, for the claims

ALGORITHMS = ("BYOL", "SimCLR")
FRACTIONS = (1.0, 0.5, 0.3, 0.1, 0.05)  # Fig. 3
KINDS = ("SSL feature extractor", "SSL fine-tuned", "Fully supervised", "Random feature extractor")


@dataclass(frozen=True)
class Profile:
    """How big and how long: `small` runs the whole notebook on a 2-core CPU in minutes, `paper` follows Sec. 3."""

    EVAL_ONLY = ("name", "occlusion_window", "occlusion_stride")  # not in the checkpoint fingerprint (learned_fields)
    name: str
    size: int  # frame side fed to the encoder, pixels
    frames: int  # T frames per clip (training: one random frame per segment; evaluation: uniform)
    encoder: str  # "darknet53" (Darknet-53 widths/blocks, 3-D) | "small" (the widths/blocks below)
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    temporal_strides: tuple[int, ...]
    stem_stride: tuple[int, int, int]
    proj_hidden: int  # projection / prediction MLP hidden layer (paper: 4096)
    proj_dim: int
    tau: float  # BYOL target EMA momentum (paper: 0.99)
    temperature: float  # SimCLR NT-Xent temperature (not in the paper: SimCLR's 0.5 for small batches)
    ssl: Schedule  # SSL pretraining; Sec. 3.2: Adam, lr "3e-4 for all experiments" (AdamW with weight decay 0)
    supervised: Schedule  # each supervised row (fine-tuned, fully supervised), whatever the label fraction
    fov: float = 1.0  # field of view: central fraction of the frame's side seen (cached at size / fov, cropped to size)
    clip_norm: bool = False  # rescale each clip's intensities to mean 0.3, std 0.2 before augmentation (gain removed)
    two_samplings: bool = False  # SSL views from two independent frame samplings of the clip (else the same frames)
    # linear probe: inverse L2 strengths of the logistic regression on standardised features; the one with the best
    # validation AUC is kept (`fit_probe`, why: docs/tuning.md#lung-ssl); it also starts the fine-tuned rows' head (LP-FT)
    probe_c: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    occlusion_window: tuple[int, int, int, int] = (1, 4, 8, 8)  # (C, T, H, W)
    occlusion_stride: tuple[int, int, int, int] = (1, 4, 4, 4)
    num_workers: int = 0


PROFILES = {
    # Sec. 3.2: 3-D Darknet-53, projection MLP hidden 4096, EMA 0.99, lr 3e-4. Not in the paper (our choices): 112 px,
    # 16 frames, projection 256, batch 32, the step counts.
    "paper": Profile("paper", size=112, frames=16, encoder="darknet53", widths=(), blocks=(), temporal_strides=(),
                     stem_stride=(1, 1, 1), proj_hidden=4096, proj_dim=256, tau=0.99, temperature=0.5,
                     ssl=Schedule(20_000, 32, "adamw", lr=3e-4, weight_decay=0.0),
                     supervised=Schedule(5_000, 16, "adamw", lr=3e-4, weight_decay=0.0), num_workers=4,
                     occlusion_window=(1, 2, 16, 16), occlusion_stride=(1, 2, 8, 8)),
    # CPU-sized (our choices, on the validation split): 32 px, 8 frames, a 4-stage 3-D Darknet (~0.15 M parameters),
    # lr 1e-3, 720 SSL steps, per-clip gain removed, two frame samplings. How each was chosen: docs/tuning.md#lung-ssl.
    "small": Profile("small", size=32, frames=8, encoder="small", widths=(8, 16, 32, 64), blocks=(1, 1, 1),
                     temporal_strides=(1, 2, 2), stem_stride=(1, 2, 2), proj_hidden=128, proj_dim=64, tau=0.99,
                     temperature=0.5, ssl=Schedule(720, 16, "adamw", lr=1e-3, weight_decay=0.0),
                     supervised=Schedule(80, 16, "adamw", lr=1e-3, weight_decay=0.0), clip_norm=True,
                     two_samplings=True),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name with the overrides that are not None applied and checked (`usnb.params.profile`)."""
    return params.profile(PROFILES, name, **overrides)


def build_encoder(profile: Profile) -> Darknet3D:
    """Clips (B, 1, T, H, W) -> features (B, D)."""
    if profile.encoder == "darknet53":
        return darknet53_3d(in_channels=1)
    if profile.encoder == "small":
        return Darknet3D(1, profile.widths, profile.blocks, profile.temporal_strides, profile.stem_stride)
    raise ValueError(f"encoder must be 'darknet53' or 'small', got {profile.encoder!r}")


def build_ssl(algorithm: str, profile: Profile) -> BYOL | VideoSimCLR:
    if algorithm == "BYOL":
        return BYOL(build_encoder(profile), profile.proj_hidden, profile.proj_dim, profile.tau)
    if algorithm == "SimCLR":
        return VideoSimCLR(build_encoder(profile), profile.proj_hidden, profile.proj_dim, profile.temperature)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


def load_data(dataset: str, profile: Profile, **source) -> LungData:
    """Clips of any source for the 3-D encoder (`usnb.lung.load_lung`): the lung phantom (boxed), POCUS, BUSV, a
    manifest or class folders; a source without its own split comes as 'all' (k-fold over patients later)."""
    return load_lung(dataset, profile.size, profile.fov, profile.clip_norm, **source)


def ssl_step(data: LungData, augment: SpatioTemporalAugment):
    """step_fn for `fit`: two augmentations of each clip, the model's SSL loss (BYOL or SimCLR)."""
    def step(model, batch, device):
        x1 = data.view(batch[0].to(device, non_blocking=True))  # (B, 1, T, H, W)
        x2 = data.view(batch[2].to(device, non_blocking=True)) if len(batch) == 4 else x1  # (clip, y, clip, y)
        return model(data.normalise(augment(x1)), data.normalise(augment(x2))), {}
    return step


def pretrain(algorithm: str, data: LungData, records: Sequence[VideoRecord], profile: Profile, seed: int,
             out_dir: str | Path, temporal: bool = True, tag: str = "", device: torch.device | None = None,
             progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """SSL pretraining on `records` (labels unused) with Table 2's augmentation (`temporal=False`: spatial only): the
    SSL model (its `.encoder` feeds the downstream rows), the loss history. BYOL's target: EMA after every step."""
    augment = SpatioTemporalAugment(temporal=temporal)
    clips = clip_dataset(data, records, profile.frames)
    if profile.two_samplings:
        clips = PairedDataset(clips, clips)  # (clip, label, clip, label): each call samples its own frames
    dataset = Repeated(clips, profile.ssl.steps * profile.ssl.batch)  # every clip as often, whatever their number
    config = stage_config(profile, "ssl", seed, algorithm=algorithm, temporal=temporal, dataset=data.dataset, tag=tag,
                          clips=len(records))
    after = (lambda m, n: m.update_target()) if algorithm == "BYOL" else None  # BYOL's target EMA
    name = " ".join(filter(None, [algorithm, "" if temporal else "no temporal", tag]))
    model, history = train_once(lambda: build_ssl(algorithm, profile), name, dataset, ssl_step(data, augment), config,
                                out_dir, device, progress, after_step=after)  # model(v1, v2) is its loss
    return model.eval(), history


def supervised_step(data: LungData, augment: SpatioTemporalAugment | None):
    """step_fn for `fit`: cross-entropy of the classifier on augmented clips."""
    def step(model, batch, device):
        x, y = data.view(batch[0].to(device, non_blocking=True)), batch[1].to(device)
        x = augment(x) if augment is not None else x
        return nn.functional.cross_entropy(model(data.normalise(x)), y), {}
    return step


def train_classifier(data: LungData, records: Sequence[VideoRecord], profile: Profile, seed: int, out_dir: str | Path,
                     encoder: nn.Module | None = None, probe: "Probe | None" = None, name: str = "classifier",
                     device: torch.device | None = None, progress: bool = True) -> tuple[EncoderClassifier, list[dict]]:
    """Train encoder + FC on labelled `records`: 'SSL fine-tuned' (a copy of a pretrained `encoder`, FC started from
    its linear `probe`: LP-FT) or 'Fully supervised' (encoder=None: random weights). `profile.supervised` steps."""
    build = lambda: probe_classifier(build_encoder(profile) if encoder is None else encoder,  # noqa: E731
                                     probe, len(data.classes), train_encoder=True)
    # 5 % of the labels can be fewer clips than one batch: the clips repeat to fill the steps
    dataset = Repeated(clip_dataset(data, records, profile.frames), profile.supervised.steps * profile.supervised.batch)
    start = None if encoder is None else state_fingerprint(encoder) + (
        "" if probe is None else state_fingerprint(probe_classifier(encoder, probe, len(data.classes)).fc))
    config = stage_config(profile, "supervised", seed, row=name, dataset=data.dataset, start=start,
                          clips=sorted(r.video_id for r in records))  # start: the pretrained weights it begins from
    model, history = train_once(build, name, dataset, supervised_step(data, SpatioTemporalAugment()), config, out_dir,
                                device, progress)
    return model.eval(), history


# ---------------------------------------------------------------- probes, localisation (Fig. 2)


def probe_classifier(encoder: nn.Module, probe: Probe | None, num_classes: int = 2,
                     train_encoder: bool = False) -> EncoderClassifier:
    """A copy of `encoder` + the FC of its linear `probe` (None: a random FC) as one network: frozen (occlusion,
    parameter counts) or, `train_encoder`, where fine-tuning starts (LP-FT)."""
    model = EncoderClassifier(copy.deepcopy(encoder), num_classes, train_encoder=train_encoder)
    if probe is not None:
        probe.load_into(model)
    return model.eval()


def saliency(model: nn.Module, data: LungData, record: VideoRecord, profile: Profile,
             device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Occlusion saliency of the positive class for one clip: (frames (T, H, W), saliency (T, H, W), frame indices)."""
    from ..explain import occlusion

    device = device or next(model.parameters()).device
    x, idx = clip_input(data, record, profile.frames)
    sal = occlusion(Normalised(model, data), x.to(device), profile.occlusion_window, profile.occlusion_stride,
                    target=1, baseline=0.0)
    return x[0].numpy(), sal.sum(0).cpu().numpy(), idx


def localisation(model: nn.Module, data: LungData, records: Sequence[VideoRecord], profile: Profile,
                 k: float = 0.1, device: torch.device | None = None) -> dict:
    """The paper's weighted IoU (top 10 % of pixels, a box per connected region) of `saliency` on every boxed frame,
    mean over clips; `chance`: a random saliency map (uniform noise) on the same frames."""
    return saliency_localisation(lambda r: saliency(model, data, r, profile, device)[1:], records,
                                 lambda r, idx: clip_boxes(r, idx, data), k)


# ---------------------------------------------------------------- one study: Table 3 rows and Fig. 3 fractions


@dataclass
class Study:
    """What `run_study` returns: test metrics per row, the fraction curves, parameter counts, models and features."""
    rows: dict[str, dict] = field(default_factory=dict)  # "BYOL: SSL feature extractor" (100 %), ... -> metrics
    curves: dict[str, dict[float, dict]] = field(default_factory=dict)  # curve name -> {fraction: metrics}
    params: dict[str, dict] = field(default_factory=dict)  # row -> {trainable, total}
    models: dict[str, nn.Module] = field(default_factory=dict)  # the four model kinds of Fig. 2 (BYOL, 100 %)
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # encoder -> split -> (N, D)
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # Table 3 row -> test P(positive)
    histories: dict[str, list] = field(default_factory=dict)
    split: dict[str, list[VideoRecord]] = field(default_factory=dict)


def run_study(data: LungData, split: dict[str, list[VideoRecord]], profile: Profile, seed: int, out_dir: str | Path,
              algorithms: Sequence[str] = ALGORITHMS, fractions: Sequence[float] = FRACTIONS,
              temporal_ablation: bool = True, fine_tune_fractions: Sequence[float] | None = None, tag: str = "",
              device: torch.device | None = None, progress: bool = True, echo=print) -> Study:
    """Every Table 3 row and Fig. 3 curve on one split {'train', 'val', 'test'}: one SSL pretraining per algorithm
    on the training clips (labels unused), shared by all rows and fractions; probes on cached frozen features;
    fine-tuning (LP-FT) and full supervision at each fraction (`fine_tune_fractions`, default all) for the first
    algorithm, at 100 % for the others. Thresholds: Youden's J on the validation clips."""
    if 1.0 not in fractions:
        raise ValueError(f"fractions must include 1.0 (all labels: Table 3's rows and the saved models), got {fractions}")
    fine_tune_fractions = fractions if fine_tune_fractions is None else fine_tune_fractions
    y = {s: label_index(r, data.classes) for s, r in split.items()}
    study = Study(split=dict(split))
    subsets = {f: fraction_subset(split["train"], f, seed) for f in fractions}
    masks = {f: np.isin([r.video_id for r in split["train"]], [r.video_id for r in s]) for f, s in subsets.items()}

    row = lambda curve, f: curve if f == 1.0 else f"{curve} @{f:.0%}"  # noqa: E731 - a row's name

    def score(curve, f, p_val, p_test, model):
        m = split_metrics(y, {"val": p_val, "test": p_test}, patients(split["test"]))
        study.curves.setdefault(curve, {})[f] = m
        study.rows[row(curve, f)], study.probs[row(curve, f)] = m, p_test
        study.params[row(curve, f)] = {"trainable": n_params(model, trainable=True), "total": n_params(model)}
        return m

    def probes(encoder, key, curve):
        t0 = time.perf_counter()
        study.features[key] = feats = {s: embed(encoder, data, r, profile.frames, device) for s, r in split.items()}
        fitted = {}
        for f in fractions:
            fitted[f] = probe = fit_probe(feats["train"][masks[f]], y["train"][masks[f]], profile.probe_c,
                                          val=(feats["val"], y["val"]))
            score(curve, f, probe(feats["val"]), probe(feats["test"]),
                  probe_classifier(encoder, probe, len(data.classes)))
        chosen = ", ".join(f"{f:.0%} c={p.c:g}" for f, p in fitted.items())
        echo(f"{curve}: probes at {len(fractions)} fractions in {time.perf_counter() - t0:.0f} s (1/L2: {chosen})")
        return fitted

    def supervised(curve, f, encoder=None, probe=None):  # one fine-tuned or fully supervised row, scored
        t0, name = time.perf_counter(), row(curve, f)
        model, study.histories[name] = train_classifier(data, subsets[f], profile, seed, out_dir, encoder, probe,
                                                        name=f"{tag} {name}", device=device, progress=progress)
        m = score(curve, f, *(predict(model, data, split[s], profile.frames, device) for s in ("val", "test")), model)
        echo(f"{name}: AUC {m['auc']:.3f} ({time.perf_counter() - t0:.0f} s)")
        return model

    seed_everything(seed)
    random_encoder = build_encoder(profile)
    fitted = probes(random_encoder, "random", "Random feature extractor")
    study.models["Random feature extractor"] = probe_classifier(random_encoder, fitted[1.0], len(data.classes))
    runs = [(a, True) for a in algorithms] + ([(algorithms[0], False)] if temporal_ablation else [])
    for algorithm, temporal in runs:
        t0 = time.perf_counter()
        ssl, history = pretrain(algorithm, data, split["train"], profile, seed, out_dir, temporal=temporal, tag=tag,
                                device=device, progress=progress)
        label = algorithm if temporal else f"{algorithm} w/o temporal aug"
        study.histories[label] = history
        echo(f"{label}: pretrained ({profile.ssl.steps} steps) in {time.perf_counter() - t0:.0f} s, "
             f"loss {history[-1]['loss']:.3f}")
        fitted = probes(ssl.encoder, label, f"{label}: SSL feature extractor")
        if not temporal:
            continue
        main = algorithm == algorithms[0]
        for f in (fine_tune_fractions if main else (1.0,)):
            model = supervised(f"{label}: SSL fine-tuned", f, ssl.encoder, fitted[f])
            if main and f == 1.0:
                study.models["SSL fine-tuned"] = model
                study.models["SSL feature extractor"] = probe_classifier(ssl.encoder, fitted[1.0], len(data.classes))
    for f in fine_tune_fractions:
        model = supervised("Fully supervised", f)
        if f == 1.0:
            study.models["Fully supervised"] = model
    return study

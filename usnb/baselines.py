"""The video classifiers that KGA-Net's Table 1 and CLMAN's Table 4 compare with (torchvision's and ours, in
`usnb.models`), trained and scored through the same loop, data and evaluation as the papers' own methods.

Input of every baseline: (B, 3, T, H, W); grey clips are repeated over the three channels.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import sampling
from .data import label_index
from .datasets.records import VideoRecord
from .evaluate import patients, split_metrics
from .train import TrainConfig, train_once
from .view import FieldOfView, frames

TORCHVISION = {"R(2+1)D": "r2plus1d_18", "R3D": "r3d_18", "MC3": "mc3_18", "MViT": "mvit_v2_s", "S3D": "s3d"}
VIDEO_RESNETS = ("R3D", "MC3", "R(2+1)D")  # torchvision's VideoResNet-18s (Tran et al., CVPR 2018): narrowed when small
SMALL_WIDTH = 16  # the small profile's stem width of the 3-D ResNets (64 at the paper's size): every stage 1/4 as wide
# ours, in usnb.models (one file per family): name -> (family, depth at the paper's size, depth in the small profile)
OURS = {"TSM": ("tsm", 50, 50), "TIN Res18": ("tin", 18, 18), "TIN Res34": ("tin", 34, 34),
        "TIN Res50": ("tin", 50, 50), "I3D": ("i3d", 50, 50), "SlowFast": ("slowfast", 50, 50),
        "CSN": ("csn", 152, 50), "P3D": ("p3d", 152, 50), "TimeSformer": ("timesformer", 12, 2)}
BASELINES = {**TORCHVISION, **OURS}


def video_baseline(name: str, num_classes: int = 2, weights: str | None = None, frames: int = 16,
                   small: bool = False, size: int = 224) -> nn.Module:
    """A video classifier with a `num_classes` head; input (B, 3, T, H, W) with T = `frames`, H = W = `size`:
    torchvision's (weights='kinetics' loads its Kinetics-400 weights, which needs the internet; MViT needs T=16,
    224 px) or ours (`usnb.models`; random weights, said in a warning if Kinetics weights were asked for). `small`:
    at CPU size, every stage 1/4 as wide (ours and torchvision's R3D, MC3, R(2+1)D; TimeSformer: 2 blocks of width 64
    on a conv stem), CSN and P3D on ResNet-50 instead of 152, SlowFast with alpha 2 when T is not a multiple of 8.
    Kinetics weights fit only the paper's widths: asked for with `small`, they are refused in a warning.
    """
    from torchvision.models import video

    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {sorted(BASELINES)}, got {name!r}")
    if name in OURS:
        net = _ours(name, num_classes, frames, size, small, weights)
        if weights == "kinetics":
            warnings.warn(f"{name}: no Kinetics weights are available to usnb here; training from random weights "
                          f"(usnb downloads none for its own networks). Fix: pass weights='path/to/file.pth' "
                          f"({_source(name)})", stacklevel=2)
        elif weights and name != "TimeSformer":
            print(load_local_weights(net, weights, name))
        return net
    builder = getattr(video, BASELINES[name])
    net = builder(weights=None)
    if small and name in VIDEO_RESNETS:
        net = narrow_video_resnet(net, SMALL_WIDTH)
        if weights == "kinetics":
            warnings.warn(f"{name}: the small profile narrows it to stem width {SMALL_WIDTH}, which Kinetics-400 "
                          "weights (width 64) do not fit; training from random weights. Fix: profile='paper' for "
                          "Kinetics weights", stacklevel=2)
            weights = None
    if weights and weights != "kinetics":  # a local file: its tensors that match, the head kept at ours
        net = _with_head(net, num_classes)
        print(load_local_weights(net, weights, name))
        return net
    if weights == "kinetics":
        try:
            net = builder(weights="DEFAULT")
        except Exception as err:  # noqa: BLE001 - offline: say so, keep random weights
            warnings.warn(f"could not download Kinetics weights for {name} ({type(err).__name__}); training from "
                          "random weights. Fix: run where the internet is reachable", stacklevel=2)
    return _with_head(net, num_classes)


def _with_head(net: nn.Module, num_classes: int) -> nn.Module:
    """A torchvision video model with a new `num_classes` head."""
    if hasattr(net, "fc"):  # R(2+1)D, R3D, MC3
        net.fc = nn.Linear(net.fc.in_features, num_classes)
        return net
    head = net.head if hasattr(net, "head") else net.classifier  # MViT: head; S3D: classifier (a 1x1x1 conv)
    old = head[-1]
    head[-1] = (nn.Conv3d(old.in_channels, num_classes, kernel_size=1) if isinstance(old, nn.Conv3d)
                else nn.Linear(old.in_features, num_classes))
    return net


def narrow_video_resnet(net: nn.Module, width: int) -> nn.Module:
    """torchvision's R3D-18, MC3-18 or R(2+1)D-18 (a `VideoResNet`) rebuilt with stem width `width` instead of 64:
    stages of 1, 2, 4, 8 times `width`, each with the convolution type it had (3-D, 2-D, or (2+1)-D, whose middle
    width keeps the 3-D convolution's parameter count, Tran et al. Sec. 3.5), R(2+1)D's stem keeping its 45/64 middle
    width; weights initialised as torchvision initialises them. (B, 3, T, H, W) -> (B, classes), shapes as the full
    network."""
    from torchvision.models.video.resnet import BasicBlock, R2Plus1dStem

    if isinstance(net.stem, R2Plus1dStem) or net.stem[0].kernel_size[0] == 1:  # (1, 7, 7), then (3, 1, 1)
        mid = 45 * width // 64
        net.stem = nn.Sequential(nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                                 nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                                 nn.Conv3d(mid, width, (3, 1, 1), padding=(1, 0, 0), bias=False),
                                 nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    else:  # BasicStem: one (3, 7, 7) convolution
        net.stem = nn.Sequential(nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                                 nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    net.inplanes = width
    for i, stride in enumerate((1, 2, 2, 2)):
        stage = getattr(net, f"layer{i + 1}")
        conv_builder = type(stage[0].conv1[0])  # Conv3DSimple, Conv3DNoTemporal or Conv2Plus1D
        setattr(net, f"layer{i + 1}", net._make_layer(BasicBlock, conv_builder, width * 2 ** i, len(stage), stride))
    net.fc = nn.Linear(8 * width, net.fc.out_features)
    for m in net.modules():  # torchvision's VideoResNet initialisation
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.normal_(net.fc.weight, 0, 0.01)
    nn.init.zeros_(net.fc.bias)
    return net


def unfit(name: str, size: int, frames: int) -> str | None:
    """Why a baseline cannot take clips of `frames` frames of `size` px (None: it can): MViT takes only 16 of 224."""
    if name == "MViT" and (size, frames) != (224, 16):
        return (f"MViT takes 16 frames of 224 px, the profile gives {frames} of {size}; use the paper profile "
                "(profile='paper') or another baseline")
    return None


def _ours(name: str, num_classes: int, frames: int, size: int, small: bool, weights: str | None = None) -> nn.Module:
    """One of OURS at the paper's size or, `small`, at CPU size (see `video_baseline`)."""
    family, paper_depth, small_depth = OURS[name]
    depth, width = (small_depth, 16) if small else (paper_depth, 64)
    if family in ("tsm", "tin"):
        from .models.temporal_shift import temporal_shift_resnet

        return temporal_shift_resnet(family, depth, num_classes, frames, width)
    if family == "i3d":
        from .models.i3d import i3d_resnet

        return i3d_resnet(depth, num_classes, width)
    if family == "csn":
        from .models.csn import ir_csn

        return ir_csn(depth, num_classes, width)
    if family == "p3d":
        from .models.p3d import p3d_resnet

        return p3d_resnet(depth, num_classes, width)
    if family == "slowfast":
        from .models.slowfast import slowfast_resnet

        return slowfast_resnet(depth, num_classes, width, alpha=8 if frames % 8 == 0 or not small else 2)
    from .models.timesformer import TimeSformer, TimeSformerClassifier, load_pretrained

    encoder = (TimeSformer(size, 16, frames, 3, dim=64, depth=depth, heads=4, stem="conv") if small else
               TimeSformer(size, 16, frames, 3, dim=768, depth=depth, heads=12))  # ViT-B/16 (Bertasius et al.)
    if weights and weights != "kinetics":  # a local TimeSformer checkpoint or ImageNet ViT-B/16 weights
        missing = load_pretrained(encoder, weights)
        print(f"TimeSformer: {weights} loaded, {len(missing)} encoder tensors left at random init")
    return RGBTimeSformer(TimeSformerClassifier(encoder, num_classes))


# Where Kinetics-400 weights for our networks come from: a local file the user has (usnb downloads none of these)
KINETICS = {
    "torchvision": "torchvision's Kinetics-400 weights of this model saved as a state dict (weights='kinetics' "
                   "downloads them where the internet is reachable); in the small profile, a state dict of the "
                   "narrowed network",
    "timesformer": "facebookresearch/TimeSformer's TimeSformer_divST_8x32_224_K400.pyth, or 'imagenet' for ViT-B/16",
    **{family: "a state dict of this network as usnb.models names its tensors, e.g. one saved by usnb or converted "
               "from mmaction2's Kinetics-400 checkpoint of the same network"
       for family in ("tsm", "tin", "i3d", "slowfast", "csn", "p3d")},
}


def _source(name: str) -> str:
    """Where Kinetics weights for baseline `name` come from, in words."""
    return KINETICS[OURS[name][0] if name in OURS else "torchvision"]


def load_local_weights(net: nn.Module, path: str | Path, name: str) -> str:
    """Copy into `net` the tensors of the local state dict at `path` whose names and shapes match its own
    ('module.' and 'backbone.' prefixes dropped); a head with another class count keeps its random init. Refuses a
    file that matches fewer than half of `net`'s tensors. Returns what it did, in words."""
    from .checkpoints import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found. Fix: pass a local .pth of {name}'s weights "
                                f"({_source(name)}), or weights=None for random weights")
    state = load_checkpoint(path)
    for key in ("state_dict", "model_state", "model"):
        state = state.get(key, state) if isinstance(state, dict) else state
    own = net.state_dict()
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items() if torch.is_tensor(v)}
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matched) < len(own) / 2:
        reshaped = sum(k in own and own[k].shape != v.shape for k, v in state.items())
        why = (f"{reshaped} more match by name but have other shapes: weights of {name} at another width (the small "
               "profile builds every baseline a quarter as wide as the paper profile): load them at the profile they "
               "fit" if len(matched) + reshaped >= len(own) / 2 else "not weights of this network as usnb builds it")
        raise ValueError(f"{path}: only {len(matched)} of {len(own)} tensors of {name} match by name and shape; "
                         f"{why}. Fix: {_source(name)}")
    net.load_state_dict(matched, strict=False)
    return (f"{name}: {len(matched)} of {len(own)} tensors loaded from {path}; "
            f"{len(own) - len(matched)} left at random init (e.g. a head for another number of classes)")


class RGBTimeSformer(nn.Module):
    """A TimeSformer classifier taking the baselines' layout: (B, 3, T, H, W) -> its (B, T, 3, H, W) -> logits."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.transpose(1, 2))  # (B, K)


def as_rgb_video(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, 1, H, W) -> (B, 3, T, H, W): the layout of torchvision's video models."""
    return clips.transpose(1, 2).expand(-1, 3, -1, -1, -1)


def make_step(prepare, images: bool = False):
    """Cross-entropy on clips (B, T, 1, H, W); with `images`, also on still images "treated as static videos"
    (KGA-Net Sec. 4.2: batches of clips, labels, images, image labels). `prepare(x, dims)` makes the model's input
    from a uint8 batch: a `FieldOfView`, or the on-device augmentation of `usnb.view.clip_augment`."""

    def step(model, batch, device):
        clips, labels = prepare(batch[0].to(device), 4), batch[1].to(device)  # (B, T, 1, H, W)
        if not images:
            return F.cross_entropy(model(as_rgb_video(clips)), labels), {}
        stills, still_labels = prepare(batch[2].to(device), 3), batch[3].to(device)  # (B, 1, H, W)
        static = stills[:, None].expand(-1, clips.shape[1], -1, -1, -1)  # (B, T, 1, H, W)
        x = as_rgb_video(torch.cat([clips, static]))  # (2B, 3, T, H, W)
        return F.cross_entropy(model(x), torch.cat([labels, still_labels])), {}

    return step


@torch.no_grad()
def predict(model: nn.Module, records: Sequence[VideoRecord], cache, view: FieldOfView, frames_per_clip: int = 16,
            device: torch.device | None = None) -> np.ndarray:
    """P(class 1) per video from `frames_per_clip` frames spread uniformly over it (MViT needs a fixed T)."""
    device = device or next(model.parameters()).device
    model.eval()
    probs = []
    for record in records:
        clip = cache.get(record)
        x = view(frames(clip, sampling.uniform_indices(len(clip), frames_per_clip)).to(device), dims=4)
        probs.append(float(model(as_rgb_video(x)).float().softmax(-1)[0, 1]))
    return np.array(probs)


def train_baseline(name: str, dataset, prepare, config: TrainConfig, data, classes: Sequence[str],
                   frames_per_clip: int, out_dir: str | Path, weights: str | None = None, images: bool = False,
                   device: torch.device | None = None, small: bool = False
                   ) -> tuple[dict, list[dict], dict[str, np.ndarray]]:
    """Train a baseline on the paper method's `dataset` and `prepare` (its augmentation) with `config` (or load it):
    (test metrics at Youden's threshold, history, {split: P(class 1)}). `data` has `clips`, `cache` and `view`."""
    size = data.view.size
    model, history = train_once(lambda: video_baseline(name, len(classes), weights, frames_per_clip, small, size),
                                f"baseline {name}", dataset,
                                make_step(prepare, images), config, out_dir, device=device, progress=True)
    probs = {s: predict(model, recs, data.cache, data.view, frames_per_clip, device)
             for s, recs in data.clips.items() if s in ("val", "test")}
    labels = {s: label_index(data.clips[s], classes) for s in probs}
    return split_metrics(labels, probs, patients(data.clips["test"])), history, probs

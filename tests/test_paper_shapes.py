"""Each recipe's `paper` profile, run for 2 optimizer steps per stage on the CPU at the paper's shapes.

The notebooks and CI train the `small` profiles; the `paper` profiles (ResNet-50 at 224 px, TimeSformer ViT-B/16,
ResNet-18 + GroupNorm + non-local at 224 px, 3-D Darknet-53) run only on a GPU. These tests keep their code path
(the real networks, the real input sizes, device-side augmentation, channels-last) from rotting unseen: only the run
length, the batch and the data size are shrunk, never a shape. No weights are downloaded (weights=None).

A global forward pre-hook records what each network really receives, and a global optimizer hook counts the steps.
Slow (minutes on 2 CPU cores) but part of the default `pytest tests`: deselect with `-m "not slow"`.
"""
from __future__ import annotations

import math
import shutil
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch
from torch import nn

from usnb.breast import CLASSES

# a download attempt (ImageNet ResNet / ViT weights) fails the test instead of warning: weights must stay None
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error:could not download")]


# ---------------------------------------------------------------- helpers


@contextmanager
def inputs_of(cls: type[nn.Module]):
    """The input shape of every call of a module of type `cls` (any instance, including deep copies), and the
    number of optimizer steps taken, while the block runs: yields (shapes, steps) lists filled in place."""
    from torch.nn.modules.module import register_module_forward_pre_hook
    from torch.optim.optimizer import register_optimizer_step_post_hook

    shapes: list[tuple[int, ...]] = []
    steps: list[str] = []

    def on_forward(module, args):
        if isinstance(module, cls) and args and torch.is_tensor(args[0]):
            shapes.append(tuple(args[0].shape))

    forward = register_module_forward_pre_hook(on_forward)
    step = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(type(optimizer).__name__))
    try:
        yield shapes, steps
    finally:
        forward.remove(), step.remove()


def per_class(data, n: int, images: bool = False):
    """`data` with only the first `n` training clips of each class (and as many still images per class when
    `images`): with batch 1, one epoch is then 2 n optimizer steps."""
    def first(records):
        return [r for c in CLASSES for r in [r for r in records if r.label == c][:n]]

    kept = replace(data, clips={**data.clips, "train": first(data.clips["train"])})
    return replace(kept, images=first(data.images)) if images else kept


def without_weights(profile):
    """`profile` with random initial weights. Set with `replace`, not through `get_profile`, whose None means "keep
    the profile's value" (`usnb.params.profile`): get_profile("paper", weights=None) keeps "imagenet"."""
    profile = replace(profile, weights=None)
    assert profile.weights is None
    return profile


def finite(history: list[dict], key: str = "loss") -> bool:
    return len(history) >= 1 and all(math.isfinite(h[key]) for h in history)


@pytest.fixture
def out_dir(tmp_path):
    """The run's output folder; its checkpoints (up to 1.5 GB each at ViT-B size) are deleted after the test."""
    yield tmp_path
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)


@pytest.fixture(scope="module")
def breast(tmp_path_factory):
    """8 breast sweeps of 16 frames at 64 px + 2 test clips (`extra_test`: n=8 alone leaves the test split empty), half
    malignant, 4 stills; both classes in train and test at this seed (a data loader refuses a test split without a
    class); the recipes resize them to 224 px."""
    from usnb.phantom import generate

    return generate("breast", tmp_path_factory.mktemp("paper_shapes") / "breast", n=8, size=64, frames=16, seed=2,
                    positive_fraction=0.5, n_images=4, extra_test=2, workers=1)


@pytest.fixture(scope="module")
def lung(tmp_path_factory):
    """8 lung clips of 16 frames at 64 px + 2 test clips, both classes in train and test at this seed; the recipe
    resizes them to 112 px."""
    from usnb.phantom import generate

    return generate("lung", tmp_path_factory.mktemp("paper_shapes") / "lung", n=8, size=64, frames=16, seed=1,
                    extra_test=2, workers=1)


# ---------------------------------------------------------------- KGA-Net (Sun et al. 2023)


def test_kganet_paper_profile_trains_resnet50_on_16_frames_of_224px(breast, out_dir):
    """Pins KGA-Net's Sec. 4.1 shapes: an ImageNet-style ResNet-50 (2048-d features) on 16 training frames of
    224 x 224 px per clip plus one 224 px still image per clip (1:1), SGD with warmup and step decay, augmentation
    on the device, channels-last weights. Shrunk: 2 steps, 1 clip + 1 image per batch, no ImageNet download."""
    from torchvision.models import ResNet

    from usnb.recipes import kganet as K
    from usnb.view import field_of_view

    P = without_weights(K.get_profile("paper", train_steps=2, train_batch=1, num_workers=0, train_warmup=1,
                                      train_milestones=(1,)))
    assert (P.backbone, P.size, P.train_frames, P.augment_on) == ("resnet50", 224, 16, "device")
    data = per_class(K.load_data("phantom", field_of_view(P), data_dir=breast), 1, images=True)
    assert data.view.size == 224 and len(data.clips["train"]) == 2 and len(data.images) == 2
    with inputs_of(ResNet) as (shapes, steps):
        model, history = K.train_row("KGA-Net", data, P, seed=0, out_dir=out_dir, progress=False)
    assert isinstance(model.backbone, ResNet) and model.backbone.out_dim == 2048
    assert [len(model.backbone.layer1), len(model.backbone.layer2), len(model.backbone.layer3),
            len(model.backbone.layer4)] == [3, 4, 6, 3]  # ResNet-50's bottleneck stages
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # Profile.train_config
    assert steps == ["SGD", "SGD"]
    assert sorted(shapes) == [(1, 1, 224, 224)] * 2 + [(16, 1, 224, 224)] * 2  # per step: 16 frames + 1 image
    assert finite(history) and "coherence" in history[0] and math.isfinite(history[0]["coherence"])


# ---------------------------------------------------------------- MVCC (Lin et al. 2022)


def test_mvcc_paper_profile_pretrains_and_finetunes_vit_b_on_16x224x224(breast, out_dir):
    """Pins MVCC's Sec. 3 shapes: a TimeSformer ViT-B/16 (dim 768, 12 divided space-time blocks, 12 heads) on clips
    of 16 frames of 224 x 224 px (a 16 x 14 x 14 token grid), dual-level masked pretraining with its MAE decoder,
    then fine-tuning with C-SCL (Eq. 8). Shrunk: 1 epoch of each stage over 2 training clips at batch 1 (2 steps
    each), random initial weights. At batch 1, C-SCL has no positive or negative in the batch and adds 0 (its
    shapes are still run); batch 2 doubles the fine-tuning time (~50 s per clip-step on one CPU thread)."""
    from usnb.models.timesformer import TimeSformer
    from usnb.recipes import mvcc as M
    from usnb.view import field_of_view

    P = without_weights(M.get_profile("paper", pretrain_steps=2, finetune_steps=2, finetune_batch=1, pretrain_batch=1,
                                      num_workers=0, pretrain_warmup=1, finetune_warmup=1))
    assert (P.dim, P.depth, P.heads, P.patch, P.size, P.frames, P.augment_on) == (768, 12, 12, 16, 224, 16, "device")
    assert P.grid == (16, 14, 14)
    data = per_class(M.load_data("phantom", field_of_view(P), data_dir=breast), 1)
    assert data.view.size == 224 and len(data.clips["train"]) == 2
    with inputs_of(TimeSformer) as (shapes, steps):
        model, histories = M.train_row("MVCC", data, P, seed=0, out_dir=out_dir, progress=False)
    encoder = model.encoder
    assert isinstance(encoder, TimeSformer) and (encoder.dim, len(encoder.blocks), encoder.num_patches) == (768, 12, 196)
    assert encoder.patch_embed.proj.weight.shape == (768, 1, 16, 16)  # the ViT's linear patch embedding
    assert steps == ["AdamW", "AdamW", "SGD", "SGD"]  # pretraining, then fine-tuning
    assert shapes == [(1, 16, 1, 224, 224)] * 4
    assert set(histories) == {"pretrain", "finetune"}
    assert finite(histories["pretrain"]) and finite(histories["finetune"]) and finite(histories["finetune"], "con")


# ---------------------------------------------------------------- CLMAN (Huang et al. 2022)


def test_clman_paper_profile_simclr_then_finetunes_resnet18_gn_nl_on_16x224px(breast, out_dir):
    """Pins CLMAN's Sec. 3-4.3 shapes: the deformed ResNet-18 (width 64, 512-d features, GroupNorm everywhere,
    non-local blocks after stages 3 and 4) on 224 px frames, SimCLR with LARS on 4 frames per clip, then the
    multi-meta attention network fine-tuned on clips of T = 16 frames, channels-last. Shrunk: 2 SimCLR steps of
    2 clips (4 training clips), 2 fine-tuning steps of 1 clip (2 training clips)."""
    from usnb.models.clman import DeformedResNet18, NonLocalBlock
    from usnb.recipes import clman as C
    from usnb.view import field_of_view

    P = C.get_profile("paper", simclr_steps=2, finetune_steps=2, simclr_batch=2, finetune_batch=1, num_workers=0)
    assert (P.width, P.size, P.train_frames, P.simclr_frames, P.augment_on, P.channels_last) == (
        64, 224, 16, 4, "device", True)
    data = C.load_data("phantom", field_of_view(P), data_dir=breast)
    assert data.view.size == 224
    with inputs_of(DeformedResNet18) as (shapes, steps):
        simclr, history, simclr_config = C.pretrain(per_class(data, 2), P, 0, out_dir, progress=False)
        model, finetuned = C.train_row(C.FULL_ROW, per_class(data, 1), P, 0, out_dir,
                                       pretrained=(simclr, simclr_config), progress=False)
    backbone = model.backbone
    assert isinstance(backbone, DeformedResNet18) and backbone.out_dim == 512 and backbone.conv1.out_channels == 64
    assert len(backbone.non_local_blocks()) == 2 and all(
        isinstance(m[-1], NonLocalBlock) for m in (backbone.layer3, backbone.layer4))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in backbone.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in backbone.modules())
    assert steps == ["LARS", "LARS", "SGD", "SGD"]
    # SimCLR: 2 clips x 4 frames x 2 views per step; fine-tuning: 16 frames of one clip per step
    assert shapes == [(16, 1, 224, 224)] * 4
    assert finite(history) and finite(finetuned)


# ---------------------------------------------------------------- Lung SSL (Chen, Rubin et al. 2022)


def test_lung_paper_profile_byol_pretrains_darknet53_3d_on_16x112px(lung, out_dir):
    """Pins the lung paper's Sec. 3.2 shapes: BYOL (projector / predictor hidden 4096, target EMA) of the 3-D
    Darknet-53 (52 convolutions, 1024-d features) on clips of 16 frames of 112 x 112 px. Shrunk: 2 steps of 2
    clips, random initial weights."""
    from usnb.models.lung_ssl import BYOL, Darknet3D
    from usnb.recipes import lung_ssl as L

    P = L.get_profile("paper", ssl_steps=2, ssl_batch=2, supervised_steps=2, supervised_batch=2, num_workers=0)
    assert (P.encoder, P.size, P.frames, P.proj_hidden) == ("darknet53", 112, 16, 4096)
    data = L.load_data("phantom", P, data_dir=lung)
    assert data.size == 112 and {r.label for r in data.clips["train"]} == set(data.classes)
    with inputs_of(Darknet3D) as (shapes, steps):
        ssl, history = L.pretrain("BYOL", data, data.clips["train"], P, 0, out_dir, progress=False)
    encoder = ssl.encoder
    assert isinstance(ssl, BYOL) and isinstance(encoder, Darknet3D) and encoder.out_dim == 1024
    assert sum(isinstance(m, nn.Conv3d) for m in encoder.modules()) == 52  # Darknet-53 = 52 convolutions + FC
    reference = L.build_encoder(P)
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in reference.parameters())
    assert steps == ["AdamW", "AdamW"]
    assert shapes and all(s[1:] == (1, 16, 112, 112) and s[0] in (2, 4) for s in shapes), shapes
    assert finite(history)


# ---------------------------------------------------------------- MVCC's Table 1: USCL and CVRL


def test_uscl_paper_profile_pretrains_and_finetunes_resnet18_on_224px(breast, out_dir):
    """USCL's code path (usnb.recipes.uscl): ResNet-18 on frames of 224 px, pairs mixed from frames of one video,
    NT-Xent with AdamW, then the Table 1 row fine-tuned with SGD on 16-frame clips. Shrunk: 2 steps per stage."""
    from usnb.recipes import uscl as U
    from usnb.view import field_of_view

    P = U.get_profile("paper", pretrain_steps=2, finetune_steps=2, pretrain_batch=2, finetune_batch=1, num_workers=0)
    assert (P.size, P.frames, P.backbone, P.temperature) == (224, 16, "resnet18", 0.5)
    data = per_class(U.load_data("phantom", field_of_view(P), data_dir=breast), 1)
    backbone = type(U.build_backbone(P))
    with inputs_of(backbone) as (shapes, steps):
        model, histories = U.train_row(data, P, seed=0, out_dir=out_dir)
    assert steps == ["AdamW", "AdamW", "SGD", "SGD"]  # pretraining, then fine-tuning
    assert all(s[-2:] == (224, 224) for s in shapes) and (2 * 2, 1, 224, 224) in shapes  # 2 pairs of frames
    assert (16, 1, 224, 224) in shapes  # one clip of 16 frames, frame by frame
    assert finite(histories["pretrain"]) and finite(histories["finetune"])


def test_cvrl_paper_profile_pretrains_and_finetunes_r3d50_on_16x224px(breast, out_dir):
    """CVRL's code path (usnb.recipes.cvrl): the slow-only R3D-50 on two 16-frame clips of 224 px per video, InfoNCE
    with LARS, then fine-tuning with SGD. Shrunk: 2 steps per stage, batch 1."""
    from usnb.models.cvrl import r3d_resnet
    from usnb.recipes import cvrl as V
    from usnb.view import field_of_view

    P = V.get_profile("paper", pretrain_steps=2, finetune_steps=2, pretrain_batch=1, finetune_batch=1, num_workers=0)
    assert (P.size, P.frames, P.depth, P.width, P.temperature) == (224, 16, 50, 64, 0.1)
    data = per_class(V.load_data("phantom", field_of_view(P), data_dir=breast), 1)
    encoder = type(r3d_resnet(50, None, 8, 1, P.stem_time, P.stem_time_stride))
    with inputs_of(encoder) as (shapes, steps):
        model, histories = V.train_row(data, P, seed=0, out_dir=out_dir)
    assert steps == ["LARS", "LARS", "SGD", "SGD"]
    assert (2, 1, 16, 224, 224) in shapes and (1, 1, 16, 224, 224) in shapes  # a pair of clips; one clip
    assert finite(histories["pretrain"]) and finite(histories["finetune"])

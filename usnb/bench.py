"""GPU speed benchmark: training clips/s, FLOPs and MFU, peak memory and loader frames/s, fast against naive.

A bench case builds one paper's model at its paper profile's shapes (or tiny ones with `quick`), a synthetic batch
on the device and the step computing the paper's training loss (`step_fn` of `usnb.train.fit`). Each case runs
twice: fast (bf16 autocast on CUDA, flash / memory-efficient attention, channels_last for CNNs, fused optimizer,
optionally torch.compile) and naive (fp32, eager, math attention, contiguous layout, for-loop optimizer). The
loader runs twice too: uint8 clips from the cache (`usnb.cache`) through the DataLoader, augmented on the GPU
(`usnb.gpu_augment`), against decoding every clip with decord on the fly and augmenting on the CPU.

Cases whose model module is not in this checkout (the other papers' branches not merged yet) are skipped with the
module they need. Run it as `usnb bench` or `python benchmarks/bench_gpu.py`; `--quick` fits a CPU in a minute.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import params
from .train import Schedule, TrainConfig, make_optimizer, optimizer_step, seed_everything, to_channels_last

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets; matched against the device name.
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12}


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """The device's peak bf16 FLOP/s: `override_tflops` * 1e12 if given, else PEAK_BF16 by name; None on a CPU or
    an unknown GPU (MFU is then n/a: pass --peak-tflops)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16.items():  # "H100 PCIe" before "H100"
        if key in name:
            return value
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- cases


@dataclass
class Workload:
    """One training step to time: `step(model, batch, device) -> (loss, logs)` on `batch(device)`."""

    model: nn.Module
    batch: Callable[[torch.device], tuple]  # a synthetic batch, built on the device once and reused
    step: Callable  # the paper's training loss, as `usnb.train.fit` calls it
    clips: int  # clips (videos) per step
    frames: int  # frames the model sees per step
    schedule: Schedule  # the profile's optimizer, lr and gradient clipping, as `fit` applies them
    cnn: bool = False  # channels_last applies in the fast configuration
    after_step: Callable[[nn.Module], None] | None = None  # e.g. BYOL's target update


@dataclass
class Case:
    """A paper model at its paper profile (`build(quick=False)`) or tiny (`build(quick=True)`)."""

    name: str
    paper: str
    shapes: Callable[[], str]  # the paper profile's shapes, read from the recipe, for the table
    requires: tuple[str, ...]  # modules the case imports (another paper's branch, until it is merged)
    build: Callable[[bool], Workload]
    naive: bool = True  # also time the naive configuration
    note: str = ""

    def missing(self) -> str | None:
        """None if every required module imports, else why not (the case is then skipped)."""
        for name in self.requires:
            try:
                importlib.import_module(name)
            except ImportError as err:
                return f"{name} not importable ({err}); it comes with that paper's branch"
        return None


def _labels(n: int, device) -> torch.Tensor:
    return torch.arange(n, device=device) % 2  # both classes in every batch (contrastive losses need pairs)


def _uint8(shape, device) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, device=device)


def _profile(recipe, quick: bool, **shrink):
    """The recipe's paper profile with random initial weights (no downloads), shrunk to `shrink` when `quick`."""
    profile = recipe.PROFILES["paper"]
    if hasattr(profile, "weights"):
        profile = replace(profile, weights=None)
    return params.profile({"paper": profile}, "paper", **shrink) if quick else profile


def kganet_case(quick: bool) -> Workload:
    """KGA-Net paper profile (Sec. 4.1): ResNet-50 per frame, 8 clips x 16 frames + 8 keyframe images, 224 px, SGD;
    the recipe's Eq. (4) step (uint8 in, cropped, flipped and standardised on the device)."""
    from .recipes import kganet as K
    from .view import clip_augment, field_of_view

    P = _profile(K, quick, size=32, train_frames=2, train_batch=2)
    b, t, view = P.train.batch, P.train_frames, field_of_view(P)
    _, prepare = clip_augment(view, P.crop_scale, P.augment_on)

    def batch(device):
        c = view.cache_size
        return _uint8((b, t, 1, c, c), device), _labels(b, device), _uint8((b, 1, c, c), device), _labels(b, device)

    return Workload(K.build_model(P), batch, K.make_step(K.Row(), view, P.lam, prepare), clips=b, frames=b * t + b,
                    schedule=P.train, cnn=True)


MVCC_QUICK = dict(size=32, patch=8, frames=4, dim=64, depth=2, heads=4, decoder_dim=32, decoder_depth=1,
                  decoder_heads=4, finetune_batch=4, pretrain_batch=4)


def _mvcc_batch(P, b: int):
    from .view import field_of_view

    c = field_of_view(P).cache_size
    return lambda device: (_uint8((b, P.frames, 1, c, c), device), _labels(b, device))


def mvcc_pretrain_case(quick: bool, masked: bool = True) -> Workload:
    """MVCC masked video pretraining (the recipe's step): dual-level mask, the encoder on the visible tokens, the MAE
    decoder, MSE on the masked patches. masked=False: the same model on every token (encoder and decoder), MSE on
    every patch (a comparison only the benchmark makes)."""
    from .models.mvcc import mae_loss
    from .models.timesformer import patchify
    from .recipes import mvcc as M
    from .view import clip_augment, field_of_view

    P = _profile(M, quick, **MVCC_QUICK)
    b, t, n = P.pretrain.batch, P.frames, (P.size // P.patch) ** 2
    _, prepare = clip_augment(field_of_view(P), P.crop_scale, P.augment_on)
    step = M.make_pretrain_step(P, "dual", prepare)
    if not masked:

        def step(net, batch, device):
            x = prepare(batch[0], 4)
            none = torch.zeros(b, t, n, dtype=torch.bool, device=device)
            pred = net.decoder(net.encoder(x), none)  # every token through encoder and decoder
            return mae_loss(pred, patchify(x, P.patch), ~none), {}

    return Workload(M.build_pretrainer(P), _mvcc_batch(P, b), step, clips=b, frames=b * t, schedule=P.pretrain)


def mvcc_finetune_case(quick: bool) -> Workload:
    """MVCC fine-tuning of the MVCC row (the recipe's step), Eq. (8): cross-entropy + 0.1 C-SCL, SGD."""
    from .recipes import mvcc as M
    from .view import clip_augment, field_of_view

    P = _profile(M, quick, **MVCC_QUICK)
    _, prepare = clip_augment(field_of_view(P), P.crop_scale, P.augment_on)
    step = M.make_finetune_step(M.TABLE1_ROWS["MVCC"], P, prepare)
    b = P.finetune.batch
    return Workload(M.build_classifier(P), _mvcc_batch(P, b), step, clips=b, frames=b * P.frames, schedule=P.finetune)


def clman_case(quick: bool) -> Workload:
    """CLMAN fine-tuning (Sec. 4.3, the recipe's step): GroupNorm ResNet-18 with non-local blocks per frame,
    multi-meta attention, cross-entropy; 8 clips x 16 frames at 224 px, SGD."""
    from .recipes import clman as C
    from .view import clip_augment, field_of_view

    P = _profile(C, quick, size=32, width=8, stem_pool=False, train_frames=2, finetune_batch=2)
    b, t, view = P.finetune.batch, P.train_frames, field_of_view(P)
    _, prepare = clip_augment(view, P.crop_scale, P.augment_on)

    def batch(device):
        return _uint8((b, t, 1, view.cache_size, view.cache_size), device), _labels(b, device)

    return Workload(C.build_model(P, C.Row()), batch, C.make_step(view, prepare), clips=b, frames=b * t,
                    schedule=P.finetune, cnn=True)


def lung_byol_case(quick: bool) -> Workload:
    """Lung SSL pretraining (Sec. 3.2, the recipe's step): BYOL on a 3-D Darknet-53, projector/predictor hidden 4096,
    two spatio-temporal augmentations of 32 clips x 16 frames at 112 px, Adam lr 3e-4; the target's EMA after every
    step."""
    from .augment_st import SpatioTemporalAugment
    from .cache import ClipCache
    from .lung import CLASSES, LungData
    from .recipes import lung_ssl as L
    from .view import FieldOfView

    P = _profile(L, quick, encoder="small", widths=(8, 16, 32, 64), blocks=(1, 1, 1), temporal_strides=(1, 2, 2),
                 stem_stride=(1, 2, 2), proj_hidden=64, proj_dim=32, size=32, frames=4, ssl_batch=4)
    b, t, side = P.ssl.batch, P.frames, FieldOfView(P.size, P.fov).cache_size
    data = LungData({}, ClipCache(size=(side, side)), CLASSES, P.size, clip_norm=P.clip_norm)

    def batch(device):  # the loader's uint8 clips (B, T, 1, H, W), twice where the profile samples two views
        one = (_uint8((b, t, 1, side, side), device), _labels(b, device))
        return one * 2 if P.two_samplings else one

    return Workload(L.build_ssl("BYOL", P), batch, L.ssl_step(data, SpatioTemporalAugment()), clips=b,
                    frames=2 * b * t, schedule=P.ssl, cnn=True, after_step=lambda m: m.update_target())


def _paper(recipe: str):
    import importlib

    return importlib.import_module(f"usnb.recipes.{recipe}").PROFILES["paper"]


def _shapes_kganet() -> str:
    P = _paper("kganet")
    return f"{P.backbone}, {P.train.batch} clips x {P.train_frames} frames + {P.train.batch} images, {P.size} px"


def _shapes_mvcc(stage: str) -> Callable[[], str]:
    def shapes() -> str:
        P = _paper("mvcc")
        b = P.pretrain.batch if stage == "pretrain" else P.finetune.batch
        what = (f"+ MAE decoder {P.decoder_dim}, masked alpha {P.alpha} beta {P.beta}" if stage == "pretrain"
                else "classifier, CE + C-SCL" if stage == "finetune" else "on every token (no mask)")
        return f"TimeSformer {P.dim}x{P.depth}/{P.patch} {what}, {b} x {P.frames} x {P.size}"
    return shapes


def _shapes_clman() -> str:
    P = _paper("clman")
    return f"ResNet-18 (width {P.width}) GN + non-local, multi-meta, {P.finetune.batch} x {P.train_frames} x {P.size}"


def _shapes_lung() -> str:
    P = _paper("lung_ssl")
    return f"BYOL, 3-D {P.encoder}, 2 views x {P.ssl.batch} x {P.frames} x {P.size}"


CASES = {c.name: c for c in [
    Case("kganet", "KGA-Net", _shapes_kganet, ("usnb.models.kganet",), kganet_case),
    Case("mvcc-pretrain", "MVCC", _shapes_mvcc("pretrain"), ("usnb.models.mvcc", "usnb.models.timesformer"),
         mvcc_pretrain_case),
    Case("mvcc-unmasked", "MVCC", _shapes_mvcc("unmasked"), ("usnb.models.mvcc", "usnb.models.timesformer"),
         lambda quick: mvcc_pretrain_case(quick, masked=False), naive=False, note="compare clips/s with mvcc-pretrain"),
    Case("mvcc-finetune", "MVCC", _shapes_mvcc("finetune"), ("usnb.models.mvcc", "usnb.models.timesformer"),
         mvcc_finetune_case),
    Case("clman", "CLMAN", _shapes_clman, ("usnb.models.clman",), clman_case),
    Case("lung-byol", "Lung SSL", _shapes_lung, ("usnb.models.lung_ssl",), lung_byol_case),
]}


# ---------------------------------------------------------------- measuring a training step


def count_flops(workload: Workload, device: torch.device) -> int:
    """FLOPs of one training step (forward and backward) by torch.utils.flop_counter.FlopCounterMode (matmuls,
    convolutions, attention; 2 FLOPs per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = workload.batch(device)
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = workload.step(workload.model, batch, device)
        loss.backward()
    workload.model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def measure_training(case: Case, quick: bool, fast: bool, device: torch.device, warmup: int, iters: int,
                     peak: float | None, compile: bool = False, flops: int | None = None) -> dict:
    """Time `iters` training steps after `warmup` ones (CUDA synchronised around the timing) in the fast or naive
    configuration; FLOPs counted once (pass `flops` to reuse a count), MFU against `peak`."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    seed_everything(0)
    work = case.build(quick)
    model = work.model.to(device).train()
    config = TrainConfig(work.schedule, amp=fast, channels_last=fast and work.cnn, fused=fast,
                         compile=fast and compile)
    if config.channels_last:
        to_channels_last(model)
    if flops is None:
        flops = count_flops(work, device)
    net = torch.compile(model) if config.compile else model
    optimizer = make_optimizer(model, config, device)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")
    attention = contextlib.nullcontext if fast else (lambda: sdpa_kernel(SDPBackend.MATH))  # one context per step
    batch = work.batch(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def step():  # as usnb.train.fit does it
        with autocast, attention():
            loss, _ = work.step(net, batch, device)
        optimizer_step(model, loss, optimizer, work.schedule.clip_grad)
        if work.after_step is not None:
            work.after_step(model)
        return loss

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        loss = step()
    _sync(device)
    seconds = (time.perf_counter() - t0) / iters
    if not torch.isfinite(loss):
        raise FloatingPointError(f"bench case {case.name}: loss became {float(loss)}; the benchmark times a broken step")
    achieved = flops / seconds
    out = {"config": "fast" if fast else "naive", "step_s": seconds, "clips_per_s": work.clips / seconds,
           "frames_per_s": work.frames / seconds, "flops_per_step": flops, "achieved_tflops": achieved / 1e12,
           "mfu": achieved / peak if peak else None,
           "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
           "bf16": config.amp and device.type == "cuda", "channels_last": config.channels_last,
           "fused_optimizer": bool(optimizer.defaults.get("fused")), "compiled": config.compile,
           "attention": "default (flash / memory-efficient)" if fast else "math"}
    del model, net, optimizer, batch, work
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---------------------------------------------------------------- measuring the loader


def synthetic_videos(folder: Path, n: int, frames: int, size: tuple[int, int], seed: int = 0) -> list:
    """n H.264 clips of speckle-like texture drifting over `frames` frames (what decoding costs on ultrasound),
    as VideoRecords labelled benign / malignant in turn."""
    from .datasets.records import VideoRecord
    from .io import write_video

    rng = np.random.default_rng(seed)
    records = []
    h, w = size
    for i in range(n):  # grains of 2 x 2 pixels plus fine noise, moving down a row a frame
        coarse = np.kron(rng.integers(40, 216, ((h + frames) // 2 + 1, w // 2)), np.ones((2, 2)))
        field_ = (coarse + rng.normal(0, 12, coarse.shape)).clip(0, 255).astype(np.uint8)
        clip = np.stack([field_[k:k + h] for k in range(frames)])  # (T, H, W)
        path = write_video(folder / f"clip{i:03d}.mp4", clip)
        records.append(VideoRecord(f"clip{i:03d}", path, ("benign", "malignant")[i % 2], f"p{i}"))
    return records


class DecodedClips(torch.utils.data.Dataset):
    """The naive loader: every item decodes its T frames from the video with decord (at the cache's frame size),
    augments on the CPU (torchvision v2, one draw per clip) and standardises the clip."""

    def __init__(self, records, size: int, num_frames: int, scale=(0.8, 1.0)):
        from .transforms import video_augment

        self.records, self.size, self.num_frames = records, size, num_frames
        self.augment = video_augment(size, scale=scale, ratio=(1.0, 1.0))
        self.lengths = [r.meta.get("frames") or _count(r) for r in records]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        from . import sampling
        from .gpu_augment import standardise_clips

        rng = np.random.default_rng(int(torch.randint(2**31, (1,))))
        idx = sampling.sample_indices(self.lengths[i], self.num_frames, "segments", rng)
        frames = self.records[i].read(grayscale=True, indices=idx, size=(self.size, self.size))  # (T, H, W, 1)
        clip = self.augment(torch.from_numpy(frames).permute(0, 3, 1, 2))  # (T, 1, H, W) uint8
        return standardise_clips(clip.float()[None])[0], i % 2


def _count(record) -> int:
    from .io import count_frames

    return count_frames(record.path)


def _loader_rate(loader, consume: Callable, batches: int, device: torch.device) -> dict:
    """frames/s over `batches` batches after the first (worker start-up excluded), the device work included."""
    it = iter(loader)
    frames, done, t0 = 0, 0, None
    while done < batches + 1:
        try:
            clips, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        out = consume(clips)
        if t0 is None:  # the first batch is warm-up
            _sync(device)
            t0 = time.perf_counter()
        else:
            frames += out.shape[0] * out.shape[1]
        done += 1
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"frames_per_s": frames / seconds, "batches": batches, "frames": frames, "seconds": seconds}


def measure_loader(quick: bool, device: torch.device, workers: int | None = None, root: Path | None = None) -> dict:
    """KGA-Net-shaped loading (8 clips x 16 frames at 224 px, segment sampling, random crop + flip, standardised
    on the device) from the uint8 cache vs decoding with decord on the fly; frames/s of each and the ratio."""
    from torch.utils.data import DataLoader

    from .cache import ClipCache
    from .data import ClipDataset
    from .gpu_augment import GPUAugment

    if quick:
        n, native, length, size, t, b, batches = 4, (48, 64), 12, 32, 4, 2, (8, 4)
        workers = 0 if workers is None else workers
    else:
        n, native, length, size, t, b, batches = 32, (360, 480), 64, 224, 16, 8, (300, 30)
        workers = min(8, os.cpu_count() or 1) if workers is None else workers
    pin = device.type == "cuda"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        records = synthetic_videos(Path(tmp) / "videos", n, length, native)
        for r in records:
            r.meta["frames"] = length
        cache = ClipCache(Path(tmp) / "cache", size=(size, size), grayscale=True)
        cache.prefill(records, progress=False)  # the cache is built once, before training: not timed
        cached = ClipDataset(records, cache, ("benign", "malignant"), num_frames=t, mode="segments")
        augment = GPUAugment(size, scale=(0.8, 1.0), ratio=(1.0, 1.0))
        kw = dict(batch_size=b, shuffle=True, drop_last=True, num_workers=workers, pin_memory=pin,
                  persistent_workers=workers > 0)
        fast = _loader_rate(DataLoader(cached, **kw), lambda c: augment(c.to(device, non_blocking=True)),
                            batches[0], device)
        naive = _loader_rate(DataLoader(DecodedClips(records, size, t), **kw),
                             lambda c: c.to(device, non_blocking=True), batches[1], device)
    shapes = f"{b} clips x {t} frames, {native[1]}x{native[0]} video -> {size} px, {workers} workers"
    return {"shapes": shapes, "fast": {"config": "cache + GPU augment", **fast},
            "naive": {"config": "decord on the fly + CPU augment", **naive},
            "speedup": fast["frames_per_s"] / naive["frames_per_s"]}


# ---------------------------------------------------------------- the run and its table


def run(cases: list[str] | None = None, quick: bool = False, device: str | None = None, warmup: int | None = None,
        iters: int | None = None, peak_tflops: float | None = None, compile: bool = False, loader: bool = True,
        workers: int | None = None, progress: Callable[[str], None] | None = print) -> dict:
    """Measure every case (fast and naive) and the loader; returns the JSON-ready results."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    warmup = (1 if quick else 5) if warmup is None else warmup
    iters = (2 if quick else 20) if iters is None else iters
    unknown = sorted(set(cases or []) - set(CASES))
    if unknown:
        raise ValueError(f"unknown bench case(s) {unknown}; choose from {sorted(CASES)}")
    peak = peak_flops(dev, peak_tflops)
    say = progress or (lambda _: None)
    result = {"mode": "quick" if quick else "full", "device": device_name(dev), "device_type": dev.type,
              "peak_bf16_flops": peak, "torch": torch.__version__, "warmup": warmup, "iters": iters,
              "compile": compile, "cases": {}, "loader": None, "mvcc_masked_vs_unmasked": None}
    for name in cases or list(CASES):
        case = CASES[name]
        entry = {"paper": case.paper, "shapes": case.shapes(), "note": case.note}
        why = case.missing()
        if why:
            say(f"[bench] {name}: skipped, {why}")
            result["cases"][name] = {**entry, "skipped": why}
            continue
        say(f"[bench] {name}: fast")
        entry["fast"] = measure_training(case, quick, True, dev, warmup, iters, peak, compile)
        if case.naive:
            say(f"[bench] {name}: naive")
            entry["naive"] = measure_training(case, quick, False, dev, warmup, iters, peak,
                                              flops=entry["fast"]["flops_per_step"])
            entry["speedup"] = entry["fast"]["clips_per_s"] / entry["naive"]["clips_per_s"]
        result["cases"][name] = entry
    done = result["cases"]
    if "fast" in done.get("mvcc-pretrain", {}) and "fast" in done.get("mvcc-unmasked", {}):
        result["mvcc_masked_vs_unmasked"] = (done["mvcc-pretrain"]["fast"]["clips_per_s"]
                                             / done["mvcc-unmasked"]["fast"]["clips_per_s"])
    if loader:
        say("[bench] loader: cache vs decord")
        result["loader"] = measure_loader(quick, dev, workers)
    return result


def _fmt(x, spec: str = ".3g", na: str = "n/a") -> str:
    if x is None:
        return na
    return f"{x:,.0f}" if abs(x) >= 1000 else format(x, spec)


def table(result: dict) -> str:
    """The results as a plain-text table (one line per case and configuration)."""
    head = ["case", "config", "clips/s", "frames/s", "GFLOP/step", "TFLOP/s", "MFU", "peak GB", "fast/naive"]
    rows = []
    for name, e in result["cases"].items():
        if "skipped" in e:
            rows.append([name, "skipped", "", "", "", "", "", "", ""])
            continue
        for key in ("fast", "naive"):
            if key not in e:
                continue
            m = e[key]
            rows.append([name, key, _fmt(m["clips_per_s"]), _fmt(m["frames_per_s"]), _fmt(m["flops_per_step"] / 1e9),
                         _fmt(m["achieved_tflops"]), _fmt(m["mfu"] and 100 * m["mfu"], ".1f") +
                         ("%" if m["mfu"] else ""), _fmt(m["peak_memory_gb"]),
                         _fmt(e.get("speedup"), ".2f") + "x" if key == "fast" and "speedup" in e else ""])
    if result.get("loader"):
        lo = result["loader"]
        for key in ("fast", "naive"):
            rows.append(["loader", lo[key]["config"], "", _fmt(lo[key]["frames_per_s"]), "", "", "", "",
                         f"{lo['speedup']:.2f}x" if key == "fast" else ""])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    peak = result["peak_bf16_flops"]
    foot = [f"device: {result['device']} ({result['mode']} mode; "
            + (f"peak bf16 {peak / 1e12:.0f} TFLOP/s)" if peak else "peak bf16 unknown: MFU n/a, pass --peak-tflops)")]
    if result.get("mvcc_masked_vs_unmasked"):
        foot.append(f"MVCC masked pretraining vs unmasked: {result['mvcc_masked_vs_unmasked']:.2f}x clips/s")
    if result.get("loader"):
        foot.append(f"loader: {result['loader']['shapes']}")
    for name, e in result["cases"].items():
        if "skipped" in e:
            foot.append(f"skipped {name}: {e['skipped']}")
    return "\n".join(lines + [""] + foot)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--quick", action="store_true", help="tiny shapes, a minute on a CPU (CI)")
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), help="only these cases (default: all)")
    p.add_argument("--out", default="runs/bench/bench.json", help="JSON file of every figure")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--warmup", type=int, help="untimed steps per configuration (default 5; quick 1)")
    p.add_argument("--iters", type=int, help="timed steps per configuration (default 20; quick 2)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak bf16 TFLOP/s for MFU (default: known GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast configuration")
    p.add_argument("--workers", type=int, help="DataLoader workers for the loader test (default min(8, CPUs); quick 0)")
    p.add_argument("--no-loader", action="store_true", help="skip the loader test")
    return p


def main_args(args: argparse.Namespace) -> int:
    result = run(args.cases, quick=args.quick, device=args.device, warmup=args.warmup, iters=args.iters,
                 peak_tflops=args.peak_tflops, compile=args.compile, loader=not args.no_loader, workers=args.workers)
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="bench_gpu", description=__doc__.splitlines()[0]))
    return main_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

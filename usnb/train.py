"""One training loop for every paper: a paper brings its model and its loss (`step_fn`), not a loop.

Run length in optimizer steps (`Schedule`, one per training stage of every profile); SGD with warmup and step
decay (KGA-Net), cosine annealing, AdamW, LARS; bf16 autocast on CUDA; gradient clipping; tqdm progress; metrics
per pass over the data; atomic checkpoints with resume at pass boundaries;
`train_or_load`; DistributedDataParallel when started under `torchrun`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import live
from .live import my_cpus, usable_cores
from .errors import DataWarning
from .checkpoints import ema_update, load_checkpoint, save_checkpoint
from .params import number


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA): the one place usnb seeds anything."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def init_distributed() -> bool:
    """Join the process group that `torchrun` describes (WORLD_SIZE > 1 in the environment): NCCL on GPUs, gloo on
    the CPU. A no-op otherwise or when joined already; True when this process is one of several."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and dist.is_available() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.is_available() and dist.is_initialized()


def choose_threads(threads: int | None = None) -> str:
    """Set torch's CPU threads and say why: `threads` if given; else OMP_NUM_THREADS where set (`usnb run` sets it:
    the cores over the runs it starts side by side); else the cores that are idle now (the available cores less those
    busy over half a second, at least 1), because OpenMP threads on busy cores spin and slow every job (on a busy
    2-core machine 1 thread trained at 2.9 steps/s, 2 threads at 1.6). Returns the sentence a notebook prints."""
    mine = my_cpus()
    cores = usable_cores()
    if threads is not None:
        n, why = number("threads", threads, low=1, integer=True), "the threads parameter"
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        n, why = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS, as usnb run sets it"
    else:
        per_cpu = psutil.cpu_percent(interval=0.5, percpu=True)  # each CPU's use over half a second
        busy = sum(per_cpu[i] for i in mine if i < len(per_cpu)) / 100  # of the CPUs this process may use
        n = max(1, min(cores, round(cores - busy)))
        why = f"the idle ones of the {cores} cores it may use ({busy:.1f} busy now); set threads to choose"
    torch.set_num_threads(int(n))
    return f"torch threads: {n} ({why}). Results differ slightly with the thread count, within the seeds' spread."


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` if given ('cpu', 'cuda', 'cuda:1'), else CUDA when present (this process's GPU under torchrun),
    else CPU."""
    init_distributed()
    if prefer:
        return torch.device(prefer)
    if dist.is_available() and dist.is_initialized() and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Schedule:
    """One training stage's run length and optimisation, as every recipe's profile states it: `fit` takes exactly
    `steps` optimizer steps on batches of `batch` items (passes over the data reshuffled, the last one cut short)."""

    steps: int  # optimizer steps
    batch: int  # items per optimizer step (global: split across DDP processes)
    optimizer: str = "sgd"  # "sgd" | "adamw" | "lars"
    lr: float = 0.005
    weight_decay: float = 1e-4
    schedule: str = "constant"  # the learning rate over the steps: "step" (x gamma at milestones) | "cosine" | "constant"
    warmup: int = 0  # steps of linear warmup from 0
    milestones: tuple[int, ...] = ()  # steps at which lr *= gamma
    gamma: float = 0.1
    momentum: float = 0.9  # SGD and LARS
    trust_coefficient: float = 0.001  # LARS eta (You et al.'s default)
    clip_grad: float | None = None  # max gradient norm
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights with this decay; training ends on it


@dataclass
class TrainConfig:
    """How to train: a `Schedule` and what else decides the weights; saved inside every checkpoint (a finished one is
    reused only if this matches)."""

    schedule: Schedule
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # bf16 autocast, on CUDA only
    extra: dict = field(default_factory=dict)  # paper-specific settings that change the result
    # speed switches (left out of the fingerprint: they change how fast, not what is learned)
    channels_last: bool = False  # CNN weights (hence activations) in NHWC / NDHWC memory order
    fused: bool = True  # fused SGD / AdamW kernels, on CUDA only
    compile: bool = False  # torch.compile the network (the first steps are slow while it compiles)

    def fingerprint(self) -> str:
        kept = {k: v for k, v in asdict(self).items() if k not in SPEED_FIELDS}
        return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


SPEED_FIELDS = ("channels_last", "fused", "compile")


def lr_factor(schedule: Schedule, step: int) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based) of `schedule.steps`."""
    if schedule.warmup and step < schedule.warmup:
        return (step + 1) / schedule.warmup
    if schedule.schedule == "step":
        return schedule.gamma ** sum(step >= m for m in schedule.milestones)
    if schedule.schedule == "cosine":
        done = (step - schedule.warmup) / max(1, schedule.steps - schedule.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    if schedule.schedule == "constant":
        return 1.0
    raise ValueError(f"schedule must be 'step', 'cosine' or 'constant', got {schedule.schedule!r}")


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, Algorithm 1), as SimCLR trains with it.

    For every weight tensor w with gradient g: local_lr = eta * ||w|| / (||g|| + beta * ||w||) (1 when a norm is 0),
    v <- m * v + lr * local_lr * (g + beta * w), w <- w - v (beta: weight_decay, eta: trust_coefficient).
    Tensors with one dimension or none (biases, norm scales) get plain momentum SGD without weight decay when
    `exclude_1d` (SimCLR's convention).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, exclude_1d: bool = True):
        if lr < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(f"LARS needs lr >= 0, weight_decay >= 0 and trust_coefficient > 0, got lr={lr}, "
                             f"weight_decay={weight_decay}, trust_coefficient={trust_coefficient}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, exclude_1d=exclude_1d))

    @staticmethod
    def trust_ratio(w: torch.Tensor, g: torch.Tensor, weight_decay: float, eta: float) -> torch.Tensor:
        """eta * ||w|| / (||g|| + beta * ||w||), or 1 where ||w|| or ||g|| is 0."""
        w_norm, g_norm = w.norm(), g.norm()
        ratio = eta * w_norm / (g_norm + weight_decay * w_norm)
        return torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not (group["exclude_1d"] and p.ndim <= 1):
                    scale = self.trust_ratio(p, g, group["weight_decay"], group["trust_coefficient"])
                    g = (g + group["weight_decay"] * p) * scale
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                v = state["momentum"].mul_(group["momentum"]).add_(g, alpha=group["lr"])
                p.sub_(v)
        return loss


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device | None = None
                   ) -> torch.optim.Optimizer:
    """SGD, AdamW or LARS; fused kernels (`config.fused`, SGD and AdamW) only when `device` is a GPU."""
    params, s = [p for p in model.parameters() if p.requires_grad], config.schedule
    fast = {"fused": True} if config.fused and device is not None and torch.device(device).type == "cuda" else {}
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, **fast)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay, **fast)
    if s.optimizer == "lars":
        return LARS(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                    trust_coefficient=s.trust_coefficient)
    raise ValueError(f"optimizer must be 'sgd', 'adamw' or 'lars', got {s.optimizer!r}")


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Store 4-D weights channels-last (NHWC) and 5-D ones channels-last-3d (NDHWC), in place: convolutions then
    run on tensor cores without layout transposes, and their outputs keep that layout. Other tensors are unchanged."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.dim() in formats:
                t.data = t.data.contiguous(memory_format=formats[t.dim()])
    return model


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _log_value(v) -> float:
    return float(v.detach()) if torch.is_tensor(v) else float(v)


def optimizer_step(model: torch.nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   clip_grad: float | None = None) -> None:
    """One optimizer step on `loss`: gradients zeroed, backpropagated, clipped to norm `clip_grad`, applied. `fit`
    and the speed benchmark (`usnb.bench`) both step with it."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()


def fit(model: torch.nn.Module, dataset: Dataset, step_fn: Callable, config: TrainConfig,
        checkpoint: str | Path | None = None, eval_fn: Callable | None = None, collate_fn: Callable | None = None,
        device: torch.device | None = None, progress: bool = True,
        after_step: Callable | None = None, name: str | None = None) -> list[dict]:
    """Train `model` on `dataset` for exactly `config.schedule.steps` optimizer steps; returns one dict of metrics per
    pass over the data (the last pass stops at the step count).

    step_fn(model, batch, device) -> (loss, {name: value}) computes the paper's loss on one batch.
    eval_fn(model) -> {name: value} runs after each pass (rank 0 only under DDP).
    after_step(model, n) runs after every optimizer step (n: steps so far), e.g. BYOL's target EMA update.
    With `checkpoint`, progress is saved atomically after every pass and training resumes from it.
    With `schedule.ema`, the model ends with the moving average of its weights (Polyak averaging; the decay ramps
    up as min(ema, (1 + n) / (10 + n)) over the first steps n, so early weights do not linger). `name` labels the
    progress bar (the row being trained).
    """
    init_distributed()
    rank, world = _world()
    device = device or pick_device()
    s = config.schedule
    if s.batch % world:
        raise ValueError(f"batch {s.batch} must divide evenly over {world} processes")
    if len(dataset) < s.batch:  # a small data set of the user's: every step takes the whole split
        clipped = len(dataset) - len(dataset) % world
        if clipped == 0:
            raise ValueError(f"{len(dataset)} training items cannot fill one batch on each of {world} processes; "
                             "add training clips (of other patients) or run on fewer GPUs")
        warnings.warn(f"the training split has {len(dataset)} items, fewer than the batch of {s.batch}: each step "
                      f"takes a batch of {clipped} (the same {s.steps} steps). Fix: more training clips, or set "
                      "the stage's batch (STAGE_batch in get_profile) to say it yourself", DataWarning, stacklevel=2)
        s = dataclasses.replace(s, batch=clipped)
    seed_everything(config.seed)
    model.to(device)
    if config.channels_last:
        to_channels_last(model)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=s.batch // world, sampler=sampler, drop_last=True,
                        collate_fn=collate_fn, num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=config.num_workers > 0)
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} items make no full batch of {s.batch}: lower the batch")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if config.compile:
        net = torch.compile(net)
    optimizer = make_optimizer(model, config, device)
    passes = math.ceil(s.steps / len(loader))  # over the data, each reshuffled; the last one may stop early
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(s, step))
    history: list[dict] = []
    start = 0
    average = {k: v.detach().clone() for k, v in model.state_dict().items()} if s.ema else None
    if checkpoint and Path(checkpoint).exists():
        state = training_state(load_checkpoint(checkpoint, map_location=device), checkpoint)
        if state.get("fingerprint") == config.fingerprint():
            load_weights(model, state["model"], checkpoint)
            if average is not None:
                average = state["ema"]
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, start = state["history"], state["epoch"]
            torch.set_rng_state(state["torch_rng"].cpu())
        elif rank == 0:
            warnings.warn(f"{checkpoint}: made with another TrainConfig; training from scratch, and the first "
                          "epoch overwrites it. Fix: pass another checkpoint path to keep it", stacklevel=2)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")
    # one bar for the whole run (steps): a widget in JupyterLab, a text line every 10 s headless (usnb.live)
    bar = live.progress(total=s.steps, initial=scheduler.last_epoch, disable=not progress or rank != 0,
                        mininterval=10.0, unit="step", desc=name)
    for epoch in range(start, passes):
        sampler.set_epoch(epoch)
        net.train()
        sums: dict[str, float] = {}
        t0, done = time.perf_counter(), 0
        bar.set_description(f"epoch {epoch + 1}/{passes}", refresh=False)
        for batch in loader:
            with autocast:
                loss, logs = step_fn(net, batch, device)
            if not torch.isfinite(loss):
                kept = (f"the last good checkpoint {checkpoint} is kept"
                        if checkpoint and Path(checkpoint).exists() else "no checkpoint was written yet")
                raise FloatingPointError(f"loss became {float(loss.detach())} at epoch {epoch + 1}; "
                                         f"training stopped and {kept}. Fix: lower lr ({s.lr}) or set clip_grad")
            optimizer_step(model, loss, optimizer, s.clip_grad)
            scheduler.step()
            n = scheduler.last_epoch  # optimizer steps so far
            if after_step is not None:
                after_step(model, n)
            if average is not None:
                ema_update(average, model.state_dict(), min(s.ema, (1 + n) / (10 + n)))
            for k, v in {"loss": loss, **logs}.items():
                sums[k] = sums.get(k, 0.0) + _log_value(v)
            done += 1
            bar.set_postfix(loss=f"{_log_value(loss):.3f}", refresh=False)
            bar.update()
            if n >= s.steps:
                break
        row = {"epoch": epoch + 1, "step": scheduler.last_epoch, "lr": optimizer.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 2), **{k: v / done for k, v in sums.items()}}
        if eval_fn is not None and rank == 0:
            net.eval()
            with torch.no_grad(), autocast:
                row.update({f"val_{k}": float(v) for k, v in eval_fn(model).items()})
        history.append(row)
        if checkpoint and rank == 0:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                                         "step": scheduler.last_epoch, "history": history, "ema": average,
                                         "config": json.loads(json.dumps(asdict(config), default=str)),
                                         "fingerprint": config.fingerprint(), "torch_rng": torch.get_rng_state()})
        if world > 1:
            dist.barrier()
    bar.close()
    if average is not None:
        model.load_state_dict(average)
    return history


TRAINING_STATE = ("model", "optimizer", "scheduler", "history", "epoch", "fingerprint", "torch_rng")  # `fit` saves


def training_state(state, path: str | Path, keys: tuple[str, ...] = TRAINING_STATE) -> dict:
    """A checkpoint's contents if they are a usnb training checkpoint holding `keys` (what `fit` saves to resume:
    TRAINING_STATE); else a RuntimeError naming the file and what it holds, before anything overwrites it."""
    fix = ("move it away (a run writes its training checkpoints under out_dir/checkpoints/), or delete it to "
           "retrain; weights to start from go into the notebook's weights parameter")
    if not isinstance(state, dict):
        held = f"a tensor of shape {tuple(state.shape)}" if torch.is_tensor(state) else f"a {type(state).__name__}"
        raise RuntimeError(f"{path}: holds {held}, not a usnb training checkpoint. Fix: {fix}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise RuntimeError(f"{path}: not a usnb training checkpoint: it lacks {', '.join(missing)} (it holds "
                           f"{', '.join(map(str, list(state)[:6]))}). Fix: {fix}")
    return state


def train_or_load(model: torch.nn.Module, checkpoint: str | Path, config: TrainConfig, train: Callable[[], list],
                  device: torch.device | None = None) -> list[dict]:
    """Reuse a finished checkpoint whose config matches (loads its weights), else call `train()`."""
    path = Path(checkpoint)
    if path.exists():
        state = training_state(load_checkpoint(path, map_location=device or "cpu"), path, ("model", "history"))
        if state.get("fingerprint") == config.fingerprint() and state.get("step") == config.schedule.steps:
            load_weights(model, state["ema"] if state.get("ema") is not None else state["model"], path)
            return state["history"]
    return train()


def load_weights(model: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """`model.load_state_dict(weights)` from the checkpoint `path`, refusing another model's weights and weights that
    are not finite (NaN / inf), with the file named and the fix."""
    bad = [k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RuntimeError(f"{path}: weights that are not finite ({', '.join(bad[:3])}); training diverged or the file "
                           "is damaged. Fix: delete it to retrain")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise RuntimeError(f"{path}: holds the weights of another model ({first}). Fix: delete it, or pass another "
                           "out_dir for this model") from err


def slug(name: str) -> str:
    """A file name for a row or run name: lower case, every other character an underscore."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def train_once(build: Callable[[], torch.nn.Module], name: str, dataset: Dataset, step_fn: Callable,
               config: TrainConfig, out_dir: str | Path, device: torch.device | None = None, progress: bool = True,
               after_step: Callable | None = None) -> tuple[torch.nn.Module, list[dict]]:
    """The ritual of every trained network: seed with `config.seed` (the same initial weights for a seed, whichever
    runs came before), `build()` the model, then load OUT/checkpoints/<name>-seed<k>.pt if it finished with this
    config, else `fit` it there: (model, history)."""
    seed_everything(config.seed)
    model = build()
    checkpoint = Path(out_dir) / "checkpoints" / f"{slug(name)}-seed{config.seed}.pt"
    trained = []

    def train() -> list[dict]:
        trained.append(name)
        return fit(model, dataset, step_fn, config, checkpoint=checkpoint, device=device, progress=progress,
                   after_step=after_step, name=name)

    history = train_or_load(model, checkpoint, config, train, device=device)
    if progress and not trained and _world()[0] == 0:
        print(f"{name}: loaded from checkpoint {checkpoint} (trained earlier with these settings); to retrain, "
              "delete it or pass another out_dir")
    return model, history


def learned_fields(profile, stage: str | None = None) -> dict:
    """The fields of a recipe's profile (a dataclass) that change the weights of its training stage `stage`: all but
    those its class lists in `EVAL_ONLY` (evaluation-only and speed settings) and the other stages' schedules, so
    changing those reuses the checkpoints."""
    skip = set(getattr(type(profile), "EVAL_ONLY", ()))
    skip |= {k for k, v in vars(profile).items() if isinstance(v, Schedule) and k != stage}
    return {k: v for k, v in asdict(profile).items() if k not in skip}


def batch_notes(profile, counts: dict | int, folds: int | None = None) -> list[str]:
    """What `fit` will say about a profile's stages whose batch is larger than the training clips (it clips the batch
    to the split): a notebook's data cell and `usnb data check` say it before any training starts. `counts`: the
    number of training clips, or a data set's `counts()` ({split: {class: clips}}; a source split later by k-fold
    comes as 'all', of which 80 % of the other `folds - 1` folds train)."""
    if isinstance(counts, dict):
        if "train" in counts:
            counts = sum(counts["train"].values())
        else:
            k = folds or 5
            counts = int(sum(counts.get("all", {}).values()) * (k - 1) / k * 0.8)
    n_train = counts
    stages = {f.name: getattr(profile, f.name) for f in dataclasses.fields(profile)
              if isinstance(getattr(profile, f.name), Schedule)}
    big = {name: s.batch for name, s in stages.items() if s.batch > n_train}
    if not big:
        return []
    return [f"the training split has {n_train} clips, fewer than the batch of stage(s) "
            + ", ".join(f"{k} ({v})" for k, v in big.items())
            + f": where a stage trains on clips, each step takes all {n_train} (the batch is clipped, with a warning); "
            "more training clips, of other patients, make training steadier"]


def stage_config(profile, stage: str, seed: int, **extra) -> TrainConfig:
    """The loop's config for one training stage of a recipe's profile: the stage's `Schedule`, the seed, the
    profile's loader workers and memory layout, and in `extra` the profile's `learned_fields` for that stage plus
    `extra` (the row, the data set, what it starts from)."""
    return TrainConfig(getattr(profile, stage), seed=seed, num_workers=getattr(profile, "num_workers", 0),
                       channels_last=getattr(profile, "channels_last", False),
                       extra={"profile": learned_fields(profile, stage), **extra})


def loss_fell(history: list[dict]) -> bool:
    """True when the last epoch's mean loss (`fit`'s history) is below the first's."""
    return len(history) >= 2 and history[-1]["loss"] < history[0]["loss"]

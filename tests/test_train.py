import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from usnb.cache import ClipCache
from usnb.data import ClipDataset
from usnb.metrics import binary_metrics
from usnb.checkpoints import ema_update, load_checkpoint, save_checkpoint
from usnb.models.backbones import SmallCNN
from usnb.phantom import load_phantom
from usnb.train import Schedule, TrainConfig, fit, lr_factor, seed_everything, train_or_load
from usnb.transforms import video_augment


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _step(net, batch, device):
    x, y = (b.to(device) for b in batch)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    return loss, {"acc": (net(x).argmax(1) == y).float().mean()}


def _config(epochs: int = 4, **kw):
    """`epochs` passes over `_data()`: 32 items in batches of 8 make 4 optimizer steps per pass."""
    return TrainConfig(Schedule(**{"steps": 4 * epochs, "batch": 8, "lr": 0.1, "weight_decay": 0.0, **kw}), seed=3)


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item(), __import__("random").random())
    seed_everything(7)
    assert a == (np.random.rand(), torch.rand(1).item(), __import__("random").random())


def test_lr_schedules():
    c = Schedule(80, 8, warmup=10, milestones=(40, 60), gamma=0.1, schedule="step")
    assert lr_factor(c, 0) == pytest.approx(0.1) and lr_factor(c, 9) == 1.0
    assert lr_factor(c, 39) == 1.0 and lr_factor(c, 40) == pytest.approx(0.1)
    assert lr_factor(c, 60) == pytest.approx(0.01)
    cos = Schedule(100, 8, schedule="cosine")
    assert lr_factor(cos, 0) == 1.0 and lr_factor(cos, 50) == pytest.approx(0.5)
    assert lr_factor(cos, 100) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(Schedule(10, 8, schedule="linear"), 1)


def test_fit_learns_and_reports_per_epoch():
    model = _model()
    history = fit(model, _data(), _step, _config(epochs=15), progress=False)
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["acc"] > 0.85


def test_fit_takes_exactly_the_schedules_steps_the_last_pass_cut_short():
    seen = []
    history = fit(_model(), _data(), lambda net, batch, device: (seen.append(len(batch[0])) or _step(net, batch, device)),
                  TrainConfig(Schedule(10, 8, lr=0.1)), progress=False)  # 4 steps per pass: 4 + 4 + 2
    assert len(seen) == 10 and [h["step"] for h in history] == [4, 8, 10] and [h["epoch"] for h in history] == [1, 2, 3]
    cosine = _model()
    fit(cosine, _data(), _step, TrainConfig(Schedule(10, 8, lr=0.1, schedule="cosine")), progress=False)
    whole = _model()  # the same 10 steps as 2.5 passes: the schedule counts steps, not passes
    fit(whole, _data(), _step, TrainConfig(Schedule(12, 8, lr=0.1, schedule="cosine")), progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(cosine.state_dict().values(), whole.state_dict().values()))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_equals_straight_run_on_a_toy_model(tmp_path, ema):
    straight = _model()
    fit(straight, _data(), _step, _config(ema=ema), progress=False)
    resumed = _model()
    ckpt = tmp_path / "run.pt"
    fit(resumed, _data(), _step, _config(epochs=4, ema=ema), checkpoint=ckpt, progress=False)  # full run, saved
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 4
    # now interrupt after 2 epochs: run with a checkpoint hook that stops, then resume
    part = _model()
    ckpt2 = tmp_path / "part.pt"

    class Stop(Exception):
        pass

    def eval_fn(model, calls=[0]):
        calls[0] += 1
        if calls[0] == 3:  # during epoch 3's evaluation: epochs 1-2 are saved, epoch 3 is not
            raise Stop
        return {}

    with pytest.raises(Stop):
        fit(part, _data(), _step, _config(ema=ema), checkpoint=ckpt2, eval_fn=eval_fn, progress=False)
    assert load_checkpoint(ckpt2)["epoch"] == 2
    again = _model()
    fit(again, _data(), _step, _config(ema=ema), checkpoint=ckpt2, progress=False)
    for a, b in zip(straight.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


class _ClipNet(torch.nn.Module):
    """Frames through a small CNN, averaged over time, dropout, a linear head: randomness in every step."""

    def __init__(self):
        super().__init__()
        self.backbone = SmallCNN(widths=(8, 8))
        self.drop = torch.nn.Dropout(0.3)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):  # x: (B, T, C, H, W)
        b, t = x.shape[:2]
        features = self.backbone(x.flatten(0, 1)).view(b, t, -1).mean(1)  # (B, D)
        return self.head(self.drop(features))


class _Stop(Exception):
    pass


def _clip_run(tiny_breast, cache_dir, seed=0, checkpoint=None, stop_at_epoch=None):
    """A small real run on CPU: phantom clips from the cache, random crops, augmentation and dropout.
    Returns (history without timings, final weights); `stop_at_epoch` interrupts that epoch's evaluation."""
    records = load_phantom(tiny_breast)
    cache = ClipCache(cache_dir, size=(32, 32))
    classes = ("benign", "malignant")
    augment = video_augment(size=28, scale=(0.6, 1.0))
    train = ClipDataset(records, cache, classes, num_frames=4, mode="random",
                        transform=lambda clip: augment(clip).float() / 255)
    test = ClipDataset(records, cache, classes, num_frames=4,
                       transform=lambda clip: clip[:, :, 2:30, 2:30].float() / 255)  # (T, C, 28, 28)

    def step(net, batch, device):
        x, y = (b.to(device) for b in batch)
        return torch.nn.functional.cross_entropy(net(x), y), {}

    def evaluate(model):
        if stop_at_epoch is not None and len(evaluated) + 1 == stop_at_epoch:
            raise _Stop
        evaluated.append(1)
        clips, labels = zip(*(test[i] for i in range(len(test))))
        scores = model(torch.stack(clips)).softmax(1)[:, 1]
        return binary_metrics(torch.tensor(labels), scores)

    evaluated = []
    torch.manual_seed(seed)
    model = _ClipNet()
    config = TrainConfig(Schedule(3 * (len(train) // 4), 4, lr=0.05), seed=seed)  # 3 passes
    history = fit(model, train, step, config, checkpoint=checkpoint, eval_fn=evaluate, device=torch.device("cpu"),
                  progress=False)
    history = json.dumps([{k: v for k, v in row.items() if k != "seconds"} for row in history])  # NaN == NaN here
    return history, model.state_dict()


def test_same_seed_gives_identical_metrics_on_cpu(tiny_breast, tmp_path):
    history, weights = _clip_run(tiny_breast, tmp_path / "a")
    assert "val_auc" in history
    again, weights_again = _clip_run(tiny_breast, tmp_path / "b")
    assert again == history
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)
    other, _ = _clip_run(tiny_breast, tmp_path / "a", seed=1)
    assert other != history  # the seed matters: the two runs above were not equal by accident


def test_resume_equals_straight_run(tiny_breast, tmp_path):
    """Interrupted in epoch 3 (epochs 1-2 saved), then resumed: the same weights and metrics as one straight
    run, random crops, augmentation and dropout included (the checkpoint carries torch's generator)."""
    history, weights = _clip_run(tiny_breast, tmp_path / "cache")
    ckpt = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        _clip_run(tiny_breast, tmp_path / "cache", checkpoint=ckpt, stop_at_epoch=3)
    assert load_checkpoint(ckpt)["epoch"] == 2
    resumed_history, resumed = _clip_run(tiny_breast, tmp_path / "cache", checkpoint=ckpt)
    assert load_checkpoint(ckpt)["epoch"] == 3
    assert resumed_history == history
    for k in weights:
        assert torch.equal(weights[k], resumed[k]), k


def test_ema_update_formula_and_counters():
    average = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    ema_update(average, {"w": torch.tensor([3.0, 4.0]), "n": torch.tensor(7)}, decay=0.75)
    assert torch.allclose(average["w"], torch.tensor([1.5, 2.5])) and int(average["n"]) == 7


def test_fit_with_ema_ends_on_the_average_and_resumes_exactly(tmp_path):
    model, manual = _model(), {k: v.clone() for k, v in _model().state_dict().items()}
    steps = []

    def step(net, batch, device):  # record the weights after every optimizer step through the next call
        steps.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return _step(net, batch, device)

    fit(model, _data(), step, _config(ema=0.9), checkpoint=tmp_path / "e.pt", progress=False)
    states = steps[1:] + [None]  # weights after step n are seen at the start of step n + 1; the last is the raw end
    for n, state in enumerate(states[:-1], start=1):
        ema_update(manual, state, min(0.9, (1 + n) / (10 + n)))
    saved = load_checkpoint(tmp_path / "e.pt")
    ema_update(manual, saved["model"], min(0.9, (1 + len(steps)) / (10 + len(steps))))
    assert all(torch.allclose(model.state_dict()[k], manual[k], atol=1e-6) for k in manual)
    assert not torch.allclose(model[0].weight, saved["model"]["0.weight"])  # the average, not the last weights
    loaded = _model()
    train_or_load(loaded, tmp_path / "e.pt", _config(ema=0.9), lambda: pytest.fail("should load"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_train_or_load_reuses_only_a_matching_finished_checkpoint(tmp_path):
    ckpt = tmp_path / "m.pt"
    calls = []

    def train(model, config):
        calls.append(1)
        return fit(model, _data(), _step, config, checkpoint=ckpt, progress=False)

    first = _model()
    train_or_load(first, ckpt, _config(), lambda: train(first, _config()))
    second = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    train_or_load(second, ckpt, _config(), lambda: train(second, _config()))
    assert len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    third = _model()
    with pytest.warns(UserWarning, match="m.pt: made with another TrainConfig; training from scratch"):
        train_or_load(third, ckpt, _config(lr=0.05), lambda: train(third, _config(lr=0.05)))
    assert len(calls) == 2  # another config trains again


@pytest.mark.bad_input
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "n.pt"
    steps = []

    def nan_in_epoch_2(net, batch, device):  # 32 items in batches of 8: 4 steps per epoch
        loss, logs = _step(net, batch, device)
        steps.append(1)
        return (loss * float("nan") if len(steps) == 6 else loss), logs

    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2; training stopped and the last good "
                                                 r"checkpoint .*n.pt is kept. Fix: lower lr \(0.1\)"):
        fit(_model(), _data(), nan_in_epoch_2, _config(), checkpoint=ckpt, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["n.pt"]
    kept = load_checkpoint(ckpt)
    assert kept["epoch"] == 1
    straight = _model()
    fit(straight, _data(), _step, _config(epochs=1), progress=False)  # constant lr: epoch 1 is epoch 1
    assert all(torch.equal(kept["model"][k], v) for k, v in straight.state_dict().items())
    resumed = _model()
    assert len(fit(resumed, _data(), _step, _config(), checkpoint=ckpt, progress=False)) == 4  # goes on from it
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        fit(_model(), _data(), lambda *a: (torch.tensor(float("inf")), {}), _config(), checkpoint=tmp_path / "x.pt",
            progress=False)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))


@pytest.mark.bad_input
def test_interrupted_checkpoint_write_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C while epoch 2's checkpoint is half written: epoch 1's stays, whole, and nothing else."""
    ckpt = tmp_path / "run.pt"
    real_save, saves = torch.save, []

    def die_half_way_through_the_second_save(obj, f):
        saves.append(f)
        real_save(obj, f)
        if len(saves) == 2:
            Path(f).write_bytes(Path(f).read_bytes()[:100])
            raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(torch, "save", die_half_way_through_the_second_save)
        fit(_model(), _data(), _step, _config(), checkpoint=ckpt, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert load_checkpoint(ckpt)["epoch"] == 1


CHECKPOINT_FILES = {
    "pickled-object": (lambda path: torch.save({"w": torch.ones(2), "obj": _Pickled()}, path),
                       r"checkpoint holds pickled Python objects \(.*_Pickled\); weights-only loading refuses them"
                       r".*Fix: re-save it with tensors"),
    "truncated": (lambda path: path.write_bytes(_saved_bytes()[:200]),
                  r"not a readable weights-only checkpoint, truncated or corrupt .*Fix: delete it to retrain"),
    "empty": (lambda path: path.write_bytes(b""),
              r"not a readable weights-only checkpoint, truncated or corrupt \(EOFError: \).*Fix: delete it"),
}


def _saved_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(1000)}, buffer)
    return buffer.getvalue()


@pytest.mark.bad_input
@pytest.mark.parametrize("kind", CHECKPOINT_FILES)
def test_bad_checkpoint_is_refused_naming_the_file_and_the_fix(tmp_path, kind):
    write, message = CHECKPOINT_FILES[kind]
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(RuntimeError, match=f"^{path}: " + message):
        load_checkpoint(path)
    with pytest.raises(RuntimeError, match=message):  # training does not resume from it, nor overwrite it
        fit(_model(), _data(), _step, _config(), checkpoint=path, progress=False)
    with pytest.raises(RuntimeError, match=message):
        train_or_load(_model(), path, _config(), train=lambda: pytest.fail("trained over a bad checkpoint"))


class _Pickled:
    pass


def _ddp_worker(rank, world, init_file, out_file):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model()
    fit(model, _data(), _step, _config(), device=torch.device("cpu"), progress=False)
    if rank == 0:
        torch.save(model.state_dict(), out_file)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_match_one_with_the_same_global_batch(tmp_path):
    """2 gloo processes x batch 4 == 1 process x batch 8: same data order (DistributedSampler), gradients
    averaged; equal up to float32 summation order (tolerance 1e-6)."""
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    single = _model()
    fit(single, _data(), _step, _config(), device=torch.device("cpu"), progress=False)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for k, v in single.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-6), k
    assert not math.isclose(float(single.state_dict()["0.weight"].sum()), float(_model().state_dict()["0.weight"].sum()))


def test_after_step_runs_after_every_optimizer_step_with_the_updated_weights():
    """`after_step(model, n)` sees the weights of step n (after optimizer.step), once per step, n = 1, 2, ..."""
    model = _model()
    w0, seen = model[0].weight.detach().clone(), []
    fit(model, _data(), _step, _config(epochs=2),
        after_step=lambda m, n: seen.append((n, m[0].weight.detach().clone())), progress=False)
    assert [n for n, _ in seen] == list(range(1, 2 * 32 // 8 + 1))
    assert torch.equal(seen[-1][1], model[0].weight.detach())  # the last call saw the final weights
    assert not torch.equal(seen[0][1], w0) and not torch.equal(seen[0][1], seen[1][1])  # each after a new step


@pytest.mark.parametrize("paper", ["kganet", "clman", "mvcc", "lung_ssl"])
def test_checkpoint_fingerprint_holds_every_learned_field_and_no_evaluation_only_one(paper):
    """Changing a profile field that changes the learned weights changes what enters the fingerprint; changing an
    evaluation-only one (the profile's EVAL_ONLY: frames at inference, occlusion windows, ...) does not retrain."""
    import dataclasses
    import importlib

    from usnb.train import learned_fields

    profile = importlib.import_module(f"usnb.recipes.{paper}").PROFILES["small"]
    other = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v * 2 + 1, str: lambda v: v + "x",
             tuple: lambda v: (*v, 1), type(None): lambda v: 1}
    eval_only = type(profile).EVAL_ONLY
    assert eval_only and set(eval_only) <= {f.name for f in dataclasses.fields(profile)}
    stages = [f.name for f in dataclasses.fields(profile) if isinstance(getattr(profile, f.name), Schedule)]
    assert stages  # every profile states its run lengths as schedules
    for f in dataclasses.fields(profile):
        value = getattr(profile, f.name)
        if f.name in stages:  # a stage's schedule enters its own stage's fingerprint, not the other stages'
            changed = dataclasses.replace(profile, **{f.name: dataclasses.replace(value, steps=value.steps + 1)})
            for stage in stages:
                assert (learned_fields(changed, stage) != learned_fields(profile, stage)) == (stage == f.name), f.name
            continue
        changed = dataclasses.replace(profile, **{f.name: other[type(value)](value)})
        for stage in stages:
            assert (learned_fields(changed, stage) != learned_fields(profile, stage)) == (f.name not in eval_only), f.name


@pytest.mark.bad_input
def test_a_checkpoint_of_another_model_or_with_nan_weights_is_refused_naming_the_file(tmp_path):
    config = TrainConfig(Schedule(1, 8))
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": torch.nn.Linear(3, 2).state_dict(), "epoch": 1, "step": 1, "history": [],
                           "fingerprint": config.fingerprint()})
    with pytest.raises(RuntimeError, match=r"c.pt: holds the weights of another model .*Fix: delete it"):
        train_or_load(torch.nn.Linear(4, 2), path, config, lambda: [])
    nan = torch.nn.Linear(3, 2).state_dict()
    nan["weight"][0, 0] = float("nan")
    save_checkpoint(path, {"model": nan, "epoch": 1, "step": 1, "history": [], "fingerprint": config.fingerprint()})
    with pytest.raises(RuntimeError, match=r"c.pt: weights that are not finite \(weight\).*Fix: delete it"):
        train_or_load(torch.nn.Linear(3, 2), path, config, lambda: [])


def test_loss_fell_compares_the_last_epoch_with_the_first():
    from usnb.train import loss_fell

    assert loss_fell([{"loss": 1.0}, {"loss": 1.2}, {"loss": 0.9}])  # the middle may rise
    assert not loss_fell([{"loss": 1.0}, {"loss": 0.5}, {"loss": 1.0}])  # equal is not lower
    assert not loss_fell([{"loss": 1.0}, {"loss": 1.1}])
    assert not loss_fell([{"loss": 1.0}]) and not loss_fell([])  # one epoch: nothing to compare


def test_choose_threads_says_what_it_chose_and_why(monkeypatch):
    from usnb.train import choose_threads

    before = torch.get_num_threads()
    try:
        assert choose_threads(1).startswith("torch threads: 1 (the threads parameter)") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert "2 (OMP_NUM_THREADS" in choose_threads() and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        many = [100.0] * 256
        monkeypatch.setattr("psutil.cpu_percent", lambda interval, percpu: many)  # all busy: one thread
        assert "torch threads: 1 (the idle ones of" in choose_threads() and torch.get_num_threads() == 1
        monkeypatch.setattr("psutil.cpu_percent", lambda interval, percpu: [0.0] * 256)  # idle: every core
        monkeypatch.setattr("usnb.live._cpu_quota", lambda: None)
        cores = len(os.sched_getaffinity(0))
        assert f"torch threads: {cores} (the idle ones of the {cores} cores" in choose_threads()
        monkeypatch.setattr("usnb.live._cpu_quota", lambda: 1)  # a container limited to one CPU
        assert "torch threads: 1 (the idle ones of the 1 cores" in choose_threads()
        with pytest.raises(ValueError, match="threads"):
            choose_threads(0)
    finally:
        torch.set_num_threads(before)

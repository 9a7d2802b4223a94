import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from usnb.train import (TrainConfig, ema_update, fit, load_checkpoint, lr_factor, save_checkpoint,
                        seed_everything, train_or_load)


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


def _config(**kw):
    return TrainConfig(**{"epochs": 4, "batch_size": 8, "lr": 0.1, "weight_decay": 0.0, "seed": 3, **kw})


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item(), __import__("random").random())
    seed_everything(7)
    assert a == (np.random.rand(), torch.rand(1).item(), __import__("random").random())


def test_lr_schedules():
    c = TrainConfig(warmup_iters=10, milestones=(40, 60), gamma=0.1, schedule="step")
    assert lr_factor(c, 0, 80) == pytest.approx(0.1) and lr_factor(c, 9, 80) == 1.0
    assert lr_factor(c, 39, 80) == 1.0 and lr_factor(c, 40, 80) == pytest.approx(0.1)
    assert lr_factor(c, 60, 80) == pytest.approx(0.01)
    cos = TrainConfig(schedule="cosine")
    assert lr_factor(cos, 0, 100) == 1.0 and lr_factor(cos, 50, 100) == pytest.approx(0.5)
    assert lr_factor(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(TrainConfig(schedule="linear"), 1, 10)


def test_fit_learns_and_reports_per_epoch():
    model = _model()
    history = fit(model, _data(), _step, _config(epochs=15), progress=False)
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["acc"] > 0.85


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_equals_straight_run(tmp_path, ema):
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
    train_or_load(third, ckpt, _config(lr=0.05), lambda: train(third, _config(lr=0.05)))
    assert len(calls) == 2  # another config trains again


@pytest.mark.bad_input
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "n.pt"
    fit(_model(), _data(), _step, _config(epochs=1), checkpoint=ckpt, progress=False)
    good = load_checkpoint(ckpt)

    def nan_step(net, batch, device):
        loss, logs = _step(net, batch, device)
        return loss * float("nan"), logs

    with pytest.raises(FloatingPointError, match="lower lr"):
        fit(_model(), _data(), nan_step, _config(epochs=2), checkpoint=ckpt, progress=False)
    after = load_checkpoint(ckpt)
    assert after["epoch"] == good["epoch"] and all(torch.equal(after["model"][k], good["model"][k]) for k in good["model"])


@pytest.mark.bad_input
def test_checkpoint_write_is_atomic_and_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    torch.save({"obj": _Pickled()}, tmp_path / "evil.pt")
    with pytest.raises(RuntimeError, match="evil.pt.*weights-only"):
        load_checkpoint(tmp_path / "evil.pt")


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

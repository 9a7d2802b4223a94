"""The GPU benchmark (usnb.bench), GPU-side augmentation (usnb.gpu_augment) and the loop's speed switches.

No timing is asserted: the figures depend on the machine. The quick benchmark runs on the CPU here.
"""
import json

import pytest
import torch
from torch import nn

from usnb import bench, cli
from usnb.gpu_augment import GPUAugment, crop_resize, random_resized_boxes, standardise_clips
from usnb.train import Schedule, TrainConfig, fit, make_optimizer, stage_config, to_channels_last

TIMING = {"config", "step_s", "clips_per_s", "frames_per_s", "flops_per_step", "achieved_tflops", "mfu",
          "peak_memory_gb", "bf16", "channels_last", "fused_optimizer", "compiled", "attention"}


# ---------------------------------------------------------------- the quick benchmark


def test_quick_bench_writes_every_field(tmp_path, capsys):
    """`usnb bench --quick`: a table with ratios and a JSON file with every figure of every case present here;
    cases of papers not merged into this checkout are listed as skipped with the module they need."""
    out = tmp_path / "bench.json"
    present = [n for n, c in bench.CASES.items() if c.missing() is None]
    absent = [n for n in bench.CASES if n not in present]
    assert "kganet" in present
    cases = [n for n in present if n != "kganet"] + ["kganet"] + absent
    rc = cli.main(["bench", "--quick", "--warmup", "0", "--iters", "1", "--device", "cpu", "--out", str(out),
                   "--cases", *cases])
    assert rc == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["mode"] == "quick" and result["device_type"] == "cpu" and result["peak_bf16_flops"] is None
    for name in present:
        entry = result["cases"][name]
        assert TIMING <= set(entry["fast"]), name
        assert entry["fast"]["flops_per_step"] > 0 and entry["fast"]["clips_per_s"] > 0
        assert entry["fast"]["mfu"] is None and entry["fast"]["peak_memory_gb"] is None  # a CPU: n/a
        assert entry["fast"]["channels_last"] == (name in ("kganet", "clman", "lung-byol"))
        if bench.CASES[name].naive:
            assert TIMING <= set(entry["naive"])
            assert entry["naive"]["attention"] == "math" and not entry["naive"]["channels_last"]
            assert entry["naive"]["flops_per_step"] == entry["fast"]["flops_per_step"]
            assert entry["speedup"] == pytest.approx(entry["fast"]["clips_per_s"] / entry["naive"]["clips_per_s"])
    for name in absent:
        assert bench.CASES[name].requires[0] in result["cases"][name]["skipped"]
        assert f"skipped {name}" in printed
    loader = result["loader"]
    assert loader["fast"]["frames_per_s"] > 0 and loader["naive"]["frames_per_s"] > 0
    assert loader["speedup"] == pytest.approx(loader["fast"]["frames_per_s"] / loader["naive"]["frames_per_s"])
    if "mvcc-pretrain" in present:
        assert result["mvcc_masked_vs_unmasked"] > 0
    for word in ("clips/s", "MFU", "fast/naive", "loader", "n/a"):
        assert word in printed


@pytest.mark.bad_input
def test_unknown_case_is_named():
    with pytest.raises(ValueError, match="unknown bench case.*nope"):
        bench.run(["nope"], quick=True, loader=False, progress=None)


def test_missing_module_skips_with_its_name():
    case = bench.Case("x", "X", "", ("usnb.models.not_merged_yet",), lambda quick: None)
    assert "usnb.models.not_merged_yet" in case.missing()
    assert bench.CASES["kganet"].missing() is None


# ---------------------------------------------------------------- FLOPs and MFU


def _linear_workload(n=8, d_in=32, d_out=16):
    model = nn.Linear(d_in, d_out, bias=False)
    return bench.Workload(model, lambda device: (torch.randn(n, d_in, device=device),),
                          lambda net, batch, device: (net(batch[0]).pow(2).mean(), {}), clips=n, frames=n,
                          schedule=Schedule(1, n))


def test_flops_of_a_linear_layer_match_the_formula():
    """Forward x W^T: 2 N d_in d_out; backward: the weight's gradient, 2 N d_in d_out (the input needs none)."""
    n, d_in, d_out = 8, 32, 16
    assert bench.count_flops(_linear_workload(n, d_in, d_out), torch.device("cpu")) == 2 * (2 * n * d_in * d_out)


def test_mfu_uses_the_peak_given(monkeypatch):
    case = bench.Case("linear", "-", "", (), lambda quick: _linear_workload())
    peak = bench.peak_flops(torch.device("cpu"), override_tflops=2.0)
    assert peak == 2e12 and bench.peak_flops(torch.device("cpu")) is None
    m = bench.measure_training(case, True, True, torch.device("cpu"), warmup=0, iters=2, peak=peak)
    assert m["mfu"] == pytest.approx(m["flops_per_step"] / m["step_s"] / 2e12)
    assert m["clips_per_s"] == pytest.approx(8 / m["step_s"])


def test_peak_table_matches_device_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert bench.peak_flops(torch.device("cuda")) == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert bench.peak_flops(torch.device("cuda")) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    assert bench.peak_flops(torch.device("cuda")) == 312e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert bench.peak_flops(torch.device("cuda")) is None


# ---------------------------------------------------------------- GPU augmentation (run here on the CPU)


def test_crop_resize_is_exact_on_integer_boxes():
    x = torch.randint(0, 256, (2, 3, 1, 20, 24), dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0, 24, 20], [2, 3, 12, 13]])
    assert torch.equal(crop_resize(x, boxes, (20, 24))[0], x[0].float())  # the whole frame at its own size
    assert torch.equal(crop_resize(x, boxes, 10)[1], x[1, :, :, 3:13, 2:12].float())  # a 10 x 10 window


def test_boxes_follow_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    b = random_resized_boxes(2000, 40, 60, scale=(0.3, 0.6), ratio=(0.5, 2.0), generator=g)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 60).all() and (b[:, 3] <= 40).all()
    area = w * h / (40 * 60)
    assert area.min() > 0.27 and area.max() < 0.64  # scale, up to rounding to whole pixels
    assert (w / h).min() > 0.45 and (w / h).max() < 2.2
    assert len(set(b[:, 0].tolist())) > 20  # positions vary between clips
    none_fit = random_resized_boxes(3, 10, 10, scale=(1.0, 1.0), ratio=(2.0, 3.0), generator=g)  # central fallback
    assert torch.equal(none_fit, torch.tensor([[0.0, 2, 10, 7]]).expand(3, 4))  # 10 x 5: aspect clamped to 2


def test_one_draw_per_clip_for_all_its_frames():
    """Frames that are equal before augmentation are equal after it (same crop, same flip), clip by clip; and
    the clips of a batch get different draws."""
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (6, 1, 1, 32, 32), dtype=torch.uint8)
    clips = frame.expand(6, 5, 1, 32, 32).contiguous()  # 6 clips, each one frame repeated 5 times
    out = GPUAugment(16, scale=(0.3, 0.9))(clips)
    assert out.shape == (6, 5, 1, 16, 16)
    assert torch.allclose(out, out[:, :1].expand_as(out))
    same_clip = frame[:1].expand(6, 2, 1, 32, 32).contiguous()  # six copies of one clip
    firsts = GPUAugment(16, scale=(0.3, 0.9), hflip=0)(same_clip)
    assert not torch.allclose(firsts[0], firsts[1])  # six different crops


def test_standardisation_matches_the_cpu_path():
    """Without crop or flip, the GPU path gives the KGA-Net recipe's per-clip standardisation (the CPU path); with a
    certain flip, the same of the mirrored clip; fixed mean/std maps 0..255 into (x/255 - mean)/std."""
    from usnb.view import standardise

    x = torch.randint(0, 256, (3, 4, 1, 16, 16), dtype=torch.uint8)
    same = GPUAugment(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0)
    torch.testing.assert_close(same(x), standardise(x, dims=4))
    torch.testing.assert_close(same(x, train=False), standardise(x, dims=4))
    flipped = GPUAugment(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0)
    torch.testing.assert_close(flipped(x), standardise(x.flip(-1), dims=4))
    images = x[:, 0]  # (B, C, H, W)
    torch.testing.assert_close(same(images), standardise(images, dims=3))
    fixed = standardise_clips(x.float(), mean_std=(0.5, 0.25))
    torch.testing.assert_close(fixed, (x.float() / 255 - 0.5) / 0.25)


def test_field_of_view_on_the_device_matches_the_recipes_view():
    """GPUAugment(fov=f) without crop or flip shows the model what the recipes' FieldOfView shows: exactly at f = 1,
    and at f = 0.75 on a smooth frame up to the sub-pixel placement of the window (FieldOfView rounds it to pixels)."""
    from usnb.view import FieldOfView

    x = torch.randint(0, 256, (2, 3, 1, 16, 16), dtype=torch.uint8)
    whole = GPUAugment(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, fov=1.0)
    torch.testing.assert_close(whole(x), FieldOfView(16)(x, dims=4))
    view = FieldOfView(24, 0.75)  # frames cached at 32 px, the central 24 px seen
    ramp = (torch.arange(32.0)[None, :] * 3 + torch.arange(32.0)[:, None] * 5).to(torch.uint8)
    clips = ramp.expand(2, 3, 1, 32, 32).contiguous()
    central = GPUAugment(24, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, fov=0.75)
    assert central(clips, train=False).shape == (2, 3, 1, 24, 24)
    torch.testing.assert_close(central(clips, train=False), view(clips, dims=4), atol=0.02, rtol=0)
    torch.testing.assert_close(central(clips), view(clips, dims=4), atol=0.02, rtol=0)


def test_recipe_augmentation_runs_on_the_device_path():
    """clip_augment('device'): the dataset gets no transform and `prepare` crops + flips + cuts the view per clip."""
    from usnb.view import FieldOfView, clip_augment

    view = FieldOfView(24, 0.75)
    cpu, prepare_cpu = clip_augment(view, (0.8, 1.0), "loader")
    none, prepare = clip_augment(view, (0.8, 1.0), "device")
    assert cpu is not None and prepare_cpu is view and none is None
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 1, 32, 32), dtype=torch.uint8)
    out = prepare(x, 4)
    assert out.shape == (4, 3, 1, 24, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out.mean((1, 2, 3, 4)), torch.zeros(4), atol=1e-5, rtol=0)  # standardised per clip
    with pytest.raises(ValueError, match="augment_on must be 'loader' or 'device'"):
        clip_augment(view, (0.8, 1.0), "gpu")


@pytest.mark.bad_input
@pytest.mark.parametrize("make, match", [
    (lambda: GPUAugment(16)(torch.zeros(2, 16, 16, dtype=torch.uint8)), "clips .B, T, C, H, W. or images"),
    (lambda: GPUAugment(16, fov=1.5), "fov must be a fraction"),
    (lambda: GPUAugment(16, scale=(0.0, 1.0)), "scale must satisfy"),
    (lambda: GPUAugment(16, hflip=2.0), "hflip is a probability"),
])
def test_gpu_augment_refuses_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------- the loop's speed switches


class _TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def _dataset(n=8):
    return torch.utils.data.TensorDataset(torch.randn(n, 2, 8, 8), torch.arange(n) % 2)


def _step(model, batch, device):
    x, y = batch[0].to(device), batch[1].to(device)
    return nn.functional.cross_entropy(model(x), y), {}


def test_fit_applies_channels_last():
    model = _TinyCNN()
    fit(model, _dataset(), _step, TrainConfig(Schedule(2, 4), channels_last=True), device=torch.device("cpu"),
        progress=False)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.conv.weight.is_contiguous()
    plain = _TinyCNN()
    fit(plain, _dataset(), _step, TrainConfig(Schedule(2, 4)), device=torch.device("cpu"), progress=False)
    assert plain.conv.weight.is_contiguous()


def test_channels_last_3d_for_volumes():
    net = to_channels_last(nn.Sequential(nn.Conv3d(2, 2, 3), nn.Conv2d(2, 2, 1), nn.Linear(3, 3)))
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last_3d) and not net[0].weight.is_contiguous()
    assert net[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[2].weight.is_contiguous()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fused_optimizer_only_on_cuda(optimizer):
    model = _TinyCNN()
    config = TrainConfig(Schedule(1, 4, optimizer))
    assert make_optimizer(model, config, torch.device("cuda")).defaults["fused"] is True
    assert not make_optimizer(model, config, torch.device("cpu")).defaults.get("fused")
    assert not make_optimizer(model, config).defaults.get("fused")  # no device: as before
    assert not make_optimizer(model, TrainConfig(Schedule(1, 4, optimizer), fused=False),
                              torch.device("cuda")).defaults.get("fused")


def test_compile_switch_compiles_the_network(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)
    fit(_TinyCNN(), _dataset(), _step, TrainConfig(Schedule(2, 4), compile=True), device=torch.device("cpu"),
        progress=False)
    assert len(compiled) == 1
    fit(_TinyCNN(), _dataset(), _step, TrainConfig(Schedule(2, 4)), device=torch.device("cpu"), progress=False)
    assert len(compiled) == 1


def test_speed_switches_leave_the_fingerprint_alone():
    """Checkpoints made without the switches still match when they are on (the fingerprints below are pinned)."""
    s = Schedule(100, 16)
    assert TrainConfig(s).fingerprint() == "fd949767f338"
    assert TrainConfig(Schedule(100, 16, "adamw"), extra={"a": 1}).fingerprint() == "7ae0c6c91ab4"
    assert TrainConfig(s, channels_last=True, fused=False, compile=True).fingerprint() == TrainConfig(s).fingerprint()


def test_kganet_paper_profile_runs_channels_last():
    from usnb.recipes import kganet as K

    assert stage_config(K.PROFILES["paper"], "train", seed=0).channels_last
    assert not stage_config(K.PROFILES["small"], "train", seed=0).channels_last

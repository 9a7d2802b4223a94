"""Run-to-run determinism on one machine: the same seed gives the same weights, bit for bit, at 1 and at 2 threads.

Frame-masked pretraining (MVCC-Frame) once changed from run to run: the backward of the position lookup with
repeated indices accumulated in a thread-dependent order. Each notebook's acceptance row is trained twice here on a
tiny phantom (KGA-Net's in tests/test_reliability.py)."""
import numpy as np
import pytest
import torch

from usnb.models.mvcc import MaskedVideoModel, dual_level_mask, strategy_ratios
from usnb.models.timesformer import TimeSformer
from usnb.view import field_of_view

pytestmark = pytest.mark.slow  # trains rows twice at 1 and 2 threads: about a minute


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("strategy", ["frame", "dual", "patch"])
def test_masked_pretraining_gives_the_same_weights_twice(strategy, threads):
    def run():
        torch.manual_seed(0)
        model = MaskedVideoModel(TimeSformer(img_size=64, patch=16, frames=4, dim=64, depth=2, heads=4, stem="conv"),
                                 32, 1, 4)
        opt = torch.optim.AdamW(model.parameters(), 2e-3)
        alpha, beta = strategy_ratios(strategy, 0.5, 0.75)
        for _ in range(5):
            x = torch.randn(16, 4, 1, 64, 64)
            loss = model.loss(x, dual_level_mask(16, 4, 16, alpha, beta))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return _weights(model)

    first, second = run(), run()
    assert _same(first, second)
    assert not torch.equal(first[0], TimeSformer(img_size=64, patch=16, frames=4, dim=64, depth=2, heads=4,
                                                 stem="conv").state_dict()["pos_embed"])  # it did train


def test_embedding_the_visible_patches_keeps_the_forward_pass():
    """The grid-and-gather positions give the same tokens as the full embedding's visible entries."""
    torch.manual_seed(1)
    enc = TimeSformer(img_size=32, patch=8, frames=4, dim=16, depth=1, heads=2, stem="linear")
    x = torch.randn(3, 4, 1, 32, 32)
    mask = dual_level_mask(3, 4, 16, 0.5, 0.75, generator=torch.Generator().manual_seed(2))
    vis, t_keep, _ = enc.embed_visible(x, mask)
    full = enc.embed(x)  # (B, T, N, D)
    assert t_keep == 2 and vis.shape == (3, 2 * 4, 16)
    assert torch.allclose(vis, full[~mask].reshape(3, -1, 16), atol=1e-6)


@pytest.mark.parametrize("row", ["MVCC", "MVCC-Frame"])
def test_mvcc_acceptance_rows_train_the_same_twice(row, phantom16, tmp_path, threads):
    from usnb.recipes import mvcc as M

    profile = M.get_profile("small", size=16, fov=0.75, patch=8, frames=4, dim=16, depth=1, heads=2, decoder_dim=8,
                            decoder_heads=2, pretrain_steps=3, finetune_steps=3, finetune_batch=4, pretrain_batch=4,
                            pretrain_warmup=1, finetune_warmup=1, eval_views=2)
    data = M.load_data("phantom", field_of_view(profile), data_dir=phantom16)
    runs = []
    for k in range(2):
        model, _ = M.train_row(row, data, profile, seed=3, out_dir=tmp_path / f"run{k}", progress=False)
        runs.append((_weights(model), M.evaluate(model, data, profile)[1]["test"].probs))
    assert _same(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_clman_acceptance_row_trains_the_same_twice(phantom16, tmp_path, threads):
    from usnb.recipes import clman as C

    profile = C.get_profile("small", size=24, width=4, train_frames=4, finetune_batch=4, finetune_steps=2,
                            simclr_batch=4, simclr_frames=2, simclr_steps=2, head_steps=2, eval_frames=8)
    data = C.load_data("phantom", field_of_view(profile), data_dir=phantom16)
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        simclr, _, config = C.pretrain(data, profile, seed=3, out_dir=out, progress=False)
        rows = C.train_rows(["With CL (ours)"], data, profile, 3, out, pretrained=(simclr, config),
                            echo=lambda *_: None)
        row = rows["With CL (ours)"]
        runs.append((_weights(row.model), row.preds["test"].probs))
    assert _same(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_lung_acceptance_row_trains_the_same_twice(tmp_path, threads):
    from usnb.phantom import generate
    from usnb.recipes import lung_ssl as L

    root = generate("lung", tmp_path / "lung", n=16, size=32, frames=8, seed=2, workers=1)
    P = L.get_profile("small", ssl_steps=3, supervised_steps=3, ssl_batch=4, supervised_batch=4, frames=4, size=16)
    data = L.load_data("phantom", P, data_dir=root)
    probs = []
    for k in range(2):
        study = L.run_study(data, data.clips, P, 3, tmp_path / f"run{k}", algorithms=("BYOL",), fractions=(1.0, 0.5),
                            temporal_ablation=False, fine_tune_fractions=(), progress=False, echo=lambda *a: None)
        probs.append(study.probs["BYOL: SSL feature extractor @50%"])
    assert np.array_equal(probs[0], probs[1])

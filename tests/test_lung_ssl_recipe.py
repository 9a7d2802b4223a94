"""Lung SSL recipe end to end on a tiny lung phantom: every Table 3 row, the fractions, localisation, reuse."""
import numpy as np
import pytest
import torch

from usnb.recipes import lung_ssl as L
from usnb.splits import fraction_subset


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny 3-D convolutions: one thread is fastest, and far faster on a busy machine (idle OpenMP threads spin)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lung(tmp_path_factory):
    from usnb.phantom import generate

    return generate("lung", tmp_path_factory.mktemp("phantom") / "lung", n=16, size=32, frames=8, seed=2, workers=1)


@pytest.mark.slow
def test_study_produces_every_row_with_counts_and_reuses_checkpoints(tiny_lung, tmp_path):
    P = L.get_profile("small", ssl_steps=2, supervised_steps=2, ssl_batch=4, supervised_batch=4, frames=4, size=16)
    data = L.load_data("phantom", P, data_dir=tiny_lung)
    study = L.run_study(data, data.clips, P, 0, tmp_path, fractions=(1.0, 0.5), progress=False, echo=lambda *a: None)
    table3 = {f"{a}: {k}" for a in L.ALGORITHMS for k in ("SSL feature extractor", "SSL fine-tuned")}
    assert table3 | {"Fully supervised", "Random feature extractor", "BYOL: SSL feature extractor @50%",
                     "BYOL w/o temporal aug: SSL feature extractor", "Fully supervised @50%"} <= set(study.rows)
    for name, m in study.rows.items():
        assert all(0 <= m[k] <= 1 for k in ("acc", "sen", "spe")), name
    d = 64  # the small encoder's feature dim
    assert study.params["BYOL: SSL feature extractor"]["trainable"] == 2 * (d + 1)
    assert study.params["BYOL: SSL fine-tuned"]["trainable"] == study.params["BYOL: SSL fine-tuned"]["total"]
    assert set(study.models) == set(L.KINDS)
    assert set(study.curves["Fully supervised"]) == {1.0, 0.5}
    boxed = [r for recs in data.clips.values() for r in recs if r.boxes][:2]
    loc = L.localisation(study.models["SSL fine-tuned"], data, boxed, P)
    assert 0 <= loc["weighted_iou"] <= 1 and loc["clips"] >= 1
    again = L.run_study(data, data.clips, P, 0, tmp_path, fractions=(1.0, 0.5), progress=False, echo=lambda *a: None)
    assert np.allclose(again.probs["BYOL: SSL fine-tuned"], study.probs["BYOL: SSL fine-tuned"])  # loaded, not retrained


@pytest.mark.bad_input
def test_pocus_without_a_folder_names_the_fix():
    with pytest.raises(ValueError, match="needs data_dir"):
        L.load_data("pocus", L.get_profile("small"))


@pytest.mark.bad_input
def test_bad_fraction_and_profile_are_refused():
    with pytest.raises(ValueError, match="label fraction"):
        fraction_subset([], 0)
    with pytest.raises(ValueError, match="profile must be one of"):
        L.get_profile("huge")


def test_a_fine_tuned_row_retrains_when_its_pretrained_encoder_changes(tiny_lung, tmp_path, monkeypatch):
    """The fine-tuned row's checkpoint holds a hash of the weights it starts from: after the SSL model changed (here:
    other weights), the row retrains instead of reloading the old fine-tuning; the same start reloads."""
    import usnb.train

    P = L.get_profile("small", ssl_steps=2, supervised_steps=2, ssl_batch=4, supervised_batch=4, frames=4, size=16)
    data = L.load_data("phantom", P, data_dir=tiny_lung)
    calls = []
    fit = usnb.train.fit
    monkeypatch.setattr(usnb.train, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    torch.manual_seed(0)
    first, second = L.build_encoder(P), L.build_encoder(P)
    for encoder in (first, first, second):
        L.train_classifier(data, data.clips["train"], P, 0, tmp_path, encoder, None, name="ft", progress=False)
    assert len(calls) == 2  # trained, reloaded, retrained

"""The cross-paper benchmark: every method's adapter runs its own recipe end to end on one split and is scored alike."""
import numpy as np
import pytest

from usnb.metrics import METRIC_KEYS, binary_metrics, youden_threshold
from usnb.recipes import benchmark as B

# Each method's recipe shrunk to seconds (fields of that recipe's Profile).
TINY = {
    "KGA-Net": dict(size=24, widths=(4, 8), train_frames=4, train_batch=2, train_steps=2, eval_frames=8),
    "MVCC": dict(size=32, patch=16, frames=4, dim=16, depth=1, heads=2, decoder_dim=8, decoder_heads=2,
                 pretrain_steps=1, pretrain_batch=4, finetune_steps=1, finetune_batch=4, eval_views=1),
    "CLMAN": dict(size=32, width=8, train_frames=2, finetune_batch=4, finetune_steps=2, eval_frames=4,
                  simclr_batch=4, simclr_frames=2, simclr_steps=2),
    "BYOL (lung paper)": dict(size=16, frames=4, ssl_steps=2, supervised_steps=2, ssl_batch=4, supervised_batch=4),
}


@pytest.fixture(scope="module")
def phantom16(phantom16_stills):
    """The tiny phantom with 6 stills (`tests/conftest.py`)."""
    return phantom16_stills


def _scalars(metrics: dict) -> dict:
    """The metrics and threshold of a scored row, without its CIs and per-clip evidence."""
    return {k: v for k, v in metrics.items() if k in (*METRIC_KEYS, "threshold")}


def test_every_method_runs_on_the_same_split(phantom16, tmp_path):
    assert list(TINY) == list(B.METHODS) == list(B.RUNNERS)
    split = None
    for name in B.METHODS:
        result, this_split = B.run_method(name, "small", 0, tmp_path, source={"data_dir": phantom16},
                                          reference_split=split,
                                          **TINY[name])
        split = split or this_split
        n_test = len(split["test"])
        assert result.probs["test"].shape == result.labels["test"].shape == (n_test,), name
        assert np.all((result.probs["test"] >= 0) & (result.probs["test"] <= 1)), name
        assert _scalars(result.metrics) == _scalars(B.score(result.labels, result.probs)), name
        assert result.seconds > 0
        assert (tmp_path / name.split(" ")[0].lower().replace("-", "") / "checkpoints").is_dir(), name


def test_byol_runs_without_a_validation_split(phantom16, tmp_path):
    """BUSV has no validation videos: the probe then keeps one L2 strength and the thresholds come from the test set."""
    import shutil

    root = shutil.copytree(phantom16, tmp_path / "no_val")
    manifest = (root / "manifest.csv").read_text()
    assert ",val," in manifest
    (root / "manifest.csv").write_text(manifest.replace(",val,", ",train,"))
    result, split = B.run_method("BYOL (lung paper)", "small", 0, tmp_path / "out", source={"data_dir": root},
                                 **TINY["BYOL (lung paper)"])
    assert "val" not in split and set(result.probs) == {"test"}
    assert any("not chosen (c = 1)" in note for note in result.notes)
    assert _scalars(result.metrics) == _scalars(B.score(result.labels, result.probs))
    assert result.metrics["threshold_on"] == "test"


def test_score_thresholds_on_validation():
    labels = {"val": np.array([0, 0, 1, 1]), "test": np.array([0, 1, 0, 1])}
    probs = {"val": np.array([0.1, 0.2, 0.3, 0.4]), "test": np.array([0.25, 0.35, 0.05, 0.28])}
    t = youden_threshold(labels["val"], probs["val"])
    scored = B.score(labels, probs)
    assert _scalars(scored) == binary_metrics(labels["test"], probs["test"], threshold=t)
    assert scored["threshold_on"] == "val" and scored["auc_ci"][0] <= scored["auc"] <= scored["auc_ci"][1]
    # without a validation split the threshold comes from the test videos
    no_val = {"test": probs["test"]}
    t_test = youden_threshold(labels["test"], probs["test"])
    assert _scalars(B.score(labels, no_val)) == binary_metrics(labels["test"], probs["test"], threshold=t_test)


def test_different_splits_are_refused(phantom16):
    from usnb.phantom import load_phantom

    clips = load_phantom(phantom16)
    split = {s: [c for c in clips if c.split == s] for s in ("train", "val", "test")}
    moved = {**split, "test": split["test"][1:], "train": split["train"] + split["test"][:1]}
    with pytest.raises(ValueError, match="the train split differs"):
        B.same_split(split, moved)
    with pytest.raises(ValueError, match="method must be one of"):
        B.run_method("ResNet", "small", 0, "unused")


def test_paired_auc_matches_videos_by_id_and_uses_delong():
    from usnb.stats import delong_test

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30, int), np.zeros(50, int)]
    ids = [f"v{i}" for i in range(80)]
    a, b = y + rng.normal(0, 0.6, 80), y + rng.normal(0, 1.5, 80)
    perm = rng.permutation(80)  # method B lists the same videos in another order
    ra = B.Result({}, {"test": a}, {"test": y}, 1.0, test_ids=ids)
    rb = B.Result({}, {"test": b[perm]}, {"test": y[perm]}, 1.0, test_ids=[ids[k] for k in perm])
    [(first, second, delta, p)] = B.paired_auc({"A": ra, "B": rb})
    expected = delong_test(y, a, b)
    assert (first, second) == ("A", "B") and p == f"{expected['p']:.3f}"
    assert delta.startswith(f"{expected['delta'] * 100:.1f} [")
    rc = B.Result({}, {"test": b[:79]}, {"test": y[:79]}, 1.0, test_ids=ids[:79])
    with pytest.raises(ValueError, match="different videos"):
        B.paired_auc({"A": ra, "C": rc})


def test_a_papers_comparison_network_is_an_extra_row_on_the_same_split(phantom16, tmp_path):
    """KGA-Net's Table 1 and CLMAN's Table 4 networks join the benchmark as extra rows, trained on the same split."""
    _, split = B.run_method("CLMAN", "small", 0, tmp_path, source={"data_dir": phantom16}, **TINY["CLMAN"])
    result, _ = B.run_method("I3D (video baseline)", "small", 0, tmp_path, source={"data_dir": phantom16},
                             reference_split=split, **TINY["CLMAN"])
    assert result.probs["test"].shape == (len(split["test"]),) and 0 <= result.metrics["auc"] <= 1
    assert "MViT (video baseline)" in B.EXTRA and "I3D (video baseline)" not in B.METHODS
    cvrl, _ = B.run_method("CVRL (pretraining)", "small", 0, tmp_path, source={"data_dir": phantom16},
                           reference_split=split, size=16, frames=4, width=4, pretrain_steps=1, finetune_steps=1,
                           pretrain_batch=4, finetune_batch=4, eval_views=1)
    assert cvrl.probs["test"].shape == (len(split["test"]),)
    with pytest.raises(ValueError, match="MViT takes 16 frames of 224 px"):
        B.run_method("MViT (video baseline)", "small", 0, tmp_path, source={"data_dir": phantom16}, **TINY["CLMAN"])

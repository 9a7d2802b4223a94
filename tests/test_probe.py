"""usnb.probe.train_head: a head on frozen frame features, trained with the one loop, scored per video."""
import numpy as np
import torch
from torch import nn

from usnb.probe import train_head
from usnb.train import Schedule, TrainConfig


class MeanHead(nn.Module):
    """Mean over frames, then a linear layer: (B, T, m) -> {"logits": (B, 2)}."""

    def __init__(self, m: int):
        super().__init__()
        self.fc = nn.Linear(m, 2)

    def forward(self, x):
        return {"logits": self.fc(x.mean(1))}


def _features(seed: int = 0):
    """Videos of 5-7 frames of 3 features; the first feature is +1 in class 1 and -1 in class 0 (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = {"train": np.array([0, 1] * 4), "val": np.array([0, 1, 0, 1]), "test": np.array([1, 0, 1, 0])}
    features = {s: [(rng.normal(0, 0.1, (5 + i % 3, 3)) + [2.0 * y - 1, 0, 0]).astype(np.float32)
                    for i, y in enumerate(ys)] for s, ys in labels.items()}
    return features, labels


def test_train_head_learns_separable_features_and_reloads_its_checkpoint(tmp_path, monkeypatch):
    features, labels = _features()
    dims = []
    config = TrainConfig(Schedule(30, 4, "adamw", lr=0.1, weight_decay=0.0), seed=0)

    def build(m):
        dims.append(m)
        return MeanHead(m)

    metrics, head, probs = train_head(build, features, labels, 4, config, "toy head", tmp_path)
    assert dims == [3] and set(probs) == {"val", "test"} and probs["test"].shape == (4,)
    assert metrics["auc"] == 1.0
    assert (probs["test"][labels["test"] == 1] > 0.5).all() and (probs["test"][labels["test"] == 0] < 0.5).all()
    with torch.no_grad():  # P(class 1) of a whole video: softmax of the head on all its frames
        expected = float(head(torch.from_numpy(features["val"][1])[None])["logits"].softmax(-1)[0, 1])
    assert probs["val"][1] == expected
    assert (tmp_path / "checkpoints" / "toy_head-seed0.pt").exists()
    monkeypatch.setattr("usnb.train.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = train_head(build, features, labels, 4, config, "toy head", tmp_path)  # loaded, not retrained
    assert all(np.array_equal(again[2][s], probs[s]) for s in probs) and again[0]["auc"] == metrics["auc"]

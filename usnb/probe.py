"""Heads on frozen features: the linear evaluation protocol of self-supervised learning (logistic regression) and
`train_head` (any aggregator + classifier on cached frame features, trained with the one loop).

SimCLR (Chen et al. 2020) and the lung paper (Sec. 3.4, "SSL feature extractor") train only a linear layer on the
frozen encoder's features; `fit_probe` is that layer trained to convergence, its L2 strength chosen on validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .data import FeatureClips
from .evaluate import split_metrics
from .metrics import roc_data
from .train import TrainConfig, train_once


@dataclass
class Probe:
    """A linear probe: logistic regression on features standardised with the labelled clips' mean and std."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray  # (D,)
    intercept: float
    c: float = 1.0  # the inverse L2 strength it was fitted with

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """P(positive) for features (N, D)."""
        z = (features - self.mean) / self.std @ self.coef + self.intercept
        return 1 / (1 + np.exp(-z))

    def load_into(self, model: nn.Module) -> None:
        """Set a classifier's standardisation (`mean`, `std` buffers) and FC (`fc`, 2 classes) so that softmax(FC) =
        sigmoid(probe): logits (-z/2, z/2). `usnb.models.lung_ssl.EncoderClassifier` has them."""
        with torch.no_grad():
            model.mean.copy_(torch.as_tensor(self.mean))
            model.std.copy_(torch.as_tensor(self.std))
            w = torch.as_tensor(self.coef, dtype=torch.float32) / 2
            model.fc.weight.copy_(torch.stack([-w, w]))
            model.fc.bias.copy_(torch.tensor([-self.intercept / 2, self.intercept / 2]))


def fit_probe(features: np.ndarray, labels: np.ndarray, c: float | Sequence[float] = 1.0,
              val: tuple[np.ndarray, np.ndarray] | None = None) -> Probe:
    """The 'SSL feature extractor' row: only a linear layer is trained on the frozen features (Sec. 3.4). Logistic
    regression (L-BFGS, L2 strength 1/c) is that layer trained to convergence: SimCLR's linear evaluation protocol.

    Several `c`: one probe per value, and the one with the highest AUC on `val` = (features, labels) is kept (SimCLR
    chooses its probe's regularisation on a validation split too); equal AUCs go to the lower validation log-loss
    (AUC ignores the probe's scale, which matters where the probe starts a fine-tuned head)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    cs = sorted([c] if np.ndim(c) == 0 else c)
    if len(np.unique(labels)) < 2:
        raise ValueError("a linear probe needs both classes among the labelled clips; raise the label fraction")
    if len(cs) > 1 and (val is None or len(np.unique(val[1])) < 2):
        raise ValueError(f"choosing the probe's L2 strength among c={cs} needs validation clips of both classes "
                         "(val=(features, labels)); pass one c otherwise")
    mean, std = features.mean(0), features.std(0) + 1e-6
    scored = []
    for value in cs:
        lr = LogisticRegression(C=float(value), max_iter=2000).fit((features - mean) / std, labels)
        probe = Probe(mean.astype(np.float32), std.astype(np.float32), lr.coef_[0].astype(np.float32),
                      float(lr.intercept_[0]), float(value))
        if len(cs) == 1:
            return probe
        p_val = probe(val[0])
        scored.append((roc_data(val[1], p_val)["auc"], -log_loss(val[1], p_val, labels=[0, 1]), probe))
    return max(scored, key=lambda item: item[:2])[2]


def train_head(build: Callable[[int], nn.Module], features: Mapping[str, Sequence[np.ndarray]],
               labels: Mapping[str, np.ndarray], frames: int, config: TrainConfig, name: str, out_dir: str | Path,
               device: torch.device | None = None, progress: bool = False, test_patients: Sequence[str] | None = None
               ) -> tuple[dict, nn.Module, dict[str, np.ndarray]]:
    """A head on frozen frame features ({split: [(T_i, m)]}, `usnb.evaluate.frame_features`): `build(m)` -> a module
    mapping (B, T, m) to {"logits"}, trained with cross-entropy on `frames`-frame clips of the training features
    (`FeatureClips`) by `usnb.train.train_once` (checkpoint `name`); then P(class 1) of every whole val/test video and
    the test metrics (`usnb.evaluate.split_metrics`): (metrics, head, {split: P(class 1)})."""
    dataset = FeatureClips(features["train"], labels["train"], frames)

    def step(model, batch, device):
        x, y = batch[0].to(device), batch[1].to(device)
        return torch.nn.functional.cross_entropy(model(x)["logits"], y), {}

    head, _ = train_once(lambda: build(features["train"][0].shape[1]), name, dataset, step, config, out_dir, device,
                         progress)
    head.eval()
    dev = next(head.parameters()).device
    with torch.no_grad():
        probs = {s: np.array([float(head(torch.from_numpy(f)[None].to(dev))["logits"].softmax(-1)[0, 1])
                              for f in features[s]]) for s in features if s in ("val", "test")}
    return split_metrics(labels, probs, test_patients), head, probs

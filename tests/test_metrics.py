import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from usnb.metrics import (MetricsTable, binary_metrics, format_mean_std, mean_std, metrics_table, roc_data,
                          youden_threshold)


def _data(seed, n=60, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    s = np.clip(0.35 * y + rng.normal(0.35, 0.25, n), 0, 1)
    return y, (np.round(s, 1) if ties else s)


def _brute_youden(y, s):
    """Maximise TPR - FPR over every unique score by hand; ties -> the higher threshold."""
    best_j, best_t = -np.inf, None
    for t in np.unique(s):  # ascending, so >= keeps the higher of tied thresholds
        pred = s >= t
        j = (pred & (y == 1)).sum() / (y == 1).sum() - (pred & (y == 0)).sum() / (y == 0).sum()
        if j >= best_j - 1e-12:
            best_j, best_t = max(j, best_j), t
    return best_t


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.5, 0.3, "youden"])
def test_binary_metrics_match_sklearn(seed, threshold):
    y, s = _data(seed, ties=seed % 2 == 1)
    m = binary_metrics(y, s, threshold)
    t = youden_threshold(y, s) if threshold == "youden" else threshold
    pred = (s >= t).astype(int)
    expected = {"acc": skm.accuracy_score(y, pred), "sen": skm.recall_score(y, pred),
                "spe": skm.recall_score(y, pred, pos_label=0), "pre": skm.precision_score(y, pred, zero_division=0),
                "f1": skm.f1_score(y, pred, zero_division=0), "auc": skm.roc_auc_score(y, s),
                "ap": skm.average_precision_score(y, s)}
    for k, v in expected.items():
        assert m[k] == pytest.approx(v, abs=1e-12), k
    assert m["threshold"] == t
    assert set(m) == {"acc", "sen", "spe", "pre", "f1", "auc", "ap", "threshold"}
    assert all(isinstance(v, float) and 0 <= v <= 1 for k, v in m.items() if k != "threshold")


def test_inputs_as_tensors_and_two_column_probabilities():
    y, s = _data(7)
    probs = np.stack([1 - s, s], 1)
    assert binary_metrics(torch.tensor(y), torch.tensor(probs)) == binary_metrics(y, s)


@pytest.mark.parametrize("seed", range(6))
def test_youden_equals_brute_force(seed):
    y, s = _data(seed, n=40, ties=seed >= 3)
    assert youden_threshold(y, s) == pytest.approx(_brute_youden(y, s))


def test_youden_ties_take_the_higher_threshold():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    # J = 0.5 at t=0.4 and at t=0.2; the higher wins
    assert youden_threshold(y, s) == 0.4
    assert binary_metrics(y, s, "youden")["threshold"] == 0.4


def test_roc_data_matches_sklearn():
    y, s = _data(3)
    roc = roc_data(y, s)
    fpr, tpr, _ = skm.roc_curve(y, s)
    np.testing.assert_allclose(roc["fpr"], fpr)
    np.testing.assert_allclose(roc["tpr"], tpr)
    assert roc["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert set(roc) == {"fpr", "tpr", "thresholds", "auc"}


def test_absent_class_gives_nan_not_a_crash():
    s = np.array([0.2, 0.7, 0.9])
    only_pos = binary_metrics([1, 1, 1], s)
    assert math.isnan(only_pos["auc"]) and math.isnan(only_pos["ap"]) and math.isnan(only_pos["spe"])
    assert only_pos["sen"] == pytest.approx(2 / 3) and only_pos["acc"] == pytest.approx(2 / 3)
    only_neg = binary_metrics([0, 0, 0], s)
    assert math.isnan(only_neg["auc"]) and math.isnan(only_neg["sen"]) and only_neg["spe"] == pytest.approx(1 / 3)
    assert math.isnan(roc_data([0, 0, 0], s)["auc"])
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold([0, 0, 0], s)


def test_nothing_predicted_positive_gives_zero_precision():
    m = binary_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], threshold=0.9)
    assert m["pre"] == 0.0 and m["f1"] == 0.0 and m["sen"] == 0.0 and m["spe"] == 1.0


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="0 \\(benign\\) and 1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="one score per clip"):
        binary_metrics([0, 1], [0.1])
    with pytest.raises(ValueError, match="'youden'"):
        binary_metrics([0, 1], [0.1, 0.9], threshold="best")


def test_mean_std_and_format():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.9, 0.95, 1.0])
    assert mean == pytest.approx(0.95) and std == pytest.approx(0.05)  # ddof=1
    assert format_mean_std([0.9, 0.95, 1.0]) == "95.00(5.00)"
    assert format_mean_std([0.9467]) == "94.67"
    assert format_mean_std(0.9467) == "94.67"
    assert format_mean_std([0.93, 0.96], scale=1, digits=3) == "0.945(0.021)"


def test_metrics_table_markdown():
    runs = [{"auc": 0.9, "acc": 0.8, "sen": 0.7, "spe": 0.9}, {"auc": 1.0, "acc": 0.9, "sen": 0.8, "spe": 1.0}]
    table = metrics_table({"ours": runs, "paper": {"auc": 0.9467, "acc": 0.9, "sen": 0.88, "spe": 0.91}})
    assert isinstance(table, MetricsTable)
    md = table.to_markdown().splitlines()
    assert md[0] == "|  | AUC | ACC | SEN | SPE |"
    assert md[1] == "| --- | --- | --- | --- | --- |"
    assert md[2] == "| ours | 95.00(7.07) | 85.00(7.07) | 75.00(7.07) | 95.00(7.07) |"
    assert md[3] == "| paper | 94.67 | 90.00 | 88.00 | 91.00 |"
    assert str(table) == table._repr_markdown_() == table.to_markdown()
    with pytest.raises(KeyError, match="lacks \\['auc'\\]"):
        metrics_table({"x": {"acc": 1.0}}, keys=("auc",))

"""Binary metrics as the papers report them (positive class = 1, malignant), mean(std) over seeds, tables.

Conventions (the same in every notebook):
- A clip is called positive when `y_score >= threshold` (scikit-learn's `roc_curve` uses the same `>=`).
- A class absent from `y_true` makes its rate undefined: `auc`, `ap` and the rate of the missing class
  (`sen` without positives, `spe` without negatives) are `nan`, never an exception.
- Nothing predicted positive gives `pre = 0` (scikit-learn's `zero_division=0`); `f1 = 2TP / (2TP + FP + FN)`
  is 0 when that denominator is 0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

METRIC_KEYS = ("acc", "sen", "spe", "pre", "f1", "auc", "ap")


def _as_numpy(values) -> np.ndarray:
    """Tensor, list or array -> NumPy array (detached, on the CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values)


def _check_binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """y_true: (N,) in {0, 1}; y_score: (N,) or (N, 2) (column 1 is the positive class) -> two (N,) arrays."""
    y = _as_numpy(y_true).reshape(-1)
    s = _as_numpy(y_score).astype(np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    s = s.reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} labels but y_score has {len(s)} scores; pass one score per clip")
    if len(y) == 0:
        raise ValueError("y_true is empty; evaluate on at least one clip")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold 0 (benign) and 1 (malignant), got values {np.unique(y)[:5]}; "
                         "map class names to 0/1 first")
    if not np.isfinite(s).all():
        raise ValueError("y_score holds nan or inf; check the model output (a diverged run?)")
    return y.astype(int), s


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num / den) if den else empty


def roc_data(y_true, y_score) -> dict:
    """ROC curve: dict(fpr, tpr, thresholds, auc); `auc` is nan (and fpr/tpr empty) when a class is absent."""
    from sklearn.metrics import auc, roc_curve

    y, s = _check_binary(y_true, y_score)
    if len(np.unique(y)) < 2:
        return {"fpr": np.array([]), "tpr": np.array([]), "thresholds": np.array([]), "auc": float("nan")}
    fpr, tpr, thresholds = roc_curve(y, s)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds, "auc": float(auc(fpr, tpr))}


def youden_threshold(y_true, y_score) -> float:
    """The score threshold maximising Youden's J = sensitivity + specificity - 1 (ties -> the higher threshold).

    Candidates are the ROC thresholds (every unique score; scikit-learn's extra `inf` is left out).
    """
    from sklearn.metrics import roc_curve

    y, s = _check_binary(y_true, y_score)
    if len(np.unique(y)) < 2:
        raise ValueError("Youden's threshold needs both classes in y_true; pass a numeric threshold instead")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    j = tpr - fpr  # Youden (1950): J = sen + spe - 1 = TPR - FPR
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(thresholds[best].max())


def binary_metrics(y_true, y_score, threshold: float | str = 0.5) -> dict:
    """acc, sen, spe, pre, f1, auc, ap and the threshold used, as floats in [0, 1] (nan where undefined).

    y_true: (N,) in {0, 1}; y_score: (N,) probability of class 1, or (N, 2) class probabilities.
    threshold: a number, or "youden" to pick it on these labels (optimistic: prefer a validation set's; needs
    both classes).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = _check_binary(y_true, y_score)
    if isinstance(threshold, str):
        if threshold != "youden":
            raise ValueError(f"threshold must be a number or 'youden', got {threshold!r}")
        threshold = youden_threshold(y, s)
    pred = (s >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    both = len(np.unique(y)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc = float(roc_auc_score(y, s)) if both else float("nan")
        ap = float(average_precision_score(y, s)) if both else float("nan")
    return {
        "acc": (tp + tn) / len(y),
        "sen": _ratio(tp, tp + fn, float("nan")),  # recall of class 1
        "spe": _ratio(tn, tn + fp, float("nan")),  # recall of class 0
        "pre": _ratio(tp, tp + fp, 0.0),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, 0.0),
        "auc": auc,
        "ap": ap,
        "threshold": float(threshold),
    }


def held_out_metrics(y_test, p_test, y_val=None, p_val=None, groups=None) -> dict:
    """The scoring rule of every notebook: Youden's threshold chosen on the validation clips (on the test clips when
    there are none: optimistic, and said so by `threshold_on`), the metrics on the test clips with their 95 % CIs.

    Returns `binary_metrics` plus `{key}_ci: [low, high]` for every metric (AUC by DeLong, the others by a
    stratified bootstrap, `usnb.stats`), `threshold_on` ('val' | 'test') and the evidence a paired comparison of
    two rows needs (`usnb.claims`): `labels` and `scores` of the test clips. `groups`: the test clips' patient ids;
    where a patient holds several clips the intervals are patient level (`usnb.stats`), and `intervals` says which.
    """
    from .stats import interval_method, metric_cis

    on_val = y_val is not None and p_val is not None and len(np.unique(_as_numpy(y_val))) == 2
    if y_val is not None and p_val is not None and not on_val:
        warnings.warn(f"the validation clips hold one class only ({len(_as_numpy(y_val))} clips): Youden's threshold "
                      "is chosen on the test clips (optimistic; threshold_on='test'). Fix: a validation split with "
                      "both classes", stacklevel=2)
    threshold = youden_threshold(y_val, p_val) if on_val else youden_threshold(y_test, p_test)
    y, s = _check_binary(y_test, p_test)
    metrics = binary_metrics(y, s, threshold=threshold)
    out = {**metrics, **metric_cis(y, s, threshold, groups=groups), "threshold_on": "val" if on_val else "test",
           "labels": y, "scores": s, "intervals": interval_method(groups, y)}
    return out if groups is None else {**out, "groups": np.asarray(groups).astype(str)}


def pooled_metrics(folds: Sequence[dict]) -> dict:
    """k-fold runs (POCUS): the metrics of the pooled out-of-fold predictions, with CIs, and the spread over folds.

    folds: one `held_out_metrics` output per fold (each fold's threshold chosen on its own validation clips). AUC and
    AP rank the pooled scores; the threshold metrics count each clip as its own fold called it (`margins` = score -
    that fold's threshold, positive at >= 0). `<key>_fold_sd` is the sample sd of each metric over the folds.
    """
    from .stats import interval_method, metric_cis

    labels = np.concatenate([f["labels"] for f in folds])
    groups = np.concatenate([f["groups"] for f in folds]) if all("groups" in f for f in folds) else None
    scores = np.concatenate([f["scores"] for f in folds])
    margins = np.concatenate([f["scores"] - f["threshold"] for f in folds])
    out = binary_metrics(labels, margins, threshold=0.0)
    ranked = binary_metrics(labels, scores, threshold=0.5)  # AUC and AP do not depend on the threshold
    out |= {"auc": ranked["auc"], "ap": ranked["ap"], "threshold": float("nan"),
            "threshold_on": "val" if all(f["threshold_on"] == "val" for f in folds) else "test",
            "labels": labels, "scores": scores, "margins": margins, "intervals": interval_method(groups, labels)}
    if groups is not None:
        out["groups"] = groups
    if len(np.unique(labels)) == 2:
        counted = metric_cis(labels, margins, 0.0, groups=groups)  # the threshold metrics as each fold called them
        ranked = metric_cis(labels, scores, 0.5, groups=groups)  # AUC and AP rank the pooled scores
        out |= {f"{k}_ci": counted[f"{k}_ci"] for k in ("acc", "sen", "spe", "pre", "f1")}
        out |= {"auc_ci": ranked["auc_ci"], "ap_ci": ranked["ap_ci"]}
    for k in METRIC_KEYS:
        out[f"{k}_fold_sd"] = mean_std([f[k] for f in folds])[1]
    return out


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value). nan in -> nan out."""
    v = _as_numpy(values).astype(np.float64).reshape(-1)
    if len(v) == 0:
        raise ValueError("mean_std got no values; pass at least one run's number")
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return float(v.mean()), std


def format_mean_std(values, scale: float = 100, digits: int = 2) -> str:
    """The papers' table cell: [0.9467, ...] -> '94.67(1.23)'; a single value -> '94.67'."""
    v = _as_numpy(values).astype(np.float64).reshape(-1)
    mean, std = mean_std(v)
    text = f"{mean * scale:.{digits}f}"
    return text if len(v) == 1 else f"{text}({std * scale:.{digits}f})"


def format_cell(values, cis=None, scale: float = 100, digits: int = 2) -> str:
    """'mean(std)' over seeds, then ' [low, high]': the 95 % CI of one run, or the mean of each bound over seeds."""
    text = format_mean_std(values, scale, digits)
    bounds = [c for c in (cis or []) if c is not None and not any(b is None or np.isnan(b) for b in c)]
    if not bounds or np.isnan(np.asarray(values, float)).all():
        return text
    lo, hi = np.mean(bounds, axis=0)
    return f"{text} [{lo * scale:.1f}, {hi * scale:.1f}]"


def not_above_chance(auc_ci) -> bool:
    """Is an AUC 95 % CI [low, high] not above chance (it reaches 0.5 or lies below it)? None or nan: unknown, no."""
    return auc_ci is not None and auc_ci[0] is not None and not np.isnan(auc_ci[0]) and auc_ci[0] <= 0.5


CHANCE_MARK = " (not above chance)"
CHANCE_NOTE = ("(not above chance): the row's AUC 95 % CI reaches 0.5 (or lies below it) on this test split; a "
               "claim resting on it says little.")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown (GFM) table; a "|" inside a cell ("|delta| <= 2 points") is escaped, not a column break."""
    lines = [list(header), ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(c).replace("|", "\\|") for c in line) + " |" for line in lines)


@dataclass
class MetricsTable:
    """Rows of metrics (one list of per-seed values per cell); `to_markdown()` renders the papers' table.

    `cis` (optional, same shape as `values`): per cell, one [low, high] 95 % CI per seed (or None), shown after the
    mean(std) as ' [low, high]' (over several seeds: the mean of each bound)."""

    names: list[str]
    keys: tuple[str, ...]
    values: list[list[list[float]]]  # [row][key] -> one value per seed
    scale: float = 100
    digits: int = 2
    labels: dict = field(default_factory=dict)  # column header per key, default key.upper()
    cis: list[list[list]] | None = None  # [row][key] -> one [low, high] (or None) per seed
    caption: str = ""  # said once above the table, e.g. which data the 'ours' and the 'paper' columns are on

    def header(self) -> list[str]:
        return ["", *(self.labels.get(k, k.upper()) for k in self.keys)]

    def at_chance(self) -> list[bool]:
        """Per row: does our AUC's 95 % CI (over seeds, the mean of each bound) reach 0.5 or lie below it? Such a
        row is not above chance on this test split, and a claim resting on it says little."""
        key = "auc" if "auc" in self.keys else None
        if key is None or self.cis is None:
            return [False] * len(self.names)
        j = self.keys.index(key)
        flags = []
        for row_cis in self.cis:
            bounds = [c for c in row_cis[j] if c is not None and not any(b is None or np.isnan(b) for b in c)]
            flags.append(bool(bounds) and not_above_chance(np.mean(bounds, axis=0)))
        return flags

    def cells(self) -> list[list[str]]:
        """Formatted rows: [name, 'mean(std) [low, high]', ...]; a row not above chance marked with CHANCE_MARK."""
        cis = self.cis or [[None] * len(self.keys) for _ in self.names]
        return [[name + (CHANCE_MARK if chance else ""),
                 *(format_cell(v, c, self.scale, self.digits) for v, c in zip(row, row_cis))]
                for name, row, row_cis, chance in zip(self.names, self.values, cis, self.at_chance())]

    def legend(self) -> str:
        """The caption, and what the chance mark means where a row carries it."""
        note = CHANCE_NOTE if any(self.at_chance()) else ""
        return " ".join(t for t in (self.caption, note) if t)

    def to_markdown(self) -> str:
        table = markdown_table(self.header(), self.cells())
        return f"*{self.legend()}*\n\n{table}" if self.legend() else table

    def _repr_markdown_(self) -> str:  # Jupyter shows the table rendered
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_markdown()


def _runs(name, runs) -> list:
    runs = [runs] if isinstance(runs, Mapping) else list(runs)
    if not runs:
        raise ValueError(f"row {name!r} has no runs; drop it or add at least one metrics dict")
    return runs


def _ci_of(run: Mapping, key: str):
    ci = run.get(f"{key}_ci")
    return None if ci is None else [float("nan") if c is None else float(c) for c in ci]


def metrics_table(rows: Mapping[str, dict | Sequence[dict]], keys: Sequence[str] = ("auc", "acc", "sen", "spe"),
                  scale: float = 100, digits: int = 2) -> MetricsTable:
    """{row name: metrics dict, or one dict per seed} -> MetricsTable (cells read mean(std) over seeds, then the
    95 % CI where the rows carry `<key>_ci`)."""
    names, values, cis = [], [], []
    for name, runs in rows.items():
        runs = _runs(name, runs)
        missing = [k for k in keys for r in runs if k not in r]
        if missing:
            raise KeyError(f"row {name!r} lacks {sorted(set(missing))}; pass keys= that every row has "
                           f"(this row has {sorted(runs[0])})")
        names.append(str(name))
        values.append([[float(r[k]) for r in runs] for k in keys])
        cis.append([[_ci_of(r, k) for r in runs] for k in keys])
    return MetricsTable(names, tuple(keys), values, scale, digits, cis=cis)


def paper_vs_ours(ours: Mapping[str, dict | Sequence[dict]], paper: Mapping[str, dict], ours_label: str,
                  paper_label: str, keys: Sequence[str] = ("auc", "acc", "sen", "spe"),
                  paper_size: tuple[int, int] | None = None) -> MetricsTable:
    """One table, a row per method: our mean(std) over seeds [95 % CI] and, beside each, the paper's number.

    Columns read 'AUC ours' and 'AUC paper'; the caption says once which data each is on ('ours: <ours_label>;
    paper: <paper_label>'). A row the paper lacks shows nan.
    paper_size: the paper's test split as (positives, negatives): its AUC, ACC, SEN and SPE then get the 95 % CI
    that size allows (`usnb.stats.paper_cis`; Hanley-McNeil, Wilson).
    """
    from .stats import paper_cis

    names, values, labels, cis = [], [], {}, []
    cols = [c for k in keys for c in (k, f"paper_{k}")]
    for k in keys:
        labels[k], labels[f"paper_{k}"] = f"{k.upper()} ours", f"{k.upper()} paper"
    for name, runs in ours.items():
        runs = _runs(name, runs)
        reported = paper.get(name, {})
        reported_cis = paper_cis(reported, *paper_size) if paper_size else {}
        names.append(str(name))
        row, row_cis = [], []
        for k in keys:
            row += [[float(r.get(k, float("nan"))) for r in runs], [float(reported.get(k, float("nan")))]]
            row_cis += [[_ci_of(r, k) for r in runs], [reported_cis.get(f"{k}_ci")]]
        values.append(row)
        cis.append(row_cis)
    return MetricsTable(names, tuple(cols), values, labels=labels, cis=cis,
                        caption=f"ours: {ours_label}; paper: {paper_label}")

"""Uncertainty on every number: 95 % CIs for one row, paired tests between rows, the papers' own intervals.

- AUC: DeLong, DeLong & Clarke-Pearson (1988), the variance of the Mann-Whitney AUC, computed with the fast midrank
  algorithm of Sun & Xu (2014, IEEE SPL 21(11)); `delong` works on several score sets of the same clips at once and
  returns their covariance, so the paired test of two rows is one call.
- Threshold metrics (ACC, SEN, SPE, PRE, F1) and AP: a bootstrap stratified by class (positives and negatives
  resampled separately, so every replicate keeps the test split's class counts) with a fixed seed; BCa intervals
  (scipy.stats.bootstrap). The threshold stays fixed (it was chosen on the validation clips). Paired deltas between
  two rows: the same resampled clips for both rows, percentile intervals.
- Patients with several clips (two sweeps of one lesion: 40 % of the breast phantom's patients; several clips per
  patient in POCUS and in users' data) are not independent samples: given `groups` (each test clip's patient id)
  with at least one patient holding two clips, AUC and its paired deltas use Obuchowski's clustered variance
  (Obuchowski 1997, Biometrics 53:567, Eqs. 2-5), and the threshold metrics and AP a patient-level (cluster)
  bootstrap: whole patients resampled, stratified by the patient's labels, percentile intervals. With one clip per
  patient both reduce to the clip-level methods above (and the clip-level code runs), so nothing changes there.
  `interval_method` says which a split gets.
- The papers' numbers: Hanley & McNeil (1982) for an AUC's standard error from its class counts, Wilson (1927)
  intervals for a proportion.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as st

LEVEL = 0.95
BOOTSTRAP = 2000  # replicates; a 95 % percentile bound moves by ~0.005 between seeds of the bootstrap at this count
THRESHOLD_KEYS = ("acc", "sen", "spe", "pre", "f1")


def _z(level: float) -> float:
    return float(st.norm.ppf(0.5 + level / 2))


def _percentiles(level: float) -> list[float]:
    """The two percentiles (0-100) of a central interval at `level`."""
    return [(1 - level) / 2 * 100, (1 + level) / 2 * 100]


def _binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """y_true: (N,) in {0, 1}; scores: (N,) or (K, N) -> int labels and (K, N) float scores."""
    y = np.asarray(y_true).reshape(-1).astype(int)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if s.shape[1] != len(y):
        raise ValueError(f"{len(y)} labels but {s.shape[1]} scores per row; pass one score per clip")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got {np.unique(y)[:5]}")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"DeLong needs both classes among the {len(y)} clips; this split has one class only")
    return y, s


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of x with ties given their average rank (Sun & Xu, Algorithm 'MidRank')."""
    return st.rankdata(x, method="average")


def _structural(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (K,) and the structural components V10 (K, m) of the positives and V01 (K, n) of the negatives, by
    midranks (Sun & Xu 2014, Eqs. (7), (10), (11)): T_x / T_y the midranks within each class, T_z in the pooled
    sample, AUC = (sum T_z[pos] - m(m+1)/2) / (m n), V10 = (T_z[pos] - T_x) / n, V01 = 1 - (T_z[neg] - T_y) / m."""
    pos, neg = s[:, y == 1], s[:, y == 0]  # (K, m), (K, n)
    m, n = pos.shape[1], neg.shape[1]
    tx = np.stack([_midranks(r) for r in pos])
    ty = np.stack([_midranks(r) for r in neg])
    tz = np.stack([_midranks(r) for r in s])
    aucs = (tz[:, y == 1].sum(1) - m * (m + 1) / 2) / (m * n)  # Eq. (7)
    v10 = (tz[:, y == 1] - tx) / n  # Eq. (10): each positive's share of the negatives it outranks
    v01 = 1.0 - (tz[:, y == 0] - ty) / m  # Eq. (11): of the negatives
    return aucs, v10, v01


def delong(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of K score sets on the same clips and their (K, K) DeLong covariance.

    y_true: (N,) in {0, 1}; scores: (N,) or (K, N). Sun & Xu (2014) Eq. (13) on the structural components of
    `_structural`: S = cov(V10) / m + cov(V01) / n.
    """
    y, s = _binary(y_true, scores)
    aucs, v10, v01 = _structural(y, s)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(s), len(s)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n  # Eq. (13)


def clustered(groups) -> bool:
    """True when `groups` (one patient id per clip, or None) puts two clips or more in one patient."""
    if groups is None:
        return False
    _, counts = np.unique(np.asarray(groups).astype(str), return_counts=True)
    return bool((counts > 1).any())


def patient_level(y_true, groups) -> bool:
    """Do the intervals go patient level? Where `groups` puts several clips in one patient and at least two
    patients hold each class (with one, a class's between-patient variance cannot be estimated: Obuchowski's S10 or
    S01 has I - 1 = 0 in its denominator, and a bootstrap stratum of one patient never varies)."""
    if not clustered(groups):
        return False
    y = np.asarray(y_true).reshape(-1).astype(int)
    index, n = _group_index(groups, len(y))
    holding = [len(np.unique(index[y == c])) for c in (0, 1)]
    return min(holding) >= 2


def interval_method(groups, y_true=None) -> str:
    """What the intervals of a test split with these patient ids (and labels) take into account, in words."""
    if not clustered(groups):
        return "clip level (one clip per patient, or patients unknown): DeLong AUC, stratified bootstrap"
    ids, counts = np.unique(np.asarray(groups).astype(str), return_counts=True)
    several = f"{int((counts > 1).sum())} of {len(ids)} patients hold several of the {int(counts.sum())} clips"
    if y_true is not None and not patient_level(y_true, groups):
        return (f"clip level although {several}: fewer than two patients hold one class, so no patient-level "
                "variance can be estimated (these intervals are too narrow)")
    return f"patient level ({several}): Obuchowski's clustered AUC variance, patient (cluster) bootstrap"


def _group_index(groups, n: int) -> tuple[np.ndarray, int]:
    """Patient ids -> (cluster index of each clip (N,), number of clusters)."""
    g = np.asarray(groups).astype(str).reshape(-1)
    if len(g) != n:
        raise ValueError(f"{n} clips but {len(g)} patient ids; pass one patient id per clip (groups=...)")
    _, index = np.unique(g, return_inverse=True)
    return index, int(index.max()) + 1


def obuchowski(y_true, scores, groups) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of K score sets on the same clips and their (K, K) covariance when clips are clustered by patient.

    Obuchowski (1997), with I clusters, M positive and N negative clips, m_i / n_i of them in cluster i, the
    clip-level structural components V10 / V01 of DeLong (see `delong`) summed per cluster, V10_i and V01_i:
      S10 = I10 / ((I10 - 1) M) sum_i (V10_i - m_i AUC)^2          (Eq. 3; I10: clusters holding a positive)
      S01 = I01 / ((I01 - 1) N) sum_i (V01_i - n_i AUC)^2          (Eq. 4; I01: clusters holding a negative)
      S11 = I / (I - 1) sum_i (V10_i - m_i AUC)(V01_i - n_i AUC)   (Eq. 5)
      var(AUC) = S10 / M + S01 / N + 2 S11 / (M N)                  (Eq. 2)
    and for two score sets k, l the same sums of products (S11 taken both ways), which gives the paired test.
    With one clip per cluster, S11 = 0 and S10 / M, S01 / N are DeLong's terms. Needs two clusters holding each
    class (`patient_level`; with one, S10 or S01 is set to 0 here, and `auc_ci` / `delong_test` use DeLong instead).
    """
    y, s = _binary(y_true, scores)
    index, n_clusters = _group_index(groups, len(y))
    aucs, v10, v01 = _structural(y, s)  # (K,), (K, M), (K, N)
    m, n = v10.shape[1], v01.shape[1]

    def per_cluster(v, members):  # (K, clips of one class) -> (K, I) sums per cluster
        out = np.zeros((len(s), n_clusters))
        for k in range(len(s)):
            out[k] = np.bincount(index[members], weights=v[k], minlength=n_clusters)
        return out

    m_i = np.bincount(index[y == 1], minlength=n_clusters)
    n_i = np.bincount(index[y == 0], minlength=n_clusters)
    d10 = per_cluster(v10, y == 1) - m_i * aucs[:, None]  # (K, I)
    d01 = per_cluster(v01, y == 0) - n_i * aucs[:, None]
    i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    s10 = i10 / ((i10 - 1) * m) * d10 @ d10.T if i10 > 1 else np.zeros((len(s), len(s)))
    s01 = i01 / ((i01 - 1) * n) * d01 @ d01.T if i01 > 1 else np.zeros((len(s), len(s)))
    s11 = n_clusters / (n_clusters - 1) * d10 @ d01.T if n_clusters > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def _auc_cov(y_true, scores, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, or Obuchowski where `groups` puts several clips in one patient."""
    return obuchowski(y_true, scores, groups) if patient_level(y_true, groups) else delong(y_true, scores)


def auc_ci(y_true, y_score, level: float = LEVEL, groups=None) -> tuple[float, float, float]:
    """(AUC, low, high): DeLong's standard error (Obuchowski's where `groups` clusters the clips), a normal interval
    clipped to [0, 1]."""
    aucs, cov = _auc_cov(y_true, y_score, groups)
    auc, se = float(aucs[0]), math.sqrt(max(float(cov[0, 0]), 0.0))
    return auc, max(0.0, auc - _z(level) * se), min(1.0, auc + _z(level) * se)


def delong_test(y_true, score_a, score_b, level: float = LEVEL, groups=None) -> dict:
    """Paired DeLong test of AUC(a) - AUC(b) on the same clips (Obuchowski's covariance where `groups` clusters
    them): delta, its CI, z and the two-sided p-value."""
    aucs, cov = _auc_cov(y_true, np.stack([np.asarray(score_a, float), np.asarray(score_b, float)]), groups)
    delta = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    if se == 0:  # identical rankings: no difference, nothing uncertain
        return {"delta": delta, "ci": [delta, delta], "z": 0.0, "p": 1.0 if delta == 0 else 0.0}
    z = delta / se
    return {"delta": delta, "ci": [delta - _z(level) * se, delta + _z(level) * se], "z": z,
            "p": float(2 * st.norm.sf(abs(z)))}


# ---------------------------------------------------------------- bootstrap (threshold metrics, AP)

def _resamples(y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(B, N) indices: each replicate draws the positives from the positives and the negatives from the negatives."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    parts = [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in (pos, neg) if len(g)]
    return np.concatenate(parts, axis=1)


def _threshold_metrics(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """y, pred: (B, N) in {0, 1} -> each threshold metric as (B,), with usnb.metrics' conventions. `weights` (B, N):
    how many times each clip is in each replicate (a cluster bootstrap); None: once."""
    w = np.ones(np.broadcast_shapes(y.shape, pred.shape)) if weights is None else weights
    tp = (w * ((pred == 1) & (y == 1))).sum(-1)
    tn = (w * ((pred == 0) & (y == 0))).sum(-1)
    fp = (w * ((pred == 1) & (y == 0))).sum(-1)
    fn = (w * ((pred == 0) & (y == 1))).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"acc": (tp + tn) / w.sum(-1),
                "sen": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                "spe": np.where(tn + fp > 0, tn / (tn + fp), np.nan),
                "pre": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)}


def _average_precision(y: np.ndarray, s: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """y, s: (B, N) -> AP per replicate, as scikit-learn's average_precision_score (ties share one step). `weights`
    (B, N): each clip counted that many times (a cluster bootstrap's replicate), which is AP of the clips repeated."""
    w = np.ones(s.shape) if weights is None else np.broadcast_to(np.asarray(weights, float), s.shape)
    order = np.argsort(-s, axis=1, kind="stable")
    ys, ss, ws = (np.take_along_axis(np.broadcast_to(a, s.shape), order, 1) for a in (y, s, w))
    tp = np.cumsum(ys * ws, 1)
    k = np.cumsum(ws, 1)
    last = np.ones_like(ss, dtype=bool)  # the last clip of each run of tied scores closes a step
    last[:, :-1] = ss[:, :-1] != ss[:, 1:]
    precision = np.divide(tp, k, out=np.zeros_like(tp), where=k > 0)
    ends = np.where(last, tp, 0)  # positives seen at each step's end (0 inside a run of ties)
    before = np.maximum.accumulate(np.concatenate([np.zeros((len(tp), 1)), ends[:, :-1]], 1), axis=1)
    gains = np.where(last, tp - before, 0)  # recall gain of each step, in positives: AP = sum (R_k - R_k-1) P_k
    return (gains * precision).sum(1) / np.maximum((ys * ws).sum(1), 1)


# ---------------------------------------------------------------- patient-level (cluster) bootstrap

def _cluster_weights(y: np.ndarray, groups, n_boot: int, seed: int) -> np.ndarray:
    """(B, N) replicate weights: whole patients drawn with replacement, within strata of patients holding positives
    only, negatives only, or both (each replicate keeps the number of patients of each kind); a clip's weight is
    how many times its patient was drawn."""
    index, n_clusters = _group_index(groups, len(y))
    has_pos = np.bincount(index, weights=y, minlength=n_clusters) > 0
    has_neg = np.bincount(index, weights=1 - y, minlength=n_clusters) > 0
    kind = has_pos.astype(int) + 2 * has_neg.astype(int)  # 1 positives only, 2 negatives only, 3 both
    rng = np.random.default_rng(seed)
    drawn = np.zeros((n_boot, n_clusters))
    for k in (1, 2, 3):
        members = np.flatnonzero(kind == k)
        if len(members):
            drawn[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
    return drawn[:, index]


def cluster_bootstrap_cis(y_true, y_score, threshold: float, groups, n_boot: int = BOOTSTRAP, seed: int = 0,
                          level: float = LEVEL) -> dict[str, list[float]]:
    """Patient-level bootstrap CIs of ACC, SEN, SPE, PRE, F1 (at the fixed threshold) and AP: whole patients
    resampled (`_cluster_weights`), percentile intervals. The clips of one patient move together, so their
    correlation widens the interval as it should (a clip-level bootstrap treats them as independent evidence)."""
    y, s = _binary(y_true, y_score)
    w = _cluster_weights(y, groups, n_boot, seed)
    values = _threshold_metrics(y, (s[0] >= threshold).astype(int), w)
    values["ap"] = _average_precision(np.broadcast_to(y, w.shape), np.broadcast_to(s[0], w.shape), w)
    return {k: [float(x) for x in np.nanpercentile(v, _percentiles(level))] for k, v in values.items()}


def _split_statistic(key: str, threshold: float):
    """statistic(pos_scores, neg_scores, axis) of one metric at a fixed threshold, for scipy.stats.bootstrap."""
    def statistic(pos, neg, axis=-1):
        pos, neg = np.moveaxis(pos, axis, -1), np.moveaxis(neg, axis, -1)
        batch = np.broadcast_shapes(pos.shape[:-1], neg.shape[:-1])
        pos, neg = np.broadcast_to(pos, (*batch, pos.shape[-1])), np.broadcast_to(neg, (*batch, neg.shape[-1]))
        y = np.r_[np.ones(pos.shape[-1], int), np.zeros(neg.shape[-1], int)]
        s = np.concatenate([pos, neg], -1).reshape(-1, len(y))  # (B, N)
        yb = np.broadcast_to(y, s.shape)
        value = _average_precision(yb, s) if key == "ap" else _threshold_metrics(yb, (s >= threshold).astype(int))[key]
        return value.reshape(batch)
    return statistic


def bootstrap_cis(y_true, y_score, threshold: float, n_boot: int = BOOTSTRAP, seed: int = 0,
                  level: float = LEVEL, keys: Sequence[str] = (*THRESHOLD_KEYS, "ap")) -> dict[str, list[float]]:
    """Stratified-bootstrap CIs of ACC, SEN, SPE, PRE, F1 (at the fixed threshold) and AP: scipy.stats.bootstrap
    with the positives and the negatives as two samples (each resampled within itself: stratified by class) and
    the BCa interval (bias-corrected and accelerated; the percentile interval under-covered, 92 % for SEN with 60
    positives). A metric constant over the resamples (e.g. SPE = 1) has no BCa interval: the percentile one is used."""
    from scipy.stats import bootstrap

    y, s = _binary(y_true, y_score)
    pos, neg = s[0][y == 1], s[0][y == 0]
    if min(len(pos), len(neg)) < 2:  # BCa needs two clips of each class: the percentile interval of the same resamples
        idx = _resamples(y, n_boot, seed)
        values = _threshold_metrics(y[idx], (s[0][idx] >= threshold).astype(int))
        values["ap"] = _average_precision(y[idx], s[0][idx])
        return {k: [float(x) for x in np.nanpercentile(v, _percentiles(level))] for k, v in values.items()}
    out = {}
    for key in keys:
        for method in ("BCa", "percentile"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DegenerateDataWarning / runtime warnings of a constant statistic
                res = bootstrap((pos, neg), _split_statistic(key, threshold), n_resamples=n_boot,
                                confidence_level=level, method=method, vectorized=True,
                                random_state=np.random.default_rng(seed))
            ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
            if not any(math.isnan(c) for c in ci):
                break
        out[key] = ci
    return out


def metric_cis(y_true, y_score, threshold: float, level: float = LEVEL, groups=None) -> dict[str, list[float]]:
    """Every metric's 95 % CI as `{key}_ci: [low, high]`: AUC by DeLong, the rest by stratified bootstrap; where
    `groups` (patient ids) puts several clips in one patient, Obuchowski and the patient-level bootstrap.

    A split with one class only gets [nan, nan] everywhere (the metrics are undefined or unresolvable)."""
    y = np.asarray(y_true).reshape(-1)
    if len(np.unique(y)) < 2:
        return {f"{k}_ci": [float("nan")] * 2 for k in (*THRESHOLD_KEYS, "auc", "ap")}
    _, lo, hi = auc_ci(y, y_score, level, groups)
    rest = (cluster_bootstrap_cis(y, y_score, threshold, groups, level=level) if patient_level(y, groups)
            else bootstrap_cis(y, y_score, threshold, level=level))
    return {"auc_ci": [lo, hi], **{f"{k}_ci": v for k, v in rest.items()}}


def _paired_replicates(y: np.ndarray, n_boot: int, seed: int, groups) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices (B, N), weights (B, N) or None): clips resampled within class, or whole patients (weights)."""
    if patient_level(y, groups):
        return np.broadcast_to(np.arange(len(y)), (n_boot, len(y))), _cluster_weights(y, groups, n_boot, seed)
    return _resamples(y, n_boot, seed), None


def paired_bootstrap(y_true, score_a, threshold_a: float, score_b, threshold_b: float, n_boot: int = BOOTSTRAP,
                     seed: int = 0, level: float = LEVEL, groups=None) -> dict[str, dict]:
    """Deltas a - b of the threshold metrics on the same clips, each with a paired stratified-bootstrap CI (whole
    patients resampled where `groups` puts several clips in one patient).

    Both rows are scored on the same resampled clips in each replicate, so their correlation is kept."""
    y, s = _binary(y_true, np.stack([np.asarray(score_a, float), np.asarray(score_b, float)]))
    idx, w = _paired_replicates(y, n_boot, seed, groups)
    yb = y[idx]
    a = _threshold_metrics(yb, (s[0][idx] >= threshold_a).astype(int), w)
    b = _threshold_metrics(yb, (s[1][idx] >= threshold_b).astype(int), w)
    point_a = _threshold_metrics(y[None], (s[0] >= threshold_a).astype(int)[None])
    point_b = _threshold_metrics(y[None], (s[1] >= threshold_b).astype(int)[None])
    q = _percentiles(level)
    out = {}
    for k in THRESHOLD_KEYS:
        d = a[k] - b[k]
        out[k] = {"delta": float(point_a[k][0] - point_b[k][0]), "ci": [float(x) for x in np.nanpercentile(d, q)]}
    return out


def paired_bootstrap_ap(y_true, score_a, score_b, n_boot: int = BOOTSTRAP, seed: int = 0,
                        level: float = LEVEL, groups=None) -> dict:
    """AP(a) - AP(b) on the same clips with a paired stratified-bootstrap CI (patient level where `groups` clusters
    the clips)."""
    y, s = _binary(y_true, np.stack([np.asarray(score_a, float), np.asarray(score_b, float)]))
    idx, w = _paired_replicates(y, n_boot, seed, groups)
    d = _average_precision(y[idx], s[0][idx], w) - _average_precision(y[idx], s[1][idx], w)
    point = _average_precision(y[None], s[:1]) - _average_precision(y[None], s[1:])
    q = _percentiles(level)
    return {"delta": float(point[0]), "ci": [float(x) for x in np.percentile(d, q)]}


# ---------------------------------------------------------------- the papers' own numbers

def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC from its class counts alone (Hanley & McNeil 1982, Radiology 143:29, Eq. 2)."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc ** 2) + (n_neg - 1) * (q2 - auc ** 2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def wilson(p: float, n: int, level: float = LEVEL) -> list[float]:
    """Wilson (1927) score interval for a proportion p observed on n cases."""
    if n <= 0:
        return [float("nan")] * 2
    z = _z(level)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _denominators(n_pos: int, n_neg: int, columns: dict | None) -> dict[str, int]:
    """Cases behind ACC, SEN, SPE (a paper whose 'SEN' column is another ratio gives its own in `columns`)."""
    return {"acc": n_pos + n_neg, "sen": n_pos, "spe": n_neg, **(columns or {})}


def paper_cis(metrics: dict, n_pos: int, n_neg: int, columns: dict | None = None,
              level: float = LEVEL) -> dict[str, list[float]]:
    """The CIs a paper's own test size allows: AUC by Hanley-McNeil, ACC / SEN / SPE by Wilson on n, n_pos, n_neg
    (or the cases `columns` names for a column, e.g. CLMAN's {"sen": 36, "spe": 71}, see usnb/paper_claims.py).

    PRE, F1 and AP depend on counts the papers do not give; they get no interval."""
    out = {}
    if metrics.get("auc") is not None and not math.isnan(metrics["auc"]):
        se = hanley_mcneil_se(metrics["auc"], n_pos, n_neg)
        out["auc_ci"] = [max(0.0, metrics["auc"] - _z(level) * se), min(1.0, metrics["auc"] + _z(level) * se)]
    for key, n in _denominators(n_pos, n_neg, columns).items():
        if metrics.get(key) is not None and not math.isnan(metrics[key]):
            out[f"{key}_ci"] = wilson(metrics[key], n, level)
    return out


def paper_delta_ci(a: dict, b: dict, key: str, n_pos: int, n_neg: int, columns: dict | None = None,
                   level: float = LEVEL) -> list[float]:
    """A CI for a paper's own difference a - b, treating its two rows as independent samples of its test size.

    The papers give no per-clip scores, so the pairing is unknown; independent rows make this interval wider than a
    paired one would be (correlated rows, paired, resolve more). Read it as 'could this gap be seen at n?'."""
    if key == "auc":
        se = math.hypot(hanley_mcneil_se(a[key], n_pos, n_neg), hanley_mcneil_se(b[key], n_pos, n_neg))
    else:
        n = _denominators(n_pos, n_neg, columns).get(key)
        if n is None:
            return [float("nan")] * 2
        se = math.sqrt(a[key] * (1 - a[key]) / n + b[key] * (1 - b[key]) / n)
    d = a[key] - b[key]
    return [d - _z(level) * se, d + _z(level) * se]


def interval_text(value: float, ci: Sequence[float] | None, scale: float = 100, digits: int = 1) -> str:
    """0.912, [0.88, 0.94] -> '91.2 [88.0, 94.0]'."""
    def number(v: float) -> str:  # -0.004 -> '0.0', not '-0.0'
        text = f"{v * scale:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text

    if ci is None or any(c is None or math.isnan(c) for c in ci):
        return number(value)
    return f"{number(value)} [{number(ci[0])}, {number(ci[1])}]"



def paired_against(y_true, reference: Sequence[float], others: Mapping[str, Sequence[float]], name: str = "ours",
                   groups=None) -> str:
    """A Markdown table: for each of `others` (scores on the same clips, in the same order), AUC(other) -
    AUC(`reference`) in points with DeLong's paired CI (Obuchowski's where `groups`, the clips' patient ids, puts
    several clips in one patient) and its p-value: how far each comparison method is from the paper's method on
    our data."""
    method = "Obuchowski" if patient_level(y_true, groups) else "DeLong"
    lines = [f"| method | AUC | AUC - {name} ({method} {LEVEL:.0%} CI) | p |", "|---|---|---|---|"]
    for other, scores in others.items():
        test = delong_test(y_true, scores, reference, groups=groups)
        lines.append(f"| {other} | {auc_ci(y_true, scores)[0]:.3f} | {interval_text(test['delta'], test['ci'])} | "
                     f"{test['p']:.3f} |")
    return "\n".join(lines)

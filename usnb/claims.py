"""The papers' claims about their own rows, and a verdict on each from our rows with their uncertainty.

A claim reads "row `better` scores higher than row `worse` on `metric`" (kind "greater") or "the two rows score about
the same, within `margin`" (kind "close"). Each recipe keeps its paper's claims in `CLAIMS`, with the quote and the
section they come from, beside its `PAPER_TABLES`.

The verdict comes from our delta a - b on the same test clips and its 95 % CI (`judge`: DeLong's paired test for
AUC, a paired stratified bootstrap for the threshold metrics) or, pooled over seeds, from the CI of the mean delta
(`judge_over_seeds`):
- greater: *supported* when the CI lies above 0, *contradicted* when it lies below 0, else *not resolved at this size*;
- close: *supported* when the 90 % CI lies inside [-margin, margin] (the two one-sided tests, TOST, at 5 % each),
  *contradicted* when it lies wholly outside, else not resolved.
A zero-width interval (e.g. two rows that both separate the test clips perfectly) measures no uncertainty: not
resolved. Pooled over seeds, the training noise (the seeds' spread) averages out but the test split's sampling error
does not (every seed scores the same clips): se^2 = sd^2 / k + mean(se_i^2).
Nothing here is tuned toward a verdict: the rows are trained as their recipe trains them, the claims are the papers'.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from . import stats

SUPPORTED, UNRESOLVED, CONTRADICTED, NOT_RUN = "supported", "not resolved at this size", "contradicted", "not run"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper about two of its rows."""

    better: str  # the row the paper says scores higher (kind "close": either row)
    worse: str
    metric: str  # acc | sen | spe | pre | f1 | auc | ap
    quote: str  # the paper's words
    section: str  # where they stand ("Sec. 4.3", "Table 2")
    kind: str = "greater"  # "greater" | "close"
    margin: float = 0.0  # kind "close": the largest |delta| that counts as the same

    def __post_init__(self):
        if self.kind not in ("greater", "close"):
            raise ValueError(f"claim kind must be 'greater' or 'close', got {self.kind!r}")
        if self.metric not in (*stats.THRESHOLD_KEYS, "auc", "ap"):
            raise ValueError(f"claim metric must be one of acc, sen, spe, pre, f1, auc, ap; got {self.metric!r}")

    @property
    def text(self) -> str:
        if self.kind == "close":
            return f"{self.better} ~ {self.worse} ({self.metric.upper()}, |delta| <= {self.margin:g})"
        return f"{self.better} > {self.worse} ({self.metric.upper()})"


def verdict(claim: Claim, ci: Sequence[float]) -> str:
    """The verdict a CI of delta = better - worse gives (see the module docstring)."""
    lo, hi = ci
    if any(v is None or math.isnan(v) for v in (lo, hi)) or hi - lo <= 0:
        return UNRESOLVED
    if claim.kind == "close":
        if -claim.margin <= lo and hi <= claim.margin:
            return SUPPORTED
        return CONTRADICTED if lo > claim.margin or hi < -claim.margin else UNRESOLVED
    return SUPPORTED if lo > 0 else CONTRADICTED if hi < 0 else UNRESOLVED


def _paper_delta(claim: Claim, paper_rows: Mapping[str, dict], test_size: tuple[int, int] | None) -> dict:
    a, b = paper_rows.get(claim.better, {}), paper_rows.get(claim.worse, {})
    if claim.metric not in a or claim.metric not in b:
        return {"paper_delta": float("nan"), "paper_ci": [float("nan")] * 2}
    delta = a[claim.metric] - b[claim.metric]
    ci = stats.paper_delta_ci(a, b, claim.metric, *test_size) if test_size else [float("nan")] * 2
    return {"paper_delta": delta, "paper_ci": ci}


def judge(claim: Claim, rows: Mapping[str, dict], paper_rows: Mapping[str, dict] | None = None,
          test_size: tuple[int, int] | None = None) -> dict:
    """One run: delta = better - worse on the same test clips, its 95 % CI, the verdict; the paper's own delta and
    the CI its test size (n_pos, n_neg) allows. `rows`: name -> `usnb.metrics.held_out_metrics` output (it keeps
    the test labels, scores and threshold)."""
    out = {"claim": claim.text, **asdict(claim), **_paper_delta(claim, paper_rows or {}, test_size)}
    a, b = rows.get(claim.better), rows.get(claim.worse)
    if a is None or b is None or "scores" not in a or "scores" not in b:
        return {**out, "delta": float("nan"), "ci": [float("nan")] * 2, "verdict": NOT_RUN}
    level = 0.90 if claim.kind == "close" else 0.95  # TOST for "about the same"
    if len(np.unique(a["labels"])) < 2:
        return {**out, "delta": float("nan"), "ci": [float("nan")] * 2, "verdict": UNRESOLVED}
    if not np.array_equal(a["labels"], b["labels"]):
        raise ValueError(f"claim {claim.text}: the two rows were scored on different test clips; a paired "
                         "comparison needs the same split (same seed and data)")
    groups = a.get("groups", b.get("groups"))  # patient ids: patient-level intervals where a patient has two clips
    if claim.metric == "auc":
        test = stats.delong_test(a["labels"], a["scores"], b["scores"], level, groups=groups)
    elif claim.metric == "ap":  # AP: the paired bootstrap of the AP difference
        test = stats.paired_bootstrap_ap(a["labels"], a["scores"], b["scores"], level=level, groups=groups)
    else:
        # pooled k-fold rows (`pooled_metrics`) carry margins: score - their fold's threshold, called positive at 0
        sa, ta = (a["margins"], 0.0) if "margins" in a else (a["scores"], a["threshold"])
        sb, tb = (b["margins"], 0.0) if "margins" in b else (b["scores"], b["threshold"])
        test = stats.paired_bootstrap(a["labels"], sa, ta, sb, tb, level=level, groups=groups)[claim.metric]
    return {**out, "delta": test["delta"], "ci": list(test["ci"]), "level": level, "verdict": verdict(claim, test["ci"])}


def judge_all(recipe, rows: Mapping[str, dict]) -> list[dict]:
    """Every claim of a paper's recipe (`CLAIMS`) judged on one run's rows, beside its tables (`PAPER_TABLES`)
    and the CI its test size (`PAPER_TEST`) allows."""
    paper_rows = {name: row for table in getattr(recipe, "PAPER_TABLES", {}).values() for name, row in table.items()}
    paper_rows |= getattr(recipe, "PAPER_CLAIM_ROWS", {})
    return [judge(c, rows, paper_rows, getattr(recipe, "PAPER_TEST", None)) for c in getattr(recipe, "CLAIMS", [])]


def judge_over_seeds(claim: Claim, per_seed: Sequence[dict]) -> dict:
    """Pooled over seeds: the mean of the per-seed deltas with se^2 = sd^2 / k + mean(se_i^2) (the seeds' spread
    averages out, the shared test split's sampling error does not; se_i from each seed's CI), a normal interval at
    the claim's level, and the verdict from it. One seed: its own CI. per_seed: `judge` outputs (not-run rows left out)."""
    runs = [r for r in per_seed if r.get("verdict") != NOT_RUN and not math.isnan(r["delta"])
            and not any(c is None or math.isnan(c) for c in r["ci"])]
    first = per_seed[0] if per_seed else {}
    base = {k: first.get(k) for k in ("claim", "quote", "section", "paper_delta", "paper_ci")}
    if not runs:
        return {**base, "delta": float("nan"), "sd": float("nan"), "ci": [float("nan")] * 2, "seeds": 0,
                "verdict": NOT_RUN}
    level = runs[0].get("level", 0.95)
    z = stats._z(level)
    deltas = np.array([r["delta"] for r in runs])
    test_var = np.mean([((r["ci"][1] - r["ci"][0]) / (2 * z)) ** 2 for r in runs])
    sd = float(deltas.std(ddof=1)) if len(runs) > 1 else float("nan")
    se = math.sqrt(test_var + (sd ** 2 / len(runs) if len(runs) > 1 else 0.0))
    mean = float(deltas.mean())
    ci = [mean - z * se, mean + z * se]
    return {**base, "delta": mean, "sd": sd, "ci": ci, "seeds": len(runs), "verdict": verdict(claim, ci)}


def claims_table(results: Sequence[dict], scale: float = 100) -> list[list[str]]:
    """Rows for a claims table: claim, where, ours (delta [CI]), the paper's delta [CI at its size], verdict."""
    lines = []
    for r in results:
        ours = "-" if math.isnan(r["delta"]) else stats.interval_text(r["delta"], r["ci"], scale, digits=1)
        if r.get("sd") is not None and not math.isnan(r.get("sd", float("nan"))):
            ours += f" (sd {r['sd'] * scale:.1f}, {r['seeds']} seeds)"
        pd = r.get("paper_delta", float("nan"))
        paper = "-" if pd is None or math.isnan(pd) else stats.interval_text(pd, r.get("paper_ci"), scale, digits=1)
        lines.append([r["claim"], r["section"], ours, paper, r["verdict"]])
    return lines


CLAIMS_HEADER = ["claim (the paper's)", "where", "ours: delta [95 % CI; ~: 90 %]", "paper: delta [95 % CI at its n]",
                 "verdict"]


def claims_markdown(results: Sequence[dict]) -> str:
    """The claims table as Markdown (Jupyter shows it rendered with `display(Markdown(...))`)."""
    lines = [CLAIMS_HEADER, ["---"] * len(CLAIMS_HEADER), *claims_table(results)]
    return "\n".join("| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in lines)


def summary(results: Sequence[dict]) -> str:
    """'3 supported, 4 not resolved at this size, 1 contradicted, 0 not run'."""
    counts = {v: sum(r["verdict"] == v for r in results) for v in (SUPPORTED, UNRESOLVED, CONTRADICTED, NOT_RUN)}
    return ", ".join(f"{n} {v}" for v, n in counts.items())

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

What an interval holds:
- the test split's sampling, at patient level where a patient holds several test clips (`usnb.stats`);
- in a single run, the seed-to-seed spread of the delta where it was measured for that setting (the default
  phantom and the small profile: `seed_spread.json`, written by benchmarks/seed_spread.py from a batch):
  se^2 = se_test^2 + sd_seed^2. Where it is not known (other data, another profile), one seed gives no *supported*
  or *contradicted*: the verdict is *provisional (one seed)*, with the command to run seeds; pooled verdicts need
  at least 3 seeds.
- It leaves out: the choice of the phantom or data set itself, the validation split's draw (the threshold), and
  anything our small profiles change against the paper's training.
A row whose AUC interval reaches 0.5 (or lies below) is not above chance; a claim resting on it names it
(`chance_rows`).
Nothing here is tuned toward a verdict: the rows are trained as their recipe trains them, the claims are the papers'.
"""
from __future__ import annotations

import json
import math
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import stats
from .metrics import markdown_table, not_above_chance

SUPPORTED, UNRESOLVED, CONTRADICTED, NOT_RUN = "supported", "not resolved at this size", "contradicted", "not run"
PROVISIONAL = "provisional (one seed)"
MIN_SEEDS = 3  # pooled verdicts need at least this many seeds
SEED_SPREAD = Path(__file__).with_name("seed_spread.json")


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
            return f"{self.better} ~ {self.worse} ({self.metric.upper()}, |delta| <= {self.margin * 100:g} points)"
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


class Spread(dict):
    """{claim text: seed-to-seed sd of its delta}, and `measured`: how and where it was measured."""

    measured: str = ""


def seed_spread(paper: str, default_setting: bool) -> Spread | None:
    """{claim text: seed-to-seed sd of its delta} recorded for the default setting (the default phantom, the
    recipe's small profile unchanged; `seed_spread.json`, each paper's entry with its own `measured`), or None:
    another setting, or nothing recorded for this paper. The notebook decides `default_setting` in plain sight. See
    `judge` for what the spread changes."""
    if not default_setting or not SEED_SPREAD.is_file():
        return None
    entry = json.loads(SEED_SPREAD.read_text()).get("papers", {}).get(paper)
    if entry is None:
        return None
    spread = Spread({k: float(v["sd"]) for k, v in entry["claims"].items()})
    spread.measured = entry.get("measured", "")
    return spread


def seeds_command(paper: str, profile: str, dataset: str, data_dir=None) -> str:
    """The batch that gives verdicts over seeds on this data: `usnb run <paper> --seeds 0 1 2 ...` (add the -p
    parameters this run changed, e.g. the task's `positive`)."""
    where = f" --dataset {dataset}" + (f" --data-dir {shlex.quote(str(data_dir))}" if data_dir else "")
    return f"usnb run {paper} --profile {profile} --seeds 0 1 2{where} --out runs/{paper}_seeds"


def claims_note(rows: Mapping[str, dict], spread: Mapping[str, float] | None, command: str) -> str:
    """What this run's claims intervals hold, for the notebook: the test split's sampling (patient or clip level,
    from the rows' `intervals`) and the seeds' spread where it is recorded; else that the verdicts are provisional
    and the command that runs seeds."""
    methods = sorted({r["intervals"] for r in rows.values() if "intervals" in r})
    lines = [f"Test-split intervals: {'; '.join(methods) or 'clip level'}."]
    if spread is None:
        lines.append("The seed-to-seed spread of these deltas is not recorded for this setting (only for the default "
                     "phantom with the small profile), so one seed cannot tell a real gap from seed luck: each verdict "
                     f"is provisional. Verdicts need at least {MIN_SEEDS} seeds: {command}")
    else:
        measured = getattr(spread, "measured", "") or "recorded for this setting"
        lines.append(f"Seed spread: each interval adds its delta's seed-to-seed variance ({measured}) to the "
                     "test split's, so a verdict here is not the luck of one seed.")
    return "\n".join(lines)


def judge(claim: Claim, rows: Mapping[str, dict], paper_rows: Mapping[str, dict] | None = None,
          test_size: tuple[int, int] | None = None, seed_sd: float | None = 0.0) -> dict:
    """One run: delta = better - worse on the same test clips, its 95 % CI, the verdict; the paper's own delta and
    the CI its test size (n_pos, n_neg) allows. `rows`: name -> `usnb.metrics.held_out_metrics` output (it keeps
    the test labels, scores, threshold and patient ids).

    `seed_sd`: the seed-to-seed sd of this delta where it is known (`seed_spread`): the interval adds it,
    se^2 = se_test^2 + seed_sd^2 (`test_ci` keeps the test split's own); 0 judges the test sampling alone (a
    caller that pools seeds itself); None (not known): the verdict is PROVISIONAL, whatever the interval.
    `chance_rows`: the claim's rows not above chance (AUC interval not above 0.5)."""
    out = {"claim": claim.text, **asdict(claim), **_paper_delta(claim, paper_rows or {}, test_size),
           "seed_sd": seed_sd, "chance_rows": []}
    nothing = {"delta": float("nan"), "ci": [float("nan")] * 2, "test_ci": [float("nan")] * 2}
    a, b = rows.get(claim.better), rows.get(claim.worse)
    if a is None or b is None or "scores" not in a or "scores" not in b:
        return {**out, **nothing, "verdict": NOT_RUN}
    level = 0.90 if claim.kind == "close" else 0.95  # TOST for "about the same"
    if len(np.unique(a["labels"])) < 2:
        return {**out, **nothing, "verdict": UNRESOLVED}
    if not np.array_equal(a["labels"], b["labels"]):
        raise ValueError(f"claim {claim.text}: the two rows were scored on different test clips; a paired "
                         "comparison needs the same split (same seed and data)")
    groups = a.get("groups", b.get("groups"))  # patient ids: patient-level intervals where a patient has two clips
    if "groups" in a and "groups" in b and not np.array_equal(a["groups"], b["groups"]):
        raise ValueError(f"claim {claim.text}: the two rows' test clips have different patient ids; a paired "
                         "comparison needs the same split")
    if claim.metric == "auc":
        test = stats.delong_test(a["labels"], a["scores"], b["scores"], level, groups=groups)
    elif claim.metric == "ap":  # AP: the paired bootstrap of the AP difference
        test = stats.paired_bootstrap_ap(a["labels"], a["scores"], b["scores"], level=level, groups=groups)
    else:
        # pooled k-fold rows (`pooled_metrics`) carry margins: score - their fold's threshold, called positive at 0
        sa, ta = (a["margins"], 0.0) if "margins" in a else (a["scores"], a["threshold"])
        sb, tb = (b["margins"], 0.0) if "margins" in b else (b["scores"], b["threshold"])
        test = stats.paired_bootstrap(a["labels"], sa, ta, sb, tb, level=level, groups=groups)[claim.metric]
    delta, test_ci = float(test["delta"]), [float(c) for c in test["ci"]]
    ci = test_ci
    if seed_sd:  # each side widened: its distance from delta is z * se_test there; add z * seed_sd in quadrature
        z = stats._z(level)
        ci = [delta - math.hypot(delta - test_ci[0], z * seed_sd), delta + math.hypot(test_ci[1] - delta, z * seed_sd)]
    chance = [name for name, row in ((claim.better, a), (claim.worse, b)) if not_above_chance(row.get("auc_ci"))]
    return {**out, "delta": delta, "ci": ci, "test_ci": test_ci, "level": level, "chance_rows": chance,
            "verdict": PROVISIONAL if seed_sd is None else verdict(claim, ci)}


def judge_all(recipe, rows: Mapping[str, dict], spread: Mapping[str, float] | None) -> list[dict]:
    """Every claim of a paper's recipe (`CLAIMS`) judged on one run's rows, beside its tables (`PAPER_TABLES`)
    and the CI its test size (`PAPER_TEST`) allows. `spread`: {claim text: seed sd of its delta} (`seed_spread`),
    or None where it is not known; a claim without a recorded sd (None, or absent from `spread`, e.g. `{}`) gets a
    provisional verdict."""
    paper_rows = {name: row for table in getattr(recipe, "PAPER_TABLES", {}).values() for name, row in table.items()}
    paper_rows |= getattr(recipe, "PAPER_CLAIM_ROWS", {})
    return [judge(c, rows, paper_rows, getattr(recipe, "PAPER_TEST", None),
                  None if spread is None else spread.get(c.text)) for c in getattr(recipe, "CLAIMS", [])]


def judge_over_seeds(claim: Claim, per_seed: Sequence[dict]) -> dict:
    """Pooled over seeds: the mean of the per-seed deltas with se^2 = sd^2 / k + mean(se_i^2) (the seeds' spread
    averages out, the shared test split's sampling error does not; se_i from each seed's test-sampling CI,
    `test_ci`), a normal interval at the claim's level, and the verdict from it; fewer than MIN_SEEDS seeds give a
    provisional verdict (two seeds cannot estimate their spread). per_seed: `judge` outputs (not-run rows left
    out). `chance_rows`: {row: seeds in which its AUC interval held 0.5}."""
    if len(per_seed) == 1 and per_seed[0].get("seed_sd"):  # one run that held the recorded seed spread: its verdict
        return {**per_seed[0], "sd": float("nan"), "seeds": 1}
    per_seed = [{**r, "ci": r.get("test_ci") or r["ci"]} for r in per_seed]
    runs = [r for r in per_seed if r.get("verdict") != NOT_RUN and not math.isnan(r["delta"])
            and not any(c is None or math.isnan(c) for c in r["ci"])]
    first = per_seed[0] if per_seed else {}
    base = {"claim": claim.text, "quote": claim.quote, "section": claim.section,  # today's wording of the claim
            "paper_delta": first.get("paper_delta", float("nan")), "paper_ci": first.get("paper_ci")}
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
    chance = {}
    for r in runs:
        for name in r.get("chance_rows") or []:
            chance[name] = chance.get(name, 0) + 1
    return {**base, "delta": mean, "sd": sd, "ci": ci, "seeds": len(runs), "chance_rows": chance,
            "verdict": verdict(claim, ci) if len(runs) >= MIN_SEEDS else f"provisional ({len(runs)} seed"
                                                                         f"{'s' if len(runs) > 1 else ''})"}


def _chance_text(chance, seeds: int | None) -> str:
    """'; rests on a row not above chance ...: X (2 of 3 seeds)' or ''."""
    if not chance:
        return ""
    if isinstance(chance, Mapping):  # pooled: {row: seeds}
        names = [f"{n} ({k} of {seeds} seeds)" for n, k in chance.items()]
    else:
        names = list(chance)
    return "; rests on a row not above chance (AUC CI reaches 0.5): " + ", ".join(names)


def claims_table(results: Sequence[dict], scale: float = 100) -> list[list[str]]:
    """Rows for a claims table: claim, where, ours (delta [CI]), the paper's delta [CI at its size], verdict (and
    the claim's rows that are not above chance)."""
    lines = []
    for r in results:
        ours = "-" if _nan(r["delta"]) else stats.interval_text(r["delta"], r["ci"], scale, digits=1)
        if r.get("sd") is not None and not _nan(r["sd"]):
            ours += f" (sd {r['sd'] * scale:.1f}, {r['seeds']} seeds)"
        elif r.get("seed_sd"):
            ours += f" (seed sd {r['seed_sd'] * scale:.1f} in it)"
        pd = r.get("paper_delta", float("nan"))
        paper = "-" if _nan(pd) else stats.interval_text(pd, r.get("paper_ci"), scale, digits=1)
        lines.append([r["claim"], r["section"], ours, paper,
                      r["verdict"] + _chance_text(r.get("chance_rows"), r.get("seeds"))])
    return lines


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


CLAIMS_HEADER = ["claim (the paper's)", "where", "ours: delta [95 % CI; ~: 90 %]", "paper: delta [95 % CI at its n]",
                 "verdict"]
CLAIMS_LEGEND = ("Deltas and intervals in points (0-100). The paper's column: '-' where its table lacks one of the "
                 "two numbers; a bare delta where its test size gives no interval for that metric (PRE, F1, AP) or "
                 "is not known.")


def claims_markdown(results: Sequence[dict]) -> str:
    """The claims table as Markdown (Jupyter shows it rendered with `display(Markdown(...))`)."""
    return f"{markdown_table(CLAIMS_HEADER, claims_table(results))}\n\n*{CLAIMS_LEGEND}*"


def summary(results: Sequence[dict]) -> str:
    """'3 supported, 4 not resolved at this size, 1 contradicted, 0 not run' (and how many provisional)."""
    counts = {v: sum(r["verdict"] == v for r in results) for v in (SUPPORTED, UNRESOLVED, CONTRADICTED, NOT_RUN)}
    provisional = sum(r["verdict"].startswith("provisional") for r in results)
    return ", ".join([f"{n} {v}" for v, n in counts.items()] + ([f"{provisional} provisional"] if provisional else []))

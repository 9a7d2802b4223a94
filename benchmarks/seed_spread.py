"""The seed-to-seed spread of every claim's delta and every row's AUC, from a batch of runs over seeds, and the claims
judged again with this code from each run's per-clip test scores (test_scores.json), pooled over the seeds.

    usnb run mvcc clman kganet lung_ssl --profile small --seeds 0 1 2 --out runs/spread
    python benchmarks/seed_spread.py runs/spread                                # the tables
    python benchmarks/seed_spread.py runs/spread --write usnb/seed_spread.json  # what single runs then use

A single run on the default phantom with the small profile adds each claim's recorded seed variance to its interval
(`usnb.claims.seed_spread`); write the file only from runs of that setting (this script refuses others). The tables:
per paper, each claim's delta per seed, its sd, the pooled verdict; each row's AUC per seed and sd; and how much
wider the patient-level intervals are than the clip-level ones on these test splits.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from usnb import claims, stats
from usnb.recipes import recipe
from usnb.report import collect_runs, read_test_scores


def _rows_with_cis(evidence: dict[str, dict], patients: bool) -> dict[str, dict]:
    """The saved evidence of each row, with its AUC CI (patient level or clip level) for the chance flags."""
    out = {}
    for name, row in evidence.items():
        row = dict(row) if patients else {k: v for k, v in row.items() if k != "groups"}
        if len(np.unique(row["labels"])) == 2:
            row["auc"], *ci = stats.auc_ci(row["labels"], row["scores"], groups=row.get("groups"))
            row["auc_ci"] = ci
        out[name] = row
    return out


def _width(ci) -> float:
    return float(ci[1] - ci[0])


DEFAULT_KNOBS = {"profile", "seed", "out_dir", "dataset"}  # what a batch of the default setting sets, and no more


def analyse(folder: Path) -> tuple[dict, list[str]]:
    runs = [r for r in collect_runs(folder) if r.metrics and r.status.get("ok")
            and getattr(recipe(r.metrics["paper"]), "CLAIMS", None) and (r.folder / "test_scores.json").is_file()]
    settings = {(r.metrics["dataset"], r.metrics["profile"]) for r in runs}
    changed = sorted({k for r in runs for k in r.status.get("parameters", {}) if k not in DEFAULT_KNOBS})
    by_paper: dict[str, list] = {}
    for r in runs:
        by_paper.setdefault(r.metrics["paper"], []).append(r)
    record, lines = {"papers": {}}, []
    for paper, mine in sorted(by_paper.items()):
        module = recipe(paper)
        mine = sorted(mine, key=lambda r: r.metrics["seed"])
        seeds = [r.metrics["seed"] for r in mine]
        per_seed_claims, aucs, widen = [], {}, {"auc": [], "acc": [], "delta_auc": []}
        for r in mine:
            evidence = read_test_scores(r.folder)
            rows = _rows_with_cis(evidence, patients=True)
            clip_rows = _rows_with_cis(evidence, patients=False)
            judged = claims.judge_all(module, rows, spread={c.text: 0.0 for c in module.CLAIMS})
            per_seed_claims.append(judged)
            for name, row in rows.items():
                if "auc" in row:
                    aucs.setdefault(name, []).append(row["auc"])
                    widen["auc"].append(_width(row["auc_ci"]) / max(_width(clip_rows[name]["auc_ci"]), 1e-12))
                    y, s, g = row["labels"], row["scores"], row.get("groups")
                    if stats.patient_level(y, g):
                        t = float(row["threshold"]) if "margins" not in row else 0.0
                        s_t = row["margins"] if "margins" in row else s
                        wide = stats.cluster_bootstrap_cis(y, s_t, t, g)["acc"]
                        narrow = stats.bootstrap_cis(y, s_t, t, keys=("acc",))["acc"]
                        widen["acc"].append(_width(wide) / max(_width(narrow), 1e-12))
            for c in module.CLAIMS:
                if c.metric == "auc" and c.better in rows and c.worse in rows:
                    w = claims.judge(c, rows)["test_ci"]
                    n = claims.judge(c, clip_rows)["test_ci"]
                    if _width(n) > 0:
                        widen["delta_auc"].append(_width(w) / _width(n))
        entry = {"seeds": seeds, "claims": {}, "rows": {}}
        lines.append(f"## {paper}: seeds {seeds} ({len(mine)} runs)")
        lines.append("| claim | delta per seed (points) | sd | pooled: delta [CI] | verdict |")
        lines.append("|---|---|---|---|---|")
        for k, c in enumerate(module.CLAIMS):
            judged = [p[k] for p in per_seed_claims]
            deltas = [j["delta"] for j in judged if not math.isnan(j["delta"])]
            pooled = claims.judge_over_seeds(c, judged)
            sd = float(np.std(deltas, ddof=1)) if len(deltas) > 1 else float("nan")
            if len(deltas) > 1:
                entry["claims"][c.text] = {"sd": sd, "deltas": deltas}
            verdict = claims.claims_table([pooled])[0][-1]
            lines.append(f"| {c.text} | {' '.join(f'{d * 100:.1f}' for d in deltas) or '-'} | "
                         f"{'-' if math.isnan(sd) else f'{sd * 100:.1f}'} | "
                         f"{'-' if math.isnan(pooled['delta']) else stats.interval_text(pooled['delta'], pooled['ci'])}"
                         f" | {verdict} |")
        lines.append("")
        lines.append("| row | AUC per seed | sd |")
        lines.append("|---|---|---|")
        for name, values in aucs.items():
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            entry["rows"][name] = {"auc_sd": sd, "aucs": values}
            lines.append(f"| {name} | {' '.join(f'{v:.3f}' for v in values)} | {sd:.3f} |")
        lines.append("")
        lines.append("Patient-level / clip-level interval width (median over rows and seeds): "
                     + ", ".join(f"{k} {np.median(v):.2f}x ({len(v)})" for k, v in widen.items() if v))
        lines.append("")
        record["papers"][paper] = entry
    return record | {"settings": sorted(settings), "changed": changed}, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a `usnb run ... --seeds ...` batch folder")
    ap.add_argument("--write", type=Path, help="write the spread here (usnb/seed_spread.json)")
    args = ap.parse_args(argv)
    record, lines = analyse(args.folder)
    print("\n".join(lines))
    if args.write:
        if record["settings"] != [("phantom", "small")] or record["changed"]:
            print(f"seed_spread: the runs are of {record['settings']} with {record['changed'] or 'no'} parameters "
                  "changed; the recorded spread is for the default phantom with the small profile and no "
                  "parameter changed. Nothing written.", file=sys.stderr)
            return 2
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
        for entry in record["papers"].values():
            entry["measured"] = (f"sd over seeds {', '.join(map(str, entry['seeds']))} of the small profile on the "
                                 f"default phantom, one run a seed, usnb {commit or '?'}, OMP_NUM_THREADS={threads}")
        # the papers of this batch replace theirs; the others keep what was measured for them
        kept = json.loads(args.write.read_text()) if args.write.is_file() else {"papers": {}}
        for paper, entry in kept["papers"].items():
            entry.setdefault("measured", kept.get("measured", ""))  # files written before each paper had its own
        written = {"papers": {**kept["papers"], **record["papers"]}}
        args.write.write_text(json.dumps(written, indent=1) + "\n")
        print(f"written: {args.write} ({', '.join(sorted(record['papers']))}; kept: "
              f"{', '.join(sorted(set(kept['papers']) - set(record['papers']))) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

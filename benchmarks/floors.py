"""Measure the distribution behind each notebook's AUC floor: the acceptance row, small profile, default phantom.

    python benchmarks/floors.py kganet --seeds 0 1 2 --out runs/floors
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1 python benchmarks/floors.py lung_ssl ...

Each line of OUT/floors.jsonl is one run: paper, seed, torch threads, CPU kernel set, test AUC with its DeLong 95 % CI,
seconds. The row is trained exactly as its notebook trains it (same recipe calls, same defaults); other machines'
kernels round differently, so the floors are set from several seeds at 1 and 2 threads and two kernel sets
(`python benchmarks/floors.py --summary runs/floors` prints the table the notebooks quote). The floor rule: below the
worst run by max(0.05, 2 sd), rounded down to 0.05, so that a correct pipeline passes on any machine. The runs
behind the notebooks' floors: `python benchmarks/floors.py --summary benchmarks/results/floors-2026-11-29.jsonl`
(MVCC's since its 90 fine-tuning passes: `benchmarks/results/floors-2026-12-08-mvcc.jsonl`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from usnb import stats
from usnb.recipes import benchmark as B
from usnb.recipes import lung_ssl as S
from usnb.train import pick_device


def _breast_row(method: str):
    """The acceptance row of a breast paper, trained and scored by the benchmark's runner for it (its recipe's calls
    with the recipe's defaults, as the paper's notebook makes them)."""
    def run(seed: int, out: Path, dev) -> tuple[np.ndarray, np.ndarray]:
        result, _ = B.run_method(method, "small", seed, out, device=dev)
        return result.labels["test"], result.probs["test"]
    return run


def lung_ssl(seed: int, out: Path, dev) -> tuple[np.ndarray, np.ndarray]:
    P = S.get_profile("small")
    data = S.load_data("phantom", P)
    study = S.run_study(data, data.clips, P, seed, out, algorithms=("BYOL",), fractions=(1.0, 0.1),
                        temporal_ablation=False, fine_tune_fractions=(), device=dev, progress=False)
    name = "BYOL: SSL feature extractor @10%"
    return S.label_index(study.split["test"], data.classes), study.probs[name]


ACCEPTANCE = {"mvcc": _breast_row("MVCC"), "clman": _breast_row("CLMAN"), "kganet": _breast_row("KGA-Net"),
              "lung_ssl": lung_ssl}
ROW = {"mvcc": "MVCC", "clman": "With CL (ours)", "kganet": "KGA-Net", "lung_ssl": "BYOL probe @10 % labels"}


def summary(folder: Path) -> None:
    """Per paper: AUC min / mean / sd over every run, per condition, and the largest same-seed condition gap."""
    path = folder if folder.is_file() else folder / "floors.jsonl"
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for paper in ACCEPTANCE:
        mine = [r for r in runs if r["paper"] == paper]
        if not mine:
            continue
        aucs = np.array([r["auc"] for r in mine])
        print(f"{paper} ({ROW[paper]}): {len(mine)} runs, AUC min {aucs.min():.3f} mean {aucs.mean():.3f} "
              f"sd {aucs.std(ddof=1) if len(aucs) > 1 else 0:.3f} max {aucs.max():.3f}; "
              f"mean CI half-width {np.mean([(r['auc_ci'][1] - r['auc_ci'][0]) / 2 for r in mine]):.3f}; "
              f"mean {np.mean([r['seconds'] for r in mine]):.0f} s a run")
        conditions = sorted({(r["threads"], r["kernels"]) for r in mine})
        for cond in conditions:
            vals = {r["seed"]: r["auc"] for r in mine if (r["threads"], r["kernels"]) == cond}
            v = np.array(list(vals.values()))
            print(f"   {cond[0]} thread(s), {cond[1]}: seeds {sorted(vals)} AUC "
                  + " ".join(f"{vals[s]:.3f}" for s in sorted(vals))
                  + f" | mean {v.mean():.3f} sd {v.std(ddof=1) if len(v) > 1 else 0:.3f}")
        margin = max(0.05, 2 * (aucs.std(ddof=1) if len(aucs) > 1 else 0))
        print(f"   floor rule: below the worst run by max(0.05, 2 sd) = {margin:.3f}, rounded down to 0.05: "
              f"{math.floor((aucs.min() - margin) * 20) / 20:.2f}")
        by_seed = {}
        for r in mine:
            by_seed.setdefault(r["seed"], []).append(r["auc"])
        gaps = [max(v) - min(v) for v in by_seed.values() if len(v) > 1]
        if gaps:
            print(f"   largest same-seed gap between conditions: {max(gaps):.3f} (over {len(gaps)} seeds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paper", nargs="?", choices=sorted(ACCEPTANCE))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--out", type=Path, default=Path("runs/floors"))
    ap.add_argument("--summary", type=Path, help="print the table of an OUT folder (or a floors .jsonl file) and stop")
    ap.add_argument("--tag", help="a name for this condition (default t<threads>-<kernels>)")
    args = ap.parse_args()
    if args.summary:
        return summary(args.summary)
    if args.paper is None:
        ap.error("name a paper (or pass --summary OUT)")
    threads = torch.get_num_threads()
    kernels = f"{torch.backends.cpu.get_cpu_capability()}"
    condition = args.tag or f"t{threads}-{kernels}"
    args.out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(None)
    for seed in args.seeds:
        t0 = time.perf_counter()
        y, p = ACCEPTANCE[args.paper](seed, args.out / args.paper / condition, dev)
        auc, lo, hi = stats.auc_ci(y, p)
        record = {"paper": args.paper, "seed": seed, "threads": threads, "kernels": kernels,
                  "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"), "auc": round(auc, 4),
                  "auc_ci": [round(lo, 4), round(hi, 4)], "n_test": len(y), "n_pos": int(np.sum(y)),
                  "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(record), flush=True)
        with open(args.out / "floors.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

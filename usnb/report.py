"""The run contract: every notebook writes `metrics.json` to its output folder in one format."""
from __future__ import annotations

import json
import math
from pathlib import Path

METRIC_KEYS = ("acc", "sen", "spe", "pre", "f1", "auc", "ap")


def write_metrics(out_dir: str | Path, paper: str, profile: str, dataset: str, seed: int, seconds: float,
                  rows: dict[str, dict]) -> Path:
    """Write `{paper, profile, dataset, seed, seconds, rows: {ROW: {acc, sen, spe, pre, f1, auc, ap}}}`.

    Metrics are fractions in [0, 1] (nan allowed where undefined, written as null); anything else is an error.
    """
    clean = {}
    for name, metrics in rows.items():
        missing = [k for k in METRIC_KEYS if k not in metrics]
        if missing:
            raise ValueError(f"row {name!r} lacks {missing}; compute it with usnb.metrics.binary_metrics")
        row = {}
        for k in METRIC_KEYS:
            v = float(metrics[k])
            if not math.isnan(v) and not 0.0 <= v <= 1.0:
                raise ValueError(f"row {name!r}: {k} = {v} is not a fraction in [0, 1] (percent given?)")
            row[k] = None if math.isnan(v) else v
        clean[name] = row
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"paper": paper, "profile": profile, "dataset": dataset, "seed": int(seed),
              "seconds": round(float(seconds), 1), "rows": clean}
    path = out / "metrics.json"
    path.write_text(json.dumps(record, indent=1))
    return path

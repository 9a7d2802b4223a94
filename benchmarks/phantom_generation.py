"""Time the phantom generator: `usnb.phantom.generate(kind, tmpdir)` with the default spec.

    python benchmarks/phantom_generation.py [--kinds breast lung] [--workers W] [--n N]

Prints, per kind, the clips (and breast still images) written, the wall-clock seconds, clips per
second and the size on disk in MB (10^6 bytes). Each set goes to a temporary folder that is deleted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import usnb.phantom as phantom


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def time_kind(kind: str, workers: int | None, spec_kw: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"usnb-bench-{kind}-") as tmp:
        out = Path(tmp) / kind
        start = time.perf_counter()
        phantom.generate(kind, out, workers=workers, **spec_kw)
        seconds = time.perf_counter() - start
        info = json.loads((out / "phantom.json").read_text())
        size = folder_bytes(out)
    return {"kind": kind, "clips": info["clips"], "images": info["images"], "seconds": round(seconds, 2),
            "clips_per_s": round(info["clips"] / seconds, 2), "mb": round(size / 1e6, 2),
            "spec": info["spec"], "generator_version": info["generator_version"]}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(phantom.KINDS), choices=phantom.KINDS)
    parser.add_argument("--workers", type=int, default=None,
                        help="generator processes (default: generate()'s own, min(4, cpu_count))")
    parser.add_argument("--n", type=int, default=None, help="clips (default: the PhantomSpec default, 300)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    spec_kw = {} if args.n is None else {"n": args.n}
    workers = args.workers or min(4, os.cpu_count() or 1)
    print(f"usnb phantom generator v{phantom.GENERATOR_VERSION}; {os.cpu_count()} CPUs, {workers} workers, "
          f"python {platform.python_version()}")
    rows = [time_kind(kind, workers, spec_kw) for kind in args.kinds]
    print(f"{'kind':<8}{'clips':>7}{'images':>8}{'size':>6}{'frames':>8}{'seconds':>10}{'clips/s':>9}{'MB':>8}")
    for r in rows:
        print(f"{r['kind']:<8}{r['clips']:>7}{r['images']:>8}{r['spec']['size']:>6}{r['spec']['frames']:>8}"
              f"{r['seconds']:>10.1f}{r['clips_per_s']:>9.2f}{r['mb']:>8.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cpus": os.cpu_count(), "workers": workers, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()

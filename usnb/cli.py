"""The `usnb` command: phantom, data check, run, demo, figure."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _phantom(args) -> int:
    from .phantom import generate

    kw = {k: v for k, v in {"n": args.n, "size": args.size, "frames": args.frames, "seed": args.seed}.items()
          if v is not None}
    try:
        out = generate(args.kind, args.out, **kw)
    except (FileExistsError, ValueError, PermissionError) as err:  # bad settings or folder: said, nothing touched
        print(f"usnb phantom: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only file system: the partial folder is removed, the old one kept
        print(f"usnb phantom: could not write the phantom to {Path(args.out).resolve()} ({err.strerror or err}); "
              "nothing was changed there. Fix: free space there, or pass another --out folder", file=sys.stderr)
        return 1
    from .phantom import load_phantom

    splits = {s: sum(r.split == s for r in load_phantom(out)) for s in ("train", "val", "test")}
    print(f"phantom written to {out}: clips per split {splits}")
    empty = [s for s, n in splits.items() if n == 0]
    if empty:
        print(f"note: no clip in the {' and '.join(empty)} split(s) at n={kw.get('n', 300)}; the notebooks need "
              "train and test clips (and val for their thresholds). Fix: a larger --n", file=sys.stderr)
    return 0


def _data_check(args) -> int:
    from .data_check import data_check

    return 1 if data_check(args.source, args.root, positive=args.positive, drop=args.drop, folds=args.folds) else 0


def _value(text: str):
    """A -p value: a Python literal (1, 0.5, True, None, [1, 2]) or else the string itself."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # deeply nested text: the string itself
        return text


def _at_least(low: int):
    """An argparse type: a whole number >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not >= {low}")
        return value
    return parse


_positive = _at_least(1)


def _folds(text: str) -> int:
    """An argparse type: a k-fold count, 2 to 20."""
    value = _at_least(-2**63)(text)
    if not 2 <= value <= 20:
        raise argparse.ArgumentTypeError(f"{value} folds: a k-fold split needs 2 to 20 folds")
    return value


def _batch(notebooks: list[str], out: Path, seeds: list[int], parameters: dict, gpus: int = 1, parallel: int = 1,
           slurm: dict | None = None, report: bool = True) -> int:
    """Plan, execute (skipping finished runs), write the report; 1 if any run failed."""
    from .batch import plan, run_batch
    from .report import write_report

    runs = plan(notebooks, out, seeds, parameters, gpus=gpus)
    outcomes = run_batch(runs, parallel=parallel, slurm=slurm)
    failed = [o for o in outcomes if not o.ok]
    if report and len(runs) > 1:
        from .report import ReportError

        try:
            html, md = write_report(out)
            print(f"report: {md} and {html}")
        except ReportError as err:  # a file of the user's where the report goes: kept, said
            print(f"usnb run: no report written: {err}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(runs)} runs failed:", file=sys.stderr)
        for o in failed:
            print(f"  {Path(o.run.notebook).name}: FAILED at {o.error} (seed {o.run.parameters.get('seed')}, "
                  f"executed notebook: {o.run.out_dir}/{Path(o.run.notebook).name}, log: {o.run.out_dir}/run.log)",
                  file=sys.stderr)
    return 1 if failed else 0


def _run(args) -> int:
    if not args.notebooks and not args.all:
        print("usnb run: name notebooks (e.g. kganet mvcc) or pass --all", file=sys.stderr)
        return 2
    params = {"profile": args.profile}
    if args.dataset:
        from .sources import VIDEO_SOURCES

        if args.dataset not in VIDEO_SOURCES:
            why = ("BUSI holds still images, and every notebook trains on videos; give BUSI to KGA-Net as its "
                   "image branch: usnb run kganet --dataset busv -p images busi -p image_dir DIR"
                   if args.dataset == "busi" else f"the notebooks read {', '.join(VIDEO_SOURCES)}")
            print(f"usnb run: --dataset {args.dataset}: no notebook can train on it; {why}", file=sys.stderr)
            return 2
        params["dataset"] = args.dataset
    if args.data_dir:  # absolute: papermill runs the notebook in notebooks/, not in the caller's folder
        params["data_dir"] = str(Path(args.data_dir).expanduser().resolve())
    import os

    from .batch import check_out
    from .notebooks import check_parameter_names, find_notebooks

    try:
        notebooks = find_notebooks(None if args.all else args.notebooks)
        check_parameter_names(notebooks, [name for name, _ in args.p],
                              {"seed": "--seed / --seeds", "out_dir": "--out", "profile": "--profile",
                               "dataset": "--dataset", "data_dir": "--data-dir"})
        check_out(Path(args.out))
        for name, value in args.p:  # folders: against the caller's folder, not notebooks/ where papermill runs
            value = _value(value)
            params[name] = str(Path(value).expanduser().resolve()) if name.endswith("_dir") and \
                isinstance(value, str) else value
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"usnb run: {err}", file=sys.stderr)
        return 2
    for name in ("USNB_DATA_DIR", "USNB_CACHE_DIR"):  # the runs inherit these: make them absolute the same way
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().resolve())
    slurm = None
    if args.slurm:
        slurm = {"cluster": args.slurm, "timeout_min": args.slurm_time, "gpus_per_node": args.gpus,
                 "cpus_per_task": args.slurm_cpus}
        if args.slurm_partition:
            slurm["slurm_partition"] = args.slurm_partition
    seeds = args.seeds if args.seeds is not None else [args.seed]
    try:
        return _batch([] if args.all else args.notebooks, Path(args.out), seeds, params, gpus=args.gpus,
                      parallel=args.parallel, slurm=slurm, report=not args.no_report)
    except (ValueError, FileExistsError) as err:  # planning refused the batch before any run started
        print(f"usnb run: {err}", file=sys.stderr)
        return 2


def _demo(args) -> int:
    """The main job: every notebook in the small profile (but those in progress), then the report."""
    from .notebooks import IN_PROGRESS, find_notebooks

    for name, why in IN_PROGRESS.items():
        print(f"{name}: left out of the demo ({why}); run it with `usnb run {name.split('_', 1)[1]}`")
    ready = [str(p) for p in find_notebooks() if p.stem not in IN_PROGRESS]
    try:
        return _batch(ready, Path(args.out), args.seeds, {"profile": args.profile})
    except (ValueError, FileExistsError) as err:  # planning refused the batch before any run started
        print(f"usnb demo: {err}", file=sys.stderr)
        return 2


def _report(args) -> int:
    from .report import ReportError, collect_runs, write_report

    try:
        html, md = write_report(args.out)
    except ReportError as err:  # no such folder, no runs, a file of the user's where the report goes: nothing written
        print(f"usnb report: {err}", file=sys.stderr)
        return 2
    print(f"report: {md} and {html}")
    damaged = [r for r in collect_runs(Path(args.out).expanduser().resolve()) if r.damaged]
    for r in damaged:
        print(f"usnb report: {r.folder}: damaged run, listed as such in the report ({r.damaged}). Fix: run it "
              "again", file=sys.stderr)
    return 1 if damaged else 0


def _figure(args) -> int:
    from .plots import readme_figure

    print(f"wrote {readme_figure(args.out)}")
    return 0


def _bench(args) -> int:
    from .bench import main_args

    return main_args(args)


def main(argv: list[str] | None = None) -> int:
    from .sources import SOURCES

    parser = argparse.ArgumentParser(prog="usnb", description="usnb: deep learning on ultrasound videos")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("phantom", help="generate the built-in ultrasound phantom")
    p.add_argument("--kind", choices=["breast", "lung"], default="breast")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=_positive, help="number of clips (default 300)")
    p.add_argument("--size", type=_positive, help="frame size in pixels, even (default 112)")
    p.add_argument("--frames", type=_positive, help="frames per clip (default 32)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.set_defaults(func=_phantom)

    p = sub.add_parser("data", help="data tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="load every item and report what fails")
    c.add_argument("source", choices=sorted(SOURCES))
    c.add_argument("root", help="data set folder (manifest: the CSV or its folder)")
    c.add_argument("--positive", nargs="+", help="labels that form the positive class (every other: negative); "
                   "prints the mapping and the class counts per split")
    c.add_argument("--drop", nargs="+", default=[], help="labels left out (with --positive)")
    c.add_argument("--folds", type=_folds, help="a source without a split: k-fold by patient (default: the breast "
                   "notebooks' 60/20/20 split; notebook 04: 5 folds)")
    c.set_defaults(func=_data_check)

    p = sub.add_parser("demo", help="the main job: every notebook headless, then the report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--profile", choices=["small", "paper"], default="small")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.set_defaults(func=_demo)

    p = sub.add_parser("run", help="execute notebooks headless with papermill: one run, or a batch over seeds",
                       description="One notebook and one seed run straight into --out; a batch puts each run in "
                       "OUT/<notebook>/seed<k>/ and ends with OUT/report.md, report.html and index.html. Running a "
                       "batch again skips finished runs and redoes failed or unfinished ones.")
    p.add_argument("notebooks", nargs="*", help="paths or short names, e.g. kganet mvcc (or --all)")
    p.add_argument("--all", action="store_true", help="every notebook under notebooks/")
    p.add_argument("--profile", choices=["small", "paper"], default="small")
    p.add_argument("--out", required=True, help="output folder (executed notebook, metrics.json, figures)")
    p.add_argument("--dataset", help="the videos every notebook trains on: phantom (default), folders (ROOT/<label>/"
                   "<clip>), manifest (a CSV), busv or pocus; the task: -p positive '[\"LABEL\"]' -p drop '[...]'")
    p.add_argument("--data-dir", help="folder of the data set (class folders, manifest CSV, BUSV or POCUS root)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds, e.g. --seeds 0 1 2 3 (the papers' mean(std))")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="any notebook parameter, e.g. -p train_steps 300")
    p.add_argument("--gpus", type=_positive, default=1, help="processes per run under torchrun (DDP), one per GPU")
    p.add_argument("--parallel", type=_positive, default=1, help="runs at once; with GPUs, each on its own GPU")
    p.add_argument("--slurm", nargs="?", const="slurm", choices=["slurm", "local"],
                   help="submit each run as a job with submitit ('local': submitit's local executor, for testing)")
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-time", type=_positive, default=120, help="minutes per job")
    p.add_argument("--slurm-cpus", type=_positive, default=8, help="CPUs per job")
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(func=_run)

    p = sub.add_parser("report", help="(re)write report.md, report.html and index.html of a batch folder")
    p.add_argument("out")
    p.set_defaults(func=_report)

    p = sub.add_parser("figure", help="write the README's example phantom frames")
    p.add_argument("--out", default="docs/phantom_frames.png")
    p.set_defaults(func=_figure)

    p = sub.add_parser("bench", help="GPU speed: clips/s, MFU, memory and loader frames/s, fast vs naive")
    from .bench import add_arguments

    add_arguments(p)
    p.set_defaults(func=_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

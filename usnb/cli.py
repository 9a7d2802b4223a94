"""The `usnb` command: phantom, data check, run, demo, figure."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _phantom(args) -> int:
    from .phantom import generate

    kw = {k: v for k, v in {"n": args.n, "size": args.size, "frames": args.frames, "seed": args.seed}.items()
          if v is not None}
    out = generate(args.kind, args.out, **kw)
    print(f"phantom written to {out}")
    return 0


def _data_check(args) -> int:
    from .data_check import data_check

    return 1 if data_check(args.source, args.root) else 0


def _demo(args) -> int:
    from .notebooks import demo

    return 1 if demo(Path(args.out), profile=args.profile) else 0


def _value(text: str):
    """A -p value: a Python literal (1, 0.5, True, None, [1, 2]) or else the string itself."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _run(args) -> int:
    from .notebooks import find_notebooks, run_notebook

    params = {"profile": args.profile, "seed": args.seed}
    if args.dataset:
        params["dataset"] = args.dataset
    if args.data_dir:  # absolute: papermill runs the notebook in notebooks/, not in the caller's folder
        params["data_dir"] = str(Path(args.data_dir).expanduser().resolve())
    params.update({name: _value(value) for name, value in args.p})
    failed = 0
    for nb in find_notebooks([args.notebook]):
        result = run_notebook(nb, Path(args.out), params)
        if result.ok:
            print(f"{nb.name}: ok in {result.seconds:.0f} s -> {result.out_dir}")
        else:
            failed += 1
            print(f"{nb.name}: FAILED at {result.error} (executed notebook: {result.out_dir}/{nb.name})",
                  file=sys.stderr)
    return 1 if failed else 0


def _figure(args) -> int:
    from .plots import readme_figure

    print(f"wrote {readme_figure(args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .datasets import SOURCES

    parser = argparse.ArgumentParser(prog="usnb", description="usnb: deep learning on ultrasound videos")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("phantom", help="generate the built-in ultrasound phantom")
    p.add_argument("--kind", choices=["breast", "lung"], default="breast")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, help="number of clips (default 300)")
    p.add_argument("--size", type=int, help="frame size in pixels, even (default 112)")
    p.add_argument("--frames", type=int, help="frames per clip (default 32)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.set_defaults(func=_phantom)

    p = sub.add_parser("data", help="data tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="load every item and report what fails")
    c.add_argument("source", choices=sorted(SOURCES))
    c.add_argument("root", help="data set folder (manifest: the CSV or its folder)")
    c.set_defaults(func=_data_check)

    p = sub.add_parser("demo", help="run every notebook headless and write a summary")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--profile", choices=["small", "paper"], default="small")
    p.set_defaults(func=_demo)

    p = sub.add_parser("run", help="execute one notebook headless with papermill")
    p.add_argument("notebook", help="path or short name, e.g. kganet or 03_kganet")
    p.add_argument("--profile", choices=["small", "paper"], default="small")
    p.add_argument("--out", required=True, help="output folder (executed notebook, metrics.json, figures)")
    p.add_argument("--dataset", help="data set name the notebook understands (default: the phantom)")
    p.add_argument("--data-dir", help="folder of the data set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="any notebook parameter, e.g. -p epochs 3")
    p.set_defaults(func=_run)

    p = sub.add_parser("figure", help="write the README's example phantom frames")
    p.add_argument("--out", default="docs/phantom_frames.png")
    p.set_defaults(func=_figure)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Running notebooks headless with papermill: one output folder per run, failures name the cell."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass
class RunResult:
    notebook: str
    out_dir: str
    ok: bool
    seconds: float
    error: str = ""


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """Notebooks under notebooks/ in order; `names` may be short names ('data_tour', 'kganet')."""
    all_nb = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return all_nb
    picked = []
    for name in names:
        hits = [p for p in all_nb if name in (p.stem, p.name, p.stem.split("_", 1)[1])] or \
               ([Path(name)] if Path(name).is_file() else [])
        if not hits:
            raise FileNotFoundError(f"no notebook {name!r}; choose from {[p.stem for p in all_nb]}")
        picked += hits
    return picked


def run_notebook(notebook: Path, out_dir: Path, parameters: dict | None = None) -> RunResult:
    """Execute `notebook` into `out_dir/<name>.ipynb` with papermill; `out_dir` is passed as a parameter."""
    import papermill as pm

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {**(parameters or {}), "out_dir": str(out_dir)}
    (out_dir / "parameters.json").write_text(json.dumps(params, indent=1))
    start = time.perf_counter()
    # the `python3` kernel of this environment, even where the user has another `python3` kernelspec
    ours = str(Path(sys.prefix) / "share" / "jupyter")
    others = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != ours]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([ours, *others])
    try:
        pm.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=params,
                            cwd=str(notebook.parent), progress_bar=False, log_output=False)
        return RunResult(notebook.stem, str(out_dir), True, round(time.perf_counter() - start, 1))
    except pm.PapermillExecutionError as err:
        msg = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
    except Exception as err:  # noqa: BLE001 - a dead kernel or a bad notebook file: report, go on
        msg = f"{type(err).__name__}: {err}"
    return RunResult(notebook.stem, str(out_dir), False, round(time.perf_counter() - start, 1), msg)


def demo(out: Path, profile: str = "small", echo=print) -> int:
    """The main job: every notebook headless in `profile`, then `summary.md` / `summary.json` in `out`."""
    out = Path(out)
    results = []
    for nb in find_notebooks():
        echo(f"running {nb.name} (profile {profile}) ...")
        res = run_notebook(nb, out / nb.stem, {"profile": profile})
        echo(f"  {'ok' if res.ok else 'FAILED'} in {res.seconds:.0f} s" + (f": {res.error}" if res.error else ""))
        results.append(res)
    (out / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    lines = [f"# usnb demo ({profile} profile)", "", "| notebook | status | seconds | outputs |", "|---|---|---|---|"]
    for r in results:
        figures = sorted(p.name for p in Path(r.out_dir).glob("*.png"))
        lines.append(f"| {r.notebook} | {'ok' if r.ok else 'FAILED: ' + r.error} | {r.seconds:.0f} | "
                     f"[{r.notebook}.ipynb]({r.notebook}/{r.notebook}.ipynb) " + " ".join(
                         f"[{f}]({r.notebook}/{f})" for f in figures) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    echo(f"summary: {out / 'summary.md'}")
    return sum(not r.ok for r in results)

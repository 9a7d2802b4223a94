"""Running notebooks headless with papermill: one output folder per run, failures name the cell."""
from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .live import HEADLESS
from .paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
# Notebooks whose small profile does not yet reach its acceptance floor: `make test` (nbval) and `usnb demo` leave
# them out, saying why; `usnb run` still runs them when named (or with --all). Remove an entry when it passes.
IN_PROGRESS: dict[str, str] = {}  # {"01_mvcc": "why"}: none at present


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


def notebook_parameters(notebook: Path) -> list[str]:
    """The names its cell tagged `parameters` assigns: what papermill can set (and `usnb run -p` may name)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return []
    tree = ast.parse("".join(cell["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]


def check_parameter_names(notebooks: list[Path], names: list[str], flags: dict[str, str]) -> None:
    """ValueError unless every name is a Python identifier, is set by no command-line flag (`flags`: name -> flag),
    and is a parameter of at least one of `notebooks` (the valid names are listed)."""
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"-p {name!r}: a parameter name is a Python identifier (letters, digits, _)")
        if name in flags:
            raise ValueError(f"-p {name}: {flags[name]} sets it; use that flag")
    known = {n for nb in notebooks for n in notebook_parameters(nb)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"-p {', '.join(unknown)}: not a parameter of {', '.join(nb.stem for nb in notebooks)}; "
                         f"their parameters: {', '.join(sorted(known - set(flags)))}")


def run_notebook(notebook: Path, out_dir: Path, parameters: dict | None = None, log: Path | None = None) -> RunResult:
    """Execute `notebook` into `out_dir/<name>.ipynb` with papermill; `out_dir` is passed as a parameter.

    With `log`, the notebook's stdout and stderr (progress bars included) go to that file as they come. The notebook
    runs headless (`usnb.live`): nobody watches it, so it draws no widgets.
    """
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
    os.environ[HEADLESS] = "1"  # the kernel inherits it: text progress bars, static figures (usnb.live)
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open(log, "w")) if log else None
        try:
            pm.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=params,
                                cwd=str(notebook.parent), progress_bar=False, log_output=False, stdout_file=stream,
                                stderr_file=stream)
            return RunResult(notebook.stem, str(out_dir), True, round(time.perf_counter() - start, 1))
        except pm.PapermillExecutionError as err:
            msg = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
        except Exception as err:  # noqa: BLE001 - a dead kernel or a bad notebook file: report, go on
            msg = f"{type(err).__name__}: {err}"
        if stream:
            stream.write(f"\nFAILED at {msg}\n")
    return RunResult(notebook.stem, str(out_dir), False, round(time.perf_counter() - start, 1), msg)

"""Batch replication: notebooks x seeds, one folder per run, resume, failures reported, then the report.

A run is one notebook executed by papermill with one set of parameters. Its folder holds the executed notebook,
`parameters.json`, `environment.json` (package versions, GPU), `run.log` (the notebook's stdout and stderr), its
figures and `metrics.json`, and last `status.json`. A run counts as finished only when `status.json` says ok and
its parameters are the ones asked for: running a batch again redoes failed and unfinished runs and skips the rest
(a rerun also resumes from the checkpoints the notebook left under `checkpoints/`).

Runs execute in a child process each (`python -m usnb.batch RUN_FOLDER`), so that one executor serves every way
of running a batch: one after another here, `parallel` at once (each pinned to one local GPU when there are GPUs),
under `torchrun` with `gpus` processes (DistributedDataParallel inside `usnb.train.fit`), or as SLURM jobs through
submitit. Notebooks are never edited: only papermill parameters change.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .notebooks import find_notebooks, notebook_parameters, run_notebook
from .live import usable_cores
from .paths import atomic_write


@dataclass(frozen=True)
class Run:
    """One notebook with one set of parameters, executed into `out_dir`."""

    notebook: str  # path of the .ipynb
    out_dir: str
    parameters: dict = field(default_factory=dict)
    gpus: int = 1  # > 1: torchrun with this many processes (DDP)

    @property
    def name(self) -> str:
        return f"{Path(self.notebook).stem} seed {self.parameters.get('seed', 0)}"


@dataclass
class Outcome:
    run: Run
    ok: bool
    seconds: float
    error: str = ""
    skipped: bool = False  # finished by an earlier batch


OWN_FILES = ("report.md", "report.html", "index.html")  # a batch folder's own files (usnb.report)


def _is_run_folder(folder: Path) -> bool:
    """A folder `usnb run` wrote a run into: its status.json or run.json names the notebook, or its run.lock a pid."""
    if _made_by(folder) is not None:
        return True
    try:
        return isinstance(json.loads((folder / "run.lock").read_text()).get("pid"), int)
    except (OSError, ValueError, AttributeError):
        return False


def _listing(folder: Path, names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _entries(folder: Path) -> list[Path]:
    """What a folder holds, leaving out hidden files (.DS_Store, .nfs*) and submitit's job logs."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "submitit")


def check_run_folders(out: Path, folders: Sequence[Path], single: bool, stems: Sequence[str] = ()) -> None:
    """FileExistsError unless every folder a batch writes is new, empty or usnb's own: a run folder (`single`: `out`
    itself) or a batch folder (`out` holding folders of notebooks (the planned `stems`, or any holding a run folder),
    submitit/ and the report's files), so that no file of the user's (a parameters.json, a run.log, a checkpoints/
    folder) is overwritten."""
    from .report import written_by_usnb

    fix = "Fix: pass a new or empty --out folder (or the folder of an earlier usnb run, to resume it)"

    def ours(p: Path) -> bool:
        if p.is_dir() and not p.is_symlink():
            return p.name in stems or any(q.is_dir() and _is_run_folder(q) for q in p.iterdir())
        return p.name in OWN_FILES and written_by_usnb(p)

    if not single and out.is_dir():
        foreign = [p.name + "/" * p.is_dir() for p in _entries(out) if not ours(p)]
        if foreign:
            raise FileExistsError(f"--out {out} is not a usnb batch folder: it holds {_listing(out, foreign)}, which "
                                  f"a batch would write beside or over. {fix}")
    for folder in folders:
        if folder.is_dir() and _entries(folder) and not _is_run_folder(folder):
            names = [p.name + "/" * p.is_dir() for p in _entries(folder)]
            raise FileExistsError(f"{'--out ' if single else ''}{folder} is not a usnb run folder: it holds "
                                  f"{_listing(folder, names)}, which a run would overwrite (parameters.json, "
                                  f"run.log, status.json, figures, checkpoints/). {fix}")


def check_out(out: Path) -> None:
    """An --out that can hold run folders: a writable folder, or one that can be made; else an error naming the fix."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; pass a folder (it is created if missing)")
    existing = next((p for p in [out, *out.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {existing} is not writable; pass a folder you can write to")


def plan(notebooks: Sequence[str] | None, out: str | Path, seeds: Sequence[int] = (0,), parameters: dict | None = None,
         gpus: int = 1) -> list[Run]:
    """Runs for `notebooks` (short names; None or []: all) x `seeds`.

    One notebook and one seed run straight into `out`; otherwise each run gets `out/<notebook>/seed<k>`.
    """
    paths = find_notebooks(list(notebooks) if notebooks else None)
    if len(set(seeds)) != len(list(seeds)):
        raise ValueError(f"seeds repeat: {list(seeds)}; give each seed once")
    single = len(paths) == 1 and len(seeds) == 1
    check_run_folders(Path(out).resolve(), [Path(out).resolve()] if single else
                      [Path(out).resolve() / nb.stem / f"seed{seed}" for nb in paths for seed in seeds], single,
                      [nb.stem for nb in paths])
    runs = []
    for nb in paths:
        own = set(notebook_parameters(nb)) or set(parameters or {})  # each notebook gets the parameters it has
        given = {k: v for k, v in (parameters or {}).items() if k in own}
        left = sorted(set(parameters or {}) - own)
        if left:
            print(f"usnb run: {nb.stem} has no parameter {', '.join(left)}: not passed to it")
        for seed in seeds:
            folder = Path(out) if single else Path(out) / nb.stem / f"seed{seed}"
            runs.append(Run(str(nb), str(Path(folder).resolve()), {**given, "seed": int(seed)}, gpus))
            made_by = _made_by(Path(folder))
            if made_by not in (None, nb.name):
                raise FileExistsError(f"{folder} holds a run of {made_by}, not of {nb.name}; pass another --out "
                                      "folder to keep both")
    return runs


def _made_by(folder: Path) -> str | None:
    """The notebook whose run a folder holds (its status.json or run.json says), or None."""
    for name in ("status.json", "run.json"):
        try:
            record = json.loads((folder / name).read_text())
        except (OSError, ValueError):  # missing, not JSON, not UTF-8
            continue
        notebook = record.get("notebook") if isinstance(record, dict) else None
        if isinstance(notebook, str) and notebook:
            return Path(notebook).name
    return None


def _requested(run: Run) -> dict:
    return {**run.parameters, "out_dir": run.out_dir}


def is_finished(run: Run) -> bool:
    """status.json says ok, with the parameters this run asks for (another -p value means another run)."""
    from .report import metrics_problem, read_record

    folder = Path(run.out_dir)
    record, damaged = read_record(folder / "status.json")
    if damaged or record.get("ok") is not True or \
            record.get("parameters") != json.loads(json.dumps(_requested(run))):
        return False
    if (folder / "metrics.json").exists():  # a damaged metrics.json: the run is done again
        metrics, damaged = read_record(folder / "metrics.json")
        return not (damaged or metrics_problem(metrics))
    return True


def _write_json(path: Path, data) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str))


def environment() -> dict:
    """What a reader needs to reproduce a run: usnb.env_report, the command line's interpreter, GPUs, host."""
    import usnb

    env = usnb.env_report()
    env.update(executable=sys.executable, host=platform.node(), platform=platform.platform())
    try:
        import torch

        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA setup is reported, not fatal
        env["gpus"] = []
    for name in ("papermill", "scipy", "matplotlib", "torchvision"):
        try:
            env.setdefault(name, __import__(name).__version__)
        except Exception:  # noqa: BLE001
            env.setdefault(name, "missing")
    return env


def execute(run: Run) -> Outcome:
    """Execute one run here (in this process): the notebook, its environment record and status.json."""
    rank = int(os.environ.get("RANK", 0))  # under torchrun: rank 0 writes the run folder, the others a scratch one
    out = Path(run.out_dir) if rank == 0 else Path(run.out_dir) / f"rank{rank}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "status.json").unlink(missing_ok=True)  # unfinished until this run says otherwise
    _write_json(out / "environment.json", environment())
    result = run_notebook(Path(run.notebook), out, run.parameters, log=out / "run.log")
    if rank == 0:
        _write_json(out / "status.json", {"ok": result.ok, "error": result.error, "seconds": result.seconds,
                                          "notebook": Path(run.notebook).name, "parameters": _requested(run),
                                          "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return Outcome(run, result.ok, result.seconds, result.error)


def _child_command(run: Run) -> list[str]:
    spec = Path(run.out_dir) / "run.json"
    _write_json(spec, asdict(run))
    if run.gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={run.gpus}",
                "-m", "usnb.batch", str(spec)]
    return [sys.executable, "-m", "usnb.batch", str(spec)]


_CHILDREN: set[subprocess.Popen] = set()  # the runs going now, stopped with this process (`_stop_children`)


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie, dead but not yet reaped, does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # alive, another user's
        return True


LOCK_BEAT = 60  # seconds between a live lock's heartbeats (its file's mtime is touched)
LOCK_STALE = 10 * LOCK_BEAT  # a lock of another host (shared file system, SLURM) not touched this long is stale


def _take_lock(folder: Path) -> str | None:
    """Claim a run folder for this process (folder/run.lock: pid and host); None, or why not: another live process
    holds it. A lock left by a process that is gone is taken over: on this host, its pid no longer runs; from another
    host (whose pids cannot be checked from here), its heartbeat stopped more than LOCK_STALE seconds ago."""
    lock = folder / "run.lock"
    mine = {"pid": os.getpid(), "host": platform.node()}
    for _ in range(2):
        try:
            with open(lock, "x") as f:
                json.dump(mine, f)
            return None
        except FileExistsError:
            try:
                held, age = json.loads(lock.read_text()), time.time() - lock.stat().st_mtime
            except (OSError, json.JSONDecodeError):
                held, age = {}, float("inf")
            pid = held.get("pid") if isinstance(held, dict) else None
            executor = held.get("executor") if isinstance(held, dict) else None
            if isinstance(held, dict) and held.get("host") == mine["host"]:  # the batch, or the run it started
                live = [p for p in (pid, executor) if isinstance(p, int) and _pid_alive(p)]
            else:
                live = [pid] if age < LOCK_STALE else []
            if live:
                who = f"pid {pid}" + (f", its executor pid {executor}" if isinstance(executor, int) else "")
                return (f"another usnb run ({who} on {held.get('host', '?')}) is running {folder}; wait for it, "
                        f"or stop it (kill {' '.join(map(str, live))}) and run again (the run resumes)")
            lock.unlink(missing_ok=True)  # stale: its process is gone
    return f"could not lock {folder}"


def _stop_children(signum, frame) -> None:
    """SIGTERM / SIGINT / SIGHUP: stop the runs going (their folders stay unfinished: the next `usnb run` redoes
    them). A run killed with SIGKILL cannot do this; its executors stop by themselves (`_die_with_parent`)."""
    for child in list(_CHILDREN):
        child.terminate()
    for child in list(_CHILDREN):
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    raise SystemExit(128 + signum)


def execute_in_child(run: Run, env: dict | None = None) -> Outcome:
    """Execute a run in a child process (or `gpus` processes under torchrun); read its status.json after."""
    start = time.perf_counter()
    Path(run.out_dir).mkdir(parents=True, exist_ok=True)
    busy = _take_lock(Path(run.out_dir))
    if busy:
        return Outcome(run, False, 0.0, busy)
    try:
        (Path(run.out_dir) / "status.json").unlink(missing_ok=True)
        child = subprocess.Popen(_child_command(run), env={**os.environ, **(env or {}), PARENT: str(os.getpid())},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _CHILDREN.add(child)
        with atomic_write(Path(run.out_dir) / "run.lock") as tmp:  # the lock names the executor too
            tmp.write_text(json.dumps({"pid": os.getpid(), "host": platform.node(), "executor": child.pid}))
        while True:  # the lock's heartbeat: another host sees the run is alive while its mtime is recent
            try:
                stdout, stderr = child.communicate(timeout=LOCK_BEAT)
                break
            except subprocess.TimeoutExpired:
                os.utime(Path(run.out_dir) / "run.lock")
        _CHILDREN.discard(child)
    finally:
        (Path(run.out_dir) / "run.lock").unlink(missing_ok=True)
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    status = Path(run.out_dir) / "status.json"
    if status.exists():
        record = json.loads(status.read_text())
        return Outcome(run, record["ok"], record["seconds"], record["error"])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return Outcome(run, False, round(time.perf_counter() - start, 1),
                   f"the run process exited with status {done.returncode} before it finished: {' | '.join(tail)}")


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


def run_batch(runs: Sequence[Run], parallel: int = 1, slurm: dict | None = None, echo: Callable = print) -> list[Outcome]:
    """Execute the runs not finished yet; failures are reported and the batch goes on.

    parallel > 1: that many runs at once; with GPUs, run i gets GPU i mod (number of GPUs) (CUDA_VISIBLE_DEVICES),
    without them each run gets an equal share of the CPU cores as its threads (OMP_NUM_THREADS).
    slurm: submitit parameters ({"cluster": "slurm" | "local", "slurm_partition": ..., "timeout_min": ...,
    "gpus_per_node": ...}); each run becomes one job, and this call waits for all of them.
    """
    import threading

    handlers = {}
    if threading.current_thread() is threading.main_thread():  # a kill or Ctrl-C stops the runs too
        handlers = {sig: signal.signal(sig, _stop_children) for sig in _STOP_SIGNALS
                    if signal.getsignal(sig) is not signal.SIG_IGN}  # `nohup usnb run ...` keeps ignoring SIGHUP
    try:
        return _run_batch(runs, parallel, slurm, echo)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _run_batch(runs: Sequence[Run], parallel: int, slurm: dict | None, echo: Callable) -> list[Outcome]:
    outcomes: list[Outcome] = []
    todo = []
    for run in runs:
        if is_finished(run):
            echo(f"{run.name}: finished before, skipped ({run.out_dir})")
            outcomes.append(Outcome(run, True, 0.0, skipped=True))
        else:
            todo.append(run)

    def report(outcome: Outcome) -> Outcome:
        if outcome.ok:
            echo(f"{outcome.run.name}: ok in {outcome.seconds:.0f} s -> {outcome.run.out_dir}")
        else:
            echo(f"{outcome.run.name}: FAILED at {outcome.error} (executed notebook: "
                 f"{outcome.run.out_dir}/{Path(outcome.run.notebook).name})")
        return outcome

    if slurm is not None:
        outcomes += [report(o) for o in _run_submitit(todo, slurm)]
    elif parallel > 1:
        gpus = _gpu_count()
        cpu_env = _cpu_threads(min(parallel, len(todo)))

        def one(item):
            i, run = item
            return report(execute_in_child(run, {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else cpu_env))

        with ThreadPoolExecutor(parallel) as pool:
            outcomes += list(pool.map(one, enumerate(todo)))
    else:
        env = None if _gpu_count() else _cpu_threads(1)
        outcomes += [report(execute_in_child(run, env)) for run in todo]
    return outcomes


def _cpu_threads(side_by_side: int) -> dict[str, str]:
    """OMP_NUM_THREADS and MKL_NUM_THREADS for runs on the CPU: the cores shared out among the runs that go side by
    side. Each torch process otherwise starts a thread per core, and several oversubscribe the CPU (two runs on 2
    cores measured ~5x slower each, not 2x); one run alone gets every core, named, so that a notebook's thread count
    (`usnb.train.choose_threads`) does not depend on how busy the machine happens to be. Thread counts the user
    exported are kept, and so is a notebook's own `threads` parameter (notebook 04 sets 1)."""
    threads = str(max(1, usable_cores() // max(1, side_by_side)))
    return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name not in os.environ}


def _run_submitit(runs: Sequence[Run], options: dict) -> list[Outcome]:
    """One submitit job per run (SLURM, or submitit's local executor); waits for every job."""
    import submitit

    options = dict(options)
    cluster = options.pop("cluster", "slurm")
    if not runs:
        return []
    folder = Path(os.path.commonpath([r.out_dir for r in runs])) / "submitit"  # job logs and pickles
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**options)
    jobs = [executor.submit(execute_in_child, run) for run in runs]
    outcomes = []
    for run, job in zip(runs, jobs):
        try:
            outcomes.append(job.result())
        except Exception as err:  # noqa: BLE001 - a job that died (preempted, killed): report, go on
            outcomes.append(Outcome(run, False, 0.0, f"job {job.job_id} died: {type(err).__name__}: {err}"))
    return outcomes


PARENT = "USNB_BATCH_PID"  # the `usnb run` process that started an executor: the executor lives only while it does
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


def _stop_descendants(code: int) -> None:
    """Stop this process's children and theirs (the notebook's kernel, torchrun's workers), then exit with `code`."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(code)


def _die_with_parent() -> None:
    """An executor stops (with its kernel) when its `usnb run` is gone, however that died (SIGKILL included): a
    watcher thread checks the parent every 2 s, on every platform."""
    import threading

    parent = int(os.environ.get(PARENT) or 0)
    for sig in _STOP_SIGNALS:  # a stop, a hang-up or the parent's death: the kernel goes too (an ignored one, as
        if signal.getsignal(sig) is not signal.SIG_IGN:  # under nohup, stays ignored)
            signal.signal(sig, lambda signum, frame: _stop_descendants(128 + signum))
    if not parent:
        return

    def watch():
        while _pid_alive(parent):
            time.sleep(2)
        _stop_descendants(1)

    threading.Thread(target=watch, daemon=True, name="usnb-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    """Child entry point: `python -m usnb.batch RUN_FOLDER/run.json` executes that run here."""
    _die_with_parent()
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    outcome = execute(Run(**spec))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())

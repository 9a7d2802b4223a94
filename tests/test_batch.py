"""The batch runner (usnb run --seeds/--all): run folders, resume after a kill, failures, report, submitit, torchrun."""
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from usnb import batch
from usnb.batch import Run, is_finished, plan, run_batch
from usnb.cli import main
from usnb.recipes.kganet import PAPER_TABLE2
from usnb.report import METRIC_KEYS, collect_runs, write_report


def _notebook(path, body: str, extra_params: str = ""):
    """A tiny notebook with a parameters cell; `body` may use profile, seed, out_dir and the extra parameters."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(f"profile = 'small'\nseed = 0\nout_dir = 'runs/x'\n{extra_params}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("import json, time\nfrom pathlib import Path"), params,
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


METRICS_BODY = """
from usnb.report import write_metrics
Path(ledger).open('a').write(f"{seed}\\n")
if Path(slow).exists() and seed == 2:
    time.sleep(120)
value = 0.5 + 0.1 * seed
rows = {name: dict(acc=value, sen=value, spe=value, pre=value, f1=value, auc=value, ap=value)
        for name in ['KGA-Net', 'w/o coherence loss', 'extra row']}
write_metrics(out_dir, paper='kganet', profile=profile, dataset='phantom', seed=seed, seconds=1, rows=rows)
"""


def test_plan_folders_and_parameters(tmp_path):
    nb = _notebook(tmp_path / "01_a.ipynb", "pass")
    single = plan([str(nb)], tmp_path / "one", seeds=[3], parameters={"profile": "small"})
    assert [r.out_dir for r in single] == [str((tmp_path / "one").resolve())]
    runs = plan([str(nb)], tmp_path / "b", seeds=[0, 1], parameters={"profile": "paper"})
    assert [r.out_dir for r in runs] == [str((tmp_path / "b" / "01_a" / f"seed{s}").resolve()) for s in (0, 1)]
    assert runs[1].parameters == {"profile": "paper", "seed": 1}


@pytest.mark.bad_input
def test_repeated_seeds_are_refused(tmp_path):
    nb = _notebook(tmp_path / "01_a.ipynb", "pass")
    with pytest.raises(ValueError, match="seeds repeat"):
        plan([str(nb)], tmp_path / "b", seeds=[0, 0])


def _locked_run(tmp_path, holder: dict):
    """A planned run whose folder holds run.lock written by `holder` ({pid, host})."""
    nb = _notebook(tmp_path / "01_a.ipynb", "Path(out_dir, 'ran').write_text('yes')")
    run = plan([str(nb)], tmp_path / "one", seeds=[0])[0]
    Path(run.out_dir).mkdir(parents=True)
    lock = Path(run.out_dir) / "run.lock"
    lock.write_text(json.dumps(holder))
    return run, lock


@pytest.mark.bad_input
@pytest.mark.slow
def test_a_run_folder_in_use_is_not_run_twice_and_a_stale_lock_is_taken_over(tmp_path):
    run, lock = _locked_run(tmp_path, {"pid": os.getpid(), "host": __import__("platform").node()})  # a live process
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert not outcome.ok and f"another usnb run (pid {os.getpid()} on " in outcome.error
    assert not (Path(run.out_dir) / "ran").exists() and lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": __import__("platform").node()}))  # its process is gone
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert outcome.ok and (Path(run.out_dir) / "ran").read_text() == "yes" and not lock.exists()


@pytest.mark.bad_input
@pytest.mark.slow
def test_a_lock_of_another_host_holds_while_its_heartbeat_is_recent(tmp_path):
    run, lock = _locked_run(tmp_path, {"pid": 1, "host": "node-17.cluster"})  # a pid this host cannot check
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert not outcome.ok and "pid 1 on node-17.cluster" in outcome.error and lock.exists()
    old = time.time() - batch.LOCK_STALE - 5
    os.utime(lock, (old, old))  # its heartbeat stopped: the other host's run died
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert outcome.ok and (Path(run.out_dir) / "ran").read_text() == "yes" and not lock.exists()


@pytest.mark.slow
def test_a_running_run_touches_its_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "LOCK_BEAT", 0.3)
    nb = _notebook(tmp_path / "01_a.ipynb", "lock = Path(out_dir, 'run.lock'); t0 = lock.stat().st_mtime\n"
                                            "time.sleep(3)\n"
                                            "Path(out_dir, 'beat').write_text(str(lock.stat().st_mtime - t0))")
    run = plan([str(nb)], tmp_path / "one", seeds=[0])[0]
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert outcome.ok, outcome.error
    assert float((Path(run.out_dir) / "beat").read_text()) > 0


@pytest.mark.slow
def test_stopping_usnb_run_stops_its_run_and_leaves_it_to_resume(tmp_path):
    flag = tmp_path / "started"
    nb = _notebook(tmp_path / "01_slow.ipynb", f"Path({str(flag)!r}).write_text(str(__import__('os').getpid()))\n"
                                               "time.sleep(120)")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "usnb.cli", "run", str(nb), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not flag.exists():
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.3)
    kernel = int(flag.read_text())
    proc.send_signal(signal.SIGTERM)  # `kill` of usnb run alone, not of its process group
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.time() + 30
    while _alive(kernel) and time.time() < deadline:
        time.sleep(0.3)
    assert not _alive(kernel)  # the notebook's kernel went with it
    assert not (out / "status.json").exists() and not (out / "run.lock").exists()  # unfinished, free: rerun later


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_batch_killed_half_way_finishes_only_the_missing_runs(tmp_path):
    ledger, slow = tmp_path / "ledger.txt", tmp_path / "slow"
    nb = _notebook(tmp_path / "01_metrics.ipynb", METRICS_BODY, f"ledger = {str(ledger)!r}\nslow = {str(slow)!r}")
    slow.touch()
    out = tmp_path / "batch"
    cmd = [sys.executable, "-m", "usnb.cli", "run", str(nb), "--seeds", "0", "1", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while not (ledger.exists() and ledger.read_text().split() == ["0", "1", "2"]):  # seed 2 has started
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole batch dies, kernel and all
    proc.wait()
    assert not (out / "01_metrics" / "seed2" / "status.json").exists()
    slow.unlink()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ledger.read_text().split() == ["0", "1", "2", "2"]  # only the unfinished run ran again
    assert done.stdout.count("finished before, skipped") == 2
    assert (out / "report.md").exists() and (out / "index.html").exists()
    assert all(is_finished(r) for r in plan([str(nb)], out, [0, 1, 2], {"profile": "small"}))
    # another parameter value is another run: not finished
    assert not is_finished(plan([str(nb)], out, [0, 1], {"profile": "paper"})[0])


@pytest.mark.bad_input
@pytest.mark.slow
def test_a_failing_run_is_named_the_others_complete_and_the_batch_fails(tmp_path, capsys):
    ledger = tmp_path / "ledger.txt"
    extra = f"ledger = {str(ledger)!r}\nslow = {str(tmp_path / 'never')!r}\nalpha = 0.5"
    good = _notebook(tmp_path / "01_good.ipynb", METRICS_BODY, extra)
    bad = _notebook(tmp_path / "02_bad.ipynb", "from usnb import params\nparams.fraction('alpha', alpha)", extra)
    code = main(["run", str(good), str(bad), "--seeds", "0", "1", "--out", str(tmp_path / "b"), "-p", "alpha", "1.5"])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 of 4 runs failed" in err
    assert "02_bad.ipynb: FAILED at cell 4: ValueError" in err and "alpha" in err
    assert sorted(ledger.read_text().split()) == ["0", "1"]  # the good notebook ran for both seeds
    statuses = {(r.notebook, r.seed): r.status["ok"] for r in collect_runs(tmp_path / "b")}
    assert statuses == {("01_good", 0): True, ("01_good", 1): True, ("02_bad", 0): False, ("02_bad", 1): False}
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## 02_bad, seed 0: FAILED\n\nIt stopped at cell 4: ValueError" in report
    assert "the notebook as far as it ran: [02_bad/seed0/02_bad.html]" in report
    assert report.index("## 02_bad, seed 0: FAILED") > report.index("## kganet: phantom")  # notebook order
    assert (tmp_path / "b" / "02_bad" / "seed0" / "02_bad.html").read_text().startswith("<!DOCTYPE html>")
    log = (tmp_path / "b" / "02_bad" / "seed0" / "run.log").read_text()
    assert "FAILED at cell 4" in log


def _fake_run(folder, seed, rows, paper="kganet", ok=True):
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"ok": ok, "error": "" if ok else "cell 4: boom", "seconds": 2.0,
                                                    "notebook": "03_kganet.ipynb", "parameters": {"seed": seed}}))
    if rows is not None:
        (folder / "metrics.json").write_text(json.dumps({"paper": paper, "profile": "small", "dataset": "phantom",
                                                         "seed": seed, "seconds": 2.0, "rows": rows}))
    (folder / "roc.png").write_bytes(b"\x89PNG")


def test_parallel_runs_share_the_cpu_cores_or_get_one_gpu_each(tmp_path, monkeypatch):
    import usnb.batch as B
    runs = plan([str(_notebook(tmp_path / "01_a.ipynb", "pass"))], tmp_path / "b", seeds=[0, 1, 2, 3])
    seen = {}

    def fake_child(run, env=None):
        seen[run.name] = env
        return B.Outcome(run, True, 0.0)

    monkeypatch.setattr(B, "execute_in_child", fake_child)
    monkeypatch.setattr(B.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(B, "_gpu_count", lambda: 0)
    assert all(o.ok for o in run_batch(runs, parallel=2, echo=lambda *_: None))
    assert len(seen) == 4 and all(e == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"} for e in seen.values())
    seen.clear()
    run_batch(runs[:2], parallel=4, echo=lambda *_: None)  # two runs left: each gets half the cores, not a quarter
    assert {e["OMP_NUM_THREADS"] for e in seen.values()} == {"4"}
    seen.clear()
    run_batch(runs, parallel=16, echo=lambda *_: None)  # 4 runs left: they share the 8 cores
    assert {e["OMP_NUM_THREADS"] for e in seen.values()} == {"2"}
    seen.clear()
    run_batch(runs, parallel=1, echo=lambda *_: None)  # one at a time: every core, named (not left to the load)
    assert all(e == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"} for e in seen.values())
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting is kept
    seen.clear()
    run_batch(runs, parallel=2, echo=lambda *_: None)
    assert all(e == {"MKL_NUM_THREADS": "4"} for e in seen.values())
    monkeypatch.setattr(B, "_gpu_count", lambda: 2)
    seen.clear()
    run_batch(runs, parallel=2, echo=lambda *_: None)
    assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in seen.values()) == ["0", "0", "1", "1"]
    assert not any("OMP_NUM_THREADS" in e for e in seen.values())


def test_report_puts_our_mean_std_beside_the_papers_numbers(tmp_path):
    metric = lambda v: dict(acc=v, sen=v, spe=v, pre=v, f1=v, auc=v, ap=v)
    _fake_run(tmp_path / "03_kganet" / "seed0", 0, {"KGA-Net": metric(0.80), "Table 1: R(2+1)D": metric(0.6), "mine": metric(0.5)})
    _fake_run(tmp_path / "03_kganet" / "seed1", 1, {"KGA-Net": metric(0.90), "Table 1: R(2+1)D": metric(0.7), "mine": metric(0.5)})
    _fake_run(tmp_path / "03_kganet" / "seed2", 2, None, ok=False)
    html, md = write_report(tmp_path)
    text = md.read_text()
    assert "## kganet: phantom, small profile, seeds 0, 1" in text
    assert "### Table 2" in text and "### Table 1" in text and "### ours only" in text
    # KGA-Net: ours 85.00(7.07) over two seeds, beside the paper's 94.67 (BUSV)
    # the paper's AUC with the CI its 39 test videos allow (Hanley-McNeil), AUC first as in the paper's table
    assert "| KGA-Net | 85.00(7.07) | 94.67 [87.9, 100.0] |" in text
    assert "| w/o image guidance | - | 85.21 [73.4, 97.0] |" in text  # a paper row we did not train
    assert "*ours: phantom, small, 2 seeds; paper: BUSV (public), its own runs*" in text  # said once per table
    assert "|  | AUC ours | AUC paper | ACC ours | ACC paper |" in text
    assert "| R(2+1)D | 65.00(7.07) | 86.46 [75.2, 97.7] |" in text
    assert "## 03_kganet, seed 2: FAILED\n\nIt stopped at cell 4: boom." in text
    page = html.read_text()
    assert "<table>" in page and "94.67" in page
    assert "name='viewport'" in page and "<div class='scroll'><table>" in page  # a phone: wide tables scroll alone
    index = (tmp_path / "index.html").read_text()
    assert index.count("<tr>") == 4 and "03_kganet/seed1/metrics.json" in index and "FAILED: cell 4: boom" in index
    assert set(PAPER_TABLE2) >= {"KGA-Net"}


def test_figures_are_captioned_in_words():
    from usnb.report import caption

    assert caption("fig3d_gradcam") == "Fig. 3d (the paper's): Grad-CAM"
    assert caption("fig3e_attention_vs_distance") == "Fig. 3e (the paper's): attention against distance"
    assert caption("tsne_video_features") == "t-SNE video features" and caption("roc") == "ROC curves"


@pytest.mark.bad_input
def test_report_escapes_every_name_from_the_file_system_and_the_data(tmp_path):
    """A run folder and a row name carrying quotes and a script tag come out as text, and links still resolve."""
    metric = lambda v: dict(acc=v, sen=v, spe=v, pre=v, f1=v, auc=v, ap=v)  # noqa: E731
    evil = "x' onerror='alert(1)\"><script>alert(2)</script>"
    _fake_run(tmp_path / "03_kganet" / "seed0", 0, {"KGA-Net": metric(0.8), evil: metric(0.5)})
    (tmp_path / "03_kganet" / "seed0" / f"{evil[:12]}.png").write_bytes(b"\x89PNG")
    html, _ = write_report(tmp_path)
    for page in (html.read_text(), (tmp_path / "index.html").read_text()):
        assert "<script>" not in page and "onerror='" not in page
    text = html.read_text()
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text  # the row name, shown as text
    index = (tmp_path / "index.html").read_text()
    assert "href='03_kganet/seed0/x%27%20onerror%3D%27.png'" in index  # %-quoted: the link still opens the file


def test_report_lists_the_data_warnings_of_its_runs(tmp_path):
    metric = lambda v: dict(acc=v, sen=v, spe=v, pre=v, f1=v, auc=v, ap=v)  # noqa: E731
    for seed in (0, 1):
        _fake_run(tmp_path / "03_kganet" / f"seed{seed}", seed, {"KGA-Net": metric(0.8)})
    warning = "/x/busv.py:63: DataWarning: BUSV /d/x.json: ignored (its name says neither train, val nor test)\n"
    (tmp_path / "03_kganet" / "seed0" / "run.log").write_text("epoch 1\n" + warning + "  warnings.warn(...)\n")
    html, md = write_report(tmp_path)
    assert "### Data warnings\n\n* BUSV /d/x.json: ignored (its name says neither train, val nor test) (1 of 2 runs)" \
        in md.read_text()
    assert "<h3>Data warnings</h3>" in html.read_text()


def test_markdown_cells_escape_the_pipe_of_a_claim():
    from usnb.metrics import markdown_table

    row = markdown_table(["claim", "verdict"], [["A ~ B (AUC, |delta| <= 2 points)", "supported"]]).splitlines()[2]
    assert row == "| A ~ B (AUC, \\|delta\\| <= 2 points) | supported |"  # two cells, not four


def test_report_shows_cis_the_papers_own_columns_and_the_claims_pooled_over_seeds(tmp_path):
    from usnb.claims import SUPPORTED, judge_all
    from usnb.metrics import held_out_metrics
    from usnb.recipes import kganet as K
    from usnb.recipes import mvcc as M
    from usnb.report import paper_columns, write_metrics

    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        y = np.r_[np.ones(40, int), np.zeros(80, int)]
        base = rng.normal(0, 1, 120)
        rows = {name: held_out_metrics(y, base + y * gap) for name, gap in
                (("KGA-Net", 2.5), ("w/o image guidance", 0.5), ("w/o coherence loss", 2.4),
                 ("w/o coherence loss & attention", 1.0))}
        folder = tmp_path / "03_kganet" / f"seed{seed}"
        unfit = {"Table 1: MViT": K.baseline_unfit("MViT", K.get_profile("small"))}  # a row this profile cannot train
        trained_here = {"Table 1: I3D": rows["KGA-Net"]} if seed == 2 else {}  # seeds 0, 1 could not: not listed
        write_metrics(folder, "kganet", "small", "phantom", seed, 1.0, rows | trained_here,
                      claims=judge_all(K, rows, spread={}), not_trained=unfit | ({"Table 1: I3D": "no time"} if seed < 2 else {}))
        (folder / "status.json").write_text(json.dumps({"ok": True, "notebook": "03_kganet.ipynb", "seconds": 1,
                                                        "parameters": {"seed": seed}}))
    saved = json.loads((tmp_path / "03_kganet" / "seed0" / "metrics.json").read_text())
    row = saved["rows"]["KGA-Net"]
    assert set(row) == {*METRIC_KEYS, *(f"{k}_ci" for k in METRIC_KEYS), "intervals"}
    assert row["auc_ci"][0] < row["auc"] < row["auc_ci"][1]
    assert len(saved["claims"]) == len(K.CLAIMS) and "scores" not in saved["claims"][0]
    assert saved["not_trained"] == unfit | {"Table 1: I3D": "no time"}
    text = write_report(tmp_path)[1].read_text()
    assert "*Table 1: MViT*: not trained here. MViT takes 16 frames of 224 px, the profile gives 4 of 64" in text
    table1, table2 = text.index("### Table 1\n"), text.index("### Table 2\n")
    assert table1 < text.index("*Table 1: MViT*") < table2  # under the table it belongs to
    assert "*Table 1: I3D*: not trained" not in text  # another seed trained it
    assert "### The paper's claims" in text
    line = next(l for l in text.splitlines() if l.startswith("| KGA-Net > w/o image guidance (AUC)"))
    assert f"| {SUPPORTED}" in line and "3 seeds" in line  # a gap of ~0.35 AUC, pooled over three seeds
    assert "| KGA-Net > w/o coherence loss (AUC)" in text  # a small gap: its verdict is whatever the CI says
    # MVCC's Table 1: the paper's five columns, though its first row kept only two cells
    assert paper_columns(M.PAPER_TABLE1) == ["acc", "sen", "spe", "pre", "f1"]
    # the seeds' spread of each claim's delta, from the runs' saved per-clip scores (benchmarks/seed_spread.py)
    spec = importlib.util.spec_from_file_location("seed_spread", Path(__file__).parents[1] / "benchmarks" /
                                                  "seed_spread.py")
    seed_spread = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed_spread)
    record, lines = seed_spread.analyse(tmp_path)
    entry = record["papers"]["kganet"]["claims"]["KGA-Net > w/o image guidance (AUC)"]
    at_run_time = [next(c for c in json.loads((tmp_path / "03_kganet" / f"seed{s}" / "metrics.json").read_text())
                        ["claims"] if c["claim"] == "KGA-Net > w/o image guidance (AUC)")["delta"] for s in (0, 1, 2)]
    assert entry["deltas"] == pytest.approx(at_run_time) and entry["sd"] == pytest.approx(np.std(at_run_time, ddof=1))
    assert record["papers"]["kganet"]["rows"]["KGA-Net"]["auc_sd"] > 0 and record["settings"] == [("phantom", "small")]
    assert record["changed"] == [] and seed_spread.main([str(tmp_path), "--write", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["papers"]["kganet"]["seeds"] == [0, 1, 2]
    # a batch of one paper replaces that paper's entry and keeps the others' (each with how it was measured)
    (tmp_path / "s.json").write_text(json.dumps({"papers": {"mvcc": {"claims": {}, "seeds": [0]}}, "measured": "old"}))
    assert seed_spread.main([str(tmp_path), "--write", str(tmp_path / "s.json")]) == 0
    written = json.loads((tmp_path / "s.json").read_text())
    assert set(written["papers"]) == {"mvcc", "kganet"} and written["papers"]["mvcc"]["measured"] == "old"
    assert "seeds 0, 1, 2" in written["papers"]["kganet"]["measured"] and "measured" not in written


@pytest.mark.slow
def test_submitit_local_executor_runs_the_batch(tmp_path):
    pytest.importorskip("submitit")
    ledger = tmp_path / "ledger.txt"
    nb = _notebook(tmp_path / "01_metrics.ipynb", METRICS_BODY, f"ledger = {str(ledger)!r}\nslow = 'none'")
    runs = plan([str(nb)], tmp_path / "b", [0, 1], {"profile": "small"})
    outcomes = run_batch(runs, slurm={"cluster": "local", "timeout_min": 5}, echo=lambda *_: None)
    assert [o.ok for o in outcomes] == [True, True], [o.error for o in outcomes]
    assert sorted(ledger.read_text().split()) == ["0", "1"]
    assert list((tmp_path / "b").rglob("submitit/*_result.pkl")) and all(is_finished(r) for r in runs)


TORCHRUN_BODY = """
import torch, torch.distributed as dist
from usnb.train import Schedule, TrainConfig, fit, pick_device
device = pick_device()
data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
model = torch.nn.Linear(3, 1)
step = lambda m, b, d: (torch.nn.functional.mse_loss(m(b[0]), b[1]), {})
fit(model, data, step, TrainConfig(Schedule(2, 8, lr=0.1)), device=device, progress=False)
Path(out_dir, 'world.txt').write_text(f"{dist.get_world_size()} {dist.get_rank()}")
"""


@pytest.mark.slow
def test_gpus_runs_the_notebook_under_torchrun_with_ddp(tmp_path):
    """--gpus 2 on the CPU: two gloo processes; rank 0 writes the run folder, rank 1 a scratch folder."""
    nb = _notebook(tmp_path / "01_ddp.ipynb", TORCHRUN_BODY)
    [run] = plan([str(nb)], tmp_path / "d", [0], {}, gpus=2)
    [outcome] = run_batch([run], echo=lambda *_: None)
    assert outcome.ok, outcome.error
    assert (tmp_path / "d" / "world.txt").read_text() == "2 0"
    assert (tmp_path / "d" / "rank1" / "world.txt").read_text() == "2 1"
    assert [r.folder.name for r in collect_runs(tmp_path / "d")] == ["d"]


def test_run_needs_notebooks_or_all(capsys):
    assert main(["run", "--out", "/tmp/x"]) == 2
    assert "--all" in capsys.readouterr().err


def test_run_dataclass_names():
    assert Run("a/03_kganet.ipynb", "/o", {"seed": 2}).name == "03_kganet seed 2"


def test_pooled_claims_match_runs_by_what_a_claim_compares_and_list_the_claims_no_run_judged():
    """A run written before a claim's wording changed ('|delta| <= 0.02', now '2 points') is still pooled; a claim
    that no run judged is listed as not run, not dropped."""
    from types import SimpleNamespace

    from usnb import claims
    from usnb.recipes import lung_ssl as S
    from usnb.report import pooled_claims

    close = next(c for c in S.CLAIMS if c.kind == "close")
    old_wording = close.text.replace(f"{close.margin * 100:g} points", f"{close.margin:g}")
    assert old_wording != close.text
    judged = {"claim": old_wording, **dataclasses.asdict(close), "delta": 0.01, "ci": [-0.01, 0.03],
              "test_ci": [-0.01, 0.03], "verdict": claims.UNRESOLVED, "level": 0.95, "paper_delta": 0.0,
              "paper_ci": None}
    runs = [SimpleNamespace(metrics={"claims": [dict(judged, delta=d)]}) for d in (0.0, 0.01, 0.02)]
    pooled = {p["claim"]: p for p in pooled_claims(S, runs)}
    assert set(pooled) == {c.text for c in S.CLAIMS}  # every claim listed, in today's wording
    assert pooled[close.text]["seeds"] == 3 and pooled[close.text]["delta"] == pytest.approx(0.01)
    others = [p for text, p in pooled.items() if text != close.text]
    assert others and all(p["verdict"] == claims.NOT_RUN and p["section"] for p in others)

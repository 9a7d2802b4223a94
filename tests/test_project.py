"""Project wiring: environment files in step, the CLI, committed notebooks clean."""
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import POCUS, REPO
from usnb.cli import main


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_packages():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert "python=3.11" in env["dependencies"] and "-e ." in pip_section
    assert {_name(r) for r in listed} == {_name(r) for r in wanted}
    assert listed == wanted, "versions differ between environment.yml and pyproject.toml"


IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "sklearn": "scikit-learn", "IPython": "ipython"}


def test_every_package_usnb_imports_is_declared():
    """A third-party module imported anywhere in usnb/ is a dependency in pyproject.toml (by its PyPI name)."""
    import ast
    import sys

    tomllib = pytest.importorskip("tomllib")
    declared = {_name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported = set()
    for path in (REPO / "usnb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "usnb"}
    assert "torch" in third_party and "nbconvert" in third_party  # the scan sees imports inside functions too
    missing = sorted(m for m in third_party if IMPORT_TO_DISTRIBUTION.get(m, m).lower() not in declared)
    assert not missing, f"imported by usnb/ but not declared in pyproject.toml's dependencies: {missing}"


def test_data_check_phantom_reports_every_item(tiny_breast, capsys):
    assert main(["data", "check", "phantom", str(tiny_breast)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "loaded 8/8 items"
    assert any(line.startswith("frames decoded: 96") for line in out)


@pytest.mark.bad_input
def test_data_check_names_a_corrupt_file_and_fails(tiny_breast, tmp_path, capsys):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(tiny_breast, copy)
    victim = sorted((copy / "videos" / "benign").glob("*.mp4"))[0]
    victim.write_bytes(b"\x00" * 100)
    assert main(["data", "check", "phantom", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"unreadable: {victim}" in out and out.strip().endswith("loaded 7/8 items")


@pytest.mark.bad_input
def test_data_check_missing_folder(tmp_path, capsys):
    assert main(["data", "check", "busv", str(tmp_path / "nope")]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'nope'}: busv data folder does not exist. Fix:" in out
    assert out.strip().endswith("loaded 0/0 items")


@pytest.mark.skipif(not POCUS.is_dir(), reason="real POCUS subset not found: set USNB_POCUS_DIR")
@pytest.mark.slow
def test_data_check_pocus_loads_all_131_and_shows_the_task(capsys):
    assert main(["data", "check", "pocus", str(POCUS), "--positive", "covid", "pneumonia", "viral",
                 "--drop", "uncertain"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "loaded 131/131 items"
    assert "  not covid/pneumonia/viral <- regular 59 | - 59 | 31 patients" in out
    assert "  covid/pneumonia/viral <- covid 29, pneumonia 37, viral 5 | - 71 | 49 patients" in out
    assert main(["data", "check", "pocus", str(POCUS), "--positive", "COVID"]) == 1
    out = capsys.readouterr().out
    assert "task: a notebook would stop here: label(s) ['COVID'] in positive/drop are not labels" in out


def test_phantom_command(tmp_path, capsys):
    assert main(["phantom", "--kind", "lung", "--out", str(tmp_path / "l"), "--n", "4", "--size", "32",
                 "--frames", "4"]) == 0
    assert (tmp_path / "l" / "manifest.csv").exists() and "phantom written" in capsys.readouterr().out


@pytest.mark.bad_input
@pytest.mark.parametrize("flag, value, message", [
    ("--n", "2", "needs n >= 4 clips"), ("--size", "31", "size must be even and >= 32"),
    ("--frames", "1", "frames >= 2"), ("--seed", "-1", "seed must be >= 0")])
def test_phantom_command_refuses_bad_settings_without_a_traceback(flag, value, message, tmp_path, capsys):
    assert main(["phantom", "--kind", "lung", "--out", str(tmp_path / "l"), flag, value]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "l").exists()


def test_phantom_command_says_when_a_split_is_empty(tmp_path, capsys):
    assert main(["phantom", "--kind", "lung", "--out", str(tmp_path / "l"), "--n", "4", "--size", "32",
                 "--frames", "2"]) == 0
    out, err = capsys.readouterr()
    assert "clips per split {'train': 4, 'val': 0, 'test': 0}" in out  # 4 patients: all of them in train
    assert "note: no clip in the val and test split(s) at n=4" in err and "Fix: a larger --n" in err


@pytest.mark.bad_input
def test_phantom_command_never_deletes_files_it_did_not_write(tmp_path, capsys):
    args = ["phantom", "--kind", "lung", "--out", str(tmp_path / "l"), "--n", "4", "--size", "32", "--frames", "4"]
    assert main(args) == 0
    assert main(args) == 0  # a folder holding only the phantom's own files is regenerated
    mine = [tmp_path / "l" / "notes.txt", tmp_path / "l" / "videos" / "mine.mp4"]
    for path in mine:
        path.write_text("the user's")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 thing(s) it did not write" in err and "notes.txt" in err and "Fix: move them out" in err
    assert all(p.read_text() == "the user's" for p in mine) and (tmp_path / "l" / "phantom.json").exists()


def test_committed_notebooks_are_clean():
    """Outputs are committed only where nbval compares them (# NBVAL_CHECK_OUTPUT); each has a parameters cell."""
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name
        # nbformat 4.5 with an id on every cell: JupyterLab adds missing ids on opening, which marks the file modified
        raw = json.loads(path.read_text())
        assert (raw["nbformat"], raw["nbformat_minor"]) == (4, 5), path.name
        ids = [c.get("id") for c in raw["cells"]]
        assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: a cell without an id, or two with one"
        nbformat.validate(nb)
        # written as nbformat (and so JupyterLab) writes it: saving a notebook changes only what the user changed
        assert nbformat.writes(nb) + "\n" == path.read_text(), f"{path.name}: not in nbformat's own layout"
        for cell in nb.cells:
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" not in cell.source:
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: stray output in {cell.source[:40]!r}"
            if cell.cell_type == "code":  # JupyterLab at a laptop's width shows 100 characters without scrolling
                long = [line for line in cell.source.splitlines() if len(line) > 100]
                assert not long, f"{path.name}: a code line over 100 characters: {long[0]!r}"


@pytest.mark.bad_input
@pytest.mark.slow
def test_run_names_the_failing_cell(tmp_path, capsys):
    """A bad parameter fails the run with the notebook and the cell named, and a non-zero status."""
    assert main(["run", "data_tour", "--out", str(tmp_path / "bad"), "--seed", "-1"]) == 1
    err = capsys.readouterr().err
    assert "00_data_tour.ipynb: FAILED at cell" in err and "ValueError" in err and "seed = -1" in err
    assert (tmp_path / "bad" / "00_data_tour.ipynb").exists()


@pytest.mark.bad_input
def test_run_unknown_notebook(capsys):
    assert main(["run", "nope", "--out", "/tmp/x"]) == 2
    assert "no notebook 'nope'" in capsys.readouterr().err


@pytest.mark.bad_input
def test_run_refuses_a_bad_batch_before_any_work(tmp_path, capsys):
    """Repeated seeds, an --out that is a file, and a folder holding another notebook's run: a message, exit 2."""
    assert main(["run", "data_tour", "--seeds", "0", "0", "--out", str(tmp_path / "a")]) == 2
    assert "seeds repeat" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["run", "data_tour", "--out", str(tmp_path / "file")]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "status.json").write_text(json.dumps({"ok": True, "notebook": "03_kganet.ipynb", "parameters": {}}))
    assert main(["run", "data_tour", "--out", str(other)]) == 2
    assert "holds a run of 03_kganet.ipynb, not of 00_data_tour.ipynb" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["status.json"]  # nothing run, nothing overwritten


def test_run_resolves_folders_against_the_callers_folder(tmp_path, monkeypatch):
    """-p ..._dir values and USNB_DATA_DIR given relative are made absolute here, not in notebooks/."""
    import usnb.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_batch", lambda notebooks, out, seeds, params, **kw: seen.update(params) or 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USNB_DATA_DIR", "data")
    assert main(["run", "lung_ssl", "--out", "o", "-p", "pocus_dir", "clips", "-p", "folds", "3"]) == 0
    assert seen["pocus_dir"] == str(tmp_path / "clips") and seen["folds"] == 3
    assert os.environ["USNB_DATA_DIR"] == str(tmp_path / "data")


@pytest.mark.bad_input
@pytest.mark.parametrize("name, message", [
    ("train_stpes", "-p train_stpes: not a parameter of 03_kganet; their parameters: .*train_steps"),
    ("seed", "-p seed: --seed / --seeds sets it; use that flag"),
    ("out_dir", "-p out_dir: --out sets it"),
    ("x=1;import os", "-p 'x=1;import os': a parameter name is a Python identifier"),
], ids=["typo", "seed", "out_dir", "code"])
def test_run_refuses_p_names_it_would_drop_or_paste_as_code(name, message, tmp_path, capsys):
    assert main(["run", "kganet", "--out", str(tmp_path / "r"), "-p", name, "1"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_bad_input_cases_are_counted_from_the_tests_that_passed(tmp_path):
    """The summary line counts passed `bad_input` cases, each parametrization once; failed and skipped ones not."""
    import shutil
    import subprocess
    import sys

    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = bad_input\n")
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.bad_input\n@pytest.mark.parametrize('x', [1, 2, 3])\ndef test_counted(x):\n    pass\n\n"
        "@pytest.mark.bad_input\ndef test_fails():\n    assert False\n\n"
        "@pytest.mark.bad_input\n@pytest.mark.skip\ndef test_skipped():\n    pass\n\n"
        "def test_not_marked():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 failed, 4 passed, 1 skipped" in done.stdout, done.stdout
    assert "\nbad-input cases: 3 passed\n" in done.stdout


def test_run_passes_data_dir_resolved_against_the_callers_folder(tmp_path, monkeypatch):
    """Papermill runs notebooks with cwd=notebooks/: a relative --data-dir must reach the notebook absolute."""
    import usnb.batch

    seen = []
    monkeypatch.setattr(usnb.batch, "run_batch", lambda runs, **kw: seen.extend(runs) or [])
    monkeypatch.chdir(tmp_path)
    assert main(["run", "data_tour", "--out", str(tmp_path / "o"), "--data-dir", "data/pocus"]) == 0
    assert seen[0].parameters["data_dir"] == str(tmp_path / "data" / "pocus")


LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target


def _markdown_documents() -> list[tuple[str, object, str]]:
    """(name, folder its links are relative to, text) of the README, docs/, data_cards/ and every notebook's
    Markdown cells."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "data_cards").glob("*.md"))]
    docs = [(p.name, p.parent, p.read_text()) for p in files]
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        docs.append((path.name, path.parent, "\n".join(c.source for c in cells if c.cell_type == "markdown")))
    return docs


def test_every_relative_markdown_link_resolves():
    checked, dead = 0, []
    for name, folder, text in _markdown_documents():
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address (cited with its DOI / arXiv) or a heading of the same page
            checked += 1
            if not (folder / target.split("#")[0]).exists():
                dead.append(f"{name}: {target}")
    assert checked > 10 and not dead, dead


def test_each_paper_notebook_cites_its_paper_with_a_link_a_user_can_open():
    for path in sorted((REPO / "notebooks").glob("0[1-4]_*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0].source
        assert re.search(r"\]\(https://(doi\.org|arxiv\.org)/", first), path.name
    for name, _, text in _markdown_documents():
        assert "shared/papers" not in text, f"{name} cites a path that exists only beside the development checkout"


def test_run_all_on_your_data_passes_each_notebook_the_parameters_it_has(tmp_path, capsys):
    """`usnb run --all --dataset folders -p positive ... -p folds 5`: every notebook gets dataset, data_dir and
    positive; `folds` goes to those that have it, and the batch says which do not."""
    from usnb.batch import plan

    runs = plan([], tmp_path / "all", parameters={"profile": "small", "dataset": "folders", "data_dir": "/d",
                                                  "positive": ["pathology"], "folds": 5})
    got = {Path(r.notebook).stem: r.parameters for r in runs}
    assert sorted(got) == ["00_data_tour", "01_mvcc", "02_clman", "03_kganet", "04_lung_ssl", "05_benchmark"]
    assert all(p["dataset"] == "folders" and p["data_dir"] == "/d" and p["positive"] == ["pathology"]
               for p in got.values())
    assert "folds" not in got["00_data_tour"] and all(got[n]["folds"] == 5 for n in got if n != "00_data_tour")
    assert "usnb run: 00_data_tour has no parameter folds: not passed to it" in capsys.readouterr().out


@pytest.mark.bad_input
def test_run_names_why_no_notebook_trains_on_still_images(tmp_path, capsys):
    assert main(["run", "--all", "--dataset", "busi", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert ("--dataset busi: no notebook can train on it; BUSI holds still images, and every notebook trains on "
            "videos; give BUSI to KGA-Net as its image branch") in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.bad_input
def test_every_notebooks_data_parameters_are_checked_in_one_place():
    from usnb import params

    assert params.source("folders", "/d", positive="x", patient_pattern="^(p)") == {
        "data_dir": "/d", "positive": "x", "patient_pattern": "^(p)", "frame_fit": "pad", "max_clip_frames": 1024,
        "phantom_clips": 300}
    assert params.source("phantom", folds=5, fold=4)["fold"] == 4
    for kwargs, message in (({"dataset": "busi"}, "dataset = 'busi'"),
                            ({"dataset": "folders", "frame_fit": "fill"}, "frame_fit = 'fill'"),
                            ({"dataset": "folders", "positive": 1}, "positive = 1 .* is not a label or a list"),
                            ({"dataset": "pocus", "patient_pattern": "x"}, "used with dataset='folders' only"),
                            ({"dataset": "folders", "folds": 5, "fold": 5}, r"fold = 5 .* in \[0, 4\]")):
        with pytest.raises(ValueError, match=message):
            params.source(**kwargs)

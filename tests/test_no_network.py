"""No network at run time: the package and a notebook run end to end with sockets blocked.

tests/no_network/sitecustomize.py blocks every connection and name lookup beyond this machine; the test
process uses it through monkeypatch, the notebook kernel (a child process) through PYTHONPATH.
"""
import importlib.util
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).resolve().parent / "no_network"


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """Sockets blocked here and in child processes; returns the log of installs and blocked attempts."""
    spec = importlib.util.spec_from_file_location("usnb_test_no_network", GUARD_DIR / "sitecustomize.py")
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    log = tmp_path / "network.log"
    monkeypatch.setenv("USNB_NETWORK_LOG", str(log))
    monkeypatch.setenv("USNB_BLOCK_NETWORK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")])))
    for name, blocked in guard.GUARDS.items():
        monkeypatch.setattr(socket.socket, name, blocked)
    for name, blocked in guard.FUNCTIONS.items():
        monkeypatch.setattr(socket, name, blocked)
    log.touch()
    return log


def _blocked(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " blocked " in line]


def test_the_guard_blocks_the_internet_here_and_in_child_processes_but_not_loopback(no_network):
    with pytest.raises(urllib.error.URLError, match="network blocked"):
        urllib.request.urlopen("http://example.com", timeout=2)
    with pytest.raises(OSError, match="network blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=2)  # TEST-NET-1: never routable either way
    with socket.socket() as server:  # loopback stays open: the notebook kernel needs it
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        socket.create_connection(server.getsockname(), timeout=2).close()
    download = "import urllib.request; urllib.request.urlopen('http://example.com')"
    child = subprocess.run([sys.executable, "-c", download], capture_output=True, text=True, timeout=60)
    assert child.returncode != 0 and "network blocked" in child.stderr
    assert len(_blocked(no_network)) == 3  # example.com here and in the child, and TEST-NET-1


@pytest.mark.slow
def test_data_tour_runs_end_to_end_without_network(no_network, tmp_path):
    """The real notebook in a kernel that cannot reach the internet; small phantoms stand in for the
    default ones (the tour asks for 100+ clips of 32 frames; 32 px instead of 112 px keeps it quick)."""
    from usnb.notebooks import find_notebooks, run_notebook
    from usnb.paths import data_dir
    from usnb.phantom import PhantomSpec, generate

    # the tour calls ensure_phantom("breast", size=112, seed=0) and ensure_phantom("lung", n=100, size=112, seed=0):
    # small sets written under those specs' folder names stand in for them
    phantoms = data_dir() / "phantom"
    generate("breast", phantoms / PhantomSpec("breast", size=112).folder_name(), n=100, size=32, frames=32,
             n_images=6, workers=1)
    generate("lung", phantoms / PhantomSpec("lung", n=100, size=112).folder_name(), n=4, size=32, frames=32, workers=1)
    result = run_notebook(find_notebooks(["data_tour"])[0], tmp_path / "run", {"profile": "small", "seed": 0})
    assert result.ok, result.error
    assert (tmp_path / "run" / "metrics.json").exists()
    lines = no_network.read_text().splitlines()
    assert any("guard installed in " in line and "ipykernel" in line for line in lines), \
        f"the notebook kernel did not load the network guard: {lines}"
    assert _blocked(no_network) == []  # nothing tried, not even an attempt that was caught and ignored

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POCUS = REPO.parent / "shared" / "realdata" / "pocus"


@pytest.fixture(scope="session")
def tiny_breast(tmp_path_factory):
    """A tiny breast phantom (8 clips, 64 px, 12 frames), generated once per test session."""
    from usnb.phantom import generate

    return generate("breast", tmp_path_factory.mktemp("phantom") / "breast", n=8, size=64, frames=12, seed=5,
                    n_images=4, workers=1)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Tests never write into the user's USNB_DATA_DIR."""
    monkeypatch.setenv("USNB_DATA_DIR", str(tmp_path / "usnb_data"))


_BAD_INPUT_PASSED = []


def pytest_runtest_logreport(report):
    """Count the bad-input cases that passed (each parametrized case once)."""
    if report.when == "call" and report.passed and "bad_input" in report.keywords:
        _BAD_INPUT_PASSED.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _BAD_INPUT_PASSED:
        terminalreporter.write_line(f"bad-input cases: {len(_BAD_INPUT_PASSED)} passed")

import os
from pathlib import Path

import pytest

from usnb.paths import dataset_root

REPO = Path(__file__).resolve().parents[1]
# The real POCUS subset (data_cards/pocus.md): USNB_POCUS_DIR, else USNB_DATA_DIR/pocus; its tests skip without it
POCUS = dataset_root("pocus")


@pytest.fixture(scope="session")
def tiny_breast(tmp_path_factory):
    """A tiny breast phantom (8 clips, 64 px, 12 frames), generated once per test session."""
    from usnb.phantom import generate

    return generate("breast", tmp_path_factory.mktemp("phantom") / "breast", n=8, size=64, frames=12, seed=5,
                    n_images=4, workers=1)


def _phantom16(tmp_path_factory, n_images: int) -> Path:
    """16 breast sweeps of 8 frames at 32 px, half malignant, `n_images` stills: every split holds both classes."""
    from usnb.phantom import generate

    return generate("breast", tmp_path_factory.mktemp(f"p16_{n_images}") / "breast", n=16, size=32, frames=8, seed=1,
                    positive_fraction=0.5, n_images=n_images, workers=1)


@pytest.fixture(scope="session")
def phantom16(tmp_path_factory):
    """The recipes' tiny breast phantom without stills, generated once per test session (tests read it, never write)."""
    return _phantom16(tmp_path_factory, 0)


@pytest.fixture(scope="session")
def phantom16_stills(tmp_path_factory):
    """The same sweeps with 6 still images (KGA-Net's image branch, the cross-paper benchmark)."""
    return _phantom16(tmp_path_factory, 6)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Tests never write into the user's USNB_DATA_DIR, nor find a data set through USNB_<SOURCE>_DIR (the tests of
    the real POCUS subset read it through POCUS, taken at import)."""
    monkeypatch.setenv("USNB_DATA_DIR", str(tmp_path / "usnb_data"))
    for name in [k for k in os.environ if k.startswith("USNB_") and k.endswith("_DIR") and k != "USNB_DATA_DIR"]:
        monkeypatch.delenv(name)


_bad_input_tests: set[str] = set()  # node ids of the collected tests marked `bad_input`
_bad_inputs_passed: list[str] = []


def pytest_collection_modifyitems(items):
    _bad_input_tests.update(item.nodeid for item in items if item.get_closest_marker("bad_input"))


def pytest_runtest_logreport(report):
    """Count the passed cases (each parametrization) of tests marked `bad_input`."""
    if report.when == "call" and report.passed and report.nodeid in _bad_input_tests:
        _bad_inputs_passed.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"bad-input cases: {len(_bad_inputs_passed)} passed")

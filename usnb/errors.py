"""The one error type usnb raises for bad data: it names the file, the problem and the fix."""
from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Bad input data. `str(err)` reads: '<path>: <problem>. Fix: <fix>'."""

    def __init__(self, path: str | Path, problem: str, fix: str = ""):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}" + (f". Fix: {fix}" if fix else ""))


class LeakageError(ValueError):
    """A split shares a patient, a video or an identical clip between two of its parts."""


class DataWarning(UserWarning):
    """Something in the data was skipped; the message says what, where and how many."""

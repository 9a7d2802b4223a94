"""Is a person watching? Live widgets in JupyterLab; plain text where a notebook runs headless. And the cores this
process may use (`usable_cores`: what `usnb run` shares out and a live kernel chooses from).

`usnb run` (papermill), `usnb demo` and `make test` (nbval) set `USNB_HEADLESS=1` for the notebooks they execute. A
headless notebook gets text progress bars (a widget bar saved without its state shows "Error displaying widget:
model not found" when the notebook is opened later) and static figures instead of sliders (`usnb.plots.explorer`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

HEADLESS = "USNB_HEADLESS"


def headless() -> bool:
    """True where nobody watches the notebook run: `USNB_HEADLESS` is set to anything but '' or '0'."""
    return os.environ.get(HEADLESS, "") not in ("", "0")


def progress(*args, **kwargs):
    """A tqdm progress bar: a widget bar when live in Jupyter, a text bar headless (and outside Jupyter)."""
    if headless():
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(*args, **kwargs)


def my_cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """How many cores this process can use: the CPUs it may run on, within a container's CPU limit (`cpu.max`)."""
    mine = len(my_cpus())
    return min(mine, _cpu_quota() or mine)


def _cpu_quota() -> int | None:
    """The CPUs a cgroup v2 limit allows this process (a container's `cpu.max`, rounded up), or None."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))

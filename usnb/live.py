"""Is a person watching? Live widgets in JupyterLab; plain text where a notebook runs headless.

`usnb run` (papermill), `usnb demo` and `make test` (nbval) set `USNB_HEADLESS=1` for the notebooks they execute. A
headless notebook gets text progress bars (a widget bar saved without its state shows "Error displaying widget:
model not found" when the notebook is opened later) and static figures instead of sliders (`usnb.plots.explorer`).
"""
from __future__ import annotations

import os

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

"""Checks for notebook parameters: a wrong type or an out-of-range value fails in the cell after
`parameters`, naming the parameter, its value and what is allowed.

    alpha = params.fraction("alpha", alpha)          # a float in [0, 1]
    epochs = params.number("epochs", epochs, low=1, integer=True)
    profile = params.choice("profile", profile, ("small", "paper"))
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence


def _bad(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"notebook parameter {name} = {value!r} ({type(value).__name__}) is not {allowed}. "
                      f"Fix: set {name} in the parameters cell, or run with `-p {name} VALUE`")


def number(name: str, value, low: float | None = None, high: float | None = None, integer: bool = False):
    """`value` if it is a finite number (an int where `integer`) in [low, high]; else a ValueError."""
    kind = "an integer" if integer else "a number"
    allowed = kind + (f" in [{low}, {high}]" if low is not None and high is not None else
                      f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real)  # NumPy scalars too
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):  # True is an int to Python, not to us
        raise _bad(name, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _bad(name, value, allowed)
    return value


def fraction(name: str, value) -> float:
    """A number in [0, 1] (loss weights such as alpha and beta, split fractions, ratios) as a float."""
    return float(number(name, value, 0, 1))


def choice(name: str, value, options: Sequence):
    """`value` if it is one of `options`; else a ValueError listing them."""
    if value not in options:
        raise _bad(name, value, f"one of {list(options)}")
    return value

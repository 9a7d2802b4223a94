"""Checks for notebook parameters: a wrong type or an out-of-range value fails at once, naming the fix.

papermill passes parameters as Python values (`usnb run NB -p alpha 0.5`); a notebook checks them in the cell
after its parameters cell, so a bad value stops the run there, before any data is loaded.
"""
from __future__ import annotations

from typing import Any, Sequence


def _fail(name: str, value: Any, wanted: str) -> ValueError:
    return ValueError(f"parameter {name} = {value!r} must be {wanted}; fix: pass e.g. `-p {name} <value>` "
                      "to usnb run, or edit the parameters cell")


def fraction(name: str, value: Any) -> float:
    """A number in [0, 1] (a masking ratio, a label fraction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, value, "a number in [0, 1]")
    if not 0.0 <= float(value) <= 1.0:
        raise _fail(name, value, "in [0, 1]")
    return float(value)


def positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """An int >= 1 (iterations, frames, batch size); None passes when `allow_none`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, value, "an int >= 1" + (" or None" if allow_none else ""))
    return value


def choice(name: str, value: Any, options: Sequence) -> Any:
    """One of `options`."""
    if value not in options:
        raise _fail(name, value, f"one of {list(options)}")
    return value


def subset(name: str, values: Any, options: Sequence) -> list:
    """A list whose items all come from `options`."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not set(values) <= set(options):
        raise _fail(name, values, f"a list drawn from {list(options)}")
    return list(values)

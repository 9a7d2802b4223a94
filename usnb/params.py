"""Checks for notebook parameters: a wrong type or an out-of-range value fails in the cell after
`parameters`, naming the parameter, its value and what is allowed.

    alpha = params.fraction("alpha", alpha)          # a float in [0, 1]
    frames = params.number("frames", frames, low=1, integer=True)
    P = params.profile(PROFILES, "small", train_steps=train_steps)  # None keeps the profile's value
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Mapping, Sequence


INT_MAX = 2**63 - 1  # an integer parameter fits a 64-bit integer (torch, NumPy and every counter take it)


def _bad(name: str, value, allowed: str) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:60] + f"... ({len(repr(value))} characters)"
    return ValueError(f"notebook parameter {name} = {shown} ({type(value).__name__}) is not {allowed}. "
                      f"Fix: set {name} in the parameters cell, or run with `-p {name} VALUE`")


def number(name: str, value, low: float | None = None, high: float | None = None, integer: bool = False):
    """`value` if it is a finite number (an int where `integer`) in [low, high]; else a ValueError."""
    kind = "an integer" if integer else "a number"
    allowed = kind + (f" in [{low}, {high}]" if low is not None and high is not None else
                      f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real)  # NumPy scalars too
    # True is an int to Python, not to us; an int is finite however large (math.isfinite would overflow on 10**400)
    if isinstance(value, bool) or not ok_type or (not isinstance(value, numbers.Integral) and not math.isfinite(value)):
        raise _bad(name, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _bad(name, value, allowed)
    if integer and abs(value) > INT_MAX:
        raise _bad(name, value, f"{kind} of at most {INT_MAX} (64 bits)")
    return value


def fraction(name: str, value) -> float:
    """A number in [0, 1] (loss weights such as alpha and beta, split fractions, ratios) as a float."""
    return float(number(name, value, 0, 1))


def choice(name: str, value, options: Sequence):
    """`value` if it is one of `options`; else a ValueError listing them."""
    if value not in options:
        raise _bad(name, value, f"one of {list(options)}")
    return value


def names(name: str, value, options: Sequence) -> list:
    """A list of names, each one of `options`: one name given alone (`baselines = "R3D"`) is a one-item list, not
    read letter by letter; anything else is a ValueError listing the options."""
    if isinstance(value, str) and "," in value:  # several names in one string: say how a list is written
        listed = ", ".join(f'"{v.strip()}"' for v in value.split(","))
        raise _bad(name, value, f"one name; several are a list: `-p {name} '[{listed}]'`")
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad(name, value, f"a name or a list of names among {list(options)}")
    return [choice(name, v, options) for v in value]


# the recipes' profile fields that count something that cannot be zero: run lengths, batch sizes, frames, pixels
AT_LEAST_ONE = {"steps", "batch", "frames", "train_frames", "simclr_frames", "eval_frames", "eval_views", "size",
                "patch"}


def profile(profiles: Mapping, name: str, **overrides):
    """The profile `name` of a recipe's `profiles` with the overrides that are not None applied (a notebook passes
    every run-length knob; None means the profile's own). An override names a field of the profile, or a field of
    one of its training stages as STAGE_FIELD (`finetune_steps=600`, `pretrain_lr=1e-3`: see `usnb.train.Schedule`),
    and has that field's kind: an integer field takes an integer (>= 0; >= 1 for sizes, steps and batches,
    AT_LEAST_ONE), a float field a number, a text field text, a tuple field a list or tuple. To set a field to None
    (e.g. weights=None: random initialisation), use `dataclasses.replace` on the result."""
    if name not in profiles:
        raise ValueError(f"profile must be one of {sorted(profiles)}, got {name!r}")
    base = profiles[name]
    stages = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)
              if dataclasses.is_dataclass(getattr(base, f.name))}
    names = {f.name: (None, f.name) for f in dataclasses.fields(base)}
    names.update({f"{stage}_{f.name}": (stage, f.name) for stage, s in stages.items() for f in dataclasses.fields(s)})
    top, nested = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in names:
            raise ValueError(f"{key} is not a setting of the {name!r} profile; use one of {sorted(names)}")
        stage, field = names[key]
        value = _kind(key, value, getattr(stages[stage] if stage else base, field), field)
        if stage:
            nested.setdefault(stage, {})[field] = value
        else:
            top[key] = value
    top.update({stage: dataclasses.replace(top.get(stage, stages[stage]), **kw) for stage, kw in nested.items()})
    return dataclasses.replace(base, **top)


def _kind(key: str, value, default, field: str):
    """`value` checked against the kind of the field's `default` (see `profile`)."""
    if isinstance(default, bool):
        choice(key, value, [True, False])
    elif isinstance(default, int):
        number(key, value, low=1 if field in AT_LEAST_ONE else 0, integer=True)
    elif isinstance(default, float):
        number(key, value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise _bad(key, value, "text")
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise _bad(key, value, "a list")
        return tuple(value)
    return value


def source(dataset: str, data_dir=None, positive=None, drop=None, patient_pattern=None, frame_fit: str = "pad",
           max_clip_frames=1024, phantom_clips: int = 300, folds=None, fold: int = 0, **more) -> dict:
    """The data parameters every notebook shares, checked, as the keyword arguments of its recipe's `load_data`
    (`usnb.breast.load_breast`, `usnb.lung.load_lung`): None values are left out (the loader's default). `more`
    (image_dir, images, ...) passes through as given."""
    from .io import FITS
    from .sources import VIDEO_SOURCES

    choice("dataset", dataset, VIDEO_SOURCES)
    choice("frame_fit", frame_fit, FITS)
    number("phantom_clips", phantom_clips, low=8, integer=True)
    for name, value in (("positive", positive), ("drop", drop)):
        if value is not None and not (isinstance(value, str) or
                                      (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))):
            raise _bad(name, value, "a label or a list of labels")
    if max_clip_frames is not None:
        number("max_clip_frames", max_clip_frames, low=1, integer=True)
    if folds is not None:
        number("folds", folds, low=2, high=20, integer=True)
        number("fold", fold, low=0, high=folds - 1, integer=True)
    if patient_pattern is not None and dataset != "folders":
        raise _bad("patient_pattern", patient_pattern, "used with dataset='folders' only; leave it None")
    out = dict(data_dir=data_dir, positive=positive, drop=drop, patient_pattern=patient_pattern, frame_fit=frame_fit,
               max_clip_frames=max_clip_frames, phantom_clips=phantom_clips, folds=folds, fold=fold if folds else None,
               **more)
    return {k: v for k, v in out.items() if v is not None or k == "max_clip_frames"}

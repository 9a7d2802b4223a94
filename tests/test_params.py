"""Notebook parameters: a wrong type or an out-of-range value is refused, naming the parameter and the range."""
from dataclasses import replace

import numpy as np
import pytest

from usnb import params


def test_good_values_pass_through():
    assert params.fraction("alpha", 0) == 0.0 and params.fraction("beta", 1) == 1.0
    assert isinstance(params.fraction("alpha", 1), float)
    assert params.fraction("alpha", np.float32(0.25)) == 0.25
    assert params.number("epochs", 3, low=1, integer=True) == 3
    assert params.number("epochs", np.int64(3), low=1, integer=True) == 3
    assert params.number("lr", 1e-3, low=0) == 1e-3
    assert params.choice("profile", "paper", ("small", "paper")) == "paper"


BAD = [
    # (call, pattern)
    (lambda: params.fraction("alpha", 1.5), r"alpha = 1.5 \(float\) is not a number in \[0, 1\]"),
    (lambda: params.fraction("beta", -0.1), r"beta = -0.1 \(float\) is not a number in \[0, 1\]"),
    (lambda: params.fraction("alpha", "0.5"), r"alpha = '0.5' \(str\) is not a number in \[0, 1\]"),
    (lambda: params.fraction("alpha", None), r"alpha = None \(NoneType\) is not a number"),
    (lambda: params.fraction("alpha", float("nan")), r"alpha = nan \(float\) is not a number in \[0, 1\]"),
    (lambda: params.fraction("alpha", True), r"alpha = True \(bool\) is not a number"),
    (lambda: params.number("epochs", 2.5, low=1, integer=True), r"epochs = 2.5 \(float\) is not an integer >= 1"),
    (lambda: params.number("epochs", 0, low=1, integer=True), r"epochs = 0 \(int\) is not an integer >= 1"),
    (lambda: params.number("lr", float("inf"), low=0), r"lr = inf \(float\) is not a number >= 0"),
    (lambda: params.number("seed", [0], integer=True), r"seed = \[0\] \(list\) is not an integer"),
    (lambda: params.choice("profile", "huge", ("small", "paper")),
     r"profile = 'huge' \(str\) is not one of \['small', 'paper'\]"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("call, pattern", BAD, ids=["alpha>1", "beta<0", "alpha-str", "alpha-none", "alpha-nan",
                                                    "alpha-bool", "epochs-float", "epochs-0", "lr-inf", "seed-list",
                                                    "profile-unknown"])
def test_bad_parameter_is_refused_naming_it_its_value_and_the_range(call, pattern):
    with pytest.raises(ValueError, match="^notebook parameter " + pattern) as err:
        call()
    assert "Fix: set" in str(err.value) and "-p" in str(err.value)


def test_profile_applies_the_overrides_that_are_set_and_checks_them():
    from usnb.recipes import kganet as K

    small = params.profile(K.PROFILES, "small", train_steps=None, train_lr=None)
    assert small == K.PROFILES["small"]  # None keeps the profile's own value
    changed = params.profile(K.PROFILES, "small", train_steps=7, crop_scale=[0.5, 1.0], num_workers=0, train_lr=0.1)
    assert (changed.train.steps, changed.crop_scale, changed.num_workers) == (7, (0.5, 1.0), 0)
    assert changed.train == replace(K.PROFILES["small"].train, steps=7, lr=0.1)  # a stage's field, the rest kept


@pytest.mark.bad_input
@pytest.mark.parametrize("overrides, pattern", [
    ({"train_stpes": 5}, r"train_stpes is not a setting of the 'small' profile; use one of \[.*'train_steps'"),
    ({"train_steps": 0}, r"train_steps = 0 \(int\) is not an integer >= 1"),
    ({"train_steps": 2.5}, r"train_steps = 2.5 \(float\) is not an integer >= 1"),
    ({"train_batch": 0}, r"train_batch = 0 \(int\) is not an integer >= 1"),
    ({"train_lr": "fast"}, r"train_lr = 'fast' \(str\) is not a number"),
    ({"train_optimizer": 3}, r"train_optimizer = 3 \(int\) is not text"),
    ({"crop_scale": 0.5}, r"crop_scale = 0.5 \(float\) is not a list"),
], ids=["typo", "zero-run", "float-run", "zero-batch", "str-lr", "int-text", "scalar-tuple"])
def test_profile_refuses_unknown_or_ill_typed_overrides(overrides, pattern):
    from usnb.recipes import kganet as K

    with pytest.raises(ValueError, match=pattern):
        params.profile(K.PROFILES, "small", **overrides)
    with pytest.raises(ValueError, match="profile must be one of"):
        params.profile(K.PROFILES, "huge")

"""The one module of parameter checks: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from backprop.validation import InvalidParameterError, choice, integer, real


def test_integer_accepts_integers_and_numpy_integers_as_plain_ints() -> None:
    assert integer(3, "n") == 3 and type(integer(np.int64(3), "n")) is int
    assert integer(0, "n") == 0


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (True, 0, "n must be a non-negative integer; got bool True"),
        (1.5, 1, "n must be a positive integer; got float 1.5"),
        ("3", 1, "n must be a positive integer; got str '3'"),
        (0, 1, "n must be a positive integer; got 0"),
        (1, 2, "n must be an integer >= 2; got 1"),
        (-1, 0, "n must be a non-negative integer; got -1"),
    ],
)
def test_integer_refusals_say_what_was_wanted(value: object, minimum: int, message: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        integer(value, "n", minimum=minimum)
    assert str(caught.value) == message


def test_real_bounds_and_wording() -> None:
    assert real(np.float32(0.5), "x", low=0.0, high=1.0) == 0.5 and type(real(1, "x")) is float
    assert real(math.inf, "eps", low=0.0, high=math.inf, low_open=True) == math.inf  # a closed infinite end
    with pytest.raises(InvalidParameterError, match=r"^lr must be a non-negative number; got -1$"):
        real(-1, "lr", low=0.0)
    with pytest.raises(InvalidParameterError, match=r"^gamma must be a positive number; got 0$"):
        real(0, "gamma", low=0.0, low_open=True)
    with pytest.raises(InvalidParameterError, match=r"^lr must be a non-negative number; got inf$"):
        real(math.inf, "lr", low=0.0)  # no upper bound given: infinity is refused
    with pytest.raises(InvalidParameterError, match=r"^Dropout p must lie in \[0, 1\); got 1$"):
        real(1, "p", low=0.0, high=1.0, high_open=True, owner="Dropout")
    with pytest.raises(InvalidParameterError, match=r"must lie in \[0, 1\]; got nan"):
        real(math.nan, "m", low=0.0, high=1.0)
    with pytest.raises(InvalidParameterError, match=r"^x must be a float; got str '0.1'$"):
        real("0.1", "x")
    with pytest.raises(InvalidParameterError, match="got bool"):
        real(False, "x")


def test_choice_lists_the_options() -> None:
    assert choice("min", "mode", ("min", "max")) == "min"
    with pytest.raises(InvalidParameterError, match=r"^mode must be 'min' or 'max'; got 'mean'$"):
        choice("mean", "mode", ("min", "max"))
    with pytest.raises(InvalidParameterError, match=r"^m must be 'a', 'b' or 'c'; got 1$"):
        choice(1, "m", ("a", "b", "c"))


def test_the_error_is_both_a_value_and_a_type_error() -> None:
    assert issubclass(InvalidParameterError, ValueError) and issubclass(InvalidParameterError, TypeError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: bp.Dense(0, 2),
        lambda: bp.Dense(2, 2, l1=-0.1),
        lambda: bp.BatchNorm(4, momentum=2.0),
        lambda: bp.LayerNorm(4, eps=0.0),
        lambda: bp.Dropout(1.0),
        lambda: bp.Dropout(0.5, masks="gpu"),
        lambda: bp.optim.SGD(bp.Sequential(bp.Dense(2, 1)).parameters(), lr=-1),
        lambda: bp.optim.SGD(bp.Sequential(bp.Dense(2, 1)).parameters(), dampening=1.5),
        lambda: bp.optim.Adam(bp.Sequential(bp.Dense(2, 1)).parameters(), betas=(0.9,)),
    ],
)
def test_constructors_refuse_through_the_validation_module(build: object) -> None:
    with pytest.raises(InvalidParameterError):
        build()  # type: ignore[operator]

"""Parameter validation: the one place that checks the numbers and choices users pass in.

Every constructor and option of the library checks its arguments with these, so that every
refusal reads alike (``"Dense in_features must be a positive integer; got 0"``) and comes
early, before anything is allocated. They return the value as a plain Python ``int``,
``float`` or ``str`` (NumPy scalars converted), the form hyperparameters are kept in.
Like scikit-learn's, the error is both a ``ValueError`` and a ``TypeError``: a wrong type and
a wrong value are one mistake to a caller.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["InvalidParameterError", "choice", "flag", "integer", "real"]


class InvalidParameterError(ValueError, TypeError):
    """A constructor argument or option has the wrong type or lies outside its range."""


def integer(value: Any, name: str, *, minimum: int | None = 0, owner: str = "") -> int:
    """``value`` as an ``int`` of at least ``minimum`` (``None``: any; bools are not integers here)."""
    if minimum is None:
        wanted = "an integer"
    elif minimum == 0:
        wanted = "a non-negative integer"
    elif minimum == 1:
        wanted = "a positive integer"
    else:
        wanted = f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{_who(owner, name)} must be {wanted}; got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{_who(owner, name)} must be {wanted}; got {value!r}")
    return int(value)


def real(
    value: Any,
    name: str,
    *,
    low: float = -math.inf,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    owner: str = "",
) -> float:
    """``value`` as a ``float`` from ``low`` to ``high`` (each end closed unless ``*_open``;
    ``high=None``: no upper bound, infinity excluded); NaN never passes."""
    who = _who(owner, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{who} must be a float; got {type(value).__name__} {value!r}")
    number = float(value)
    above = number > low if low_open else number >= low
    top = math.inf if high is None else high
    below = number < top if high_open or high is None else number <= top
    if above and below:
        return number
    if high is None and low == -math.inf:  # any number: only NaN and the infinities fail
        raise InvalidParameterError(f"{who} must be a finite number; got {value!r}")
    if high is None and low == 0.0:
        raise InvalidParameterError(
            f"{who} must be a {'positive' if low_open else 'non-negative'} number; got {value!r}"
        )
    interval = f"{'(' if low_open else '['}{low:g}, {top:g}{')' if high_open or high is None else ']'}"
    raise InvalidParameterError(f"{who} must lie in {interval}; got {value!r}")


def flag(value: Any, name: str, *, owner: str = "") -> bool:
    """``value``, ``True`` or ``False`` (NumPy's too): any other value would be taken for its
    truth, and ``shuffle="no"`` would shuffle."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{_who(owner, name)} must be True or False; got {type(value).__name__} {value!r}")
    return bool(value)


def choice(value: Any, name: str, options: Sequence[str], *, owner: str = "") -> str:
    """``value``, one of the strings ``options``."""
    if value not in options:
        listed = ", ".join(map(repr, options[:-1])) + f" or {options[-1]!r}" if len(options) > 1 else repr(options[0])
        raise InvalidParameterError(f"{_who(owner, name)} must be {listed}; got {value!r}")
    return str(value)


def _who(owner: str, name: str) -> str:
    return f"{owner} {name}" if owner else name

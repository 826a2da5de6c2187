"""Argument types for argparse: each checks one option's value and, when it is wrong, says
what is valid (argparse then exits with status 2 and the message)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from ..backends import Device
from ..datasets import SPEC_FORMS, DataError
from ..datasets.spec import parse_csv_spec
from ..layers import get_activation
from ..losses import get_loss

__all__ = [
    "activation_name",
    "add_device_argument",
    "data_spec",
    "delimiter",
    "device_spec",
    "fraction",
    "loss_name",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "probability",
    "split_fraction",
]

_BUILT_IN = ("xor", "digits", "sine")


def _number(text: str, kind: Callable[[str], float | int], what: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch size, sizes)."""
    value = int(_number(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, patience)."""
    value = int(_number(text, int, "a whole number"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rate, clipping norm, eps)."""
    value = float(_number(text, float, "a number"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (weight decay, momentum, tolerances)."""
    value = float(_number(text, float, "a number"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction in [0, 1): 0 disables (validation split)."""
    value = float(_number(text, float, "a number"))
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 (none) up to, not including, 1; got {text!r}")
    return value


def split_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (the test split)."""
    value = float(_number(text, float, "a number"))
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction strictly between 0 and 1, such as 0.2; got {text!r}")
    return value


def probability(text: str) -> float:
    """A dropout probability in [0, 1)."""
    value = float(_number(text, float, "a number"))
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 up to, not including, 1; got {text!r}")
    return value


def device_spec(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, as its canonical name (``cuda`` -> ``cuda:0``); whether
    the GPU is usable is checked when the command runs (`devices.resolve_device`)."""
    try:
        return Device(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(", or a bp.Device", "")) from None


def add_device_argument(parser: Any) -> None:
    """The ``--device`` option every command shares."""
    parser.add_argument("--device", type=device_spec, default="cpu", metavar="DEVICE",
                        help="cpu, cuda or cuda:N (default: cpu; see backprop devices)")


def activation_name(text: str) -> str:
    """A name `bp.layers.get_activation` knows, normalised (``Leaky-ReLU`` -> ``leaky_relu``)."""
    try:
        get_activation(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.lower().replace("-", "_")


def loss_name(text: str) -> str:
    """A name `bp.losses.get_loss` knows, normalised to its short name (``softmax_cross_entropy``
    -> ``cross_entropy``, ``l1`` -> ``mae``)."""
    try:
        get_loss(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(" or a bp.losses.Loss", "")) from None
    name = text.lower().replace("-", "_")
    return {"softmax_cross_entropy": "cross_entropy", "l1": "mae"}.get(name, name)


def delimiter(text: str) -> str:
    """A CSV delimiter: one character (``;``, ``|``), or ``tab`` / ``\\t`` for a tab."""
    if text.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1 or text in "\r\n\"" or text.isalnum():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a delimiter: give one character such as ';' or '|', or tab (also written \\t)"
        )
    return text


def data_spec(text: str) -> str:
    """A data set spec `bp.datasets.load` accepts, checked for its form only (whether a CSV
    file exists and parses is found out when it is loaded)."""
    key = text.strip().lower()
    if key in _BUILT_IN:
        return key
    if key.startswith("csv:"):
        try:
            parse_csv_spec(text.strip()[4:])
        except DataError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip()
    raise argparse.ArgumentTypeError(
        f"unknown data set {text!r}: use one of {', '.join(SPEC_FORMS)}"
        + (f" (a CSV file? write csv:{text})" if key.endswith((".csv", ".csv.gz")) else "")
    )

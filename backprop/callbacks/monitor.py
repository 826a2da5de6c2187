"""A monitored epoch value, as `EarlyStopping` and `ModelCheckpoint` watch one: which way is
better, what counts as an improvement, and the error when the value is not reported."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..metrics import higher_is_better

__all__ = ["improves", "maximizes", "missing_monitor"]


def maximizes(monitor: str, mode: str) -> bool:
    """Whether higher values of ``monitor`` are better: ``mode="max"``/``"min"`` say so, and
    ``"auto"`` asks the metric (`backprop.metrics.higher_is_better`: accuracy, top-k, precision,
    recall, F1 and R² upwards; losses and errors downwards; else ``"acc"`` in the name, Keras's rule)."""
    if mode != "auto":
        return mode == "max"
    return higher_is_better(monitor)


def improves(value: float, best: float, maximize: bool, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta``: ``value > best + min_delta``
    when maximising, ``value < best - min_delta`` otherwise. A NaN value never improves; a NaN
    ``best`` (nothing seen yet) is beaten by any other value."""
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best + min_delta if maximize else value < best - min_delta


def missing_monitor(who: str, monitor: str, keys: Iterable[str]) -> ValueError:
    """The error for a monitored key that the epochs do not report, listing the keys they do
    (and how to get ``val_*`` keys)."""
    keys = list(keys)
    present = ", ".join(map(repr, keys)) or "nothing"
    no_validation = monitor.startswith("val_") and not any(key.startswith("val_") for key in keys)
    hint = "; pass validation_data=(X_val, y_val) to get 'val_*' values" if no_validation else ""
    return ValueError(f"{who} monitors {monitor!r}, but fit reports {present}{hint}")

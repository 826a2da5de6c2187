"""Metrics reported by `fit` and `Sequential.evaluate`, computed on the device.

Each batch gives a metric's *state*, a few sums kept on the device (no host sync per
batch); states add up over batches and processes, and the metric's value is computed from
the total once, on the host (`backprop.metrics.base`). Pass them by name,
``fit(..., metrics=["accuracy", "f1"])``, or as objects, ``metrics=[bp.metrics.TopKAccuracy(3)]``.
Every metric matches its scikit-learn counterpart:

======================================  ==========================  ==============================
name                                    class                       scikit-learn
======================================  ==========================  ==============================
``accuracy`` (``acc``)                  `Accuracy`                  ``accuracy_score``
``top_k_accuracy`` (``top_3_accuracy``) `TopKAccuracy` (k=5)        ``top_k_accuracy_score``
``precision``                           `Precision` (macro)         ``precision_score``
``recall``                              `Recall` (macro)            ``recall_score``
``f1`` (``f1_score``)                   `F1` (macro)                ``f1_score``
``mae`` (``mean_absolute_error``)       `MAE`                       ``mean_absolute_error``
``mse`` (``mean_squared_error``)        `MSE`                       ``mean_squared_error``
``r2`` (``r2_score``)                   `R2`                        ``r2_score``
======================================  ==========================  ==============================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..losses import Loss
from .accuracy import Accuracy, TopKAccuracy
from .base import Metric, metric_values
from .confusion import F1, ConfusionMetric, Precision, Recall
from .regression import MAE, MSE, R2

__all__ = [
    "F1",
    "MAE",
    "MSE",
    "R2",
    "Accuracy",
    "ConfusionMetric",
    "Metric",
    "Precision",
    "Recall",
    "TopKAccuracy",
    "get_metrics",
    "higher_is_better",
    "metric_values",
]

_NAMES: dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "top_k_accuracy": TopKAccuracy,
    "precision": Precision,
    "recall": Recall,
    "f1": F1,
    "f1_score": F1,
    "mae": MAE,
    "mean_absolute_error": MAE,
    "mse": MSE,
    "mean_squared_error": MSE,
    "r2": R2,
    "r2_score": R2,
}
_TOP_K = re.compile(r"top_(\d+)_accuracy")


def _from_name(name: str) -> Metric:
    key = name.strip().lower().replace("-", "_")
    if key in _NAMES:
        return _NAMES[key]()
    top = _TOP_K.fullmatch(key)
    if top is not None:
        return TopKAccuracy(int(top.group(1)), name=key)
    raise ValueError(
        f"unknown metric {name!r}: use one of {', '.join(sorted(_NAMES))}, top_<k>_accuracy or a bp.metrics.Metric"
    )


def get_metrics(metrics: Any, loss: Loss, outputs: int | None = None) -> list[Metric]:
    """Metric objects from names (``"accuracy"``) or `Metric` instances, each bound to
    ``loss`` and the model's number of ``outputs`` (`Metric.bind`: a metric that does not fit
    them is refused here, before training). Two metrics of one name are refused: they would
    share a history key."""
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    out: list[Metric] = []
    for m in metrics or ():
        if isinstance(m, str):
            m = _from_name(m)
        elif not isinstance(m, Metric):
            raise TypeError(f"metrics must be names or bp.metrics.Metric objects; got {type(m).__name__} {m!r}")
        out.append(m.bind(loss, outputs))
    names = [m.name for m in out]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"metrics {', '.join(map(repr, twice))} given twice: each metric's name must be unique")
    return out


def higher_is_better(key: str) -> bool:
    """Whether the history key ``key`` (``"f1"``, ``"val_r2"``, ``"val_top_3_accuracy"``) is a
    built-in metric that improves upwards (accuracy, top-k accuracy, precision, recall, F1,
    R²), or has ``"acc"`` in its name; losses and errors (``mae``, ``mse``) improve downwards."""
    name = key[4:] if key.startswith("val_") else key
    try:
        metric = _from_name(name)
    except ValueError:
        return "acc" in key
    return metric.higher_is_better

"""Metrics reported by `fit` and `Sequential.evaluate`, computed on the device.

A metric maps a batch's outputs ``P`` and targets ``T`` to the *sum* of its per-sample values
as a 0-d device array, so `fit` can add batches up without a host sync and divide by the
sample count once per epoch.
"""

from __future__ import annotations

from typing import Any

from .backends import Array
from .losses import Loss

__all__ = ["Accuracy", "Metric", "get_metrics"]


class Metric:
    """Base class: ``name``, whether higher is better, and `batch_sum`."""

    name = ""
    higher_is_better = True

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        """Sum over the batch of the per-sample metric values (a 0-d device array)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Fraction of correct predictions.

    Multi-class outputs ``(N, C)`` with integer labels: ``argmax_c P == y``. Binary outputs
    with targets shaped like P: ``P > threshold`` against ``T > 0.5``, averaged over output
    columns; the threshold is 0.5 for probabilities (`BCE`) and 0 for logits (`BCEWithLogits`).
    """

    name = "accuracy"

    def __init__(self, loss: Loss):
        if loss.expects == "any":
            raise ValueError(
                f"accuracy needs a classification loss (bce, bce_with_logits or cross_entropy); the loss is {loss!r}"
            )
        self.threshold = 0.5 if loss.expects == "probabilities" else 0.0

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        if len(T.shape) == 1:  # integer class labels
            hits = xp.argmax(P, axis=1) == T
            return xp.sum(xp.astype(hits, P.dtype))
        hits = (P > self.threshold) == (T > 0.5)
        return xp.sum(xp.astype(hits, P.dtype)) / P.shape[1]


_METRICS = {"accuracy": Accuracy, "acc": Accuracy}


def get_metrics(metrics: Any, loss: Loss) -> list[Metric]:
    """Metric objects from names (``"accuracy"``) or `Metric` instances."""
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    out: list[Metric] = []
    for m in metrics or ():
        if isinstance(m, Metric):
            out.append(m)
        elif isinstance(m, str) and m.lower() in _METRICS:
            out.append(_METRICS[m.lower()](loss))
        else:
            raise ValueError(f"unknown metric {m!r}: use one of {', '.join(sorted(_METRICS))} or a bp.metrics.Metric")
    return out

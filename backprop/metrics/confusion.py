"""Precision, recall and F1: ratios of confusion counts, summed over batches on the device.

A ratio of sums is not a sum of per-sample values, so these metrics keep as their state,
per class ``c``, the counts of true positives ``TP_c``, of predictions of ``c`` (``TP_c +
FP_c``) and of samples of ``c`` (``TP_c + FN_c``): ``3C`` sums per batch, added up over
batches (and processes) and turned into the metric once, on the host:

    precision_c = TP_c / (TP_c + FP_c)     recall_c = TP_c / (TP_c + FN_c)
    F1_c = 2 TP_c / ((TP_c + FP_c) + (TP_c + FN_c))

A ratio whose denominator is 0 (a class never predicted, for precision) is 0, as
scikit-learn's ``zero_division=0``. The classes are:

- **binary** (one output, ``bce``/``bce_with_logits``): the positive class only, predicted
  when the output exceeds 0.5 (probabilities) or 0 (logits): scikit-learn's
  ``average="binary"``; ``average`` does not apply;
- **multi-label** (k outputs of 0/1 targets): each output column, as scikit-learn's
  multilabel-indicator case, all k columns averaged;
- **multi-class** (``cross_entropy``, C outputs, integer labels): each class, predicted by
  the argmax; ``average="macro"`` averages over the classes that occur in the targets or in
  the predictions (scikit-learn's default labels, ``unique_labels(y_true, y_pred)``).

``average``: ``"macro"`` (unweighted mean over classes, the default), ``"weighted"`` (mean
weighted by each class's sample count) or ``"micro"`` (the ratio of the counts summed over
classes; for single-label multi-class data it equals accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ..backends import Array
from ..losses import Loss
from ..validation import choice
from .accuracy import threshold_of
from .base import Metric, check_loss

__all__ = ["F1", "ConfusionMetric", "Precision", "Recall"]

AVERAGES = ("macro", "weighted", "micro")


class ConfusionMetric(Metric):
    """Base of `Precision`, `Recall` and `F1`: the per-class counts and their averaging."""

    def __init__(self, average: str = "macro"):
        self.average = choice(average, "average", AVERAGES, owner=type(self).__name__)
        self.outputs: int | None = None
        self.labels = False
        self.threshold = 0.5

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        check_loss(self.name, loss, "classes")
        return self._configured(outputs=outputs, labels=loss.labels, threshold=threshold_of(loss))

    def state_size(self) -> int:
        if self.outputs is None:
            raise ValueError(f"{self!r} is not bound to a model: pass it to fit or evaluate, which bind it")
        return 3 * self.outputs

    def state_key(self) -> tuple[Any, ...]:
        """The counts depend on how classes are read, not on the metric or its ``average``."""
        return ("confusion", self.outputs, self.labels, self.threshold)

    def batch_state(self, xp: Any, P: Array, T: Array) -> Array:
        """``[TP_c..., predicted_c..., actual_c...]`` over the batch, ``3C`` sums."""
        if self.labels:  # one-hot rows of the argmax and of the labels
            classes = xp.arange(P.shape[1], dtype=T.dtype, device=array_api_compat.device(P))
            predicted = xp.argmax(P, axis=1)[:, None] == classes[None, :]
            actual = T[:, None] == classes[None, :]
        else:
            predicted, actual = P > self.threshold, T > 0.5
        counts = [xp.sum(xp.astype(m, P.dtype), axis=0) for m in (predicted & actual, predicted, actual)]
        return xp.concat(counts)

    def result(self, sums: Sequence[float], samples: float) -> float:
        tp, predicted, actual = np.reshape(np.asarray(sums, dtype=np.float64), (3, -1))
        if tp.size == 1:  # binary: the positive class
            return float(self.ratio(tp, predicted, actual)[0])
        if self.average == "micro":
            return float(self.ratio(tp.sum(keepdims=True), predicted.sum(keepdims=True), actual.sum(keepdims=True))[0])
        per_class = self.ratio(tp, predicted, actual)
        if self.labels:  # classes that occur in neither the targets nor the predictions do not count
            present = (predicted + actual) > 0
            per_class, actual = per_class[present], actual[present]
        if self.average == "weighted":
            total = actual.sum()
            return float((per_class * actual).sum() / total) if total > 0 else 0.0
        return float(per_class.mean()) if per_class.size else 0.0

    def ratio(self, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        """Per-class values from the counts, 0 where the denominator is 0."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(average={self.average!r})"


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0 (``zero_division=0``)."""
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


class Precision(ConfusionMetric):
    """Precision ``TP / (TP + FP)``, as ``sklearn.metrics.precision_score(...,
    zero_division=0)``; see `backprop.metrics.confusion` for the classes and ``average``."""

    name = "precision"

    def ratio(self, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        return _divide(tp, predicted)


class Recall(ConfusionMetric):
    """Recall ``TP / (TP + FN)``, as ``sklearn.metrics.recall_score(..., zero_division=0)``."""

    name = "recall"

    def ratio(self, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        return _divide(tp, actual)


class F1(ConfusionMetric):
    """F1 ``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall, as
    ``sklearn.metrics.f1_score(..., zero_division=0)``."""

    name = "f1"

    def ratio(self, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        return _divide(2.0 * tp, predicted + actual)

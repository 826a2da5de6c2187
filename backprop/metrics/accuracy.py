"""Accuracy and top-k accuracy: means of a per-sample hit, summed per batch on the device."""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..backends import Array
from ..losses import Loss
from ..validation import integer
from .base import Metric, check_loss

__all__ = ["Accuracy", "TopKAccuracy", "threshold_of"]


def threshold_of(loss: Loss) -> float:
    """The output value above which a binary prediction is positive: 0.5 for probabilities
    (`BCE`), 0 for logits (`BCEWithLogits`)."""
    return 0.5 if loss.expects == "probabilities" else 0.0


class Accuracy(Metric):
    """Fraction of correct predictions (``sklearn.metrics.accuracy_score``).

    Multi-class outputs ``(N, C)`` with integer labels: ``argmax_c P == y``. Binary outputs
    with targets shaped like P: ``P > threshold`` against ``T > 0.5``, averaged over output
    columns; the threshold is 0.5 for probabilities (`BCE`) and 0 for logits (`BCEWithLogits`).
    """

    name = "accuracy"

    def __init__(self, loss: Loss | None = None):
        self.threshold = 0.5
        if loss is not None:
            check_loss(self.name, loss, "classes")
            self.threshold = threshold_of(loss)

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        check_loss(self.name, loss, "classes")
        return self._configured(threshold=threshold_of(loss))

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        if len(T.shape) == 1:  # integer class labels
            hits = xp.argmax(P, axis=1) == T
            return xp.sum(xp.astype(hits, P.dtype))
        hits = (P > self.threshold) == (T > 0.5)
        return xp.sum(xp.astype(hits, P.dtype)) / P.shape[1]


class TopKAccuracy(Metric):
    """Fraction of samples whose label is among the ``k`` highest-scored classes
    (``sklearn.metrics.top_k_accuracy_score``, Keras' ``TopKCategoricalAccuracy``).

    For outputs ``P`` ``(N, C)`` and labels ``y`` ``(N,)``: a hit when fewer than ``k`` classes
    score strictly higher than the label, ``sum_c [P_nc > P_n,y_n] < k`` (so a tie with the
    label's score counts in the label's favour). Needs integer labels (``cross_entropy``) and
    ``k < C`` (with ``k >= C`` every sample would be a hit). ``name`` defaults to
    ``"top_k_accuracy"`` whatever ``k`` is, as Keras names it.
    """

    def __init__(self, k: int = 5, name: str = "top_k_accuracy"):
        self.k = integer(k, "k", minimum=1, owner="TopKAccuracy")
        self.name = str(name)

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        check_loss(self.name, loss, "labels")
        if outputs is not None and self.k >= outputs:
            raise ValueError(
                f"{self.name} with k={self.k} needs more than {self.k} classes, but the model has {outputs} "
                f"outputs (every label would be among the top {self.k}): use bp.metrics.TopKAccuracy(k) with "
                f"k < {outputs}"
            )
        return self

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        classes = xp.arange(P.shape[1], dtype=T.dtype, device=array_api_compat.device(P))
        is_label = T[:, None] == classes[None, :]
        label_score = xp.sum(xp.where(is_label, P, xp.zeros_like(P)), axis=1)
        higher = xp.sum(xp.astype(P > label_score[:, None], P.dtype), axis=1)
        return xp.sum(xp.astype(higher < self.k, P.dtype))

    def __repr__(self) -> str:
        named = "" if self.name == "top_k_accuracy" else f", name={self.name!r}"
        return f"TopKAccuracy(k={self.k}{named})"

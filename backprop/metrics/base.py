"""The `Metric` protocol: what a metric computes on the device per batch, and on the host once.

A metric never syncs with the host per batch. For each batch it gives a *state*: a small
device array of sums (``batch_state(xp, P, T)``, ``state_size()`` values). States of batches,
epochs' shares of batches and processes of a data-parallel run are combined by adding them
up, on the device or on the host, so every caller (the epoch loop, `evaluate`, the ranks'
all-reduce) handles every metric alike. `result(sums, samples)` turns the summed state and
the sample count into the metric's value, once, on the host.

Metrics that are means of per-sample values (accuracy, mean absolute error) only write
`batch_sum`, the batch's sum of those values: their state is that one sum and their result
the sum over the sample count. Metrics that are not (precision, recall, F1, R²) keep counts
or sums of squares as their state and compute the ratio in `result`.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from typing import Any

from ..backends import Array
from ..losses import Loss

__all__ = ["Metric", "batch_states", "check_loss", "metric_values"]


class Metric:
    """Base class: ``name``, whether higher is better, and the per-batch state and its result.

    Subclasses that are means of per-sample values implement `batch_sum` only; others
    implement `state_size`, `batch_state` and `result`. `bind` checks that a metric fits the
    loss and the model's number of outputs and returns the metric configured for them.
    """

    name = ""
    higher_is_better = True

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        """This metric configured for a model trained with ``loss`` that has ``outputs``
        output columns (``None``: not known yet); a copy when anything is set, so the
        instance a user passed is left as it was. Raises `ValueError` if it does not fit."""
        return self

    def state_size(self) -> int:
        """How many sums `batch_state` gives."""
        return 1

    def batch_state(self, xp: Any, P: Array, T: Array) -> Array:
        """The batch's state: a device array of `state_size` sums (0-d when there is one),
        from outputs ``P`` ``(N, k)`` and checked targets ``T`` (``(N, k)``, or ``(N,)`` labels)."""
        return self.batch_sum(xp, P, T)

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        """Sum over the batch of the per-sample metric values (a 0-d device array)."""
        raise NotImplementedError

    def result(self, sums: Sequence[float], samples: float) -> float:
        """The metric from its state summed over all batches and the number of samples."""
        return sums[0] / samples

    def state_key(self) -> Hashable | None:
        """Metrics with equal keys have the same `batch_state` (precision, recall and F1 of
        one model count the same things), which `batch_states` computes once; ``None``: its own."""
        return None

    def _configured(self, **settings: Any) -> Metric:
        bound = copy.copy(self)
        bound.__dict__.update(settings)
        return bound

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def batch_states(metrics: Sequence[Metric], xp: Any, P: Array, T: Array) -> list[Array]:
    """Each metric's `batch_state` of the batch ``(P, T)``, computed once for metrics that
    share it (`Metric.state_key`)."""
    shared: dict[Hashable, Array] = {}
    states = []
    for metric in metrics:
        key = metric.state_key()
        if key is None:
            states.append(metric.batch_state(xp, P, T))
            continue
        if key not in shared:
            shared[key] = metric.batch_state(xp, P, T)
        states.append(shared[key])
    return states


def metric_values(
    metrics: Sequence[Metric], sums: Sequence[float], samples: float, prefix: str = ""
) -> dict[str, float]:
    """``{prefix + name: value}`` from the metrics' states summed and laid end to end in
    ``sums`` (``state_size()`` values each, in order)."""
    out: dict[str, float] = {}
    start = 0
    for metric in metrics:
        stop = start + metric.state_size()
        out[prefix + metric.name] = float(metric.result(sums[start:stop], samples))
        start = stop
    if start != len(sums):
        raise ValueError(f"the metrics' states hold {start} sums, but {len(sums)} were given")
    return out


def check_loss(metric: str, loss: Loss, wants: str) -> None:
    """Refuse ``metric`` for a loss whose outputs it cannot read, saying which losses fit.

    ``wants``: ``"classes"`` (any classification loss: bce, bce_with_logits, cross_entropy),
    ``"labels"`` (integer class labels: cross_entropy) or ``"values"`` (outputs on the scale
    of the targets: mse and other regression losses, or bce's probabilities)."""
    if wants == "classes" and loss.expects == "any":
        raise ValueError(
            f"{metric} needs a classification loss (bce, bce_with_logits or cross_entropy); the loss is {loss!r}"
        )
    if wants == "labels" and not loss.labels:
        raise ValueError(
            f"{metric} needs integer class labels and one output per class (loss='cross_entropy'); the loss is {loss!r}"
        )
    if wants == "values" and loss.expects == "logits":
        raise ValueError(
            f"{metric} compares outputs with targets on their scale, but {loss!r} trains logits (raw scores) "
            "and its targets are classes: use a classification metric (accuracy, precision, recall, f1)"
        )

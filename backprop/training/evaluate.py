"""`evaluate`: mean loss and metrics over data already on the device, in inference mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends import Array
from ..batching import slices
from ..losses import Loss
from ..metrics import Metric, metric_values
from ..metrics.base import batch_states
from .protocol import TrainableModel

__all__ = ["evaluate", "evaluate_sums"]


def evaluate(
    model: TrainableModel,
    X: Array,
    T: Array,
    loss: Loss,
    metrics: Sequence[Metric] = (),
    batch_size: int = 1024,
    prefix: str = "",
) -> dict[str, float]:
    """Mean loss and metrics over checked device data, in inference mode (one host sync)."""
    sums = evaluate_sums(model, X, T, loss, metrics, batch_size)
    n = X.shape[0]
    return {prefix + "loss": sums[0] / n, **metric_values(metrics, sums[1:], n, prefix)}


def evaluate_sums(
    model: TrainableModel, X: Array, T: Array, loss: Loss, metrics: Sequence[Metric] = (), batch_size: int = 1024
) -> list[float]:
    """``[loss sum, each metric's summed state...]`` over the rows of ``(X, T)`` (host floats,
    one sync; `Metric.batch_state`): sums rather than means, so that parts of a data set
    evaluated apart (by several processes) add up to the whole. No rows give zeros."""
    backend = model._require_built()
    xp = backend.xp
    if X.shape[0] == 0:
        return [0.0] * (1 + sum(m.state_size() for m in metrics))
    totals: list[Any] = [0.0] * (1 + len(metrics))
    for Xb, Tb in slices(X, T, max(batch_size, 1024)):
        P, _ = model.apply(Xb, False)
        totals[0] = totals[0] + loss.value(backend.ops, P, Tb) * P.shape[0]
        for i, state in enumerate(batch_states(metrics, xp, P, Tb)):
            totals[i + 1] = totals[i + 1] + state
    return backend.to_floats([xp.asarray(t, dtype=backend.dtype) for t in totals])

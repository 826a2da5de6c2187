"""`evaluate`: mean loss and metrics over data already on the device, in inference mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends import Array
from ..batching import slices
from ..losses import Loss
from ..metrics import Metric
from .protocol import TrainableModel

__all__ = ["evaluate"]


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
    backend = model._require_built()
    xp = backend.xp
    n = X.shape[0]
    totals: list[Any] = [0.0] * (1 + len(metrics))
    for Xb, Tb in slices(X, T, max(batch_size, 1024)):
        P, _ = model.apply(Xb, False)
        totals[0] = totals[0] + loss.value(backend.ops, P, Tb) * P.shape[0]
        for i, metric in enumerate(metrics):
            totals[i + 1] = totals[i + 1] + metric.batch_sum(xp, P, Tb)
    host = backend.to_floats([xp.asarray(t, dtype=backend.dtype) for t in totals])
    names = ["loss"] + [m.name for m in metrics]
    return {prefix + name: v / n for name, v in zip(names, host)}

"""Callbacks that record: `RecordHistory` (each epoch's values into a `History`) and
`GradientNorms` (each parameter's gradient norm, ``fit(record_grad_norms=True)``)."""

from __future__ import annotations

from typing import Any

from ..history import History
from .base import BatchLogs, Callback, Logs

__all__ = ["GradientNorms", "RecordHistory"]


class RecordHistory(Callback):
    """Append each epoch's values to ``history`` (default: `fit`'s, ``params["history"]``).
    `fit` always runs one, first, on the `History` it returns."""

    needs_epoch_values = False  # it only keeps what it is given, whenever that comes

    def __init__(self, history: History | None = None):
        self.history = history

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        history = self.history if self.history is not None else self.params["history"]
        history.append(epoch, logs)


class GradientNorms(Callback):
    """Report ``"grad_norm/<param>"`` per epoch: the mean over the epoch's steps of each
    parameter's gradient L2 norm before clipping, the tutorial's vanishing/exploding-gradient
    diagnosis. The norms stay on the device and are read with the epoch's losses; reading
    gradients mid-step makes the step run eagerly (no CUDA-graph replay)."""

    needs_epoch_values = False  # the norms come with the epoch's values, whenever those are read

    def __init__(self) -> None:
        self._params: list[tuple[str, Any, Any]] = []

    def on_train_begin(self, logs: Logs) -> None:
        self._params = [(f"grad_norm/{p.name}", p, p.backend.xp) for p in self.model.parameters()]

    def on_backward_end(self, batch: int, logs: BatchLogs) -> None:
        for key, p, xp in self._params:
            logs.record(key, xp.sqrt(xp.sum(p.grad * p.grad)))

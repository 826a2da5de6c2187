"""Callbacks that record: `RecordHistory` (each epoch's values into a `History`) and
`GradientNorms` (each parameter's gradient norm, ``fit(record_grad_norms=True)``)."""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..history import History
from .base import BatchLogs, Callback, Logs

__all__ = ["LOSS_GROWTH", "GradientNorms", "LossGrowthWarning", "RecordHistory"]


class LossGrowthWarning(RuntimeWarning):
    """The training loss grew far beyond its first value while staying finite: training is
    diverging (a NaN or infinite loss raises `TrainingDivergedError` instead)."""


#: how many times its first epoch's value the training loss may grow before a warning
LOSS_GROWTH = 1e4


class RecordHistory(Callback):
    """Append each epoch's values to ``history`` (default: `fit`'s, ``params["history"]``).
    `fit` always runs one, first, on the `History` it returns.

    It also watches the training loss: when it grows beyond `LOSS_GROWTH` times the first
    epoch's value of this run while staying finite (a learning rate too high for the data's
    scale, say), it warns once (`LossGrowthWarning`) and records the warning in the history,
    where a checkpoint keeps it."""

    needs_epoch_values = False  # it only keeps what it is given, whenever that comes

    def __init__(self, history: History | None = None):
        self.history = history
        self._first: tuple[int, float] | None = None
        self._warned = False

    def on_train_begin(self, logs: Logs) -> None:
        self._first, self._warned = None, False

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        history = self.history if self.history is not None else self.params["history"]
        history.append(epoch, logs)
        loss = logs.get("loss")
        if not isinstance(loss, float) or not math.isfinite(loss):
            return
        if self._first is None:
            self._first = (epoch, loss)
            return
        first_epoch, first = self._first
        if not self._warned and first > 0 and loss > LOSS_GROWTH * first:
            self._warned = True
            lr = getattr(self.optimizer, "lr", None)
            message = (
                f"the training loss grew from {first:.4g} (epoch {first_epoch}) to {loss:.4g} in epoch {epoch}, "
                f"{loss / first:.3g} times, though it is still finite: training is diverging. Lower the learning "
                f"rate{f' (now {lr:g})' if lr is not None else ''}, clip gradients (clip_grad_norm=1.0) or check "
                "the data's scale"
            )
            history.warn(epoch, message)
            warnings.warn(message, LossGrowthWarning, stacklevel=2)


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

"""Callbacks that record: `RecordHistory` (each epoch's values into a `History`) and
`GradientNorms` (each parameter's gradient norm, ``fit(record_grad_norms=True)``)."""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..history import History
from ..validation import InvalidParameterError
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
    """Report gradient L2 norms per epoch, before clipping: the tutorial's
    vanishing/exploding-gradient diagnosis (``fit(record_grad_norms=True)`` adds one with the
    defaults).

    - ``per_parameter=True``: ``"grad_norm/<param>"``, ``||dL/dW||_2`` of each parameter
      (``"grad_norm/0.W"``, ``"grad_norm/0.b"``, ...);
    - ``total=True``: ``"grad_norm"``, the global norm ``sqrt(sum_p ||dL/dp||_2^2)`` over all
      parameters, the one ``clip_grad_norm=`` compares with its threshold.

    Each value is the mean over the epoch's steps; they land in the epoch's logs, hence in the
    `History`, `CSVLogger` and `TensorBoard`. The norms stay on the device and are read with the
    epoch's losses (no sync of their own); reading gradients mid-step makes the step run
    eagerly (no CUDA-graph replay). In data-parallel training they are the norms of the
    gradients summed over the ranks, the same on every rank."""

    needs_epoch_values = False  # the norms come with the epoch's values, whenever those are read

    def __init__(self, per_parameter: bool = True, total: bool = False) -> None:
        for name, value in (("per_parameter", per_parameter), ("total", total)):
            if not isinstance(value, bool):
                raise InvalidParameterError(f"GradientNorms {name} must be True or False; got {value!r}")
        if not (per_parameter or total):
            raise InvalidParameterError(
                "GradientNorms records nothing with per_parameter=False and total=False; set one of them to True"
            )
        self.per_parameter, self.total = per_parameter, total
        self._params: list[tuple[str, Any, Any]] = []

    def on_train_begin(self, logs: Logs) -> None:
        self._params = [(f"grad_norm/{p.name}", p, p.backend.xp) for p in self.model.parameters()]

    def on_backward_end(self, batch: int, logs: BatchLogs) -> None:
        squares = []
        for key, p, xp in self._params:
            square = xp.sum(p.grad * p.grad)
            if self.per_parameter:
                logs.record(key, xp.sqrt(square))
            squares.append(square)
        if self.total and squares:
            xp = self._params[0][2]
            logs.record("grad_norm", xp.sqrt(sum(squares[1:], squares[0])))

    def __repr__(self) -> str:
        return f"GradientNorms(per_parameter={self.per_parameter}, total={self.total})"

"""`EarlyStopping`: stop `fit` when a monitored value stops improving, keep the best weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..validation import choice, flag, integer, real
from .base import Callback, Logs, TrainedModel
from .monitor import improves, maximizes, missing_monitor

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop training after ``patience`` epochs without improvement of ``monitor``.

    An epoch improves when the value beats the best so far by more than ``min_delta``
    (lower is better for losses and errors, higher for accuracy, precision, recall, F1 and R²
    (`backprop.metrics.higher_is_better`); ``mode="min"``/``"max"`` overrides). With
    ``restore_best_weights`` the model ends with the weights of its best epoch, whether
    training stopped early or ran out of epochs (a host copy is kept whenever the value
    improves). After `fit`, ``best_epoch``, ``best_value`` and ``stopped_epoch`` (``None`` if
    training ran to the end) tell what happened.

    As a callback (``fit(early_stopping=...)`` or ``fit(callbacks=[...])``): it checks the
    monitored key when training begins, sets ``model.stop_training`` when patience runs out
    and, when training ends without an error, restores the best weights and tells the
    callbacks after it in ``logs["restored_epoch"]`` (a `ModelCheckpoint` then saves them).
    Put it before a `ModelCheckpoint` in ``callbacks=``, as `fit`'s keyword options do.
    """

    needs_epoch_values = True  # it decides, as each epoch ends, whether the next one trains

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ):
        mode = choice(mode, "mode", ("auto", "min", "max"))
        patience = integer(patience, "patience")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(real(min_delta, "min_delta", owner="EarlyStopping"))  # either sign: Keras' habit
        self.mode = mode
        self.restore_best_weights = flag(restore_best_weights, "restore_best_weights", owner="EarlyStopping")
        self.best_epoch: int | None = None
        self.best_value = math.nan
        self.stopped_epoch: int | None = None
        self._best_state: dict[str, np.ndarray] | None = None
        self._wait = 0
        self._last_epoch: int | None = None

    @property
    def maximize(self) -> bool:
        return maximizes(self.monitor, self.mode)

    def start(self, available: list[str]) -> None:
        """Reset for a new `fit`; ``available`` lists the keys each epoch will report."""
        if self.monitor not in available:
            raise missing_monitor("early stopping", self.monitor, available)
        self.best_epoch, self.best_value, self.stopped_epoch = None, math.nan, None
        self._best_state, self._wait, self._last_epoch = None, 0, None

    def update(self, epoch: int, values: dict[str, float], model: TrainedModel) -> bool:
        """Record an epoch's values; returns True when training should stop."""
        self._last_epoch = epoch
        value = values[self.monitor]
        if self.best_epoch is None or improves(value, self.best_value, self.maximize, self.min_delta):
            self.best_epoch, self.best_value, self._wait = epoch, value, 0
            if self.restore_best_weights:
                self._best_state = model.state_dict()
            return False
        self._wait += 1
        if self._wait > self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def finish(self, model: TrainedModel) -> bool:
        """Put the best epoch's weights back when asked to and training went on after it
        (stopped early or not); returns whether the weights changed."""
        if self.restore_best_weights and self._best_state is not None and self.best_epoch != self._last_epoch:
            model.load_state_dict(self._best_state)
            return True
        return False

    # ------------------------------------------------------------------ as a callback
    def on_train_begin(self, logs: Logs) -> None:
        self.start(list(self.params.get("metrics", [])))

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.update(epoch, logs, self.model):
            self.model.stop_training = True

    def on_train_end(self, logs: Logs) -> None:
        if "error" not in logs and self.finish(self.model):
            logs["restored_epoch"] = self.best_epoch

    def __repr__(self) -> str:
        return f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta})"

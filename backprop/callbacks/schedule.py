"""`LearningRateScheduler`: step a learning-rate schedule once per epoch."""

from __future__ import annotations

from typing import Any

from ..optim.lr_scheduler import ReduceLROnPlateau
from ..validation import InvalidParameterError
from .base import Callback, Logs

__all__ = ["LearningRateScheduler"]


class LearningRateScheduler(Callback):
    """Step ``scheduler``, a `bp.optim.lr_scheduler` schedule, as each epoch ends
    (``fit(scheduler=...)``). `ReduceLROnPlateau` is given the epoch's ``val_loss``, else its
    ``loss``. The epoch's ``"lr"`` is the rate it trained with, before this step."""

    needs_epoch_values = True  # the next epoch must train with the new rate

    def __init__(self, scheduler: Any):
        if not callable(getattr(scheduler, "step", None)):
            raise InvalidParameterError(
                f"scheduler must be a bp.optim.lr_scheduler schedule (with a step method), such as "
                f"StepLR(optimizer, 10); got {type(scheduler).__name__} {scheduler!r}"
            )
        self.scheduler = scheduler

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])
        else:
            self.scheduler.step()

    def __repr__(self) -> str:
        return f"LearningRateScheduler({self.scheduler!r})"

"""Callbacks: objects `fit` calls at the beginning and end of training, epochs and batches.

The protocol is Keras's (`Callback`, `CallbackList`); what `fit`'s keyword options do is
done by the callbacks here, and ``fit(callbacks=[...])`` adds your own:

    class PrintLoss(bp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            print(epoch, logs["loss"])

    model.fit(X, y, loss="mse", optimizer=opt, epochs=5, callbacks=[PrintLoss()], verbose=0)

| ``fit`` option              | callback                                       |
|-----------------------------|------------------------------------------------|
| (always)                    | `RecordHistory` into the returned `History`    |
| ``record_grad_norms=True``  | `GradientNorms`                                |
| ``scheduler=s``             | `LearningRateScheduler` (s)                    |
| ``early_stopping=3``        | `EarlyStopping` (patience=3)                   |
| ``checkpoint=path``         | `ModelCheckpoint` (path, every, extra)         |
| ``verbose=1``               | `ProgressBar` (verbose=1)                      |
"""

from __future__ import annotations

from .base import BatchLogs, Callback, CallbackList, TrainedModel
from .checkpoint import ModelCheckpoint
from .early_stopping import EarlyStopping
from .progress import ProgressBar
from .recorders import GradientNorms, LossGrowthWarning, RecordHistory
from .schedule import LearningRateScheduler

__all__ = [
    "BatchLogs",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "GradientNorms",
    "LearningRateScheduler",
    "LossGrowthWarning",
    "ModelCheckpoint",
    "ProgressBar",
    "RecordHistory",
    "TrainedModel",
]

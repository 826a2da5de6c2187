"""Callbacks: objects `fit` calls at the beginning and end of training, epochs and batches.

The protocol is Keras's (`Callback`, `CallbackList`); what `fit`'s keyword options do is
done by the callbacks here, and ``fit(callbacks=[...])`` adds your own:

    class PrintLoss(bp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            print(epoch, logs["loss"])

    model.fit(X, y, loss="mse", optimizer=opt, epochs=5, callbacks=[PrintLoss()], verbose=0)

``fit`` option                         callback
=====================================  ==============================================
(always)                               `RecordHistory` into the returned `History`
``record_grad_norms=True``             `GradientNorms`
``scheduler=s``                        `LearningRateScheduler` (s)
``early_stopping=3``                   `EarlyStopping` (patience=3)
``checkpoint=path``                    `ModelCheckpoint` (path, every, extra)
``verbose=1``                          `ProgressBar` (verbose=1)
=====================================  ==============================================

Loggers and monitors to add with ``callbacks=[...]``: `CSVLogger` (a CSV row per epoch),
`TensorBoard` (event files, needs tensorboardX), ``ModelCheckpoint(path,
save_best_only=True, monitor="val_loss")`` (the best epoch's model only) and
``GradientNorms(total=True)`` (the global gradient norm too). Every epoch's logs already hold
``"lr"``, the learning rate it trained with, so the loggers write it with the rest.
=======
| ``fit`` option              | callback                                       |
|-----------------------------|------------------------------------------------|
| (always)                    | `RecordHistory` into the returned `History`    |
| ``record_grad_norms=True``  | `GradientNorms`                                |
| ``scheduler=s``             | `LearningRateScheduler` (s)                    |
| ``early_stopping=3``        | `EarlyStopping` (patience=3)                   |
| ``checkpoint=path``         | `ModelCheckpoint` (path, every, extra)         |
| ``verbose=1``               | `ProgressBar` (verbose=1)                      |

Loggers and monitors to add with ``callbacks=[...]``: `CSVLogger` (a CSV row per epoch),
`TensorBoard` (event files, needs tensorboardX), ``ModelCheckpoint(path,
save_best_only=True, monitor="val_loss")`` (the best epoch's model only) and
``GradientNorms(total=True)`` (the global gradient norm too). Every epoch's logs already hold
``"lr"``, the learning rate it trained with, so the loggers write it with the rest.
"""

from __future__ import annotations

from .base import BatchLogs, Callback, CallbackList, TrainedModel
from .checkpoint import ModelCheckpoint
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .progress import ProgressBar
from .recorders import GradientNorms, LossGrowthWarning, RecordHistory
from .schedule import LearningRateScheduler
from .tensorboard import TensorBoard

__all__ = [
    "BatchLogs",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "GradientNorms",
    "LearningRateScheduler",
    "LossGrowthWarning",
    "ModelCheckpoint",
    "ProgressBar",
    "RecordHistory",
    "TensorBoard",
    "TrainedModel",
]

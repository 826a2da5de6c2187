"""`ModelCheckpoint`: save the model and its training state while `fit` runs."""

from __future__ import annotations

import os
from typing import Any

from ..checkpoint import checkpoint_contents
from ..checkpoint.archive import write_archive
from ..checkpoint.save import checkpoint_path
from ..validation import integer
from .base import Callback, Logs

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(Callback):
    """Save model, optimizer, learning-rate schedule, random generators, epoch, history and
    ``extra`` (see `bp.save_checkpoint`) to ``path``, atomically: every ``every`` epochs and
    once more at the end (``fit(checkpoint=path, checkpoint_every=, checkpoint_extra=)``).

    Each completed epoch is kept as a host snapshot, so that if training is interrupted
    (Ctrl-C) or diverges (a `FloatingPointError`, such as `bp.TrainingDivergedError`) the last
    completed epoch is saved before the error propagates. When an `EarlyStopping` before it
    restored the best weights (``logs["restored_epoch"]``), the final save holds those.
    ``scheduler``: the schedule to save; default: `fit`'s (``params["scheduler"]``).

    In data-parallel training every rank holds the same state; rank 0 writes it and every rank
    waits at a barrier until the file is complete, so that no rank reads an older one.
    (After an error or an interruption there is no barrier: the other ranks may be gone.)
    """

    needs_epoch_values = True  # its snapshot is of the weights as the epoch ends

    def __init__(self, path: str | os.PathLike[str], every: int = 1, extra: dict[str, Any] | None = None,
                 scheduler: Any = None):  # fmt: skip
        every = integer(every, "every", minimum=1)
        self.path = checkpoint_path(path, "checkpoint")  # refused before training, not after an epoch
        self.every, self.extra, self.scheduler = every, extra, scheduler
        self._snapshot: Any = None
        self._unsaved = False

    def on_train_begin(self, logs: Logs) -> None:
        self._snapshot, self._unsaved = None, False

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._take(epoch)
        if epoch % self.every == 0:
            self._write()

    def on_train_end(self, logs: Logs) -> None:
        error = logs.get("error")
        if error is not None and not isinstance(error, (KeyboardInterrupt, FloatingPointError)):
            return  # not a run that stopped short: an error to report as it is, saving nothing
        if error is None and "restored_epoch" in logs:
            history = self.params["history"]
            self._take(len(history) and history.epochs[-1])  # the restored weights, at the last epoch trained
        self._write(wait=error is None)

    @property
    def holds_state(self) -> bool:
        """Whether this run has written ``path``, or holds a completed epoch it writes there
        as training ends: only then may a message say the last good state is in ``path`` (a
        run that fails in its first epoch has written nothing, and the file may be another
        run's)."""
        return self._snapshot is not None

    def _take(self, epoch: int) -> None:
        """A host snapshot of everything saved, valid while training goes on (rank 0 only: the
        others write nothing)."""
        if not self.is_root:
            self._unsaved = True  # to wait at the same barriers as rank 0
            return
        scheduler = self.scheduler if self.scheduler is not None else self.params.get("scheduler")
        self._snapshot = checkpoint_contents(
            self.model, self.optimizer, scheduler=scheduler, epoch=epoch, history=self.params.get("history"),
            extra=self.extra,
        )
        self._unsaved = True

    def _write(self, wait: bool = True) -> None:
        if not self._unsaved:
            return
        if self.is_root:
            write_archive(self.path, *self._snapshot)
        self._unsaved = False
        ranks = self.params.get("ranks")
        if ranks is not None and wait:
            ranks.barrier()  # the file is complete before any rank goes on

    def __repr__(self) -> str:
        return f"ModelCheckpoint({self.path!r}, every={self.every})"

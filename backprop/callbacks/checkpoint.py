"""`ModelCheckpoint`: save the model and its training state while `fit` runs, every few
epochs or only when a monitored value improves (``save_best_only=True``)."""

from __future__ import annotations

import math
import os
from typing import Any

from ..checkpoint import checkpoint_contents
from ..checkpoint.archive import write_archive
from ..checkpoint.save import checkpoint_path
from ..validation import InvalidParameterError, choice, integer
from .base import Callback, Logs
from .monitor import improves, maximizes, missing_monitor

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

    **Best model only** (Keras's names): with ``save_best_only=True`` the file is written only
    at the end of an epoch whose ``monitor`` value (any key of the epoch's logs, default
    ``"val_loss"``) beats the best so far by more than ``min_delta`` (lower is better, or
    higher for ``"acc"``-like keys with ``mode="auto"``; ``"min"``/``"max"`` say so), and not
    at the end of training: ``path`` always holds the best epoch's model, history up to that
    epoch and training state (resuming from it continues from that epoch). The file is
    replaced atomically, so a crash while writing leaves the previous best intact. An epoch
    whose value is NaN never counts as better. When ``path`` already exists and the `History`
    being continued (``fit(history=...)``, a resumed run) holds the monitored key, its best
    value is the one to beat, so a resumed run does not overwrite a better model with a worse
    one. After `fit`, ``best_epoch`` and ``best_value`` tell which epoch is in the file
    (``None`` and NaN when this run wrote none). A monitored key that the epoch's logs lack
    raises a `ValueError` listing the keys they have (at the start of training when it is a
    ``val_*`` key and `fit` has no validation data). ``every`` is ignored then.
    """

    needs_epoch_values = True  # its snapshot is of the weights as the epoch ends

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int = 1,
        extra: dict[str, Any] | None = None,
        scheduler: Any = None,
        *,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = False,
        min_delta: float = 0.0,
    ):
        every = integer(every, "every", minimum=1, owner="ModelCheckpoint")
        mode = choice(mode, "mode", ("auto", "min", "max"), owner="ModelCheckpoint")
        if not isinstance(monitor, str) or not monitor:
            raise InvalidParameterError(
                f"ModelCheckpoint monitor must be a log key such as 'val_loss'; got {monitor!r}"
            )
        if not isinstance(save_best_only, bool):
            raise InvalidParameterError(
                f"ModelCheckpoint save_best_only must be True or False; got {save_best_only!r}"
            )
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta):
            raise InvalidParameterError(f"ModelCheckpoint min_delta must be a finite number; got {min_delta!r}")
        self.path = checkpoint_path(path, "checkpoint")  # refused before training, not after an epoch
        self.every, self.extra, self.scheduler = every, extra, scheduler
        self.monitor, self.mode, self.save_best_only = monitor, mode, save_best_only
        self.min_delta = abs(float(min_delta))
        self.best_epoch: int | None = None
        self.best_value = math.nan
        self._to_beat = math.nan
        self._snapshot: Any = None
        self._unsaved = False

    @property
    def maximize(self) -> bool:
        """Whether higher values of ``monitor`` are better (see `mode`)."""
        return maximizes(self.monitor, self.mode)

    def on_train_begin(self, logs: Logs) -> None:
        self._snapshot, self._unsaved = None, False
        self.best_epoch, self.best_value, self._to_beat = None, math.nan, math.nan
        if not self.save_best_only:
            return
        keys = list(self.params.get("metrics", []))
        if self.monitor.startswith("val_") and keys and not any(key.startswith("val_") for key in keys):
            raise missing_monitor("ModelCheckpoint", self.monitor, keys)  # no validation data: it never comes
        history = self.params.get("history")
        if history is not None and self.monitor in history and os.path.exists(self.path):
            self._to_beat = _best(history[self.monitor], self.maximize)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            if self.monitor not in logs:
                raise missing_monitor("ModelCheckpoint", self.monitor, logs)
            value = float(logs[self.monitor])
            if improves(value, self._to_beat, self.maximize, self.min_delta):
                self.best_epoch, self.best_value, self._to_beat = epoch, value, value
                self._take(epoch)
                self._write()
            return
        self._take(epoch)
        if epoch % self.every == 0:
            self._write()

    def on_train_end(self, logs: Logs) -> None:
        if self.save_best_only:
            return  # every better epoch was written as it ended
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

    def where_saved(self) -> str:
        """What a run that fails (diverges) should be told of this file, once it `holds_state`:
        the best epoch's state for a best-only checkpoint (the good epochs after it were not
        saved), else the last good epoch's."""
        if self.save_best_only:
            return (
                f"The best state so far (epoch {self.best_epoch}, {self.monitor} {self.best_value:.4g}) "
                f"is in {self.path!r}."
            )
        return f"The last good state is in {self.path!r}."

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
        if self.save_best_only:
            return f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, mode={self.mode!r}, save_best_only=True)"
        return f"ModelCheckpoint({self.path!r}, every={self.every})"


def _best(values: list[float], maximize: bool) -> float:
    """The best of ``values`` (NaNs left out; NaN if none is a number)."""
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return math.nan
    return max(numbers) if maximize else min(numbers)

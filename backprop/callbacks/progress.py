"""`ProgressBar`: what `fit` prints while it trains (``verbose=``), as a callback."""

from __future__ import annotations

from typing import TextIO

from ..progress import Progress
from .base import BatchLogs, Callback, Logs

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Report progress with a `backprop.progress.Progress`: ``verbose=1`` a bar per epoch on a
    terminal (about 20 lines otherwise), ``2`` one line per epoch, ``0`` nothing. The running
    loss is read from the device at most twice a second, and only when a bar shows it.
    `fit` adds one for ``verbose>0`` unless ``callbacks=`` has one. In data-parallel training
    only rank 0 prints: the epoch's values are those of all ranks, but the running loss a bar
    shows during an epoch is rank 0's own (reading the others' would cost a collective)."""

    def __init__(self, verbose: int = 1, stream: TextIO | None = None):
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        self.verbose, self.stream = verbose, stream
        self.progress: Progress | None = None

    @property
    def needs_epoch_values(self) -> bool:
        return self.verbose > 0  # a silent bar shows nothing, so it waits for nothing

    def on_train_begin(self, logs: Logs) -> None:
        self.progress = None
        if not self.is_root:
            return
        first = self.params.get("initial_epoch", 0)
        self.progress = Progress(self.params["epochs"] - first, self.params.get("steps"), verbose=self.verbose,
                                 initial_epoch=first, stream=self.stream)  # fmt: skip

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        if self.progress is not None:
            self.progress.start_epoch(epoch)

    def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
        if self.progress is not None:
            self.progress.step(lambda: logs["loss"])

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.progress is not None:
            self.progress.end_epoch(epoch, logs)

    def on_train_end(self, logs: Logs) -> None:
        if self.progress is not None:
            self.progress.close()

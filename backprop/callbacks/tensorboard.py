"""`TensorBoard`: each epoch's values (and optionally per-step losses, weight and gradient
histograms) as TensorBoard event files, written through tensorboardX (an optional dependency,
imported only when a `TensorBoard` is made)."""

from __future__ import annotations

import numbers
import os
import time
from typing import Any

from ..validation import InvalidParameterError, choice, integer
from .base import BatchLogs, Callback, Logs

__all__ = ["INSTALL_HINT", "TensorBoard"]

INSTALL_HINT = (
    "bp.callbacks.TensorBoard needs tensorboardX: pip install 'backprop-nn[tensorboard]' (or pip install tensorboardX "
    "tensorboard)"
)


class TensorBoard(Callback):
    """Write what training reports to ``log_dir`` for TensorBoard (``tensorboard --logdir
    log_dir``), as Keras's callback does, in three runs (sub-folders):

    - ``train``: every value of each epoch's logs but the validation ones, tag = key
      (``loss``, ``accuracy``, ``lr``, ``grad_norm/0.W``...), step = the epoch number;
    - ``validation``: the ``val_*`` values under the training tag they compare with
      (``val_loss`` as ``loss``), so TensorBoard draws both curves in one chart;
    - ``batch`` (``update_freq="batch"`` or an integer ``n``): ``batch_loss`` every ``n``
      steps, step = the number of steps trained since epoch 1: the epoch's running mean loss
      so far (as in Keras), read from the device when written (a host sync each time; in
      data-parallel training rank 0's own share).

    ``histogram_freq=n`` (``0``: none) adds, every ``n`` epochs, a histogram of each
    parameter's values (``weights/<param>``) and of its gradient from the epoch's last step
    (``gradients/<param>``, after clipping) in ``train``; these are read as each epoch ends, so
    `fit` then reads every epoch's values as it ends instead of in blocks.

    Scalars are stored as float32, as TensorBoard does. Without histograms, epochs' values may
    come late, in blocks (see `Callback.needs_epoch_values`); each epoch is written once, in
    order, and the files are flushed after each. A resumed run (``fit(initial_epoch=n, ...)``)
    adds new event files to the same runs and marks the steps after ``n`` as restarted, so
    TensorBoard hides what an interrupted run wrote for the epochs trained again. In
    data-parallel training only rank 0 writes.

    Needs tensorboardX (``pip install 'backprop-nn[tensorboard]'``): an `ImportError` saying
    so comes when the callback is made.
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", histogram_freq: int = 0,
                 update_freq: str | int = "epoch"):  # fmt: skip
        if not isinstance(log_dir, (str, os.PathLike)):
            raise InvalidParameterError(
                f"TensorBoard log_dir must be a folder name; got {type(log_dir).__name__} {log_dir!r}"
            )
        if os.path.exists(log_dir) and not os.path.isdir(log_dir):
            raise InvalidParameterError(
                f"TensorBoard log_dir {os.fspath(log_dir)!r} is a file: name a folder (made if missing)"
            )
        histogram_freq = integer(histogram_freq, "histogram_freq", owner="TensorBoard")
        if isinstance(update_freq, str):
            update_freq = choice(update_freq, "update_freq", ("epoch", "batch"), owner="TensorBoard")
        else:
            update_freq = integer(update_freq, "update_freq", minimum=1, owner="TensorBoard")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.update_freq: str | int = update_freq
        self._every = 1 if update_freq == "batch" else update_freq if isinstance(update_freq, int) else 0
        self._writer_class = _summary_writer_class()  # fails now, not when training begins
        self._writers: dict[str, Any] = {}
        self._step = 0
        self._restart: int | None = None  # the epoch a resumed run starts after
        self._batch_restart: int | None = None  # the step it starts after

    @property
    def needs_epoch_values(self) -> bool:
        """Only histograms must be taken as each epoch ends (they read the weights then)."""
        return self.histogram_freq > 0

    def on_train_begin(self, logs: Logs) -> None:
        self._writers = {}
        initial = int(self.params.get("initial_epoch", 0))
        self._step = initial * int(self.params.get("steps") or 0)
        self._restart = initial if initial > 0 else None
        self._batch_restart = self._step if initial > 0 else None

    def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
        self._step += 1
        if self._every and self._step % self._every == 0 and self.is_root:
            loss = logs["loss"]  # the running mean: read from the device now
            self._writer("batch", self._batch_restart).add_scalar("batch_loss", loss, self._step)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if not self.is_root:
            return
        for key, value in logs.items():
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                continue
            run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(run, self._restart).add_scalar(tag, float(value), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._histograms(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: Logs) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    def _histograms(self, epoch: int) -> None:
        writer = self._writer("train", self._restart)
        for p in self.model.parameters():
            writer.add_histogram(f"weights/{p.name}", p.backend.to_numpy(p.data), epoch)
            if p.grad is not None:
                writer.add_histogram(f"gradients/{p.name}", p.backend.to_numpy(p.grad), epoch)

    def _writer(self, run: str, restart: int | None) -> Any:
        """The run's writer, made when first written to; ``restart``: the last step the run
        kept before this one (a resumed run), after which TensorBoard hides older events."""
        writer = self._writers.get(run)
        if writer is None:
            purge = None if restart is None else restart + 1
            # tensorboardX names a file by the second it was made (and the host): two runs in
            # one second would share a file; the nanoseconds keep their names apart, in order
            writer = self._writer_class(os.path.join(self.log_dir, run), purge_step=purge, flush_secs=30,
                                        filename_suffix=f".{time.time_ns()}")  # fmt: skip
            self._writers[run] = writer
        return writer

    def __repr__(self) -> str:
        return (
            f"TensorBoard({self.log_dir!r}, histogram_freq={self.histogram_freq}, update_freq={self.update_freq!r})"
        )


def _summary_writer_class() -> Any:
    """tensorboardX's ``SummaryWriter``, imported now (never by ``import backprop``)."""
    try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415 - optional, imported only when asked for
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return SummaryWriter

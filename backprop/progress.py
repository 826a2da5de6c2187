"""`Progress`: what `fit` prints while it trains.

Three modes, chosen once when the reporter is built:

- ``verbose=0``: silent; nothing is ever written and no clock is read.
- otherwise a table: a line of column names, then one line per epoch, each value in a
  fixed-width column (`backprop.progress_format`)::

                     loss  val_loss  steps/s      time
        epoch  3/10  0.1235    0.2346    10.1k      1.5s

  ``verbose=1`` prints the first and last epoch and about 20 evenly spaced ones in between;
  ``verbose=2`` every epoch. Lines fit the terminal (``COLUMNS``, else 80): the least useful
  columns go first, the validation values never.
- ``verbose>=1`` on a terminal with `tqdm` installed: the same table, and while an epoch runs a
  bar under it (``epoch  3/10  42%|####   |  17/41, loss 0.1235, 10.1k steps/s``) that fits the
  terminal's width and is replaced by the epoch's line when the epoch ends.

The running loss is passed as a zero-argument callable because reading a device scalar is a
host sync: it is called at most once per ``refresh_seconds`` and only when a bar shows it.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TextIO

from .progress_format import (
    NUMBER_WIDTH,
    RATE_WIDTH,
    Table,
    format_duration,
    format_number,
    format_rate,
    format_values,
    layout,
)

__all__ = ["Progress", "format_duration", "format_values", "running_tail"]

#: about this many epoch lines (plus the first) with ``verbose=1``
TARGET_LINES = 20


class Progress:
    """Reports training progress to ``stream`` (default: ``sys.stdout`` at construction).

    ``epochs`` is the number of epochs this run trains and ``initial_epoch`` the number done
    before it (a resumed run), so the epochs reported are ``initial_epoch + 1`` to
    ``initial_epoch + epochs``, each shown as ``k/initial_epoch + epochs``.
    ``steps_per_epoch`` sizes the bars (``None`` if unknown). ``width`` is the most characters
    a line may take (default: the terminal's, from ``COLUMNS`` or the terminal, else 80).
    ``clock`` returns seconds and exists for tests; ``use_tqdm=False`` forces plain lines even
    on a terminal.

    Call ``start_epoch(epoch)``, then ``step(running_loss)`` after every optimizer step,
    then ``end_epoch(epoch, values)``; finally ``close()`` (or use it as a context manager).
    Keys containing ``"/"`` (per-parameter diagnostics such as ``"grad_norm/0.W"``) are kept
    out of the display.
    """

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int | None,
        *,
        verbose: int = 1,
        initial_epoch: int = 0,
        stream: TextIO | None = None,
        refresh_seconds: float = 0.5,
        clock: Callable[[], float] = time.perf_counter,
        use_tqdm: bool | None = None,
        width: int | None = None,
    ) -> None:
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        if refresh_seconds < 0:
            raise ValueError(f"refresh_seconds must be >= 0; got {refresh_seconds!r}")
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 20):
            raise ValueError(f"width must be a whole number of characters >= 20, or None; got {width!r}")
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self.initial_epoch = initial_epoch
        self.last_epoch = initial_epoch + epochs
        self.stream: TextIO = sys.stdout if stream is None else stream
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._every = max(1, math.ceil(epochs / TARGET_LINES)) if verbose == 1 else 1
        self._tqdm = _tqdm_class(self.stream) if verbose and use_tqdm is not False else None
        self._fixed_width = width
        self.width = width if width is not None else shutil.get_terminal_size((80, 24)).columns
        self._digits = len(str(self.last_epoch))
        self._started = clock() if verbose else 0.0
        self._epoch_start = self._last_refresh = self._started
        self._steps = self._pending = 0
        self._bar: Any = None
        self._table: Table | None = None  # the columns of the lines written so far
        self._laid_out: tuple[frozenset[str], Table] | None = None  # the last layout and its keys
        self._unshown: str | None = None  # the last epoch's line, if it was not shown
        self._closed = False

    @property
    def mode(self) -> str:
        """``"silent"``, ``"bar"`` or ``"lines"``."""
        if not self.verbose:
            return "silent"
        return "bar" if self._tqdm is not None else "lines"

    def shows(self, epoch: int) -> bool:
        """Whether ``epoch`` gets a line at this verbosity."""
        if not self.verbose:
            return False
        i = epoch - self.initial_epoch
        return i == 1 or i == self.epochs or i % self._every == 0

    def start_epoch(self, epoch: int) -> None:
        """An epoch begins (``epoch`` counts from 1, continuing across resumed runs)."""
        if not self.verbose:
            return
        self._close_bar()
        self._epoch_start = self._last_refresh = self._clock()
        self._steps = self._pending = 0
        if self._tqdm is not None:
            total = self.steps_per_epoch
            count = f"{{n_fmt:>{len(str(total))}}}/{{total_fmt}}" if total else "{n_fmt}"
            sizing = {"ncols": self._fixed_width} if self._fixed_width else {"dynamic_ncols": True}
            self._bar = self._tqdm(
                total=total,
                desc=self._label(epoch),
                unit="step",
                file=self.stream,
                leave=False,  # the epoch's line replaces it
                mininterval=self.refresh_seconds,
                bar_format="{desc} {percentage:3.0f}%|{bar}| " + count + "{postfix}",
                postfix=running_tail(None, None),
                **sizing,
            )

    def step(self, running_loss: Callable[[], float] | None = None) -> None:
        """One optimizer step is done. ``running_loss()`` returns the epoch's mean loss so far;
        it may sync the device, so it is called at most once per ``refresh_seconds``."""
        if not self.verbose:
            return
        self._steps += 1
        if self._bar is None:
            return
        self._pending += 1
        now = self._clock()
        if now - self._last_refresh < self.refresh_seconds:
            return
        self._last_refresh = now
        self._bar.update(self._pending)
        self._pending = 0
        seconds = now - self._epoch_start
        loss = None if running_loss is None else float(running_loss())
        self._bar.set_postfix_str(running_tail(loss, self._steps / seconds if seconds > 0 else None), refresh=True)

    def end_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        """An epoch ended with ``values`` (``{"loss": ..., "val_loss": ...}``)."""
        if not self.verbose:
            return
        now = self._clock()
        seconds = now - self._epoch_start
        rate = self._steps / seconds if seconds > 0 else None
        shown = {k: float(v) for k, v in values.items() if "/" not in k}
        keys = frozenset(shown)
        if self._laid_out is None or self._laid_out[0] != keys:  # same keys, same columns: no jitter
            self._laid_out = (keys, layout(list(shown), len(self._label(self.last_epoch)), self.width))
        line = self._laid_out[1].row(self._label(epoch), shown, rate, now - self._started)
        self._close_bar()
        if self.shows(epoch):
            self._write_row(line)
            self._unshown = None
        else:
            self._unshown = line

    def close(self) -> None:
        """Finish: closes an open bar and prints the last epoch if it was not shown (a run that
        stopped early). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._close_bar()
        if self._unshown is not None:
            self._write_row(self._unshown)
            self._unshown = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _label(self, epoch: int) -> str:
        return f"epoch {epoch:>{self._digits}}/{self.last_epoch}"

    def _write_row(self, line: str) -> None:
        """``line``, after the column names when they are new (the first line, or new keys)."""
        assert self._laid_out is not None
        table = self._laid_out[1]
        if table != self._table:
            self._table = table
            self._write(table.header())
        self._write(line)

    def _close_bar(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def running_tail(loss: float | None, rate: float | None) -> str:
    """A bar's fixed-width tail while its epoch runs: ``loss 0.4242, 10.1k steps/s``
    (blanks until known)."""
    shown_loss = "-".rjust(NUMBER_WIDTH) if loss is None else format_number(loss)
    shown_rate = "-" if rate is None else format_rate(rate)
    return f"loss {shown_loss}, {shown_rate:>{RATE_WIDTH}} steps/s"


def _tqdm_class(stream: TextIO) -> Any:
    """`tqdm.tqdm` if ``stream`` is a terminal and tqdm is installed, else ``None``."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is None or not isatty():
            return None
    except (OSError, ValueError):  # a closed or detached stream
        return None
    try:
        from tqdm import tqdm  # noqa: PLC0415 - tqdm is optional: imported when a bar is shown
    except ImportError:
        return None
    return tqdm

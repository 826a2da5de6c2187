"""`Progress`: what `fit` prints while it trains.

Three modes, chosen once when the reporter is built:

- ``verbose=0``: silent; nothing is ever written and no clock is read.
- ``verbose>=1`` on a terminal with `tqdm` installed: one bar per epoch (``epoch 3/10``) with
  steps/s and the running loss, finished with the epoch's values.
- otherwise: plain lines, one per epoch, e.g.
  ``epoch  3/10  loss 0.1235  val_loss 0.2346  812 steps/s  1.5s``. ``verbose=1`` prints the
  first and last epoch and about 20 evenly spaced ones in between; ``verbose=2`` every epoch.

The running loss is passed as a zero-argument callable because reading a device scalar is a
host sync: it is called at most once per ``refresh_seconds`` and only when a bar shows it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress", "format_duration", "format_values"]

#: about this many epoch lines (plus the first) with ``verbose=1``
TARGET_LINES = 20


class Progress:
    """Reports training progress to ``stream`` (default: ``sys.stdout`` at construction).

    ``epochs`` is the number of epochs this run trains and ``initial_epoch`` the number done
    before it (a resumed run), so the epochs reported are ``initial_epoch + 1`` to
    ``initial_epoch + epochs``, each shown as ``k/initial_epoch + epochs``.
    ``steps_per_epoch`` sizes the bars (``None`` if unknown). ``clock`` returns seconds and
    exists for tests; ``use_tqdm=False`` forces plain lines even on a terminal.

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
    ) -> None:
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        if refresh_seconds < 0:
            raise ValueError(f"refresh_seconds must be >= 0; got {refresh_seconds!r}")
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
        self._width = len(str(self.last_epoch))
        self._started = clock() if verbose else 0.0
        self._epoch_start = self._last_refresh = self._started
        self._steps = self._pending = 0
        self._bar: Any = None
        self._bar_stays = False
        self._unshown: str | None = None  # the last epoch's line, if it was not shown
        self._closed = False

    @property
    def mode(self) -> str:
        """``"silent"``, ``"bar"`` or ``"lines"``."""
        if not self.verbose:
            return "silent"
        return "bar" if self._tqdm is not None else "lines"

    def shows(self, epoch: int) -> bool:
        """Whether ``epoch`` gets a line (or a bar that stays) at this verbosity."""
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
            self._bar_stays = self.shows(epoch)
            self._bar = self._tqdm(
                total=self.steps_per_epoch,
                desc=self._label(epoch),
                unit="step",
                file=self.stream,
                leave=self._bar_stays,
                dynamic_ncols=True,
                mininterval=self.refresh_seconds,
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
        if running_loss is not None:
            self._bar.set_postfix_str(f"loss {float(running_loss()):.4g}", refresh=True)

    def end_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        """An epoch ended with ``values`` (``{"loss": ..., "val_loss": ...}``)."""
        if not self.verbose:
            return
        now = self._clock()
        seconds = now - self._epoch_start
        rate = self._steps / seconds if seconds > 0 else None
        shown = {k: v for k, v in values.items() if "/" not in k}
        line = "  ".join(
            part
            for part in (
                self._label(epoch),
                format_values(shown),
                f"{rate:.4g} steps/s" if rate is not None else "",
                format_duration(now - self._started),
            )
            if part
        )
        if self._bar is not None:
            self._bar.update(self._pending)
            self._pending = 0
            self._bar.set_postfix_str(format_values(shown), refresh=True)
            self._close_bar()
            self._unshown = None if self._bar_stays else line
        elif self.shows(epoch):
            self._write(line)
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
            self._write(self._unshown)
            self._unshown = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _label(self, epoch: int) -> str:
        return f"epoch {epoch:>{self._width}}/{self.last_epoch}"

    def _close_bar(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def format_values(values: Mapping[str, float]) -> str:
    """``"loss 0.1235  val_loss 0.2346"``: each value to 4 significant digits."""
    return "  ".join(f"{k} {float(v):.4g}" for k, v in values.items())


def format_duration(seconds: float) -> str:
    """``"4.2s"``, ``"2m05s"`` or ``"1h02m05s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


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

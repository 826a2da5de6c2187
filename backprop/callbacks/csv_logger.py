"""`CSVLogger`: one row of a CSV file per epoch, as Keras's."""

from __future__ import annotations

import csv
import io
import numbers
import os
from typing import IO, Any

from ..atomic import atomic_write
from ..validation import InvalidParameterError
from .base import Callback, Logs

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Write each epoch's values to the CSV file ``path``: a header ``epoch,<key>,...`` once,
    then a row per epoch with its number and every value of its logs (``loss``, metrics,
    ``grad_norm/*``, ``lr``, ``val_*``; the keys of the first epoch, in that order), each
    float written as Python's ``repr`` so that it reads back to the same number. A key that an
    epoch lacks is written ``NA``.

    Each row is written with one ``write`` of the whole line, then flushed, so a reader (or a
    crash) sees whole rows only, perhaps followed by a partial last line without its newline.
    Rows come as `fit` reads epochs' values: as each epoch ends when anything needs them (a
    progress bar, validation data, a checkpoint...), else in blocks (``verbose=0`` and nothing
    else); either way every epoch gets its row, in order, and after Ctrl-C every completed one.

    ``append=False`` starts the file afresh when training begins. ``append=True`` continues an
    existing file (as a resumed run does: ``fit(initial_epoch=n, history=...)``): rows of
    epochs after ``initial_epoch``, which this run trains again, and a partial last line left by
    a crash are dropped first (the file is rewritten atomically), then rows are added under the
    existing header; a missing or empty file (or one without a whole header line) is started
    afresh. The header must name
    every key this run reports, or `ValueError` says which are missing.

    ``separator``: the one character between fields (``","``; ``"\\t"`` for TSV). Values that
    contain it are quoted, as the `csv` module does. In data-parallel training only rank 0
    writes.
    """

    needs_epoch_values = False  # it only writes down what it is given, whenever that comes

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False):
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(f"CSVLogger path must be a file name; got {type(path).__name__} {path!r}")
        if os.path.isdir(path):
            raise InvalidParameterError(
                f"CSVLogger path {os.fspath(path)!r} is a directory: name a file, such as "
                f"{os.path.join(os.fspath(path), 'log.csv')!r}"
            )
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise InvalidParameterError(
                f"CSVLogger separator must be one character other than a quote or a line break, such as ',' or "
                f"'\\t'; got {separator!r}"
            )
        if not isinstance(append, bool):
            raise InvalidParameterError(f"CSVLogger append must be True or False; got {append!r}")
        self.path = os.fspath(path)
        self.separator, self.append = separator, append
        self._file: IO[str] | None = None
        self._columns: list[str] | None = None

    def on_train_begin(self, logs: Logs) -> None:
        self._file, self._columns = None, None
        if not self.is_root:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"CSVLogger cannot write {self.path!r}: the folder {folder!r} does not exist")
        if self.append and os.path.isfile(self.path) and os.path.getsize(self.path):
            self._columns = self._continue(int(self.params.get("initial_epoch", 0)))
        if self._columns is not None:
            reported = [key for key in self.params.get("metrics", []) if key not in self._columns]
            if reported:
                raise ValueError(
                    f"CSVLogger cannot append to {self.path!r}: its header has no column for "
                    f"{', '.join(map(repr, reported))}, which this fit reports; log to another file or pass "
                    "append=False"
                )
        mode = "a" if self._columns is not None else "w"
        self._file = open(self.path, mode, encoding="utf-8", newline="")  # noqa: SIM115 - open until training ends

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self._file is None:
            return
        if self._columns is None:
            self._columns = list(logs)
            self._write(["epoch", *self._columns])
        extra = [key for key in logs if key not in self._columns]
        if extra:
            raise ValueError(
                f"CSVLogger {self.path!r}: epoch {epoch} reports {', '.join(map(repr, extra))}, which the file's "
                f"header ({', '.join(self._columns)}) has no column for; log to another file"
            )
        self._write([str(epoch), *(_text(logs[key]) if key in logs else "NA" for key in self._columns)])

    def on_train_end(self, logs: Logs) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, fields: list[str]) -> None:
        """One line, in one write, flushed: a reader never sees half a row as a whole one."""
        assert self._file is not None
        self._file.write(self._line(fields))
        self._file.flush()

    def _line(self, fields: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.separator, lineterminator="\n").writerow(fields)
        return buffer.getvalue()

    def _continue(self, initial_epoch: int) -> list[str] | None:
        """The existing file's columns, after dropping its partial last line and the rows of
        epochs this run trains again (rewriting the file atomically if anything is dropped);
        ``None`` when not even its header is complete (a crash while writing it): start afresh."""
        with open(self.path, encoding="utf-8", newline="") as fh:
            text = fh.read()
        lines = text.splitlines(keepends=True)
        complete = [line for line in lines if line.endswith("\n")]  # only the last line can lack it
        if not complete:
            return None
        header = next(csv.reader([complete[0]], delimiter=self.separator))
        if not header or header[0] != "epoch":
            raise ValueError(
                f"CSVLogger cannot append to {self.path!r}: it does not start with an 'epoch' column (separator "
                f"{self.separator!r}); log to another file or pass append=False"
            )
        kept = [complete[0]]
        for number, line in enumerate(complete[1:], start=2):
            field = line.split(self.separator, 1)[0].strip()
            try:
                epoch = int(field)
            except ValueError:
                raise ValueError(
                    f"CSVLogger cannot append to {self.path!r}: line {number} starts with {field!r}, not an epoch "
                    "number"
                ) from None
            if epoch <= initial_epoch:
                kept.append(line)
        if len(kept) != len(lines):
            content = "".join(kept).encode("utf-8")

            def rewrite(fh: IO[bytes]) -> None:
                fh.write(content)

            atomic_write(self.path, rewrite)
        return header[1:]

    def __repr__(self) -> str:
        return f"CSVLogger({self.path!r}, separator={self.separator!r}, append={self.append})"


def _text(value: Any) -> str:
    """A log value as a field: floats (and integers) as the shortest text that reads back the
    same; anything else as `str`."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value))  # 'nan', 'inf' and '-inf' included
    return str(value)

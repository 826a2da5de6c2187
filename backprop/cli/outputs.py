"""Writing what ``backprop predict`` computed: labels or values, and class probabilities,
as ``.csv`` (with a header row) or ``.npy`` (one array, no pickles), atomically."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..atomic import atomic_write_all
from .errors import CliError, UsageError

__all__ = ["OUTPUT_SUFFIXES", "check_outputs", "output_kind", "write_table", "write_tables"]

OUTPUT_SUFFIXES = (".csv", ".npy")


def output_kind(path: str, option: str) -> str:
    """``"csv"``, ``"npy"`` or ``"stdout"`` (``-``, CSV on standard output) for an output path."""
    if path == "-":
        return "stdout"
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"{option} {path}: the file name must end in .csv or .npy (or be - for standard output)")
    return suffix[1:]


def check_outputs(outputs: Sequence[tuple[str, str | None]], inputs: Sequence[tuple[str, str | None]] = ()) -> None:
    """Before any work: every output ``(option, path)`` can be created (its folder exists, it
    is not a folder), no two outputs are the same file, and none is one of the ``inputs``
    (writing predictions over the checkpoint that made them would destroy it)."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        if path is None or path == "-":
            continue
        target = os.path.realpath(path)
        folder = os.path.dirname(target)
        if os.path.isdir(target):
            raise UsageError(f"{option} {path}: that is a folder; give a file name")
        if not os.path.isdir(folder):
            raise CliError(f"{option} {path}: the folder {folder!r} does not exist; create it first")
        if target in seen:
            raise UsageError(f"{option} {path} and {seen[target]} are the same file; give each its own")
        for other, source in inputs:
            if source is not None and source != "-" and os.path.realpath(source) == target:
                raise UsageError(f"{option} {path} is the {other} file, which it would overwrite; give another name")
        seen[target] = f"{option} {path}"


def write_table(path: str, option: str, header: Sequence[str], array: np.ndarray) -> None:
    """Write ``array`` (1-D: one column; 2-D: one column per header entry) to ``path``: CSV
    with ``header`` as its first row, or the array itself as ``.npy``; atomically."""
    write_tables([(path, option, header, array)])


def write_tables(tables: Sequence[tuple[str, str, Sequence[str], np.ndarray]]) -> None:
    """Write every ``(path, option, header, array)`` as `write_table` does, all or none: each
    file goes to a temporary file first (`backprop.atomic`), and only when all are complete
    and synced are they renamed into place, so a full disk or Ctrl-C leaves no truncated file
    and no file of a failed run. ``-`` (standard output) is written last, directly."""
    files = []
    printed = []
    for path, option, header, array in tables:
        kind = output_kind(path, option)
        if kind == "stdout":
            printed.append((header, array))
        else:
            files.append((path, _writer(kind, header, array)))
    options = ", ".join(f"{option} {path}" for path, option, _, _ in tables if path != "-")
    try:
        atomic_write_all(files)
    except ValueError as exc:
        raise UsageError(f"{options}: {exc}") from None
    except OSError as exc:
        failed = exc.filename
        where = next((f"{o} {p}" for p, o, _, _ in tables if failed and os.path.abspath(p) == failed), options)
        raise CliError(f"{where}: cannot write: {exc.strerror or exc}; nothing was written") from None
    for header, array in printed:
        _write_csv(sys.stdout, header, array.reshape(len(array), -1).tolist())


def _writer(kind: str, header: Sequence[str], array: np.ndarray) -> Callable[[IO[bytes]], None]:
    if kind == "npy":
        return lambda fh: np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)

    def write_csv(fh: IO[bytes]) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        _write_csv(text, header, array.reshape(len(array), -1).tolist())
        text.flush()
        text.detach()  # the atomic writer closes the file

    return write_csv


def _write_csv(fh: Any, header: Sequence[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)

"""Writing what ``backprop predict`` computed: labels or values, and class probabilities,
as ``.csv`` (with a header row) or ``.npy`` (one array, no pickles)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CliError, UsageError

__all__ = ["OUTPUT_SUFFIXES", "output_kind", "write_table"]

OUTPUT_SUFFIXES = (".csv", ".npy")


def output_kind(path: str, option: str) -> str:
    """``"csv"``, ``"npy"`` or ``"stdout"`` (``-``, CSV on standard output) for an output path."""
    if path == "-":
        return "stdout"
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"{option} {path}: the file name must end in .csv or .npy (or be - for standard output)")
    return suffix[1:]


def write_table(path: str, option: str, header: Sequence[str], array: np.ndarray) -> None:
    """Write ``array`` (1-D: one column; 2-D: one column per header entry) to ``path``: CSV
    with ``header`` as its first row, or the array itself as ``.npy``."""
    kind = output_kind(path, option)
    try:
        if kind == "npy":
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            return
        rows = array.reshape(len(array), -1).tolist()
        if kind == "stdout":
            _write_csv(sys.stdout, header, rows)
            return
        with open(path, "w", newline="", encoding="utf-8") as fh:
            _write_csv(fh, header, rows)
    except OSError as exc:
        raise CliError(f"{option} {path}: cannot write: {exc}") from None


def _write_csv(fh: Any, header: Sequence[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)

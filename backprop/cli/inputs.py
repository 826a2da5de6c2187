"""Reading the features ``backprop predict`` is given: a ``.csv`` or ``.npy`` file."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..datasets import DataError
from ..datasets.csv_table import Table, is_missing, parse_number, read_table
from ..memory import available_host_memory, format_bytes
from .errors import CliError

__all__ = ["fitting", "read_features"]


def fitting(X: np.ndarray, dtype: str, where: str, *, standardized: bool = False) -> np.ndarray:
    """``X`` if every value fits the model's ``dtype``, else `CliError` naming the first
    sample and feature that would become infinite in it (and so NaN in the outputs)."""
    limit = float(np.finfo(np.dtype(dtype)).max)
    if X.size == 0 or float(np.max(np.abs(X))) <= limit:
        return X
    row, col = (int(i) for i in np.argwhere(np.abs(X) > limit)[0])
    after = " after standardising with the training statistics" if standardized else ""
    raise CliError(
        f"{where}: sample {row + 1}, feature {col + 1} is {X[row, col]:.4g}{after}, too large for the model's {dtype} "
        f"(at most {limit:.4g}): it would become infinite and the predictions NaN; rescale the inputs"
    )


def read_features(
    path: str,
    n_features: int,
    feature_names: Sequence[str] | None = None,
    target_name: str | None = None,
    dtype: str = "float64",
    delimiter: str = "auto",
) -> np.ndarray:
    """The samples in ``path`` as a float64 array of shape ``(samples, n_features)``.

    ``.npy``: a 2-D numeric array. ``.csv`` (``.csv.gz``): one sample per row, with or without
    a header row; when the header names every training feature, the columns are picked by name
    (so extra columns, such as the label, and another order are fine), otherwise the file must
    have exactly ``n_features`` columns (or one more, the label, named ``target_name``).
    A value too large for ``dtype`` (the model's) is refused with its line and column.
    ``delimiter``: the CSV file's (one character), or ``"auto"`` to sniff it.
    Anything else raises `CliError` saying what the model expects.
    """
    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if suffixes.endswith(".npy"):
        X = _read_npy(path)
    elif suffixes.endswith((".csv", ".csv.gz")):
        X = _read_csv(path, n_features, feature_names, target_name, float(np.finfo(np.dtype(dtype)).max), delimiter)
    else:
        raise CliError(f"--input {path}: use a .csv or .npy file")
    if X.shape[1] != n_features:
        names = f" ({', '.join(feature_names[:8])}{', ...' if len(feature_names) > 8 else ''})" if feature_names else ""
        raise CliError(
            f"--input {path} has {X.shape[1]} features per sample but the model takes {n_features}{names}: "
            "pass the same feature columns, in the same order, as the training data (without the label)"
        )
    return X


def _read_npy(path: str) -> np.ndarray:
    _check_npy(path)
    try:
        X = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"--input {path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CliError(f"--input {path}: not a readable .npy array of numbers ({exc})") from None
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
        kind = getattr(X, "dtype", type(X).__name__)
        raise CliError(f"--input {path}: holds {kind} values; features must be numeric")
    if X.ndim != 2:
        hint = " (one sample? save x.reshape(1, -1))" if X.ndim == 1 else ""
        raise CliError(f"--input {path}: needs a 2-D array, shape (samples, features); got shape {X.shape}{hint}")
    if not np.isfinite(X).all():
        raise CliError(f"--input {path}: contains NaN or Inf values; clean or impute them first")
    return X.astype(np.float64)


def _check_npy(path: str) -> None:
    """A regular file whose ``.npy`` header declares what its size holds, and which fits in
    memory: checked before NumPy allocates what the header declares."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CliError(f"--input {path}: file not found") from None
    except OSError as exc:
        raise CliError(f"--input {path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"--input {path}: not a regular file (a folder, device or pipe); give a .npy file")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except Exception as exc:  # noqa: BLE001 - any damaged header, in whatever way NumPy reports it
        raise CliError(f"--input {path}: not a readable .npy array of numbers ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise CliError(f"--input {path}: holds {dtype} values; features must be numeric")
    nbytes = math.prod(shape) * dtype.itemsize
    if any(n < 0 for n in shape) or offset + nbytes != info.st_size:
        raise CliError(f"--input {path}: its header declares shape {shape} of {dtype} ({format_bytes(nbytes)}) but the "
                       f"file holds {format_bytes(max(info.st_size - offset, 0))}: it is truncated or damaged")
    available = available_host_memory()
    if available is not None and 3 * nbytes > available:  # the array, its float64 copy, the model's input
        raise CliError(f"--input {path}: {format_bytes(nbytes)} of samples need about {format_bytes(3 * nbytes)} of "
                       f"memory but this machine has {format_bytes(available)} available; predict in parts")


def _read_csv(
    path: str, n_features: int, names: Sequence[str] | None, target: str | None, limit: float = np.inf,
    delimiter: str = "auto",
) -> np.ndarray:
    try:
        table = read_table(path, delimiter=delimiter)
    except DataError as exc:
        raise CliError(f"--input {path}: {exc}") from None
    columns = _columns(table, n_features, names, target)
    values = np.empty((len(table.rows), len(columns)), dtype=np.float64)
    for r, (row, line) in enumerate(zip(table.rows, table.lines)):
        for c, col in enumerate(columns):
            text = row[col]
            value = None if is_missing(text) else parse_number(text)
            if value is None or not np.isfinite(value):
                raise CliError(
                    f"--input {path}: line {line}, column {table.names[col]!r}: {text!r} is not a finite number; "
                    "features must be numeric, without missing values"
                )
            if abs(value) > limit:
                raise CliError(
                    f"--input {path}: line {line}, column {table.names[col]!r}: {text!r} is too large for the model's "
                    f"dtype (at most {limit:.4g}): it would become infinite and the predictions NaN; rescale it"
                )
            values[r, c] = value
    return values


def _columns(table: Table, n_features: int, names: Sequence[str] | None, target: str | None) -> list[int]:
    width = len(table.names)
    if table.has_header and names and all(name in table.names for name in names):
        return [table.names.index(name) for name in names]
    if table.has_header and target in table.names and width == n_features + 1:
        return [i for i, name in enumerate(table.names) if name != target]
    return list(range(width))

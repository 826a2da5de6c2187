"""Reading the features ``backprop predict`` is given: a ``.csv`` or ``.npy`` file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..datasets import DataError
from ..datasets.csv_table import Table, is_missing, parse_number, read_table
from .errors import CliError

__all__ = ["read_features"]


def read_features(
    path: str, n_features: int, feature_names: Sequence[str] | None = None, target_name: str | None = None
) -> np.ndarray:
    """The samples in ``path`` as a float64 array of shape ``(samples, n_features)``.

    ``.npy``: a 2-D numeric array. ``.csv`` (``.csv.gz``): one sample per row, with or without
    a header row; when the header names every training feature, the columns are picked by name
    (so extra columns, such as the label, and another order are fine), otherwise the file must
    have exactly ``n_features`` columns (or one more, the label, named ``target_name``).
    Anything else raises `CliError` saying what the model expects.
    """
    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if suffixes.endswith(".npy"):
        X = _read_npy(path)
    elif suffixes.endswith((".csv", ".csv.gz")):
        X = _read_csv(path, n_features, feature_names, target_name)
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
    try:
        X = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"--input {path}: file not found") from None
    except (OSError, ValueError) as exc:
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


def _read_csv(path: str, n_features: int, names: Sequence[str] | None, target: str | None) -> np.ndarray:
    try:
        table = read_table(path)
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
            values[r, c] = value
    return values


def _columns(table: Table, n_features: int, names: Sequence[str] | None, target: str | None) -> list[int]:
    width = len(table.names)
    if table.has_header and names and all(name in table.names for name in names):
        return [table.names.index(name) for name in names]
    if table.has_header and target in table.names and width == n_features + 1:
        return [i for i, name in enumerate(table.names) if name != target]
    return list(range(width))

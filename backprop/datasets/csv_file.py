"""`load_csv`: a numeric CSV file as a `Dataset`, classification or regression."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .csv_table import Table, is_missing, parse_number, read_table
from .dataset import Dataset
from .errors import DataError
from .split import n_test_samples

__all__ = ["TASK_CHOICES", "load_csv"]

TASK_CHOICES = ("auto", "classification", "regression")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FEATURE_ADVICE = "features must be numeric: encode text as numbers or drop the column"


def load_csv(
    path: str | Path,
    label: str | int | None = None,
    *,
    test_size: float = 0.2,
    seed: int | None = 0,
    header: bool | None = None,
    delimiter: str = ",",
    task: str = "auto",
    name: str | None = None,
    max_bytes: int | None = None,
    max_line: int | None = None,
) -> Dataset:
    """Load a CSV file of numeric features and one label column, split into train and test.

    Parameters
    ----------
    path:
        A UTF-8 CSV file (``.gz`` files are decompressed). Blank lines are skipped.
    label:
        The label column: a header name, a 0-based index (negative counts from the end), or a
        string holding an index (``"3"``, as from a command line; a header name wins). Default:
        the last column. Every other column is a feature, read as float32.
    header:
        ``None`` detects a header row (see `read_table`); ``True``/``False`` force it.
        Without a header, columns are named ``"column 0"``, ``"column 1"``, ...
    task:
        ``"auto"``: the label column is **classification** if it holds text (``"setosa"``) or
        only whole numbers (``0, 1, 2`` or ``3.0``), else **regression**. Whole-number
        regression targets (counts, prices) need ``task="regression"``; ``"classification"``
        also accepts fractional values as class labels.
    test_size, seed:
        The split (see `split_indices`): stratified by class for classification.
    name:
        The Dataset's name; default the file name without ``.csv`` (or ``.csv.gz``).
    max_bytes, max_line:
        Limits on the text read and on each line (see `read_table`: 256 MiB and 1 MiB by
        default). Only regular files are read: not devices, FIFOs or directories.

    Returns
    -------
    Dataset
        Classification labels are remapped to int64 indices ``0..K-1`` in sorted order of the
        original values, which ``classes`` keeps (``classes[y]`` is the original label);
        regression targets are float32 of shape ``(samples, 1)``. ``train_rows``/``test_rows``
        index the data rows (0 = the first row after any header).

    Raises
    ------
    DataError
        Saying what to fix, for: a missing or empty file, rows of different lengths (with the
        line), missing values (NA, NaN, empty, ``?``; line and column), a non-numeric feature
        value (line and column), a value too large for float32 (line and column: it would
        become infinite), an unknown label column (listing the columns), a label column mixing
        numbers and text, fewer than 2 classes, and too few samples to split.
    """
    if task not in TASK_CHOICES:
        raise DataError(f"task must be one of {', '.join(TASK_CHOICES)}; got {task!r}")
    table = read_table(path, header=header, delimiter=delimiter, max_bytes=max_bytes, max_line=max_line)
    if len(table.names) < 2:
        raise DataError(
            f"{table.where} has only one column ({table.names[0]!r}); a data set needs at least one feature "
            "column besides the label (if the file uses another separator, pass delimiter=';' or '\\t')"
        )
    target = _label_index(table, label)
    try:
        n_test_samples(len(table.rows), test_size)  # the most basic problem first
    except DataError as exc:
        raise DataError(f"{table.where}: {exc}") from None
    feature_cols = [i for i in range(len(table.names)) if i != target]
    X = _features(table, feature_cols)
    y, task, classes = _targets(table, target, task)
    try:
        return Dataset.from_arrays(
            X, y, task=task, name=name if name is not None else _stem(table.path),
            feature_names=[table.names[i] for i in feature_cols], classes=classes,
            target_name=table.names[target], test_size=test_size, seed=seed,
        )
    except DataError as exc:
        raise DataError(f"{table.where}: {exc}") from None


def _stem(path: Path) -> str:
    return Path(path.name.removesuffix(".gz")).stem


def _label_index(table: Table, label: str | int | None) -> int:
    width = len(table.names)
    if label is None:
        return width - 1
    if isinstance(label, str):
        if label in table.names:
            return table.names.index(label)
        try:
            index = int(label.strip())
        except ValueError:
            raise DataError(
                f"{table.where} has no column {label!r}; its columns are {table.columns_listing()}: "
                "pass one of these names or a 0-based index as the label"
            ) from None
    elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        index = int(label)
    else:
        raise DataError(f"label must be a column name, a column index or None (the last column); got {label!r}")
    if not -width <= index < width:
        raise DataError(
            f"{table.where} has {width} columns, so label index {index} does not exist; its columns are "
            f"{table.columns_listing()}: pass an index from 0 to {width - 1} (or -1 for the last) or a name"
        )
    return index % width


def _features(table: Table, cols: list[int]) -> np.ndarray:
    """The feature columns as float32, checked cell by cell only when the fast path fails."""
    cells = [[row[i] for i in cols] for row in table.rows]
    try:
        values = np.array(cells, dtype=np.float64)
        if np.isfinite(values).all() and (not values.size or np.abs(values).max() <= _FLOAT32_MAX):
            return values.astype(np.float32)
    except ValueError:
        pass
    values = np.empty((len(cells), len(cols)), dtype=np.float64)
    for r, (row, line) in enumerate(zip(cells, table.lines, strict=True)):
        for c, text in enumerate(row):
            values[r, c] = _number(table, text, line, cols[c], _FEATURE_ADVICE)
    return values.astype(np.float32)


def _number(table: Table, text: str, line: int, col: int, advice: str) -> float:
    where = f"{table.where}: line {line}, column {table.names[col]!r}"
    if is_missing(text):
        raise DataError(f"{where}: missing value ({text!r}): fill it in or remove the row")
    value = parse_number(text)
    if value is None:
        raise DataError(f"{where}: {text!r} is not a number; {advice}")
    if not math.isfinite(value):
        raise DataError(f"{where}: {text!r} is not a finite number: replace it or remove the row")
    if abs(value) > _FLOAT32_MAX:
        raise DataError(
            f"{where}: {text!r} is too large for float32, the type data sets hold (at most {_FLOAT32_MAX:.4g}); "
            "it would become infinite: rescale the column"
        )
    return value


def _targets(table: Table, col: int, task: str) -> tuple[np.ndarray, str, tuple[Any, ...] | None]:
    """``(y, task, classes)`` from the label column."""
    texts = [row[col] for row in table.rows]
    column = f"label column {table.names[col]!r}"
    for text, line in zip(texts, table.lines, strict=True):
        if is_missing(text):
            raise DataError(
                f"{table.where}: line {line}, {column}: missing label ({text!r}): fill it in or remove the row"
            )
    numbers = [parse_number(t) for t in texts]
    numeric = [v is not None for v in numbers]
    if any(numeric) and not all(numeric):
        num_at, text_at = numeric.index(True), numeric.index(False)
        raise DataError(
            f"{table.where}: the {column} mixes numbers and text (line {table.lines[num_at]} has "
            f"{texts[num_at]!r}, line {table.lines[text_at]} has {texts[text_at]!r}): use one kind of label"
        )
    if not any(numeric):
        if task == "regression":
            raise DataError(
                f"{table.where}: the {column} holds text ({texts[0]!r} at line {table.lines[0]}), but regression "
                "needs numbers: use task='classification' or another label column"
            )
        return _classes(table, column, texts, task)
    advice = "labels must be numbers or text"
    values = [_number(table, t, line, col, advice) for t, line in zip(texts, table.lines, strict=True)]
    whole = all(float(v).is_integer() for v in values)
    if task == "regression" or (task == "auto" and not whole):
        return np.array(values, dtype=np.float32).reshape(-1, 1), "regression", None
    labels = [int(v) for v in values] if whole else values
    return _classes(table, column, labels, task)


def _classes(table: Table, column: str, labels: list[Any], task: str) -> tuple[np.ndarray, str, tuple[Any, ...]]:
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        also = " or task='regression'" if task == "auto" and not isinstance(classes[0], str) else ""
        raise DataError(
            f"{table.where}: the {column} has the single value {classes[0]!r} in all {len(labels)} rows, and "
            f"classification needs at least 2 classes: choose another label column (label=...){also}"
        )
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in labels], dtype=np.int64), "classification", classes

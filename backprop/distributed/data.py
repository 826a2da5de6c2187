"""Data larger than memory: memory-mapped arrays and ``.npy`` files, read a shard at a time.

`open_array` maps a ``.npy`` file (or takes an array, a `numpy.memmap` included) without
reading it; `read_rows` then copies only the rows a rank needs for one batch. With
`backprop.distributed.epoch_shards` each rank reads its own rows of each batch and nothing
else, so a data set that fits on no single machine can be trained on across several.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["open_array", "read_rows"]


def open_array(source: Any) -> np.ndarray:
    """An array to read rows from: a path to a ``.npy`` file is memory-mapped read-only
    (``np.load(path, mmap_mode="r")``, nothing is read yet); a NumPy array or memmap is
    returned as it is; anything else goes through ``np.asarray``."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not path.endswith(".npy"):
            raise ValueError(f"only .npy files can be memory-mapped; got {path!r} (save arrays with np.save)")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if isinstance(source, np.ndarray):
        return source
    return np.asarray(source)


def read_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]`` as an in-memory array, reading only those rows.

    A run of consecutive rows (unshuffled data) is one slice; otherwise rows are read in
    ascending order, which is kinder to the page cache and to read-ahead on a memory map, and
    put back in the order asked."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1:
        raise ValueError(f"rows must be 1-D; got shape {rows.shape}")
    if rows.size == 0:
        return np.empty((0, *X.shape[1:]), dtype=X.dtype)
    first = int(rows[0])
    if int(rows[-1]) - first == rows.size - 1 and (rows.size == 1 or bool(np.all(np.diff(rows) == 1))):
        return np.array(X[first : first + rows.size], copy=True)
    ascending = np.argsort(rows, kind="stable")
    out = np.empty((rows.size, *X.shape[1:]), dtype=X.dtype)
    out[ascending] = X[rows[ascending]]
    return out

"""What `fit` trains on: data moved to the device once, or streamed from host memory or disk.

Arrays (NumPy, CuPy, any namespace's) are checked and moved to the device once, as always.
A `numpy.memmap` or the path of a ``.npy`` file (for ``X`` or ``y``) is *streamed*: nothing is
read up front, and each step reads only this process's rows of its batch
(`backprop.distributed.read_rows`), checks them on the host and uploads them ahead of use
(`StreamedRows`). So a data set larger than one machine's memory can be trained on, each
rank of a data-parallel job reading only its own shards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends import Array, Backend
from ..distributed import open_array, read_rows
from ..losses import Loss
from .feed import DeviceRows, Feed, ShardedBatches, StreamedRows, WholeBatches
from .protocol import TrainableModel

__all__ = ["TrainingData", "is_streamed", "training_data"]


@dataclass(frozen=True)
class TrainingData:
    """The epoch's batches and what the ranks compare before they train on them."""

    feed: Feed
    samples: int
    features: tuple[int, ...]
    targets: tuple[int, ...]  # the shape of a row of y
    streamed: bool


def is_streamed(x: Any) -> bool:
    """Whether ``x`` is read a batch at a time rather than moved to the device at once."""
    return isinstance(x, (str, os.PathLike, np.memmap))


def training_data(
    model: TrainableModel, X: Any, y: Any, loss: Loss, batch_size: int, shuffle: bool, rank: int = 0, size: int = 1,
    sharded: bool = False,
) -> TrainingData:  # fmt: skip
    """The feed of ``(X, y)``: streamed if either is a memory map or a ``.npy`` path, else
    checked and moved to the device (call inside ``backend.activate()``). ``sharded``: yield
    rank ``rank`` of ``size``'s shard of every global batch (always so when streamed)."""
    backend = model._require_built()
    if is_streamed(X) or is_streamed(y):
        Xh, yh = _open(X, "X"), _open(y, "y")
        n = _check_host(Xh, yh)
        rows = StreamedRows(backend, _reader(model, loss, Xh, yh))
        feed: Feed = ShardedBatches(rows, n, batch_size, shuffle, rank, size)
        return TrainingData(feed, n, tuple(Xh.shape[1:]), tuple(yh.shape[1:]), True)
    Xd, T = model.checked_data(X, y, loss)
    n = int(Xd.shape[0])
    if sharded:
        feed = ShardedBatches(DeviceRows(backend, Xd, T), n, batch_size, shuffle, rank, size)
    else:
        feed = WholeBatches(backend, Xd, T, batch_size, shuffle)
    return TrainingData(feed, n, tuple(Xd.shape[1:]), tuple(T.shape[1:]), False)


def _open(source: Any, name: str) -> np.ndarray:
    array = open_array(source)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric; got dtype {array.dtype}")
    return array


def _check_host(X: np.ndarray, y: np.ndarray) -> int:
    """What can be checked of streamed data without reading it: shapes."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, shape (samples, features); got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X has no samples")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    return int(X.shape[0])


Reader = Callable[[np.ndarray], "tuple[Array, Array]"]


def _reader(model: TrainableModel, loss: Loss, X: np.ndarray, y: np.ndarray) -> Reader:
    """``read(rows)``: those rows of ``X`` and ``y``, checked as `fit` checks data it moves at
    once (finite features; targets by the loss: shape, labels in range), as host arrays of
    the dtypes the device needs. It runs on a background thread: host work only."""
    backend = model._require_built()
    host = Backend("cpu", backend.dtype_name)
    dtype = np.dtype(backend.dtype_name)
    out_features = model.out_features
    if out_features is None:
        raise ValueError("the model's number of outputs is not known (it has no layer that fixes it)")

    def read(rows: np.ndarray) -> tuple[Array, Array]:
        Xr = read_rows(X, rows).astype(dtype, copy=False)
        if not np.isfinite(Xr).all():
            raise ValueError(f"X contains NaN or Inf values in rows {_some(rows, ~np.isfinite(Xr).all(axis=1))}")
        T = loss.prepare_target(host, read_rows(y, rows), len(rows), out_features, f"y (rows {_some(rows)})")
        return Xr, T

    return read


def _some(rows: np.ndarray, where: np.ndarray | None = None) -> str:
    """A few of ``rows`` (those ``where`` is true) for an error message."""
    picked = rows if where is None else rows[where]
    shown = ", ".join(str(int(r)) for r in picked[:5])
    return shown + (", ..." if picked.size > 5 else "")

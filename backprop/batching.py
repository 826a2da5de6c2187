"""The mini-batches `fit` trains on: in order, or shuffled by a host generator."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .backends import Array, Backend

__all__ = ["batches", "slices"]


def batches(
    backend: Backend, rng: np.random.Generator, X: Array, T: Array, batch_size: int, shuffle: bool
) -> Iterable[tuple[Array, Array]]:
    """Mini-batches of ``(X, T)`` rows in a fresh order drawn from ``rng`` (or in order)."""
    if X.shape[0] <= batch_size:  # one batch: order does not change its mean loss, nor its gradient
        return ((X, T),)
    if not shuffle:
        return slices(X, T, batch_size)
    return _shuffled(backend, rng.permutation(X.shape[0]), X, T, batch_size)


def _shuffled(backend: Backend, order: Any, X: Array, T: Array, batch_size: int) -> Iterator[tuple[Array, Array]]:
    """Batches of the rows in ``order``. Shuffled rows are gathered `Backend.gather_bytes` at
    a time (whole batches, at least one), then sliced: one gather per many batches keeps the
    per-batch cost of small batches down without copying a large data set at once. Where the
    backend can (`Ops.rows_buffer`), each gather refills the same buffers: a fresh multi-MiB
    array per gather costs the host more in page faults than the copy itself.

    A batch is a view of those buffers, valid until the next batch is drawn: a step is done
    with its batch by then (host work is in order; device work is in stream order)."""
    xp, ops = backend.xp, backend.ops
    n = X.shape[0]
    order = backend.from_host(order, dtype=xp.int64)
    row_bytes = max(1, X.shape[1] * xp.finfo(X.dtype).bits // 8)
    group = min(n, batch_size * max(1, backend.gather_bytes // (batch_size * row_bytes)))
    bufX, bufT = ops.rows_buffer(X, group), ops.rows_buffer(T, group)
    for first in range(0, n, group):
        idx = order[first : min(first + group, n)]
        Xg, Tg = ops.take_rows(X, idx, bufX), ops.take_rows(T, idx, bufT)
        yield from slices(Xg, Tg, batch_size)


def slices(X: Array, T: Array, batch_size: int) -> Iterator[tuple[Array, Array]]:
    """Consecutive batches of ``batch_size`` rows, the last one possibly smaller. (The Array
    API leaves slice ends past the last row unspecified, so the last batch is cut separately.)"""
    n = X.shape[0]
    full = n - n % batch_size
    for start in range(0, full, batch_size):
        stop = start + batch_size
        yield X[start:stop, ...], T[start:stop, ...]
    if full < n:
        yield X[full:n, ...], T[full:n, ...]

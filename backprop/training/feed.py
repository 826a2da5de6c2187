"""The batches `fit` trains on, each epoch: a `Feed`.

- `WholeBatches`: one process, data on the device: `backprop.batching.batches` (shuffled rows
  gathered many batches at a time).
- `ShardedBatches`: this process's shard of every global batch (`epoch_shards`: the same
  epoch order on every rank, each global batch cut into contiguous shares), for data-parallel
  training; with one process it yields the batches `WholeBatches` yields. Its rows come from
  `DeviceRows` (data moved to the device once) or `StreamedRows` (data that stays on the host
  or on disk, a `numpy.memmap` or a ``.npy`` file, read a shard at a time by a background
  thread and uploaded ahead of use, `backprop.backends.transfer`).

A feed yields ``(X, T, shard)``; ``shard`` (`backprop.distributed.Shard`) is ``None`` for
whole batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from ..backends import Array, Backend
from ..backends.transfer import Upload, Uploader
from ..batching import batches
from ..distributed import Shard, epoch_order, epoch_shards

__all__ = ["DeviceRows", "Feed", "RowSource", "ShardedBatches", "StreamedRows", "WholeBatches"]

Batch = tuple[Array, Array, "Shard | None"]


class Feed(Protocol):
    """An epoch's batches, in the order drawn from ``rng``."""

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]: ...


class RowSource(Protocol):
    """Where `ShardedBatches` takes each shard's rows from."""

    def batches(self, shards: Sequence[Shard]) -> Iterator[Batch]: ...


class WholeBatches:
    """One process's batches of device data (`backprop.batching.batches`)."""

    def __init__(self, backend: Backend, X: Array, T: Array, batch_size: int, shuffle: bool):
        self.backend, self.X, self.T, self.batch_size, self.shuffle = backend, X, T, batch_size, shuffle

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        for Xb, Tb in batches(self.backend, rng, self.X, self.T, self.batch_size, self.shuffle):
            yield Xb, Tb, None


class ShardedBatches:
    """Rank ``rank`` of ``size``'s shard of each global batch of ``batch_size`` rows of the
    ``n`` rows of ``rows``. The epoch's order is drawn from ``rng`` exactly as one process
    draws it (`epoch_order`), so that every rank, holding the same generator state, cuts the
    same batches; every rank gets one shard per batch, empty ones included."""

    def __init__(self, rows: RowSource, n: int, batch_size: int, shuffle: bool, rank: int, size: int):
        self.rows, self.n, self.batch_size, self.shuffle = rows, n, batch_size, shuffle
        self.rank, self.size = rank, size

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = epoch_order(rng, self.n, self.batch_size, self.shuffle)  # drawn now, as `batches` draws it
        shards = list(epoch_shards(order, self.n, self.batch_size, self.rank, self.size))
        return self.rows.batches(shards)


class DeviceRows:
    """Shards taken from data already on the device: a slice for consecutive rows, else one
    gather (``take``) per array."""

    def __init__(self, backend: Backend, X: Array, T: Array):
        self.backend, self.X, self.T = backend, X, T

    def batches(self, shards: Sequence[Shard]) -> Iterator[Batch]:
        xp = self.backend.xp
        for shard in shards:
            rows = shard.rows
            if rows.size == 0 or (int(rows[-1]) - int(rows[0]) == rows.size - 1 and bool(np.all(np.diff(rows) == 1))):
                a = int(rows[0]) if rows.size else 0
                yield self.X[a : a + rows.size, ...], self.T[a : a + rows.size, ...], shard
                continue
            idx = self.backend.from_host(rows, dtype=xp.int64)
            yield xp.take(self.X, idx, axis=0), xp.take(self.T, idx, axis=0), shard


class StreamedRows:
    """Shards read from host arrays (memory-mapped files included) only when needed.

    ``read(rows) -> (X rows, T rows)`` reads and checks one shard's rows on the host (it runs
    on a background thread: `read_rows` on a memory map is file I/O, and NumPy releases the
    interpreter while it copies); ``depth`` shards are read ahead. Each shard is uploaded to
    the device one step ahead of use (`Uploader`: pinned memory and a copy stream on CUDA), so
    that its copy overlaps the step before it.
    """

    def __init__(self, backend: Backend, read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], depth: int = 2):
        self.backend, self.read, self.depth = backend, read, max(1, depth)
        self._X, self._T = Uploader(backend), Uploader(backend)  # one ring of pinned buffers each

    def batches(self, shards: Sequence[Shard]) -> Iterator[Batch]:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backprop-rows")
        try:
            reads: deque[tuple[Shard, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
            for shard in shards[: self.depth]:
                reads.append((shard, pool.submit(self.read, shard.rows)))
            queued = len(reads)
            waiting: tuple[Upload, Upload, Shard] | None = None  # uploaded, not yet handed out
            while reads or waiting is not None:
                uploaded = None
                if reads:
                    shard, future = reads.popleft()
                    if queued < len(shards):
                        reads.append((shards[queued], pool.submit(self.read, shards[queued].rows)))
                        queued += 1
                    Xh, Th = future.result()
                    labels = None if Th.dtype.kind == "f" else self.backend.xp.int64  # floats: the model's dtype
                    uploaded = (self._X(Xh), self._T(Th, labels), shard)  # overlaps the step before
                if waiting is not None:
                    Xu, Tu, ready_shard = waiting
                    yield self._X.ready(Xu), self._T.ready(Tu), ready_shard
                waiting = uploaded
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

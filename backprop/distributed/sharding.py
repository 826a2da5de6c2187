"""Which rows of each global batch a rank trains on, and how much its gradient weighs.

Data parallelism here keeps the single-process trajectory: every rank draws the same epoch
order from the model's host generator (same seed, same state on every rank), cuts it into the
same global batches of ``batch_size`` rows, and takes a contiguous slice of each batch.

The rule (`shard_bounds`): a batch of ``B`` rows on ``size`` ranks gives rank ``r`` the
positions ``[start, stop)`` with:

    base, extra = divmod(B, size)
    start = r * base + min(r, extra)
    stop  = start + base + (1 if r < extra else 0)

so the first ``B % size`` ranks hold one row more, the slices tile the batch in rank order,
and when ``B < size`` (a small last batch) the highest ranks hold no rows at all.

The weight (`Shard.weight`): the losses average over the batch they are given, so a rank's
gradient is the mean over its ``n_r`` rows, ``g_r = (1/n_r) sum_{i in r} grad l_i``. The
single-process gradient of the global batch is ``(1/B) sum_i grad l_i = sum_r (n_r/B) g_r``:
a *sum of per-rank sums divided by the global batch*, not the mean of the ranks' means (which
is wrong whenever the shares differ). So each rank scales its gradient by ``n_r / B`` and the
ranks all-reduce with a **sum**. Penalty gradients (``Dense`` l1/l2), the same on every rank,
come out right too: ``sum_r (n_r/B) pen = pen`` because ``sum_r n_r = B``; a rank with no rows
contributes zeros. The loss reduces the same way: ``sum_r n_r L_r / B``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Shard", "epoch_order", "epoch_shards", "shard_bounds"]


def shard_bounds(batch_rows: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)``: rank ``rank``'s positions in a batch of ``batch_rows`` rows split over
    ``size`` ranks (the module docstring gives the rule)."""
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"rank must lie in [0, size) with size >= 1; got rank={rank}, size={size}")
    if batch_rows < 0:
        raise ValueError(f"batch_rows must be >= 0; got {batch_rows}")
    base, extra = divmod(batch_rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Shard:
    """One rank's part of one global batch.

    ``rows`` are indices into the data set (the epoch order at positions ``batch_start +
    start`` to ``batch_start + stop``); ``batch_rows`` is the global batch's size ``B``
    (smaller for the last batch of an epoch). ``start``/``stop`` locate the shard inside the
    batch: a layer that must draw for the whole batch to match one process (host dropout
    masks) draws ``(B, ...)`` and keeps rows ``start:stop``.
    """

    index: int
    batch_start: int
    batch_rows: int
    start: int
    stop: int
    rows: np.ndarray

    @property
    def count(self) -> int:
        """How many rows this rank holds, ``n_r`` (0 for a rank left out of a small batch)."""
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """``n_r / B``: the factor for this rank's mean gradient (and mean loss) before the
        ranks' results are summed, so that the sum is the global batch's mean."""
        return self.count / self.batch_rows

    @property
    def empty(self) -> bool:
        """Whether this rank holds no rows of the batch (it still joins the all-reduce, with zeros)."""
        return self.stop == self.start


def epoch_order(rng: np.random.Generator, n: int, batch_size: int, shuffle: bool) -> np.ndarray | None:
    """The epoch's order of the ``n`` rows, drawn exactly as one process draws it
    (`backprop.batching.batches`): a permutation from ``rng`` when shuffling and there is more
    than one batch, else ``None`` (the natural order, and ``rng`` is left untouched)."""
    if not shuffle or n <= batch_size:
        return None
    return rng.permutation(n)


def epoch_shards(order: np.ndarray | None, n: int, batch_size: int, rank: int, size: int) -> Iterator[Shard]:
    """Rank ``rank``'s `Shard` of every global batch of an epoch: batches of ``batch_size``
    consecutive entries of ``order`` (``None``: ``0 .. n-1``), the last one possibly smaller.
    Every rank gets one shard per batch, empty ones included, so all ranks take part in the
    same number of all-reduces."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if order is not None and len(order) != n:
        raise ValueError(f"order has {len(order)} entries for {n} rows")
    for index, first in enumerate(range(0, n, batch_size)):
        rows = min(batch_size, n - first)
        start, stop = shard_bounds(rows, rank, size)
        a, b = first + start, first + stop
        taken = np.arange(a, b, dtype=np.int64) if order is None else np.asarray(order[a:b], dtype=np.int64)
        yield Shard(index=index, batch_start=first, batch_rows=rows, start=start, stop=stop, rows=taken)

"""Gradient buckets: the flat gradient buffer all-reduced in pieces, last layer first.

A model keeps every gradient in one flat buffer, in layer order (`backprop.backends.arena`).
Backward produces them in reverse layer order, so the buffer's *tail* is final first. As
PyTorch DDP does, the buffer is cut into buckets of about ``bucket_bytes`` from the end
(`BucketPlan`); a bucket is all-reduced as soon as all its gradients are final, while backward
still computes the earlier layers' (`BucketedAllreduce.ready`), and `BucketedAllreduce.wait`
finishes the rest before the optimizer step. Because parameters are consecutive in the buffer,
every bucket is a contiguous slice of it: nothing is packed or copied.

Buckets are always started in the same order (bucket 0, 1, ... = from the last layer back) on
every rank, whatever order `ready` is called in, because MPI and NCCL match collectives by
their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Collectives(Protocol):
    """What a bucketed reduction needs of a `Communicator` (non-blocking sums)."""

    @property
    def size(self) -> int: ...

    def start_allreduce_sum_(self, x: Any) -> Any: ...

    def poll(self, handles: list[Any]) -> None: ...

    def finish(self, handles: list[Any]) -> None: ...

__all__ = ["DEFAULT_BUCKET_BYTES", "Bucket", "BucketPlan", "BucketedAllreduce"]

#: PyTorch DDP's default bucket size (``bucket_cap_mb=25``)
DEFAULT_BUCKET_BYTES = 25 * 2**20


@dataclass(frozen=True)
class Bucket:
    """Elements ``start:stop`` of the flat buffer, holding parameters ``params`` (descending)."""

    start: int
    stop: int
    params: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class BucketPlan:
    """How a flat buffer of parameters with ``sizes`` (elements, layer order) is bucketed.

    ``buckets[0]`` holds the last parameters; ``bucket_of[i]`` is parameter ``i``'s bucket.
    """

    sizes: tuple[int, ...]
    buckets: tuple[Bucket, ...]
    bucket_of: tuple[int, ...]

    @classmethod
    def reverse_layer_order(cls, sizes: Sequence[int], itemsize: int, bucket_bytes: int) -> BucketPlan:
        """Buckets filled from the last parameter back: a bucket is closed as soon as it holds
        at least ``bucket_bytes`` (so one may exceed it by its last parameter, and a parameter
        larger than ``bucket_bytes`` is a bucket of its own). ``bucket_bytes=0``: one bucket per
        parameter; a huge value: one bucket, the whole buffer."""
        sizes = tuple(int(s) for s in sizes)
        if any(s < 0 for s in sizes):
            raise ValueError(f"parameter sizes must be >= 0; got {sizes}")
        if itemsize < 1 or bucket_bytes < 0:
            raise ValueError(f"itemsize must be >= 1 and bucket_bytes >= 0; got {itemsize}, {bucket_bytes}")
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        buckets: list[Bucket] = []
        bucket_of = [0] * len(sizes)
        members: list[int] = []
        held = 0
        for i in range(len(sizes) - 1, -1, -1):
            members.append(i)
            bucket_of[i] = len(buckets)
            held += sizes[i] * itemsize
            if held >= bucket_bytes or i == 0:
                buckets.append(Bucket(offsets[members[-1]], offsets[members[0] + 1], tuple(members)))
                members, held = [], 0
        return cls(sizes, tuple(buckets), tuple(bucket_of))

    @property
    def total(self) -> int:
        """Elements in the whole buffer."""
        return sum(self.sizes)


class BucketedAllreduce:
    """One step's all-reduce of a flat gradient buffer, bucket by bucket.

    Call ``ready(i)`` when parameter ``i``'s gradient is final (backward, last layer first);
    each bucket starts once all its parameters are ready and every bucket before it has
    started. ``wait()`` starts what has not started, waits for all, divides by the number of
    ranks when ``mean`` and readies the object for the next step. ``run()`` is ``wait()``
    without any ``ready``: everything at once, after backward.

    ``scale``: a number or a 0-d array each bucket is multiplied by just before it starts (a
    rank's shard weight, `Shard.weight`; an array is read when the bucket starts, so a CUDA
    graph that captured the step replays with the value it holds then).
    """

    def __init__(self, comm: Collectives, flat: Any, plan: BucketPlan, mean: bool = False, scale: Any = None):
        if plan.total != int(flat.shape[0]):
            raise ValueError(f"the bucket plan covers {plan.total} elements but the buffer holds {flat.shape[0]}")
        self.comm, self.flat, self.plan, self.mean, self.scale = comm, flat, plan, mean, scale
        self.views = [flat[b.start : b.stop] for b in plan.buckets]  # made once: stable for graph capture
        self._missing = [len(b.params) for b in plan.buckets]
        self._next = 0
        self._handles: list[Any] = []

    def ready(self, index: int) -> None:
        """Parameter ``index``'s gradient is final."""
        b = self.plan.bucket_of[index]
        self._missing[b] -= 1
        if self._missing[b] < 0:
            raise RuntimeError(f"parameter {index} was marked ready twice in one step")
        while self._next < len(self.views) and self._missing[self._next] == 0:
            self._start(self._next)

    def _start(self, b: int) -> None:
        if self.scale is not None:
            self.views[b] *= self.scale
        self._handles.append(self.comm.start_allreduce_sum_(self.views[b]))
        self._next = b + 1

    def poll(self) -> None:
        """Let started host (MPI) reductions progress: MPI without a progress thread advances
        them only inside MPI calls; cheap, and a no-op on NCCL."""
        self.comm.poll(self._handles)

    def wait(self) -> None:
        """Start every bucket not yet started (in order), wait for all, then average if ``mean``."""
        while self._next < len(self.views):
            self._start(self._next)
        self.comm.finish(self._handles)
        if self.mean and self.comm.size > 1:
            self.flat *= 1.0 / self.comm.size
        self._missing = [len(b.params) for b in self.plan.buckets]
        self._next = 0
        self._handles = []

    run = wait

"""Ranks as threads of one process: a fake `World` and `Communicator` for fast, MPI-free tests
of data-parallel training (`run_ranks`).

Each collective is an exchange through a barrier: every rank deposits its value, all wait,
each reads every rank's value and computes the result itself, in rank order (so every rank
gets the same bits), and all wait again before the slots are reused. A rank whose calls do not
match the others' (a missing or extra collective) breaks the barrier within `TIMEOUT`, so a
mismatch fails the test instead of hanging it. ``kind`` names the transport the communicator
pretends to be (``"Nccl"`` makes `fit` overlap the reduction with backward, and its
non-blocking calls are recorded in ``log``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from backprop.distributed import Communicator

TIMEOUT = 30.0


class Hub:
    """What the threads share: the barrier and one slot per rank."""

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=TIMEOUT)
        self.slots: list[Any] = [None] * size

    def exchange(self, rank: int, value: Any) -> list[Any]:
        self.slots[rank] = value
        self.barrier.wait()
        everyone = list(self.slots)
        self.barrier.wait()
        return everyone


class FakeComm:
    """The `Communicator` calls `fit` makes, between threads."""

    bucketed = Communicator.bucketed  # the real bucketing, on these collectives

    def __init__(self, hub: Hub, rank: int, kind: str):
        self.hub, self.rank, self.size, self.kind = hub, rank, hub.size, kind
        self.log: list[tuple[str, int]] = []  # non-blocking calls: ("start", elements), ("finish", handles)
        self.barriers = 0

    def allreduce_sum_(self, x: Any) -> None:
        arrays = self.hub.exchange(self.rank, np.array(x, copy=True))
        total = arrays[0].copy()
        for a in arrays[1:]:
            total += a
        x[...] = total

    def start_allreduce_sum_(self, x: Any) -> Any:
        self.log.append(("start", int(x.size)))
        self.allreduce_sum_(x)
        return len(self.log)

    def poll(self, handles: list[Any]) -> None:
        return None

    def finish(self, handles: list[Any]) -> None:
        self.log.append(("finish", len(handles)))

    def broadcast_(self, x: Any, root: int = 0) -> None:
        x[...] = self.hub.exchange(self.rank, np.array(x, copy=True))[root]

    def allreduce_sum(self, values: list[float]) -> list[float]:
        rows = self.hub.exchange(self.rank, [float(v) for v in values])
        return [float(sum(column)) for column in zip(*rows)]

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return copy.deepcopy(self.hub.exchange(self.rank, obj)[root])

    def allgather_object(self, obj: Any) -> list[Any]:
        return copy.deepcopy(self.hub.exchange(self.rank, obj))

    def barrier(self) -> None:
        self.barriers += 1
        self.hub.barrier.wait()


class FakeWorld:
    """A `World` whose communicator is a `FakeComm`, the same for every backend."""

    def __init__(self, hub: Hub, rank: int, kind: str):
        self.rank, self.size, self.local_rank, self.local_size, self.nodes = rank, hub.size, rank, hub.size, 1
        self.comm = FakeComm(hub, rank, kind)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def communicator(self, backend: Any = None) -> FakeComm:
        return self.comm


def run_ranks(size: int, body: Callable[[FakeWorld], Any], kind: str = "MpiHost") -> list[Any]:
    """``body(world)`` on ``size`` threads, one rank each; returns their results in rank order,
    or raises the first error a rank raised (the others are released from the barrier)."""
    hub = Hub(size)
    results: list[Any] = [None] * size
    errors: list[BaseException | None] = [None] * size

    def run(rank: int) -> None:
        try:
            results[rank] = body(FakeWorld(hub, rank, kind))
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors[rank] = exc
            hub.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)), None)
    if first is None:
        first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results

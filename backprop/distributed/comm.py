"""`Communicator`: the collectives a trainer needs, for the arrays of one backend.

Gradients are reduced where they live: host NumPy buffers by MPI through the buffer interface
(in place, no copy, no pickling); CuPy buffers by NCCL (`backprop.backends.nccl`, set up over
MPI), since the MPI builds on the package index are not CUDA-aware; arrays of any other
namespace are copied to the host, reduced by MPI and copied back. Python values (losses,
metric sums, counts, generator states) always go over MPI. In a world of one every call is a
no-op and nothing imports mpi4py.

The calls a trainer makes, per step and per epoch:

    comm = world.communicator(model.backend)
    comm.broadcast_(arenas.data.flat)            # once: rank 0's initial weights everywhere
    ...                                          # each step, after backward:
    grads *= shard.weight                        # n_r / B, see backprop.distributed.sharding
    comm.allreduce_sum_(grads)                   # or bucketed: comm.bucketed(grads, sizes)
    ...                                          # each epoch:
    loss_sum, n = comm.allreduce_sum([loss_sum, n])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .buckets import DEFAULT_BUCKET_BYTES, BucketedAllreduce, BucketPlan

if TYPE_CHECKING:
    from ..backends import Backend


class World(Protocol):
    """What a communicator needs of a `backprop.distributed.World` (which makes it)."""

    @property
    def rank(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def comm(self) -> Any: ...

__all__ = ["Communicator", "Transport"]


class Transport(Protocol):
    """How one kind of array is reduced and broadcast among the ranks."""

    def allreduce_sum_(self, x: Any) -> None:
        """Sum ``x`` over the ranks in place (done, or queued on the GPU stream, on return)."""
        ...

    def start_allreduce_sum_(self, x: Any) -> Any:
        """Start summing ``x`` over the ranks in place; returns a handle for `finish`."""
        ...

    def poll(self, handles: list[Any]) -> None: ...

    def finish(self, handles: list[Any]) -> None:
        """Wait until the reductions of ``handles`` are done (or ordered before later work)."""
        ...

    def broadcast_(self, x: Any, root: int) -> None: ...


class Communicator:
    """Collectives among the ranks of ``world`` for arrays of ``backend`` (default: NumPy).

    Make it with `World.communicator`. Every rank must make the same calls in the same order
    (MPI and NCCL match collectives by order); a rank with no rows in a batch still calls
    `allreduce_sum_`, with zeros.
    """

    def __init__(self, world: World, backend: Backend | None = None):
        self.world = world
        self.backend = backend
        self.rank, self.size = world.rank, world.size
        self._mpi = world.comm
        self.transport: Transport | None = None if world.size == 1 else _transport(world, backend)
        self.kind = "none" if self.transport is None else type(self.transport).__name__

    def __repr__(self) -> str:
        where = "host" if self.backend is None else self.backend.device.name
        return f"Communicator(rank={self.rank}, size={self.size}, {where}, {self.kind})"

    # ------------------------------------------------------------------ arrays, in place
    def allreduce_sum_(self, x: Any | Sequence[Any]) -> None:
        """Replace ``x`` (a contiguous 1-D buffer, or each of a list of arrays) by its sum over
        all ranks, in place; on a GPU it is queued on the current stream (capturable)."""
        if self.transport is None:
            return
        for a in list(x) if isinstance(x, (list, tuple)) else [x]:
            self.transport.allreduce_sum_(a)

    def allreduce_mean_(self, x: Any | Sequence[Any]) -> None:
        """`allreduce_sum_` divided by the number of ranks: the mean of the ranks' arrays. For
        gradients of *unequal* shards scale each rank's by `Shard.weight` and use
        `allreduce_sum_` instead: a mean of means is not the global batch's mean."""
        if self.transport is None:
            return
        arrays: list[Any] = list(x) if isinstance(x, (list, tuple)) else [x]
        self.allreduce_sum_(arrays)
        for a in arrays:
            a *= 1.0 / self.size

    def start_allreduce_sum_(self, x: Any) -> Any:
        """Start `allreduce_sum_` of one buffer without waiting; pass the handle to `finish`."""
        return None if self.transport is None else self.transport.start_allreduce_sum_(x)

    def poll(self, handles: list[Any]) -> None:
        """Let started reductions progress (host MPI only; see `BucketedAllreduce.poll`)."""
        if self.transport is not None and handles:
            self.transport.poll(handles)

    def finish(self, handles: list[Any]) -> None:
        """Complete reductions started by `start_allreduce_sum_`."""
        if self.transport is not None and handles:
            self.transport.finish(handles)

    def bucketed(
        self,
        flat: Any,
        sizes: Sequence[int],
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        mean: bool = False,
        scale: Any = None,
    ) -> BucketedAllreduce:
        """A reusable bucketed all-reduce of ``flat``, the buffer of parameters of ``sizes``
        (elements, layer order), in buckets of about ``bucket_bytes`` from the last layer back
        (`BucketPlan.reverse_layer_order`); each bucket multiplied by ``scale`` as it starts."""
        itemsize = int(np.dtype(str(flat.dtype).rsplit(".", 1)[-1]).itemsize)
        plan = BucketPlan.reverse_layer_order(sizes, itemsize, bucket_bytes)
        return BucketedAllreduce(self, flat, plan, mean, scale)

    def broadcast_(self, x: Any, root: int = 0) -> None:
        """Overwrite ``x`` on every rank with ``root``'s copy, in place."""
        if self.transport is not None:
            self.transport.broadcast_(x, root)

    # ------------------------------------------------------------------ Python values
    def allreduce_sum(self, values: Sequence[float]) -> list[float]:
        """Sums over the ranks of a few numbers (loss and metric sums, counts): one MPI call,
        in float64. Every rank gets the same list."""
        if self.size == 1:
            return [float(v) for v in values]
        from mpi4py import MPI  # noqa: PLC0415 - loaded already: the world has more than one rank

        buffer = np.array([float(v) for v in values], dtype=np.float64)
        self._mpi.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return buffer.tolist()

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """``root``'s ``obj`` on every rank (pickled: small things such as a generator's state)."""
        return obj if self.size == 1 else self._mpi.bcast(obj, root=root)

    def allgather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (to check that ranks agree)."""
        return [obj] if self.size == 1 else list(self._mpi.allgather(obj))

    def barrier(self) -> None:
        """Wait until every rank has got here (e.g. after rank 0 wrote a checkpoint)."""
        if self.size > 1:
            self._mpi.Barrier()


class MpiHost:
    """Host NumPy arrays, reduced by MPI through the buffer interface, in place."""

    def __init__(self, comm: Any):
        from mpi4py import MPI  # noqa: PLC0415

        self.comm, self.MPI = comm, MPI

    @staticmethod
    def _checked(x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"the host communicator reduces NumPy arrays; got {type(x).__name__}")
        if not (x.flags.c_contiguous and x.flags.writeable):
            raise ValueError(
                "in-place reduction needs a C-contiguous, writeable array (a flat buffer or a slice of one)"
            )
        return x

    def allreduce_sum_(self, x: Any) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, self._checked(x), op=self.MPI.SUM)

    def start_allreduce_sum_(self, x: Any) -> Any:
        return self.comm.Iallreduce(self.MPI.IN_PLACE, self._checked(x), op=self.MPI.SUM)

    def poll(self, handles: list[Any]) -> None:
        self.MPI.Request.Testall(handles)

    def finish(self, handles: list[Any]) -> None:
        self.MPI.Request.Waitall(handles)

    def broadcast_(self, x: Any, root: int) -> None:
        if isinstance(x, np.ndarray) and x.flags.c_contiguous and x.flags.writeable:
            self.comm.Bcast(x, root=root)
            return
        x[...] = self.comm.bcast(np.asarray(x) if self.comm.Get_rank() == root else None, root=root)


class Staged:
    """Arrays of any other namespace (or CuPy without NCCL): copied to the host, reduced by
    MPI, copied back. Correct everywhere, fast nowhere, and not capturable in a CUDA graph."""

    def __init__(self, comm: Any, backend: Backend):
        self.host, self.backend = MpiHost(comm), backend

    def start_allreduce_sum_(self, x: Any) -> Any:
        self.allreduce_sum_(x)
        return None

    def allreduce_sum_(self, x: Any) -> None:
        host = np.array(self.backend.to_numpy(x), dtype=np.dtype(self.backend.dtype_name), copy=True)
        host = np.ascontiguousarray(host)
        self.host.comm.Allreduce(self.host.MPI.IN_PLACE, host, op=self.host.MPI.SUM)
        x[...] = self.backend.from_host(host, dtype=x.dtype)

    def poll(self, handles: list[Any]) -> None:
        return None

    def finish(self, handles: list[Any]) -> None:
        return None

    def broadcast_(self, x: Any, root: int) -> None:
        comm = self.host.comm
        host = comm.bcast(np.asarray(self.backend.to_numpy(x)) if comm.Get_rank() == root else None, root=root)
        x[...] = self.backend.from_host(host, dtype=x.dtype)


class Nccl:
    """CuPy arrays, reduced by NCCL (`backprop.backends.nccl`): `allreduce_sum_` on the current
    stream; started buckets on a communication stream, joined back by `finish`."""

    def __init__(self, collectives: Any):
        self.collectives = collectives

    def allreduce_sum_(self, x: Any) -> None:
        self.collectives.allreduce_(x, "sum")

    def start_allreduce_sum_(self, x: Any) -> Any:
        return self.collectives.start_allreduce_(x, "sum")

    def poll(self, handles: list[Any]) -> None:
        return None  # the GPU makes progress on its own

    def finish(self, handles: list[Any]) -> None:
        self.collectives.finish(handles)

    def broadcast_(self, x: Any, root: int) -> None:
        self.collectives.broadcast_(x, root)


def _transport(world: World, backend: Backend | None) -> Transport:
    kind = "cpu" if backend is None else backend.device.type
    if kind == "cpu":
        return MpiHost(world.comm)
    assert backend is not None
    if kind == "cuda":
        from ..backends.nccl import NcclCollectives, nccl_unavailable_reason  # noqa: PLC0415 - GPUs only

        index = backend.device.index or 0
        # every rank must take the same road, or the first collective hangs: agree first
        reasons = [r for r in world.comm.allgather(nccl_unavailable_reason(index)) if r is not None]
        if not reasons:
            return Nccl(NcclCollectives(world.comm, index))
        import warnings  # noqa: PLC0415

        warnings.warn(
            f"NCCL is not usable on every rank ({reasons[0]}): gradients go through host memory and MPI "
            "instead (slow, and the step cannot be captured in a CUDA graph)",
            RuntimeWarning,
            stacklevel=4,
        )
    return Staged(world.comm, backend)

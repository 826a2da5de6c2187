"""NCCL collectives on CuPy arrays: the GPU half of `backprop.distributed`.

The pip builds of MPI are not CUDA-aware, so gradients on GPUs are reduced by NCCL, through
``cupy.cuda.nccl`` (``pip install nvidia-nccl-cu12`` makes it loadable). The communicator is
set up as in ChainerMN (``_communication_utility.init_nccl_comm``): rank 0 makes a unique id,
MPI broadcasts it, and every rank joins with ``NcclCommunicator(size, id, rank)`` on its own
GPU. Collectives run in place on the current CuPy stream and never wait on the host, so a
CUDA-graph capture of a training step records them too (NCCL >= 2.9).

`NcclCollectives` is all `backprop.distributed` sees; the MPI communicator it is given is used
only through ``Get_rank``, ``Get_size`` and ``bcast``, so the id exchange (`exchange_unique_id`),
the dtype and operation maps and the argument checks run without a GPU in the tests, with a
fake ``nccl`` module and fake arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .cuda import CudaUnavailableError, require_cupy

__all__ = [
    "NCCL_DTYPES",
    "NCCL_OPS",
    "NcclCollectives",
    "NcclUnavailableError",
    "exchange_unique_id",
    "load_nccl",
    "nccl_dtype",
    "nccl_op",
    "nccl_unavailable_reason",
]

#: NumPy dtype name -> the ``cupy.cuda.nccl`` constant naming NCCL's ``ncclDataType_t``
NCCL_DTYPES: dict[str, str] = {
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "int32": "NCCL_INT32",
    "uint32": "NCCL_UINT32",
    "int64": "NCCL_INT64",
    "uint64": "NCCL_UINT64",
    "float16": "NCCL_FLOAT16",
    "bfloat16": "NCCL_BFLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
}

#: reduction name -> the ``cupy.cuda.nccl`` constant (``avg`` needs NCCL >= 2.10)
NCCL_OPS: dict[str, str] = {
    "sum": "NCCL_SUM",
    "prod": "NCCL_PROD",
    "max": "NCCL_MAX",
    "min": "NCCL_MIN",
    "avg": "NCCL_AVG",
}

NCCL_HINT = "install NCCL for CuPy: pip install nvidia-nccl-cu12 (CUDA 12) or nvidia-nccl-cu13 (CUDA 13)"


class NcclUnavailableError(CudaUnavailableError):
    """NCCL cannot be loaded (or is too old); the message says how to get it."""


def load_nccl(cupy: ModuleType) -> ModuleType:
    """``cupy.cuda.nccl`` once it is known to load, else `NcclUnavailableError` saying why."""
    try:
        from cupy.cuda import nccl  # noqa: PLC0415 - only on GPUs, only when asked
    except Exception as exc:
        raise NcclUnavailableError(f"cupy.cuda.nccl failed to import ({exc}); {NCCL_HINT}") from exc
    if not getattr(nccl, "available", True) or not hasattr(nccl, "NcclCommunicator"):
        raise NcclUnavailableError(f"CuPy {cupy.__version__} found no NCCL library; {NCCL_HINT}")
    return nccl


def nccl_unavailable_reason(device_index: int) -> str | None:
    """Why NCCL cannot serve GPU ``device_index`` here (no CuPy, no GPU, no NCCL library), or
    ``None`` when it can. Cheap, local, no collective: ranks compare answers before they
    choose how to reduce."""
    try:
        load_nccl(require_cupy(device_index))
    except CudaUnavailableError as exc:
        return str(exc)
    return None


def nccl_dtype(nccl: Any, dtype: Any) -> int:
    """NCCL's data type for a NumPy/CuPy ``dtype`` (``bfloat16``: the ``ml_dtypes`` one)."""
    name = np.dtype(dtype).name
    constant = NCCL_DTYPES.get(name)
    if constant is None or not hasattr(nccl, constant):
        known = ", ".join(n for n, c in NCCL_DTYPES.items() if hasattr(nccl, c))
        raise TypeError(f"NCCL cannot reduce arrays of dtype {name}; it takes {known}")
    return int(getattr(nccl, constant))


def nccl_op(nccl: Any, op: str) -> int:
    """NCCL's reduction for ``"sum"``, ``"prod"``, ``"max"``, ``"min"`` or ``"avg"``."""
    constant = NCCL_OPS.get(op)
    if constant is None:
        raise ValueError(f"unknown reduction {op!r}; use one of {', '.join(NCCL_OPS)}")
    if not hasattr(nccl, constant):
        raise NcclUnavailableError(f"this NCCL has no {op!r} reduction ({constant}); {NCCL_HINT}")
    return int(getattr(nccl, constant))


def exchange_unique_id(comm: Any, make_id: Callable[[], Any], root: int = 0) -> Any:
    """The NCCL unique id, made on ``root`` by ``make_id()`` and broadcast over the MPI
    communicator ``comm`` (anything with ``Get_rank`` and a pickling ``bcast``): every rank
    returns the same id. Only ``root`` calls ``make_id``."""
    uid = make_id() if comm.Get_rank() == root else None
    uid = comm.bcast(uid, root=root)
    if uid is None:
        raise RuntimeError("the NCCL unique id did not arrive from the root rank")
    return uid


class NcclCollectives:
    """One NCCL communicator joining this rank's GPU ``device_index`` to the other ranks'.

    Every rank must construct it at the same point (it is a collective: each waits for all).
    ``nccl`` and ``cupy`` are the modules to use (the tests pass fakes).
    """

    def __init__(self, mpi_comm: Any, device_index: int, *, nccl: Any = None, cupy: Any = None):
        self.cupy = cupy if cupy is not None else require_cupy(device_index)
        self.nccl = nccl if nccl is not None else load_nccl(self.cupy)
        self.device_index = int(device_index)
        self.rank, self.size = int(mpi_comm.Get_rank()), int(mpi_comm.Get_size())
        uid = exchange_unique_id(mpi_comm, self.nccl.get_unique_id)
        with self.cupy.cuda.Device(self.device_index):
            self.comm = self.nccl.NcclCommunicator(self.size, uid, self.rank)
        self.version = int(self.nccl.get_version()) if hasattr(self.nccl, "get_version") else 0
        self._side: Any = None  # the communication stream of `start_allreduce_`, made when first needed

    def _checked(self, x: Any) -> tuple[int, int, int]:
        """``(pointer, count, dtype)`` of a C-contiguous array on this GPU."""
        if not getattr(getattr(x, "flags", None), "c_contiguous", False):
            raise ValueError("NCCL needs a C-contiguous array (a flat buffer or a slice of one)")
        device = getattr(getattr(x, "device", None), "id", self.device_index)
        if device != self.device_index:
            raise ValueError(
                f"the array is on cuda:{device} but this rank's NCCL communicator is on cuda:{self.device_index}"
            )
        return int(x.data.ptr), int(x.size), nccl_dtype(self.nccl, x.dtype)

    def _stream(self) -> int:
        """The current CuPy stream (the capturing one during a CUDA-graph capture)."""
        return int(self.cupy.cuda.get_current_stream().ptr)

    def allreduce_(self, x: Any, op: str = "sum") -> None:
        """Reduce ``x`` over all ranks, in place, on the current stream (no host sync)."""
        ptr, count, dtype = self._checked(x)
        if count == 0:
            return
        with self.cupy.cuda.Device(self.device_index):
            self.comm.allReduce(ptr, ptr, count, dtype, nccl_op(self.nccl, op), self._stream())

    def start_allreduce_(self, x: Any, op: str = "sum") -> Any:
        """Start reducing ``x`` on a communication stream of its own, once the work queued so far
        on the current stream (the backward that wrote ``x``) is done, so that backward goes on
        computing earlier layers meanwhile; returns an event for `finish`. Event record and wait
        are stream operations: a CUDA-graph capture records the fork and the join as edges."""
        ptr, count, dtype = self._checked(x)
        cuda = self.cupy.cuda
        with cuda.Device(self.device_index):
            if self._side is None:
                self._side = cuda.Stream(non_blocking=True)
            written = cuda.Event(disable_timing=True)
            written.record(cuda.get_current_stream())
            self._side.wait_event(written)
            if count:
                self.comm.allReduce(ptr, ptr, count, dtype, nccl_op(self.nccl, op), int(self._side.ptr))
            done = cuda.Event(disable_timing=True)
            done.record(self._side)
        return done

    def finish(self, handles: list[Any]) -> None:
        """Make the current stream wait (on the GPU, not the host) for the reductions started by
        `start_allreduce_`: the optimizer step queued next sees the reduced gradients."""
        cuda = self.cupy.cuda
        with cuda.Device(self.device_index):
            stream = cuda.get_current_stream()
            for event in handles:
                stream.wait_event(event)

    def broadcast_(self, x: Any, root: int = 0) -> None:
        """Overwrite ``x`` on every rank with ``root``'s, in place, on the current stream."""
        ptr, count, dtype = self._checked(x)
        if count == 0:
            return
        with self.cupy.cuda.Device(self.device_index):
            self.comm.bcast(ptr, count, dtype, int(root), self._stream())

    def synchronize(self) -> None:
        """Wait for the collectives queued on the current stream."""
        with self.cupy.cuda.Device(self.device_index):
            self.cupy.cuda.get_current_stream().synchronize()

    def abort(self) -> None:
        """Tear the communicator down without waiting for peers (after a failure)."""
        self.comm.abort()

    def close(self) -> None:
        """Free the communicator (every rank, after its last collective)."""
        self.comm.destroy()

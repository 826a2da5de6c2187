"""CUDA-graph capture with CuPy: record a callable once, replay it with one launch.

This is the CuPy half of whole-step replay; *when* to capture and replay (eligibility,
warm-up, batch shapes, recapture, undoing what capture's Python counted) is the trainer's
(`backprop.training.graph`), which calls `GraphCapture` without knowing CuPy. What capture
needs that only this package knows:

- a private memory pool, kept as long as the `GraphCapture` lives (arrays allocated while
  capturing live in it, and may outlive the graph);
- a non-blocking stream, with cuBLAS bound to it before capture begins (our own handle:
  CuPy's matmul refuses capture);
- the Python garbage collector held off while capturing (a finalizer that synchronizes the
  device would invalidate the capture);
- the kernels copying a batch into the graph's static inputs and its outputs out to fresh
  arrays compiled before capture (loading a module while capturing is not allowed), from and
  to addresses written, with the step's scalars, by one launch before each replay (`GraphIO`).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .cupy_kernels import raw_kernel, scalar_args

if TYPE_CHECKING:
    from .backend import Array, Backend

__all__ = ["GraphCapture", "GraphIO", "Replayer"]

StepFn = Callable[[Any, Any], "tuple[Any, ...]"]
#: ``() -> (device scalars array, values)``: what to write into device memory before a replay
ScalarsFn = Callable[[], "tuple[Any, tuple[float, ...]]"]


class GraphCapture:
    """Captures callables as CUDA graphs. Keeps every capture's private memory pool while
    arrays allocated in it may live, and gives the pools' cached blocks back to the device when
    a graph is dropped (`release`) and when it is itself collected: CuPy's pool keeps freed
    blocks for reuse until told otherwise, and a sweep of graph fits would otherwise hold every
    graph's memory for the life of the process."""

    def __init__(self) -> None:
        self._pools: list[Any] = []
        weakref.finalize(self, _free_pools, self._pools)

    def release(self) -> None:
        """After a graph was dropped: free every block of the captures' pools that no array
        uses any more, and forget the pools left empty."""
        _free_pools(self._pools)
        self._pools[:] = [pool for pool in self._pools if pool.used_bytes()]

    def capture(self, backend: Backend, fn: StepFn, X: Array, T: Array, keep: int, scalars: ScalarsFn) -> Replayer:
        """Record one call of ``fn`` on ``backend``'s CUDA device, on static copies of batch
        ``(X, T)`` (their shapes and dtypes), and return the `Replayer` that replays it on
        other batches of that shape, returning copies of its first ``keep`` outputs (at most
        two). ``scalars`` is called before each replay. The call's Python runs once, while
        nothing executes on the device: undoing what it counted or drew is the caller's.
        Raises the first error that broke the capture."""
        import cupy  # noqa: PLC0415 - only CUDA backends capture

        if not 0 <= keep <= 2:
            raise ValueError(f"keep must be 0, 1 or 2 (a replay copies out at most two outputs); got {keep}")
        pool = cupy.cuda.MemoryPool()
        self._pools.append(pool)  # kept whatever happens: arrays allocated while capturing live in it
        stream = cupy.cuda.Stream(non_blocking=True)
        Xs, Ts = cupy.empty(X.shape, dtype=X.dtype), cupy.empty(T.shape, dtype=T.dtype)  # C order, whatever X's
        io = GraphIO(cupy)
        slots = cupy.zeros(4, dtype=cupy.int64)  # where each replay's batch and outputs are
        error: BaseException | None = None
        graph: Any = None
        outputs: tuple[Any, ...] = ()
        kept: tuple[Any, ...] = ()
        gc.collect()  # collect now what could otherwise be collected mid-capture: a finalizer that syncs would break it
        collecting = gc.isenabled()
        gc.disable()
        try:
            io.compile()
            with stream:
                backend.cuda.bind_stream()  # cuBLAS must know the capture stream before capture begins
                stream.synchronize()
                with cupy.cuda.using_allocator(pool.malloc):
                    stream.begin_capture()
                    try:
                        io.copy_in(slots, 0, Xs)
                        io.copy_in(slots, 1, Ts)
                        outputs = tuple(fn(Xs, Ts))
                        kept = tuple(o if o.flags.c_contiguous else o.copy() for o in outputs[:keep])  # 0-d stays 0-d
                        for i, o in enumerate(kept):
                            io.copy_out(slots, 2 + i, o)
                    except Exception as exc:  # noqa: BLE001 - the first error is the one to report
                        error = exc
                    finally:
                        try:
                            graph = stream.end_capture()
                        except Exception as exc:  # noqa: BLE001
                            error = error or exc
                            graph = None
        except Exception as exc:  # noqa: BLE001 - anything that breaks capture is reported
            error = error or exc
        finally:
            if collecting:
                gc.enable()
        if error is not None:
            raise error
        if graph is None:
            raise RuntimeError("stream capture returned no graph")
        return Replayer(cupy, graph, io, slots, (Xs, Ts, *outputs), kept, scalars)


class Replayer:
    """``replay(X, T)``: one replay of a captured graph on batch ``(X, T)``, returning fresh
    copies of the kept outputs. Per replay the host makes the output arrays and two launches:
    one kernel writing the ``scalars()`` and the addresses of X, T and the outputs into the
    graph's slots, and the graph, which copies the batch in and the outputs out itself.
    ``held``: the graph's own arrays, kept alive with it; ``n_outputs``: how many outputs the
    captured call returned (kept or not).

    Both launches go to the current stream; when it is not the stream of the previous replay,
    it first waits for everything queued on that one (an event recorded there now), since the
    slot write of this replay must not overtake the previous graph still reading the slots."""

    def __init__(self, cupy: Any, graph: Any, io: GraphIO, slots: Any, held: tuple[Any, ...], kept: tuple[Any, ...],
                 scalars: ScalarsFn):  # fmt: skip
        self._cupy, self._graph, self._io, self._slots, self._scalars = cupy, graph, io, slots, scalars
        self.held = held
        self.n_outputs = len(held) - 2
        self._like = [(o.shape, o.dtype) for o in kept]
        self._stream: Any = None  # the stream of the last replay

    def _contiguous(self, A: Any) -> Any:
        cupy = self._cupy
        return A if isinstance(A, cupy.ndarray) and A.flags.c_contiguous else cupy.ascontiguousarray(A)

    def __call__(self, X: Any, T: Any) -> tuple[Any, ...]:
        cupy = self._cupy
        X, T = self._contiguous(X), self._contiguous(T)  # read by the graph later, in stream order: safe to drop after
        outs = tuple(cupy.empty(shape, dtype=dtype) for shape, dtype in self._like)
        scalars, values = self._scalars()
        stream = cupy.cuda.get_current_stream()
        if self._stream is not None and self._stream.ptr != stream.ptr:
            stream.wait_event(self._stream.record())
        self._stream = stream
        self._io.set(scalars, values, self._slots, (X.data.ptr, T.data.ptr, *(o.data.ptr for o in outs)))
        self._graph.launch()
        return outs


class GraphIO:
    """What a replayed CUDA graph needs around it: `copy_in`/`copy_out`, captured into the
    graph, move its batch in and its outputs out through addresses held in a device array of
    four ``slots`` (batch X, targets T, two outputs); `set` writes those addresses and the
    optimizer's scalars before each replay, one launch in all where copies in, a scalar write
    and copies out would take five."""

    _BLOCK = 256

    def __init__(self, cupy: Any):
        self._set = raw_kernel(cupy, "bp_set_replay")
        self._copy = raw_kernel(cupy, "bp_copy_slot")

    def compile(self) -> None:
        """Compile and load the kernels now (loading a module while capturing is not allowed)."""
        for kernel in (self._set, self._copy):
            kernel.compile()

    def _grid(self, nbytes: int) -> tuple[int]:
        return (max(1, min(1024, -(-nbytes // (16 * self._BLOCK)))),)

    def copy_in(self, slots: Any, slot: int, dst: Any) -> None:
        """``dst`` (C-contiguous) <- the bytes at the address in ``slots[slot]``."""
        self._copy(self._grid(dst.nbytes), (self._BLOCK,), (slots, np.int32(slot), dst, np.int64(dst.nbytes), _IN))

    def copy_out(self, slots: Any, slot: int, src: Any) -> None:
        """The address in ``slots[slot]`` <- the bytes of ``src`` (C-contiguous)."""
        self._copy(self._grid(src.nbytes), (self._BLOCK,), (slots, np.int32(slot), src, np.int64(src.nbytes), _OUT))

    def set(self, scalars: Any, values: tuple[float, ...], slots: Any, addresses: tuple[int, ...]) -> None:
        """Write up to three float64 ``values`` into ``scalars`` and up to four ``addresses``
        into ``slots`` (unused ones 0)."""
        floats, slot_values = scalar_args(np.float64, values, 3), scalar_args(np.int64, addresses, 4)
        self._set((1,), (1,), (scalars, *floats, slots, *slot_values))


_IN, _OUT = np.int32(1), np.int32(0)  # bp_copy_slot's direction: into the graph's buffer, or out of it


def _free_pools(pools: list[Any]) -> None:
    for pool in pools:
        pool.free_all_blocks()

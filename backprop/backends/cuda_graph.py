"""`GraphedStep`: a whole training step recorded once as a CUDA graph and replayed.

Small models are launch-bound on a GPU: a step is dozens of kernels, each costing more host
time to launch than device time to run. Replaying the step as one CUDA graph removes that
cost. What makes replay correct:

- every array the step updates is updated *in place* (the fused optimizer on the model's flat
  buffers); a step that rebinds arrays (a generic optimizer, BatchNorm's running statistics)
  cannot be replayed, so it runs eagerly and `reason` says why;
- the step number and learning rate live in device memory, written before each replay
  (`Optimizer.replay_scalars`); host-side step counts are advanced after it (`after_replay`);
- the graph copies each batch into its static inputs and its outputs out to fresh arrays itself,
  from and to addresses written, with the step's scalars, by one launch before the replay;
- capture uses a private memory pool, kept for the graph's lifetime, after ``warmup`` eager
  steps (kernels compiled, optimizer state created, cuBLAS bound to the capture stream);
- a batch of another shape (the last, partial one) runs eagerly on the same memory;
- any failure to capture falls back to eager steps for good, with a warning and the reason
  recorded;
- the optimizer's constants (betas, eps, momentum, weight decay) are baked into the captured
  kernels: changing one recaptures; the Python garbage collector is held off during capture
  (a finalizer that synchronizes the device would invalidate it).
"""

from __future__ import annotations

import copy
import gc
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .cupy_kernels import raw_kernel, scalar_args

if TYPE_CHECKING:
    from ..model import Sequential
    from ..optim import Optimizer
    from .backend import Array

__all__ = ["GraphIO", "GraphedStep", "graph_unsupported_reason"]

StepFn = Callable[[Any, Any], tuple[Any, ...]]


def graph_unsupported_reason(model: Sequential, optimizer: Optimizer) -> str | None:
    """Why ``model`` trained by ``optimizer`` cannot be replayed from a CUDA graph (``None``
    when it can)."""
    if model.device.type != "cuda":
        return f"CUDA graphs need a CUDA device; the model is on {model.device.name}"
    if not optimizer.fusable:
        return f"{type(optimizer).__name__} updates parameters out of place; use SGD, Adam or AdamW"
    params = model.parameters()
    if len(optimizer.params) != len(params) or any(a is not b for a, b in zip(optimizer.params, params)):
        return "the optimizer does not update exactly the model's parameters, in order (only that is one fused update)"
    if any(p.arenas is None for p in optimizer.params):
        return "the parameters are not in the model's flat buffer"
    stateful = [p.name for layer in model.walk() if layer.updates_state for p in layer.variables().values() if not p.trainable]
    if stateful:
        return f"state updated out of place while training ({', '.join(stateful[:3])}, e.g. BatchNorm statistics)"
    host_random = [layer for layer in model.walk() if layer.randomness() == "host"]
    if host_random:
        return (
            f"{type(host_random[0]).__name__} {host_random[0].path!r} draws its masks on the host, and a replay "
            "cannot redraw them; "
            "use Dropout(p, masks='device')"
        )
    return None


class GraphedStep:
    """``step(X, T) -> outputs`` replayed from a CUDA graph for the batch shape of its first
    call (a data set's full batches), captured after ``warmup`` eager calls of that shape;
    other shapes (the last, partial batch) run eagerly. The first ``keep`` outputs are returned
    (copies), the rest as ``None``. ``reason`` is ``None`` while graphs are in use, else why not."""

    def __init__(self, step: StepFn, model: Sequential, optimizer: Optimizer, warmup: int = 3, keep: int = 2):
        self.step, self.model, self.optimizer = step, model, optimizer
        if not 0 <= keep <= 2:
            raise ValueError(f"keep must be 0, 1 or 2 (a replay copies out at most two outputs); got {keep}")
        self.warmup, self.keep = warmup, keep
        self.reason = graph_unsupported_reason(model, optimizer)
        self.calls = 0  # calls of the shape to capture, since it was chosen
        self._replay: Callable[[Any, Any], tuple[Any, ...]] | None = None  # (X, T) -> kept outputs
        self._n_outputs = 0
        self._shape: Any = None  # (X shape, T shape, dtypes) of the batches replayed
        self._baked: Any = None  # the optimizer constants in the captured kernels
        self._arenas: Any = None
        self._pools: list[Any] = []  # every capture's private memory pool, kept for this object's lifetime

    @property
    def replaying(self) -> bool:
        """Whether a captured graph is ready to replay."""
        return self._replay is not None

    def __call__(self, X: Array, T: Array) -> tuple[Any, ...]:
        if self.reason is not None:
            return self.step(X, T)
        shape = (X.shape, T.shape, X.dtype, T.dtype)  # dtypes as objects: str() of one costs microseconds
        if self._replay is not None and (
            self._arenas is not self.optimizer.params[0].arenas or self._constants() != self._baked
        ):
            self._drop()  # the model moved or was repacked, or a baked-in constant changed
        if self._shape is None:
            self._shape = shape
        if shape != self._shape:
            return self.step(X, T)
        if self._replay is None:
            self.calls += 1
            if self.calls <= self.warmup:
                return self.step(X, T)
            self._capture(X, T)
            if self._replay is None:
                return self.step(X, T)
        kept = self._replay(X, T)
        self.optimizer.after_replay()
        return kept + (None,) * (self._n_outputs - len(kept))

    def _constants(self) -> tuple[Any, ...]:
        """The optimizer's settings the captured kernels hold as constants (all but ``lr``)."""
        return tuple(v for k, v in self.optimizer.get_config().items() if k != "lr")

    def _capture(self, X: Array, T: Array) -> None:
        import cupy

        backend = self.model.backend
        # Capture executes nothing, but its Python runs: undo what that counts or draws.
        bookkeeping = [{k: v for k, v in s.items() if isinstance(v, (int, float))} for s in self.optimizer.state]
        noise = copy.deepcopy(self.model.noise_rng.bit_generator.state)
        pool = cupy.cuda.MemoryPool()
        # Kept whatever happens: arrays allocated while capturing live in it.
        self._pools.append(pool)
        stream = cupy.cuda.Stream(non_blocking=True)
        Xs, Ts = cupy.empty(X.shape, dtype=X.dtype), cupy.empty(T.shape, dtype=T.dtype)  # C order, whatever X's
        io = GraphIO(cupy)
        slots = cupy.zeros(4, dtype=cupy.int64)  # where each replay's batch and outputs are
        error: BaseException | None = None
        graph, outputs, kept = None, (), ()
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
                        outputs = tuple(self.step(Xs, Ts))
                        kept = tuple(o if o.flags.c_contiguous else o.copy() for o in outputs[: self.keep])  # 0-d stays 0-d
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
        except Exception as exc:  # noqa: BLE001 - anything that breaks capture means: stay eager
            error = error or exc
        finally:
            if collecting:
                gc.enable()
            for state, saved in zip(self.optimizer.state, bookkeeping):
                state.update(saved)
            self.model.noise_rng.bit_generator.state = noise
        if error is None and not self.optimizer.fused_ready:  # set by each step that ran fused
            # an update that rebinds arrays (a parameter without a gradient falls back to the
            # per-parameter rule) would replay from stale inputs
            error = RuntimeError("the optimizer did not update every parameter in one fused step")
        if error is not None or graph is None:
            self.reason = f"capture failed: {type(error).__name__}: {error}"
            warnings.warn(f"graph=True: training eagerly because the {self.reason}", stacklevel=4)
            return
        self._replay = _replayer(cupy, graph, io, slots, (Xs, Ts, *outputs), kept, self.optimizer)
        self._n_outputs = len(outputs)
        self._baked, self._arenas = self._constants(), self.optimizer.params[0].arenas

    def _drop(self) -> None:
        self._replay = self._baked = self._arenas = None
        self._n_outputs = 0  # the pools stay: arrays made while capturing (a gradient) may outlive the graph
        self.calls = 0


def _replayer(
    cupy: Any, graph: Any, io: Any, slots: Any, held: tuple[Any, ...], kept: tuple[Any, ...], optimizer: Optimizer
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``replay(X, T)``: one replay of ``graph`` on batch ``(X, T)``, returning fresh copies of
    the ``kept`` outputs. Per replay the host makes the output arrays and two launches: one
    kernel writing the optimizer's scalars and the addresses of X, T and the outputs into
    ``slots``, and the graph, which copies the batch in and the outputs out itself. ``held``:
    the graph's own arrays, kept alive with it."""
    like = [(o.shape, o.dtype) for o in kept]

    def contiguous(A: Any) -> Any:
        return A if isinstance(A, cupy.ndarray) and A.flags.c_contiguous else cupy.ascontiguousarray(A)

    def replay(X: Any, T: Any) -> tuple[Any, ...]:
        X, T = contiguous(X), contiguous(T)  # read by the graph later, in stream order: safe to drop after
        outs = tuple(cupy.empty(shape, dtype=dtype) for shape, dtype in like)
        scalars, values = optimizer.replay_scalars()
        io.set(scalars, values, slots, (X.data.ptr, T.data.ptr, *(o.data.ptr for o in outs)))
        graph.launch()
        return outs

    replay.held = held  # type: ignore[attr-defined]
    return replay


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
        self._copy(self._grid(dst.nbytes), (self._BLOCK,), (slots, np.int32(slot), dst, np.int64(dst.nbytes), np.int32(1)))

    def copy_out(self, slots: Any, slot: int, src: Any) -> None:
        """The address in ``slots[slot]`` <- the bytes of ``src`` (C-contiguous)."""
        self._copy(self._grid(src.nbytes), (self._BLOCK,), (slots, np.int32(slot), src, np.int64(src.nbytes), np.int32(0)))

    def set(self, scalars: Any, values: tuple[float, ...], slots: Any, addresses: tuple[int, ...]) -> None:
        """Write up to three float64 ``values`` into ``scalars`` and up to four ``addresses``
        into ``slots`` (unused ones 0)."""
        floats, slot_values = scalar_args(np.float64, values, 3), scalar_args(np.int64, addresses, 4)
        self._set((1,), (1,), (scalars, *floats, slots, *slot_values))

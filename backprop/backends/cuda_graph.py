"""`GraphedStep`: a whole training step recorded once as a CUDA graph and replayed.

Small models are launch-bound on a GPU: a step is dozens of kernels, each costing more host
time to launch than device time to run. Replaying the step as one CUDA graph removes that
cost. What makes replay correct:

- every array the step updates is updated *in place* (the fused optimizer on the model's flat
  buffers); a step that rebinds arrays (a generic optimizer, BatchNorm's running statistics)
  cannot be replayed, so it runs eagerly and `reason` says why;
- the step number and learning rate live in device memory, written before each replay
  (`Optimizer.prepare_replay`); host-side step counts are advanced after it (`after_replay`);
- inputs are copied into static buffers; outputs are static arrays the graph rewrites;
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

if TYPE_CHECKING:
    from ..model import Sequential
    from ..optim import Optimizer
    from .backend import Array

__all__ = ["GraphedStep", "graph_unsupported_reason"]

StepFn = Callable[[Any, Any], tuple[Any, ...]]


def graph_unsupported_reason(model: Sequential, optimizer: Optimizer) -> str | None:
    """Why ``model`` trained by ``optimizer`` cannot be replayed from a CUDA graph (``None``
    when it can)."""
    if model.device.type != "cuda":
        return f"CUDA graphs need a CUDA device; the model is on {model.device.name}"
    if not optimizer.fused_kernel:
        return f"{type(optimizer).__name__} updates parameters out of place; use SGD, Adam or AdamW"
    params = model.parameters()
    if len(optimizer.params) != len(params) or any(a is not b for a, b in zip(optimizer.params, params)):
        return "the optimizer does not update exactly the model's parameters, in order (only that is one fused update)"
    if any(p.arenas is None for p in optimizer.params):
        return "the parameters are not in the model's flat buffer"
    frozen = [name for name, p in model.named_variables() if not p.trainable]
    if frozen:
        return f"state updated out of place while training ({', '.join(frozen[:3])}, e.g. BatchNorm statistics)"
    from ..layers.dropout import Dropout  # noqa: PLC0415 - the layers import the backends

    host_masks = [
        layer.path for layer in model.walk() if isinstance(layer, Dropout) and layer.p > 0 and layer.masks == "host"
    ]
    if host_masks:
        return (
            f"Dropout {host_masks[0]!r} draws its masks on the host, and a replay cannot redraw them; "
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
        self.warmup, self.keep = warmup, keep
        self.reason = graph_unsupported_reason(model, optimizer)
        self.calls = 0  # calls of the shape to capture, since it was chosen
        self._graph: Any = None
        self._shape: Any = None  # (X shape, T shape, dtypes) of the batches replayed
        self._baked: Any = None  # the optimizer constants in the captured kernels
        self._arenas: Any = None
        self._static: tuple[Any, Any] | None = None
        self._outputs: tuple[Any, ...] = ()
        self._pools: list[Any] = []  # every capture's private memory pool, kept for this object's lifetime

    @property
    def replaying(self) -> bool:
        """Whether a captured graph is ready to replay."""
        return self._graph is not None

    def __call__(self, X: Array, T: Array) -> tuple[Any, ...]:
        if self.reason is not None:
            return self.step(X, T)
        shape = (X.shape, T.shape, X.dtype, T.dtype)  # dtypes as objects: str() of one costs microseconds
        if self._graph is not None and (
            self._arenas is not self.optimizer.params[0].arenas or self._constants() != self._baked
        ):
            self._drop()  # the model moved or was repacked, or a baked-in constant changed
        if self._shape is None:
            self._shape = shape
        if shape != self._shape:
            return self.step(X, T)
        if self._graph is None:
            self.calls += 1
            if self.calls <= self.warmup:
                return self.step(X, T)
            self._capture(X, T)
            if self._graph is None:
                return self.step(X, T)
        cupy = self.model.backend._cupy  # None off CUDA (where tests stub the graph)
        Xs, Ts = self._static
        _copy_into(cupy, Xs, X)
        _copy_into(cupy, Ts, T)
        self.optimizer.prepare_replay()
        self._graph.launch()
        self.optimizer.after_replay()
        # copies: the next replay rewrites the static outputs, and callers may keep these
        kept = tuple(_copy_of(cupy, o) for o in self._outputs[: self.keep])
        return kept + (None,) * (len(self._outputs) - len(kept))

    def _constants(self) -> tuple[Any, ...]:
        """The optimizer's settings the captured kernels hold as constants (all but ``lr``)."""
        return tuple(v for k, v in self.optimizer.hyperparameters().items() if k != "lr")

    def _capture(self, X: Array, T: Array) -> None:
        import cupy  # noqa: PLC0415 - only reached on CUDA (see graph_unsupported_reason)

        backend = self.model.backend
        # Capture executes nothing, but its Python runs: undo what that counts or draws.
        bookkeeping = [{k: v for k, v in s.items() if isinstance(v, (int, float))} for s in self.optimizer.state]
        noise = copy.deepcopy(self.model.noise_rng.bit_generator.state)
        pool = cupy.cuda.MemoryPool()
        # Kept whatever happens: arrays allocated while capturing live in it.
        self._pools.append(pool)
        stream = cupy.cuda.Stream(non_blocking=True)
        Xs, Ts = cupy.empty(X.shape, dtype=X.dtype), cupy.empty(T.shape, dtype=T.dtype)  # C order, whatever X's
        error: BaseException | None = None
        graph = None
        gc.collect()  # collect now what could otherwise be collected mid-capture: a finalizer that syncs would break it
        collecting = gc.isenabled()
        gc.disable()
        try:
            with stream:
                bind = backend.kernel("bind_stream", None)
                if bind is not None:
                    bind()  # cuBLAS must know the capture stream before capture begins
                stream.synchronize()
                with cupy.cuda.using_allocator(pool.malloc):
                    stream.begin_capture()
                    try:
                        outputs = self.step(Xs, Ts)
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
        if error is None and getattr(self.optimizer, "_fused", None) is None:  # set by each step that ran fused
            # an update that rebinds arrays (a parameter without a gradient falls back to the
            # per-parameter rule) would replay from stale inputs
            error = RuntimeError("the optimizer did not update every parameter in one fused step")
        if error is not None or graph is None:
            self.reason = f"capture failed: {type(error).__name__}: {error}"
            warnings.warn(f"graph=True: training eagerly because the {self.reason}", stacklevel=4)
            return
        self._graph, self._baked = graph, self._constants()
        self._static, self._outputs = (Xs, Ts), tuple(outputs)
        self._arenas = self.optimizer.params[0].arenas

    def _drop(self) -> None:
        self._graph = self._baked = self._arenas = self._static = None
        self._outputs = ()  # the pools stay: arrays made while capturing (a gradient) may outlive the graph
        self.calls = 0


def _copy_into(cupy: Any, dst: Any, src: Any) -> None:
    """``dst[...] = src`` on the current stream, as one ``cudaMemcpyAsync`` where both are
    C-contiguous CuPy arrays of one shape and dtype: a replay is a few launches, and CuPy's copy kernel
    costs several times the host time of a bare copy."""
    bare = cupy is not None and isinstance(src, cupy.ndarray) and isinstance(dst, cupy.ndarray)
    if bare and src.flags.c_contiguous and dst.flags.c_contiguous and src.dtype == dst.dtype and src.shape == dst.shape:
        stream = cupy.cuda.get_current_stream().ptr
        cupy.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, src.nbytes, cupy.cuda.runtime.memcpyDefault, stream)
    else:
        dst[...] = src


def _copy_of(cupy: Any, a: Any) -> Any:
    """A new array holding ``a`` (`_copy_into` a fresh one)."""
    if cupy is None or not isinstance(a, cupy.ndarray):
        return a.copy()
    out = cupy.empty(a.shape, dtype=a.dtype)
    _copy_into(cupy, out, a)
    return out

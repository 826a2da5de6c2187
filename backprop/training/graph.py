"""CUDA-graph replay policy: `GraphedStep` records a whole training step once as a CUDA
graph and replays it; `graph_unsupported_reason` says which models it cannot replay.

Small models are launch-bound on a GPU: a step is dozens of kernels, each costing more host
time to launch than device time to run. Replaying the step as one CUDA graph removes that
cost. What makes replay correct:

- every array the step updates is updated *in place* (the fused optimizer on the model's flat
  buffers); a step that rebinds arrays (a generic optimizer, BatchNorm's running statistics)
  cannot be replayed, so it runs eagerly and `reason` says why;
- the step number and learning rate live in device memory, written before each replay
  (`Optimizer.replay_scalars`); host-side step counts are advanced after it (`after_replay`);
- capture happens after ``warmup`` eager steps (kernels compiled, optimizer state created,
  cuBLAS bound to the capture stream); capture's Python runs once without executing anything,
  so what it counted (optimizer steps) or drew (host dropout state) is put back;
- a batch of another shape (the last, partial one) runs eagerly on the same memory;
- any failure to capture falls back to eager steps for good, with a warning and the reason
  recorded;
- everything a capture bakes in is compared before each replay, and a change means a new
  capture (after ``warmup`` eager steps): the optimizer's constants (betas, eps, momentum,
  weight decay), the arrays its fused update works on (a parameter's ``data`` rebound, a
  ``load_state_dict``), the parameters' flat buffer (``model.to``), the model's mode
  (``train``/``eval``) and every layer's settings (``Dropout.p``, ``LeakyReLU.alpha``,
  ``Dense.l1``/``l2``...): a replay never runs on what the graph no longer matches;
- a step is called inside its backend's device context (``cuda:1`` binds GPU 1 itself).

The CuPy side (stream, private memory pool, copies in and out, the replay launch) is
`backprop.backends.cuda_graph.GraphCapture`; nothing here imports CuPy.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backends.cuda_graph import GraphCapture
from .protocol import TrainableModel

if TYPE_CHECKING:
    from ..backends import Array
    from ..optim import Optimizer

__all__ = ["GraphedStep", "graph_unsupported_reason"]

StepFn = Callable[[Any, Any], "tuple[Any, ...]"]


def graph_unsupported_reason(model: TrainableModel, optimizer: Optimizer) -> str | None:
    """Why ``model`` trained by ``optimizer`` cannot be replayed from a CUDA graph (``None``
    when it can)."""
    if model.device.type != "cuda":
        return f"CUDA graphs need a CUDA device; the model is on {model.device.name}"
    if getattr(model, "loss_scaler", None) is not None:
        return (
            "dynamic loss scaling (fp16-mixed) decides on the host, after each backward pass, whether the step "
            "updates the weights; use precision='bf16-mixed', which needs no loss scaling"
        )
    if not optimizer.fusable:
        return f"{type(optimizer).__name__} updates parameters out of place; use SGD, Adam or AdamW"
    params = model.parameters()
    if len(optimizer.params) != len(params) or any(a is not b for a, b in zip(optimizer.params, params)):
        return "the optimizer does not update exactly the model's parameters, in order (only that is one fused update)"
    if any(p.arenas is None for p in optimizer.params):
        return "the parameters are not in the model's flat buffer"
    stateful = [
        p.name for layer in model.walk() if layer.updates_state for p in layer.variables().values() if not p.trainable
    ]
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

    def __init__(self, step: StepFn, model: TrainableModel, optimizer: Optimizer, warmup: int = 3, keep: int = 2):
        self.step, self.model, self.optimizer = step, model, optimizer
        if not 0 <= keep <= 2:
            raise ValueError(f"keep must be 0, 1 or 2 (a replay copies out at most two outputs); got {keep}")
        self.warmup, self.keep = warmup, keep
        self.reason = graph_unsupported_reason(model, optimizer)
        self.calls = 0  # calls of the shape to capture, since it was chosen
        self._replay: Callable[[Any, Any], tuple[Any, ...]] | None = None  # (X, T) -> kept outputs
        self._n_outputs = 0
        self._shape: Any = None  # (X shape, T shape, dtypes) of the batches replayed
        self._baked: Any = None  # what the capture baked in (`_constants`)
        self._arenas: Any = None
        self._update: Any = None  # the optimizer's fused update the capture recorded
        self._graphs = GraphCapture()  # holds every capture's memory for this object's lifetime

    @property
    def replaying(self) -> bool:
        """Whether a captured graph is ready to replay."""
        return self._replay is not None

    def __call__(self, X: Array, T: Array) -> tuple[Any, ...]:
        with self.model._require_built().activate():  # a step of cuda:1 runs on GPU 1 wherever it is called
            return self._call(X, T)

    def _call(self, X: Array, T: Array) -> tuple[Any, ...]:
        if self.reason is not None:
            return self.step(X, T)
        shape = (X.shape, T.shape, X.dtype, T.dtype)  # dtypes as objects: str() of one costs microseconds
        if self._replay is not None and self._stale():
            self._drop()
        if self._shape is None or (self._replay is None and shape[0][0] > self._shape[0][0]):
            # the largest batch is the one to capture (after a drop, the first call may be a partial batch)
            self._shape, self.calls = shape, 0
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
        """What a capture bakes in besides arrays: the optimizer's settings (all but ``lr``,
        which a replay reads from device memory), the model's mode and every layer's settings."""
        optimizer = tuple(v for k, v in self.optimizer.get_config().items() if k != "lr")
        return optimizer, self.model.training, [layer.get_config() for layer in self.model.walk()]

    def _stale(self) -> bool:
        """Whether the captured graph no longer matches the model and the optimizer: the model
        moved or was repacked, the optimizer's update now works on other arrays, or a setting
        baked into the capture changed."""
        if self._arenas is not self.optimizer.params[0].arenas:
            return True
        update = self._update
        if update is not None:
            valid = update.valid(self.optimizer)
            if not valid or update is not self.optimizer.fused:
                return True
        return self._constants() != self._baked

    def _capture(self, X: Array, T: Array) -> None:
        # Capture executes nothing, but its Python runs: undo what that counts or draws.
        bookkeeping = [{k: v for k, v in s.items() if isinstance(v, (int, float))} for s in self.optimizer.state]
        noise = copy.deepcopy(self.model.noise_rng.bit_generator.state)
        error: BaseException | None = None
        replayer = None
        try:
            backend = self.model._require_built()
            replayer = self._graphs.capture(backend, self.step, X, T, self.keep, self.optimizer.replay_scalars)
        except Exception as exc:  # noqa: BLE001 - anything that breaks capture means: stay eager
            error = exc
        finally:
            for state, saved in zip(self.optimizer.state, bookkeeping):
                state.update(saved)
            self.model.noise_rng.bit_generator.state = noise
        if error is None and not self.optimizer.fused_ready:  # set by each step that ran fused
            # an update that rebinds arrays (a parameter without a gradient falls back to the
            # per-parameter rule) would replay from stale inputs
            error = RuntimeError("the optimizer did not update every parameter in one fused step")
        if error is not None or replayer is None:
            self.reason = f"capture failed: {type(error).__name__}: {error}"
            warnings.warn(f"graph=True: training eagerly because the {self.reason}", stacklevel=4)
            return
        self._replay = replayer
        self._n_outputs = replayer.n_outputs
        self._baked, self._arenas = self._constants(), self.optimizer.params[0].arenas
        self._update = self.optimizer.fused

    def _drop(self) -> None:
        self._replay = self._baked = self._arenas = self._update = self._shape = None
        self._graphs.release()
        self._n_outputs = 0  # blocks that arrays made while capturing still use stay until those go
        self.calls = 0

"""`Parameter`: a trainable array, its gradient and the backend both live on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .backends import Array, Backend
    from .backends.arena import ParameterArenas

__all__ = ["Parameter"]

# stands, in a pickled Parameter, for an array that is its view of the model's flat buffer
_IN_BUFFER = "view of the flat buffer"


class Parameter:
    """A trainable array.

    Attributes
    ----------
    name:
        Dotted path in the model, e.g. ``"0.W"`` (set when the model is built).
    data:
        The values, an array on the model's device.
    grad:
        ``dLoss/d data`` from the last `Sequential.backprop` (``None`` before the first one
        and after ``zero_grad``), same shape, dtype and device as ``data``.
    backend:
        The `Backend` both arrays live on.
    trainable:
        ``False`` for state that is saved but not trained (BatchNorm's running statistics);
        `Sequential.parameters` lists trainable parameters only.
    arenas, index:
        On NumPy and CuPy a model keeps all trainable values (and gradients) in one flat
        buffer each; ``data`` is then ``arenas.data.views[index]``. Assigning a new array to
        ``data`` is still fine: optimizers copy it back into the buffer on their next step.
    operand:
        Mixed precision: while a model's forward pass runs, ``data`` rounded once for the
        pass's matrix products (a view of the model's buffer of rounded weights, refreshed in
        one pass at the start); ``None`` otherwise, and then a layer rounds ``data`` itself.
    """

    __slots__ = ("arenas", "backend", "data", "grad", "index", "name", "operand", "trainable")

    def __init__(self, name: str, data: Array, backend: Backend, *, trainable: bool = True):
        self.name = name
        self.data = data
        self.grad: Array | None = None
        self.backend = backend
        self.trainable = trainable
        self.arenas: ParameterArenas | None = None
        self.index = 0
        self.operand: Array | None = None

    @property
    def grad_slot(self) -> Array | None:
        """Where this gradient lives in the model's flat gradient buffer, if it has one: a
        gradient written there saves the optimizer a copy and keeps its fused update ready."""
        return None if self.arenas is None else self.arenas.grad.views[self.index]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def __getstate__(self) -> dict[str, Any]:
        """For pickling (and ``copy.deepcopy``): ``data`` and ``grad`` as host NumPy arrays,
        or, where they are views of the model's flat buffers, as a mark: the buffers are
        pickled once, with the `Arena`, and not a second time piece by piece."""
        state = {name: getattr(self, name) for name in self.__slots__}
        state["operand"] = None  # made again by the next forward pass
        for name in ("data", "grad"):
            value = state[name]
            arena = None if self.arenas is None else getattr(self.arenas, name)
            if arena is not None and value is arena.views[self.index]:
                state[name] = _IN_BUFFER
            elif value is not None:
                state[name] = self.backend.to_numpy(value)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling: host arrays back on the backend's device, marks replaced by the views of
        the unpickled flat buffers (complete by now: a buffer holds no parameters, so pickle
        rebuilds it entirely before the parameters that refer to it)."""
        backend = state["backend"]
        self.operand = None  # pickles made before mixed precision have none
        for name, value in state.items():
            if name in ("data", "grad") and isinstance(value, str):
                value = getattr(state["arenas"], name).views[state["index"]]
            elif name in ("data", "grad") and value is not None:
                # a copy only where the host array is read-only (joblib's mmap_mode="r")
                value = backend.from_host(np.require(value, requirements="W"), getattr(backend.xp, value.dtype.name))
            setattr(self, name, value)

    def __repr__(self) -> str:
        where = f"dtype={self.backend.dtype_name}, device={self.backend.device.name!r}"
        return f"Parameter({self.name!r}, shape={self.shape}, {where})"

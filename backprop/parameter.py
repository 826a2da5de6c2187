"""`Parameter`: a trainable array, its gradient and the backend both live on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backends import Array, Backend
    from .backends.arena import ParameterArenas

__all__ = ["Parameter"]


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
    """

    __slots__ = ("arenas", "backend", "data", "grad", "index", "name", "trainable")

    def __init__(self, name: str, data: Array, backend: Backend, *, trainable: bool = True):
        self.name = name
        self.data = data
        self.grad: Array | None = None
        self.backend = backend
        self.trainable = trainable
        self.arenas: ParameterArenas | None = None
        self.index = 0

    @property
    def grad_slot(self) -> Array | None:
        """Where this gradient lives in the model's flat gradient buffer, if it has one: a
        gradient written there saves the optimizer a copy and keeps its fused update ready."""
        return None if self.arenas is None else self.arenas.grad.views[self.index]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def __repr__(self) -> str:
        where = f"dtype={self.backend.dtype_name}, device={self.backend.device.name!r}"
        return f"Parameter({self.name!r}, shape={self.shape}, {where})"

"""`Arena`: one flat buffer whose slices are the arrays of many parameters.

With every parameter (and every gradient, and every optimizer moment) a view into one
contiguous buffer, an optimizer updates the whole model in a few passes (a few kernel
launches on a GPU) instead of a few per parameter. Only namespaces where slices are views
that can be written through (NumPy, CuPy) get arenas; elsewhere each array stands alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy

if TYPE_CHECKING:
    from .backend import Array, Backend

__all__ = ["Arena", "ParameterArenas"]


class Arena:
    """A flat buffer ``flat`` of the backend's dtype and its views, one per shape.

    ``views[i]`` is ``flat[offsets[i]:offsets[i+1]]`` reshaped to ``shapes[i]``.
    """

    def __init__(self, backend: Backend, shapes: Sequence[tuple[int, ...]]):
        self.backend = backend
        self.shapes = [tuple(s) for s in shapes]
        self.flat = backend.zeros((sum(math.prod(s) for s in self.shapes),))
        self.views: list[Array] = _cut(self.flat, self.shapes)

    def __len__(self) -> int:
        return len(self.views)

    def host_copies(self, arrays: Sequence[Any]) -> dict[int, np.ndarray]:
        """Host NumPy copies of those of ``arrays`` that are this arena's views (``arrays[i]``
        against ``views[i]``), by ``id`` of the array. All come from one copy of the flat buffer
        (one transfer and sync on a GPU, instead of one per view); they share that copy, not the
        arena's memory."""
        held = [i for i, (a, v) in enumerate(zip(arrays, self.views)) if a is v]
        if not held:
            return {}
        host = _cut(np.array(to_numpy(self.flat), copy=True), self.shapes)
        return {id(arrays[i]): host[i] for i in held}

    def __deepcopy__(self, memo: dict[int, Any]) -> Arena:
        """A copy whose views are views of the copied buffer (a plain deep copy would copy
        each view on its own, silently cutting it loose from the flat buffer)."""
        new = Arena.__new__(Arena)
        memo[id(self)] = new
        new.backend = self.backend
        new.shapes = list(self.shapes)
        new.flat = self.flat.copy()
        new.views = _cut(new.flat, new.shapes)
        for old, view in zip(self.views, new.views):
            memo[id(old)] = view
        return new

    def __getstate__(self) -> dict[str, Any]:
        """For pickling: the buffer as a host NumPy array (one transfer on a GPU), no views."""
        return {"backend": self.backend, "shapes": self.shapes, "flat": self.backend.to_numpy(self.flat)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling: the buffer back on its backend's device and the views cut from it again
        (a `Parameter` whose values were a view takes the new view, see its `__setstate__`)."""
        self.backend, self.shapes = state["backend"], state["shapes"]
        # a copy where the host array is read-only (joblib.load(..., mmap_mode="r")): it is trained in place
        self.flat = self.backend.from_host(np.require(state["flat"], requirements="W"))
        self.views = _cut(self.flat, self.shapes)

    def gather(self, arrays: Sequence[Array]) -> list[Array]:
        """Make the arena hold ``arrays`` (copying only those that are not already its views);
        returns the views, to be used in their place."""
        for view, array in zip(self.views, arrays):
            if array is not view:
                view[...] = array
        return self.views


def _cut(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Consecutive views of ``flat``, one of each shape."""
    views, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[start : start + size].reshape(shape))
        start += size
    return views


class ParameterArenas:
    """The two arenas of a model's trainable parameters, their values and their gradients, and,
    in mixed precision, a buffer of the values rounded as matrix-product operands."""

    def __init__(self, backend: Backend, shapes: Sequence[tuple[int, ...]]):
        self.data = Arena(backend, shapes)
        self.grad = Arena(backend, shapes)
        self._operands: tuple[Array, list[Array]] | None = None  # (flat rounded values, their views)

    def refresh_operands(self) -> list[Array] | None:
        """Round every value as its backend's matrix-product operands (``backend.operands``)
        in one pass over the flat buffer (one kernel on a GPU) into a buffer kept for the
        purpose, and return its views (one per parameter, of the rounded values' dtype: float32
        on the host, 16-bit on a GPU). ``None`` for float32 operands: the values are used."""
        backend = self.data.backend
        if backend.operands == "float32":
            return None
        held = self._operands
        with backend.activate():
            if held is None:
                rounded = backend.ops.round_operand(self.data.flat, backend.operands)
                if rounded is self.data.flat:  # the matrix units convert for themselves (cuBLAS's TF32)
                    return self.data.views
                held = self._operands = (rounded, _cut(rounded, self.shapes))
            else:
                backend.ops.round_operand(self.data.flat, backend.operands, out=held[0])
        return held[1]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return self.data.shapes

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "grad": self.grad}  # the rounded values are made again when needed

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.data, self.grad = state["data"], state["grad"]
        self._operands = None

    def __deepcopy__(self, memo: dict[int, Any]) -> ParameterArenas:
        new = ParameterArenas.__new__(ParameterArenas)
        memo[id(self)] = new
        new.__setstate__({"data": copy.deepcopy(self.data, memo), "grad": copy.deepcopy(self.grad, memo)})
        return new

"""`Arena`: one flat buffer whose slices are the arrays of many parameters.

With every parameter (and every gradient, and every optimizer moment) a view into one
contiguous buffer, an optimizer updates the whole model in a few passes (a few kernel
launches on a GPU) instead of a few per parameter. Only namespaces where slices are views
that can be written through (NumPy, CuPy) get arenas; elsewhere each array stands alone.
"""

from __future__ import annotations

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
        sizes = [math.prod(s) for s in self.shapes]
        self.flat = backend.zeros((sum(sizes),))
        self.views: list[Array] = []
        start = 0
        for shape, size in zip(self.shapes, sizes):
            self.views.append(self.flat[start : start + size].reshape(shape))
            start += size

    def __len__(self) -> int:
        return len(self.views)

    def to_host(self) -> list[np.ndarray]:
        """Host NumPy copies of every view, from one copy of the flat buffer (one transfer and
        sync on a GPU, instead of one per view); they share that copy, not the arena's memory."""
        flat = np.array(to_numpy(self.flat), copy=True)
        out, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            out.append(flat[start : start + size].reshape(shape))
            start += size
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> Arena:
        """A copy whose views are views of the copied buffer (a plain deep copy would copy
        each view on its own, silently cutting it loose from the flat buffer)."""
        new = Arena.__new__(Arena)
        memo[id(self)] = new
        new.backend = self.backend
        new.shapes = list(self.shapes)
        new.flat = self.flat.copy()
        new.views = []
        start = 0
        for old, shape in zip(self.views, self.shapes):
            size = math.prod(shape)
            view = new.flat[start : start + size].reshape(shape)
            memo[id(old)] = view
            new.views.append(view)
            start += size
        return new

    def gather(self, arrays: Sequence[Array]) -> list[Array]:
        """Make the arena hold ``arrays`` (copying only those that are not already its views);
        returns the views, to be used in their place."""
        for view, array in zip(self.views, arrays):
            if array is not view:
                view[...] = array
        return self.views


class ParameterArenas:
    """The two arenas of a model's trainable parameters: their values and their gradients."""

    def __init__(self, backend: Backend, shapes: Sequence[tuple[int, ...]]):
        self.data = Arena(backend, shapes)
        self.grad = Arena(backend, shapes)

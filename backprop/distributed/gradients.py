"""The flat gradient buffer the ranks all-reduce.

On NumPy and CuPy a model keeps every gradient as a view of one flat buffer
(`backprop.backends.arena`), so one all-reduce (or a few buckets) covers the whole model.
Backward writes most gradients there directly, but a gradient may have been replaced by an
array of its own (``zero_grad``, a user's assignment); `gradient_buffer` copies such
stragglers back into their slots first, so that the buffer is complete and the optimizer's
fused update still finds every gradient where it expects it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..parameter import Parameter

__all__ = ["gradient_buffer"]


def gradient_buffer(params: Sequence[Parameter], zero: bool = False) -> Any | None:
    """The flat buffer holding the gradients of ``params`` (a model's trainable parameters, in
    order), with each ``p.grad`` made its view; ``zero=True`` fills it with zeros (a rank with
    no rows in a batch contributes nothing to the sum but still takes part in it).

    Returns ``None`` when the parameters are not in one flat buffer (models on other Array API
    namespaces): reduce ``[p.grad for p in params]`` one by one instead.
    """
    if not params:
        return None
    arenas = params[0].arenas
    if arenas is None or len(params) != len(arenas.grad.views):
        return None
    views = arenas.grad.views
    if any(p.arenas is not arenas or p.index != i for i, p in enumerate(params)):
        return None
    backend = arenas.grad.backend
    with backend.activate():
        if zero:
            arenas.grad.flat[...] = 0
        for p, view in zip(params, views):
            if p.grad is not view:
                if not zero:
                    if p.grad is None:
                        raise ValueError(f"{p.name} has no gradient: run backward (model.backprop) first")
                    view[...] = p.grad
                p.grad = view
    return arenas.grad.flat

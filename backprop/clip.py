"""Gradient clipping, on the device, without a host sync."""

from __future__ import annotations

from collections.abc import Iterable

from .backends import Array
from .parameter import Parameter

__all__ = ["clip_grad_norm", "clip_grad_value", "flat_gradients"]


def clip_grad_norm(params: Iterable[Parameter], max_norm: float) -> Array:
    """Scale all gradients together, in place, so their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum_p sum(grad_p^2))``; every gradient is multiplied by
    ``min(1, max_norm / (norm + 1e-6))`` (as ``torch.nn.utils.clip_grad_norm_``).
    Returns the norm before clipping as a 0-d array on the device: ``float(...)`` it only
    when you need it, since that waits for the GPU.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive; got {max_norm}")
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        raise ValueError("no parameter has a gradient yet: call model.backprop(...) first")
    grads = [p.grad for p in with_grad if p.grad is not None]  # every one of them; the test is for the type checker
    backend = with_grad[0].backend
    xp = backend.xp
    flat = flat_gradients(with_grad)
    with backend.activate():
        # all of a model's gradients in its flat buffer: one reduction, one scaling; else one per gradient
        total = xp.sqrt(xp.sum(flat * flat) if flat is not None else sum(xp.sum(g * g) for g in grads))
        scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
        for g in [flat] if flat is not None else grads:
            g *= scale  # in place, like torch's clip_grad_norm_: gradients stay in the flat buffer
    return total


def flat_gradients(params: list[Parameter]) -> Array | None:
    """The flat gradient buffer, when ``params`` are exactly its parameters and every gradient is
    in it."""
    arenas = params[0].arenas
    if arenas is None or len(params) != len(arenas.grad.views):
        return None
    views = arenas.grad.views
    seen = set()
    for p in params:
        if p.arenas is not arenas or p.grad is not views[p.index] or p.index in seen:
            return None
        seen.add(p.index)
    return arenas.grad.flat


def clip_grad_value(params: Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    if not clip_value > 0:
        raise ValueError(f"clip_value must be positive; got {clip_value}")
    for p in params:
        if p.grad is not None:
            xp = p.backend.xp
            with p.backend.activate():
                p.grad = xp.minimum(xp.maximum(p.grad, -clip_value), clip_value)  # not clip: a host sync on CuPy

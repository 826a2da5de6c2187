"""Elementwise activations and softmax; each forward sits beside its backward.

All are numerically stable: no overflow (and no NumPy warning) for inputs of +-1000.
Shapes: X, Y, dY, dX are all ``(N, features)``.
"""

from __future__ import annotations

from typing import Any

from ..backends import Array, Ops
from ..registry import LAYERS
from ..validation import real
from .base import Backward, Layer

__all__ = ["GELU", "Elementwise", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh", "get_activation"]


class Elementwise(Layer):
    """An activation applied entry by entry: ``Y = f(X)``, ``dX = df(dY, X, Y)``.

    Subclasses give `f`, `df` and `bias_f` (``f(Z + b)``, used when the activation directly
    follows a `Dense`) as calls of the backend's `Ops`, which computes them fused where it can.
    ``needs_input`` says whether ``df`` reads X (else only Y, so X may be overwritten and is
    passed as ``None``).
    """

    needs_input = False

    def f(self, ops: Ops, X: Array) -> Array:
        raise NotImplementedError

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        """``f(Z + b)``; may overwrite Z (a temporary of its caller)."""
        raise NotImplementedError

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        raise NotImplementedError

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        ops = self.ops
        Y = self.f(ops, X)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return self.df(ops, dY, X, Y) if need_dX else None

        return Y, backward


@LAYERS.register(aliases=('relu',))
class ReLU(Elementwise):
    """``Y = max(X, 0)``;  ``dX = dY * 1[Y > 0]`` (gradient 0 at the kink, as in PyTorch)."""

    def f(self, ops: Ops, X: Array) -> Array:
        return ops.relu(X)

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        return ops.bias_relu(Z, b)

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        return ops.relu_backward(dY, Y)


@LAYERS.register(aliases=('leaky_relu',))
class LeakyReLU(Elementwise):
    """``Y = X if X > 0 else alpha * X``;  ``dX = dY if X > 0 else alpha * dY``."""

    needs_input = True

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = real(alpha, "alpha", owner="LeakyReLU")

    def f(self, ops: Ops, X: Array) -> Array:
        return ops.leaky_relu(X, self.alpha)

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        return ops.bias_leaky_relu(Z, b, self.alpha)

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        return ops.leaky_relu_backward(dY, X, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@LAYERS.register(aliases=('sigmoid',))
class Sigmoid(Elementwise):
    """``Y = 1 / (1 + exp(-X))``;  ``dX = dY * Y * (1 - Y)``."""

    output_kind = "probabilities"

    def f(self, ops: Ops, X: Array) -> Array:
        return ops.sigmoid(X)

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        return ops.bias_sigmoid(Z, b)

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        return ops.sigmoid_backward(dY, Y)


@LAYERS.register(aliases=('tanh',))
class Tanh(Elementwise):
    """``Y = tanh(X)``;  ``dX = dY * (1 - Y^2)``."""

    def f(self, ops: Ops, X: Array) -> Array:
        return ops.tanh(X)

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        return ops.bias_tanh(Z, b)

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        return ops.tanh_backward(dY, Y)


@LAYERS.register(aliases=('gelu',))
class GELU(Elementwise):
    """Exact GELU: ``Y = X * Phi(X)``, ``Phi(X) = (1 + erf(X / sqrt 2)) / 2``;
    ``dX = dY * (Phi(X) + X * phi(X))`` with the normal density ``phi(X) = exp(-X^2/2) / sqrt(2 pi)``."""

    needs_input = True

    def f(self, ops: Ops, X: Array) -> Array:
        return ops.gelu(X)

    def bias_f(self, ops: Ops, Z: Array, b: Array) -> Array:
        return ops.bias_gelu(Z, b)

    def df(self, ops: Ops, dY: Array, X: Array | None, Y: Array) -> Array:
        return ops.gelu_backward(dY, X)


@LAYERS.register(aliases=('softmax',))
class Softmax(Layer):
    """Row-wise ``Y = exp(X - max X) / sum exp(X - max X)``;
    ``dX = Y * (dY - sum_j dY_j Y_j)``.

    For classification train on logits with `bp.losses.SoftmaxCrossEntropy` instead, which is
    faster and more accurate; use this layer when you need probabilities inside a model.
    """

    output_kind = "probabilities"

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        E = xp.exp(X - xp.max(X, axis=1, keepdims=True))
        Y = E / xp.sum(E, axis=1, keepdims=True)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            if not need_dX:
                return None
            return Y * (dY - xp.sum(dY * Y, axis=1, keepdims=True))

        return Y, backward


_ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "softmax": Softmax,
}


def get_activation(name: str) -> Layer:
    """A new activation layer from its name (``"relu"``, ``"tanh"``, ...)."""
    cls = _ACTIVATIONS.get(name.lower().replace("-", "_")) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown activation {name!r}: use one of {', '.join(sorted(_ACTIVATIONS))}")
    return cls()

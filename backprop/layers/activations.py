"""Elementwise activations and softmax; each forward sits beside its backward.

All are numerically stable: no overflow (and no NumPy warning) for inputs of +-1000.
Shapes: X, Y, dY, dX are all ``(N, features)``.
"""

from __future__ import annotations

import math
from typing import Any

from .._math import erf
from ..backends import Array
from .base import Backward, Layer

__all__ = ["GELU", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh", "get_activation", "sigmoid"]


def sigmoid(xp: Any, X: Array) -> Array:
    """``1 / (1 + exp(-X))`` without overflow: ``exp`` only ever sees ``-|X|``."""
    e = xp.exp(-xp.abs(X))
    return xp.where(X >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class ReLU(Layer):
    """``Y = max(X, 0)``;  ``dX = dY * 1[X > 0]`` (gradient 0 at the kink, as in PyTorch)."""

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        Y = xp.maximum(X, 0.0)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return xp.where(Y > 0, dY, 0.0) if need_dX else None

        return Y, backward


class LeakyReLU(Layer):
    """``Y = X if X > 0 else alpha * X``;  ``dX = dY if X > 0 else alpha * dY``."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = float(alpha)

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        alpha = self.alpha
        Y = xp.where(X > 0, X, alpha * X)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return xp.where(X > 0, dY, alpha * dY) if need_dX else None

        return Y, backward

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(Layer):
    """``Y = 1 / (1 + exp(-X))``;  ``dX = dY * Y * (1 - Y)``."""

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        Y = sigmoid(xp, X)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return dY * Y * (1.0 - Y) if need_dX else None

        return Y, backward


class Tanh(Layer):
    """``Y = tanh(X)``;  ``dX = dY * (1 - Y^2)``."""

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        Y = xp.tanh(X)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return dY * (1.0 - Y * Y) if need_dX else None

        return Y, backward


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Layer):
    """Exact GELU: ``Y = X * Phi(X)``, ``Phi(X) = (1 + erf(X / sqrt 2)) / 2``;
    ``dX = dY * (Phi(X) + X * phi(X))`` with the normal density ``phi(X) = exp(-X^2/2) / sqrt(2 pi)``."""

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        Phi = 0.5 * (1.0 + erf(xp, X * _INV_SQRT2))
        Y = X * Phi

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            if not need_dX:
                return None
            # Clamping keeps X*X finite; beyond |X| = 40 the density is exactly 0 anyway.
            Xc = xp.clip(X, -40.0, 40.0)
            phi = xp.exp(-0.5 * Xc * Xc) * _INV_SQRT_2PI
            return dY * (Phi + X * phi)

        return Y, backward


class Softmax(Layer):
    """Row-wise ``Y = exp(X - max X) / sum exp(X - max X)``;
    ``dX = Y * (dY - sum_j dY_j Y_j)``.

    For classification train on logits with `bp.losses.SoftmaxCrossEntropy` instead, which is
    faster and more accurate; use this layer when you need probabilities inside a model.
    """

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

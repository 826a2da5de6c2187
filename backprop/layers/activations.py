"""Elementwise activations and softmax; each forward sits beside its backward.

All are numerically stable: no overflow (and no NumPy warning) for inputs of +-1000.
Shapes: X, Y, dY, dX are all ``(N, features)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._math import INV_SQRT2, INV_SQRT_2PI, erf
from ..backends import Array
from .base import Backward, Layer

__all__ = ["GELU", "Elementwise", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh", "get_activation", "sigmoid"]


def sigmoid(xp: Any, X: Array) -> Array:
    """``1 / (1 + exp(-X))`` without overflow: ``exp`` only ever sees ``-|X|``."""
    e = xp.exp(-xp.abs(X))
    return xp.where(X >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Elementwise(Layer):
    """An activation applied entry by entry: ``Y = f(X)``, ``dX = df(dY, X, Y)``.

    Subclasses give ``f`` and ``df`` as generic Array API functions (the reference) and a
    ``kernel`` name; a backend may replace them with fused versions registered as
    ``"<kernel>_forward"`` / ``"<kernel>_backward"`` (and ``"bias_<kernel>_forward"`` for
    ``f(Z + b)``, used when the activation directly follows a `Dense`).
    ``needs_input`` says whether ``df`` reads X (else only Y, so X may be overwritten).
    Hyperparameters reach every kernel as trailing arguments, ``kernel_args``.
    """

    kernel = ""
    needs_input = False
    kernel_args: tuple[float, ...] = ()

    def f(self, xp: Any, X: Array, *args: float) -> Array:
        raise NotImplementedError

    def df(self, xp: Any, dY: Array, X: Array, Y: Array, *args: float) -> Array:
        raise NotImplementedError

    def bias_f(self, xp: Any, Z: Array, b: Array, *args: float) -> Array:
        """``f(Z + b)``; a fused backend version may overwrite Z (a temporary of its caller)."""
        return self.f(xp, Z + b, *args)

    def kernels(self) -> tuple[Callable[..., Array], Callable[..., Array], Callable[..., Array]]:
        """``(forward, backward, bias_forward)`` for the current backend: its fused kernels
        where it has them, else the generic ``f``, ``df`` and ``bias_f``."""
        bk = self._require_built()
        cached = self.__dict__.get("_fused")
        if cached is None or cached[0] is not bk:  # looked up once per backend: this runs every step
            names = (f"{self.kernel}_forward", f"{self.kernel}_backward", f"bias_{self.kernel}_forward")
            generic = (self.f, self.df, self.bias_f)
            cached = self._fused = (bk, tuple(bk.kernel(n, g) for n, g in zip(names, generic)))
        return cached[1]

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        args = self.kernel_args
        f, df, _ = self.kernels()
        Y = f(xp, X, *args)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return df(xp, dY, X, Y, *args) if need_dX else None

        return Y, backward


class ReLU(Elementwise):
    """``Y = max(X, 0)``;  ``dX = dY * 1[Y > 0]`` (gradient 0 at the kink, as in PyTorch)."""

    kernel = "relu"

    def f(self, xp: Any, X: Array) -> Array:
        return xp.maximum(X, 0.0)

    def df(self, xp: Any, dY: Array, X: Array, Y: Array) -> Array:
        return xp.where(Y > 0, dY, 0.0)


class LeakyReLU(Elementwise):
    """``Y = X if X > 0 else alpha * X``;  ``dX = dY if X > 0 else alpha * dY``."""

    kernel = "leaky_relu"
    needs_input = True

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = float(alpha)
        self.kernel_args = (self.alpha,)

    def f(self, xp: Any, X: Array, alpha: float) -> Array:
        return xp.where(X > 0, X, alpha * X)

    def df(self, xp: Any, dY: Array, X: Array, Y: Array, alpha: float) -> Array:
        return xp.where(X > 0, dY, alpha * dY)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(Elementwise):
    """``Y = 1 / (1 + exp(-X))``;  ``dX = dY * Y * (1 - Y)``."""

    kernel = "sigmoid"
    output_kind = "probabilities"

    def f(self, xp: Any, X: Array) -> Array:
        return sigmoid(xp, X)

    def df(self, xp: Any, dY: Array, X: Array, Y: Array) -> Array:
        return dY * Y * (1.0 - Y)


class Tanh(Elementwise):
    """``Y = tanh(X)``;  ``dX = dY * (1 - Y^2)``."""

    kernel = "tanh"

    def f(self, xp: Any, X: Array) -> Array:
        return xp.tanh(X)

    def df(self, xp: Any, dY: Array, X: Array, Y: Array) -> Array:
        return dY * (1.0 - Y * Y)


class GELU(Elementwise):
    """Exact GELU: ``Y = X * Phi(X)``, ``Phi(X) = (1 + erf(X / sqrt 2)) / 2``;
    ``dX = dY * (Phi(X) + X * phi(X))`` with the normal density ``phi(X) = exp(-X^2/2) / sqrt(2 pi)``."""

    kernel = "gelu"
    needs_input = True

    def f(self, xp: Any, X: Array) -> Array:
        return X * (0.5 * (1.0 + erf(xp, X * INV_SQRT2)))

    def df(self, xp: Any, dY: Array, X: Array, Y: Array) -> Array:
        Phi = 0.5 * (1.0 + erf(xp, X * INV_SQRT2))
        # Clamping keeps X*X finite; beyond |X| = 40 the density is exactly 0 anyway.
        Xc = xp.minimum(xp.maximum(X, -40.0), 40.0)  # not clip: a host sync on CuPy
        return dY * (Phi + X * (xp.exp(-0.5 * Xc * Xc) * INV_SQRT_2PI))


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

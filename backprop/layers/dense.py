"""`Dense`: the fully connected layer ``Y = X @ W + b``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Array
from ..init import Initializer, get_initializer
from .base import Backward, BuildContext, Layer

__all__ = ["Dense"]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Dense {name} must be a positive int; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"Dense {name} must be a positive int; got {value}")
    return int(value)


class Dense(Layer):
    """Fully connected layer.

    Forward:  ``Y = X @ W + b``  with X ``(N, in)``, W ``(in, out)``, b ``(out,)``, Y ``(N, out)``.
    Backward: ``dW = X^T @ dY``, ``db = sum_n dY``, ``dX = dY @ W^T``.

    ``init`` names the weight initialiser (``"xavier"``: Glorot uniform, ``"xavier_normal"``,
    ``"he"``: Kaiming normal, ``"he_uniform"``, ``"normal"``: ``0.01 * randn``, ``"zeros"``) or
    is a callable ``(rng, fan_in, fan_out) -> array`` such as ``bp.init.Normal(0.1)``.
    Biases start at zero.
    """

    def __init__(self, in_features: int, out_features: int, init: str | Initializer = "xavier", bias: bool = True):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.init = init
        self._initializer = get_initializer(init)
        self.bias = bool(bias)

    def build(self, in_features: int | None, ctx: BuildContext) -> int:
        if in_features is not None and in_features != self.in_features:
            raise ValueError(
                f"{self.describe()} expects {self.in_features} input features but the layer before "
                f"it produces {in_features}; make them agree"
            )
        super().build(in_features, ctx)
        W = np.asarray(self._initializer(ctx.rng, self.in_features, self.out_features), dtype=np.float64)
        if W.shape != (self.in_features, self.out_features):
            raise ValueError(f"init {self.init!r} returned shape {W.shape}, expected {(self.in_features, self.out_features)}")
        self.W = self.add_variable("W", W, ctx)
        self.b = self.add_variable("b", np.zeros(self.out_features), ctx) if self.bias else None
        return self.out_features

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        xp = self._require_built().xp
        self._check_input(X, self.in_features)
        W = self.W.data
        Y = xp.matmul(X, W)
        if self.b is not None:
            Y = Y + self.b.data

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            self.W.grad = xp.matmul(xp.matrix_transpose(X), dY)
            if self.b is not None:
                self.b.grad = xp.sum(dY, axis=0)
            return xp.matmul(dY, xp.matrix_transpose(W)) if need_dX else None

        return Y, backward

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if not self.bias:
            cfg["bias"] = False
        return cfg

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{extra})"

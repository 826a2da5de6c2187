"""`Residual`: a skip connection around a block of layers, ``Y = X + f(X)``."""

from __future__ import annotations

from typing import Any

from ..backends import Array
from ..registry import LAYERS
from .base import Backward, BuildContext, Layer
from .sequential import Sequential

__all__ = ["Residual"]


@LAYERS.register
class Residual(Layer):
    """``Y = X + f(X)`` with ``f = Sequential(*layers)``, held as the child ``"block"``.

    Backward: ``dX = dY + df/dX^T dY``: the block back-propagates ``dY`` (filling its
    parameters' gradients) and its input gradient is added to the skip path's ``dY``.
    Shapes: X, Y, dY, dX are all ``(N, features)``; the block must keep the feature count.
    Parameters are named through the block: ``"2.block.0.W"`` for the first Dense inside the
    Residual at position 2.
    """

    def __init__(self, *layers: Layer):
        super().__init__()
        self.block: Sequential = Sequential(*layers)

    def children(self) -> list[tuple[str, Layer]]:
        return [("block", self.block)]

    def build(self, in_features: int | None, ctx: BuildContext) -> int | None:
        super().build(in_features, ctx)
        self.block.path = f"{self.path}.block" if self.path else "block"
        out_features = self.block.build(in_features, ctx)
        features = in_features if in_features is not None else self.block.in_features
        if out_features is None:
            return features  # the block is shape-agnostic (activations only): it keeps the count
        if features is not None and out_features != features:
            where = f"layer {self.path!r} (Residual)" if self.path else "Residual"
            raise ValueError(
                f"{where} computes Y = X + f(X), so its block must keep the feature count, but the "
                f"block turns {features} input features into {out_features}; make its last layer "
                f"produce {features} features"
            )
        return out_features

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        self._require_built()
        F, block_backward = self.block.apply(X, training)
        Y = X + F

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            # Without need_dX the block still fills its parameters' gradients but skips its
            # own first input gradient, which only the skip sum would use.
            dX_block = block_backward(dY, need_dX)
            return dY + dX_block if need_dX else None

        return Y, backward

    def get_config(self) -> dict[str, Any]:
        return self.block.get_config()

    def __repr__(self) -> str:
        inner = self.block._inner_repr()
        return f"Residual(\n{inner},\n)" if inner else "Residual()"

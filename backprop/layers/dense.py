"""`Dense`: the fully connected layer ``Y = X @ W + b``."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backends import Array, Ops
from ..init import Initializer, get_initializer
from ..registry import LAYERS
from ..validation import flag, integer, real
from .activations import Elementwise
from .base import Backward, BuildContext, Layer, Stage

__all__ = ["Dense"]


@LAYERS.register
class Dense(Layer):
    """Fully connected layer.

    Forward:  ``Y = X @ W + b``  with X ``(N, in)``, W ``(in, out)``, b ``(out,)``, Y ``(N, out)``.
    Backward: ``dW = X^T @ dY``, ``db = sum_n dY``, ``dX = dY @ W^T``.

    In mixed precision (the model's ``precision=``, `backprop.precision`) the operands of the
    three products, ``X``, ``W`` and ``dY``, are rounded to the narrower format and their products
    summed in float32; ``Y``, ``dW``, ``dX``, ``b`` and ``db`` stay float32.

    ``init`` names the weight initialiser (``"xavier"``: Glorot uniform, ``"xavier_normal"``,
    ``"he"``: Kaiming normal, ``"he_uniform"``, ``"normal"``: ``0.01 * randn``, ``"zeros"``) or
    is a callable ``(rng, fan_in, fan_out) -> array`` such as ``bp.init.Normal(0.1)``.
    Biases start at zero.

    ``l1``/``l2`` add the penalty ``l1 * sum|W| + l2 * sum W^2`` on the weights (not the bias)
    to the training loss, and its gradient ``l1 * sign(W) + 2 * l2 * W`` to ``dW`` (Keras'
    convention; the optimizers' ``weight_decay`` is the other way to regularise).
    """

    output_kind = "scores"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: str | Initializer = "xavier",
        bias: bool = True,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
    ):
        super().__init__()
        self.in_features = integer(in_features, "in_features", minimum=1, owner="Dense")
        self.out_features = integer(out_features, "out_features", minimum=1, owner="Dense")
        self.init = init
        self._initializer = get_initializer(init)
        self.bias = flag(bias, "bias", owner="Dense")
        self.l1 = real(l1, "l1", low=0.0, owner="Dense")
        self.l2 = real(l2, "l2", low=0.0, owner="Dense")

    def build(self, in_features: int | None, ctx: BuildContext) -> int:
        if in_features is not None and in_features != self.in_features:
            raise ValueError(
                f"{self.describe()} expects {self.in_features} input features but the layer before "
                f"it produces {in_features}; make them agree"
            )
        super().build(in_features, ctx)
        W = np.asarray(self._initializer(ctx.rng, self.in_features, self.out_features), dtype=np.float64)
        if W.shape != (self.in_features, self.out_features):
            raise ValueError(
                f"init {self.init!r} returned shape {W.shape}, expected {(self.in_features, self.out_features)}"
            )
        self.W = self.add_variable("W", W, ctx)
        self.b = self.add_variable("b", np.zeros(self.out_features), ctx) if self.bias else None
        return self.out_features

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        ops = self.ops
        self._check_input(X, self.in_features)
        W = self.W.data
        X, Wq, kind = self._operands(ops, X)
        Y = ops.matmul(X, Wq, kind)
        if self.b is not None:
            Y = Y + self.b.data

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return self._backward(ops, X, W, Wq, dY, need_dX)

        return Y, backward

    def size_estimate(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    def fused_with(self, nxt: Layer) -> Stage | None:
        """``act(X @ W + b)`` as one stage when ``nxt`` is a stock elementwise activation (a
        subclass of either that overrides ``apply`` runs as written)."""
        if type(self).apply is Dense.apply and isinstance(nxt, Elementwise) and type(nxt).apply is Elementwise.apply:
            return functools.partial(self.apply_with, nxt)
        return None

    def apply_with(self, act: Elementwise, X: Array, training: bool) -> tuple[Array, Backward]:
        """This layer followed by the elementwise activation ``act``, fused:
        ``Y = act(X @ W + b)``; ``dZ = act.df(dY)``, then this layer's backward with ``dZ``.
        The same numbers as applying the two layers in turn, with fewer passes over memory."""
        ops = self.ops
        self._check_input(X, self.in_features)
        W = self.W.data
        X, Wq, kind = self._operands(ops, X)
        Z = ops.matmul(X, Wq, kind)
        if self.b is not None and not act.needs_input:
            A, Y = None, act.bias_f(ops, Z, self.b.data)  # may reuse Z's memory
        else:
            A = Z if self.b is None else Z + self.b.data
            Y = act.f(ops, A)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return self._backward(ops, X, W, Wq, act.df(ops, dY, A, Y), need_dX)

        return Y, backward

    def _operands(self, ops: Ops, X: Array) -> tuple[Array, Array, str]:
        """``(X, W, kind)`` as the forward product takes them: as they are in float32, else
        rounded (``W`` by the model's pass over all weights where it made one, `Parameter.operand`)."""
        kind = self._require_built().operands
        if kind == "float32":
            return X, self.W.data, kind
        W = self.W.operand
        return ops.round_operand(X, kind), ops.round_operand(self.W.data, kind) if W is None else W, kind

    def _backward(self, ops: Ops, X: Array, W: Array, Wq: Array, dY: Array, need_dX: bool) -> Array | None:
        """``dW = X^T dY`` (+ the penalty's gradient), ``db = sum_n dY``, ``dX = dY W^T``. ``X``
        and ``Wq`` are the forward product's operands, ``W`` the float32 weights."""
        xp = ops.xp
        kind = self._require_built().operands
        dYq = dY if kind == "float32" else ops.round_operand(dY, kind)
        dW = ops.matmul_tn(X, dYq, out=self.W.grad_slot, kind=kind)
        # in place: dW is ours (the gradient slot or a fresh product), and stays in the flat buffer
        if self.l1:  # sign(W) without xp.sign, which CuPy's Array API wrapper syncs with the host for
            dW += (self.l1 * self.loss_scale) * (xp.astype(W > 0, W.dtype) - xp.astype(W < 0, W.dtype))
        if self.l2:
            dW += (2.0 * self.l2 * self.loss_scale) * W
        self.W.grad = dW
        if self.b is not None:
            self.b.grad = ops.sum_rows(dY, out=self.b.grad_slot)
        return ops.matmul_nt(dYq, Wq, kind) if need_dX else None

    @property
    def regularised(self) -> bool:
        return bool(self.l1 or self.l2)

    def penalty(self, xp: Any) -> Array | float:
        """The regularisation term ``l1 * sum|W| + l2 * sum W^2`` (0.0 when both are zero)."""
        W = self.W.data
        total: Array | float = 0.0
        if self.l1:
            total = total + self.l1 * xp.sum(xp.abs(W))
        if self.l2:
            total = total + self.l2 * xp.sum(W * W)
        return total

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if not self.bias:
            cfg["bias"] = False
        if self.l1:
            cfg["l1"] = self.l1
        if self.l2:
            cfg["l2"] = self.l2
        return cfg

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{extra})"

"""`SGD` with momentum, Nesterov momentum and weight decay, exactly as ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backends import Array, Ops
from ..parameter import Parameter
from ..registry import OPTIMIZERS
from ..validation import real
from .base import Optimizer

__all__ = ["SGD"]


@OPTIMIZERS.register(aliases=('sgd',))
class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's update rule:

        g = grad + weight_decay * p                  (coupled L2 weight decay)
        b = g                      on the first step
        b = momentum * b + (1 - dampening) * g       afterwards
        g = g + momentum * b  if nesterov  else  b   (when momentum > 0)
        p = p - lr * g

    Note the momentum convention: PyTorch's ``b = mu b + g`` (velocity scaled by ``1/(1-mu)``
    relative to the tutorial's ``v = beta v + (1 - beta) g``); ``dampening=momentum`` gives the
    tutorial's form after the first step.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
    ):
        super().__init__(params, lr)
        self.momentum = real(momentum, "momentum", low=0.0)
        self.dampening = real(dampening, "dampening", low=0.0, high=1.0)
        self.nesterov = bool(nesterov)
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")

    fusable = True

    @property
    def fused_state(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("momentum_buffer",) if self.momentum else ()

    def fused_update(
        self, ops: Ops, p: Array, g: Array, state: list[Array], *, fresh: bool, step: int, scalars: Array | None
    ) -> None:
        ops.sgd_update(
            p, g, *state, fresh=fresh, lr=self.lr, momentum=self.momentum, dampening=self.dampening,
            nesterov=self.nesterov, weight_decay=self.weight_decay, scalars=scalars,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "dampening": self.dampening,
        }

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        g: Array = p.grad  # never None here: step() skips parameters without a gradient
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            # a copy: the gradient's memory is rewritten by the next backward pass
            buf = xp.asarray(g, copy=True) if buf is None else self.momentum * buf + (1.0 - self.dampening) * g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        p.data = p.data - self.lr * g

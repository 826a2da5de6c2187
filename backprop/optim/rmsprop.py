"""`RMSprop` with momentum, centring and weight decay, exactly as ``torch.optim.RMSprop``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backends import Array
from ..parameter import Parameter
from ..registry import OPTIMIZERS
from ..validation import real
from .base import Optimizer

__all__ = ["RMSprop"]


@OPTIMIZERS.register(aliases=('rmsprop',))
class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's update rule; every buffer starts at zero:

        g = grad + weight_decay * p                      (coupled L2 weight decay)
        s = alpha * s + (1 - alpha) * g^2                (square average)
        a = a + (1 - alpha) * (g - a)                    (gradient average; centered only)
        d = sqrt(s - a^2) + eps  if centered  else  sqrt(s) + eps
        b = momentum * b + g / d;  p = p - lr * b        (when momentum > 0)
        p = p - lr * g / d                               (otherwise)

    ``eps`` is added after the square root, as in PyTorch (Keras adds it inside).
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(params, lr)
        self.alpha = real(alpha, "alpha (the square average's decay)", low=0.0, high=1.0)
        self.eps = real(eps, "eps", low=0.0)
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        self.momentum = real(momentum, "momentum", low=0.0)
        self.centered = bool(centered)

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        w = 1.0 - self.alpha
        g: Array = p.grad  # never None here: step() skips parameters without a gradient
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        g2 = g * g
        s = state["square_avg"] = self.alpha * state["square_avg"] + w * g2 if "square_avg" in state else w * g2
        if self.centered:
            a = state["grad_avg"] = state["grad_avg"] + w * (g - state["grad_avg"]) if "grad_avg" in state else w * g
            denom = xp.sqrt(s - a * a) + self.eps
        else:
            denom = xp.sqrt(s) + self.eps
        if self.momentum:
            b = g / denom
            if "momentum_buffer" in state:
                b = self.momentum * state["momentum_buffer"] + b
            state["momentum_buffer"] = b
            p.data = p.data - self.lr * b
        else:
            p.data = p.data - self.lr * (g / denom)

"""`Adagrad` with learning-rate decay and weight decay, exactly as ``torch.optim.Adagrad``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backends import Array
from ..parameter import Parameter
from ..registry import OPTIMIZERS
from ..validation import real
from .base import Optimizer

__all__ = ["Adagrad"]


@OPTIMIZERS.register(aliases=('adagrad',))
class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's update rule, step ``t`` counted per parameter:

        g = grad + weight_decay * p                  (coupled L2 weight decay)
        s = s + g^2                                  (s starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(params, lr)
        self.lr_decay = real(lr_decay, "lr_decay", low=0.0)
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        self.initial_accumulator_value = real(initial_accumulator_value, "initial_accumulator_value", low=0.0)
        self.eps = real(eps, "eps", low=0.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
        }

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        g: Array = p.grad  # never None here: step() skips parameters without a gradient
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        t = state["step"] = state.get("step", 0) + 1
        s = state["sum"] = state.get("sum", self.initial_accumulator_value) + g * g
        clr = self.lr / (1.0 + (t - 1) * self.lr_decay)
        p.data = p.data - clr * (g / (xp.sqrt(s) + self.eps))

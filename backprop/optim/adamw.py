"""`AdamW`: Adam with decoupled weight decay, exactly as ``torch.optim.AdamW``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..parameter import Parameter
from ..registry import OPTIMIZERS
from .adam import Adam

__all__ = ["AdamW"]


@OPTIMIZERS.register(aliases=('adamw',))
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter), PyTorch's update rule, step ``t`` counted per parameter:

        p = p * (1 - lr * weight_decay)      (decoupled weight decay: the gradient never sees it)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The moment updates and the step are `Adam`'s; only the weight decay differs. Adam's
    ``weight_decay`` is coupled L2 (added to the gradient, so it is rescaled by ``1 / sqrt(v)``);
    here it shrinks the weights directly, by ``lr * weight_decay`` per step, before the Adam step.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    decoupled_weight_decay = True

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        if self.weight_decay:
            p.data = p.data * (1.0 - self.lr * self.weight_decay)
        self._adam_step(p, p.grad, state, xp)

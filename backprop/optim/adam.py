"""`Adam` with bias correction and coupled weight decay, exactly as ``torch.optim.Adam``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..backends import Array, Ops
from ..parameter import Parameter
from ..registry import OPTIMIZERS
from ..validation import InvalidParameterError, real
from .base import Optimizer

__all__ = ["Adam"]


@OPTIMIZERS.register(aliases=('adam',))
class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's update rule, step ``t`` counted per parameter:

        g = grad + weight_decay * p          (coupled L2 weight decay; see AdamW for decoupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    fusable = True
    fused_state = ("exp_avg", "exp_avg_sq")
    counts_steps = True
    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InvalidParameterError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        self.betas = (
            real(betas[0], "betas", low=0.0, high=1.0, high_open=True),
            real(betas[1], "betas", low=0.0, high=1.0, high_open=True),
        )
        self.eps = real(eps, "eps", low=0.0)
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def fused_update(
        self, ops: Ops, p: Array, g: Array, state: list[Array], *, fresh: bool, step: int, scalars: Array | None
    ) -> None:
        beta1, beta2 = self.betas
        m, v = state
        ops.adam_update(
            p, g, m, v, step=step, lr=self.lr, beta1=beta1, beta2=beta2, eps=self.eps,
            weight_decay=self.weight_decay, decoupled=self.decoupled_weight_decay, scalars=scalars,
        )

    def step_scalars(self, step: int) -> tuple[float, ...]:
        """``(lr, lr / (1 - beta1^t), sqrt(1 - beta2^t))``: the bias corrections, computed on the
        host for the GPU kernel exactly as for the reference rule (`_adam_step` uses them too)."""
        beta1, beta2 = self.betas
        return (self.lr, self.lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step))

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        g: Array = p.grad  # never None here: step() skips parameters without a gradient
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        self._adam_step(p, g, state, xp)

    def _adam_step(self, p: Parameter, g: Any, state: dict[str, Any], xp: Any) -> None:
        """The moment updates and the bias-corrected step for gradient ``g`` (weight decay already applied)."""
        beta1, beta2 = self.betas
        t = state["step"] = state.get("step", 0) + 1
        m = state["exp_avg"] = beta1 * state["exp_avg"] + (1.0 - beta1) * g if "exp_avg" in state else (1.0 - beta1) * g
        v = state["exp_avg_sq"] = (
            beta2 * state["exp_avg_sq"] + (1.0 - beta2) * (g * g) if "exp_avg_sq" in state else (1.0 - beta2) * (g * g)
        )
        _, step_size, root_bc2 = self.step_scalars(t)
        denom = xp.sqrt(v) / root_bc2 + self.eps
        p.data = p.data - step_size * (m / denom)

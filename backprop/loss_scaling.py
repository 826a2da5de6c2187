"""`LossScaler`: dynamic loss scaling, the guard fp16-mixed training needs against float16's
narrow range (gradients below 6e-8 vanish in float16 operands, above 65504 overflow).

The rule is PyTorch's ``torch.amp.GradScaler`` (``torch/amp/grad_scaler.py`` and its update,
``_amp_update_scale_``), with its defaults, step by step:

1. the loss's gradient is multiplied by ``scale`` before the backward pass, so every gradient
   the backward matrix products see (and round to float16) is ``scale`` times larger;
2. `unscale_`: every gradient is multiplied by ``1 / scale`` (float32), before clipping and
   before anything reads it, and ``found_inf`` says whether any of them is infinite or NaN;
3. the optimizer steps only if nothing was found: a step with an overflow is skipped, so the
   weights never take an infinite or NaN update (and Adam's step count does not advance);
4. `update`: after a skipped step ``scale *= backoff_factor`` and the count of good steps
   restarts; after ``growth_interval`` good steps in a row ``scale *= growth_factor`` (if that
   stays finite in float32). The scale is kept as a float32 value, as PyTorch keeps it.

One difference: the infinities are looked for after unscaling, so a finite gradient that
only overflows once unscaled (possible only when ``scale < 1``) skips the step here, where
GradScaler would pass an infinite gradient to the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .clip import flat_gradients
from .parameter import Parameter
from .validation import integer, real

__all__ = ["LossScaler"]


def _float32(value: float) -> float:
    """``value`` rounded to float32 (infinite beyond its range), as a Python float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


class LossScaler:
    """Dynamic loss scaling (see the module): ``init_scale`` 2**16, ``growth_factor`` 2,
    ``backoff_factor`` 0.5, ``growth_interval`` 2000 steps, as ``torch.amp.GradScaler``.

    ``scale`` is the current scale, ``growth_tracker`` the good steps since the last change,
    ``skipped`` the steps skipped so far. A model built with ``precision="fp16-mixed"`` has one
    (``model.loss_scaler``); set that attribute to another to change the settings, on any model.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ):
        self.init_scale = real(init_scale, "init_scale", low=0.0, low_open=True, owner="LossScaler")
        self.growth_factor = real(growth_factor, "growth_factor", low=1.0, low_open=True, owner="LossScaler")
        self.backoff_factor = real(backoff_factor, "backoff_factor", low=0.0, high=1.0, low_open=True,
                                   high_open=True, owner="LossScaler")  # fmt: skip
        self.growth_interval = integer(growth_interval, "growth_interval", minimum=1, owner="LossScaler")
        self.scale = _float32(self.init_scale)
        self.growth_tracker = 0
        self.skipped = 0

    def __repr__(self) -> str:
        return f"LossScaler(scale={self.scale:g}, growth_tracker={self.growth_tracker}, skipped={self.skipped})"

    def unscale_(self, params: Sequence[Parameter]) -> bool:
        """Multiply every gradient by ``1 / scale`` in place (all at once where they are the
        model's flat gradient buffer) and return whether any is infinite or NaN (one device
        sync on a GPU)."""
        with_grad = [p for p in params if p.grad is not None]
        grads = [p.grad for p in with_grad if p.grad is not None]  # the same ones, for the type checker
        if not with_grad:
            return False
        inv_scale = _float32(1.0 / self.scale)  # as GradScaler: the reciprocal in double, kept as float32
        flat = flat_gradients(with_grad)
        backend = with_grad[0].backend
        finite = True
        with backend.activate():
            for g in [flat] if flat is not None else grads:
                g *= inv_scale
                finite = backend.all_finite(g) and finite
        return not finite

    def update(self, found_inf: bool) -> None:
        """The scale after a step: backed off after an overflow, grown after ``growth_interval``
        good steps in a row (GradScaler's ``update``)."""
        if found_inf:
            self.scale = _float32(self.scale * self.backoff_factor)
            self.growth_tracker = 0
            self.skipped += 1
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            grown = _float32(self.scale * self.growth_factor)
            if math.isfinite(grown):
                self.scale = grown
            self.growth_tracker = 0

    def get_config(self) -> dict[str, Any]:
        return {
            "init_scale": self.init_scale, "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
        }  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The settings and the state, as JSON values (what a checkpoint keeps)."""
        return {**self.get_config(), "scale": self.scale, "growth_tracker": self.growth_tracker,
                "skipped": self.skipped}  # fmt: skip

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LossScaler:
        """A scaler continuing where `state_dict` left off."""
        scaler = cls(**{k: state[k] for k in ("init_scale", "growth_factor", "backoff_factor", "growth_interval")})
        scale = real(state["scale"], "scale", low=0.0, low_open=True, owner="LossScaler")
        scaler.scale = _float32(scale)
        scaler.growth_tracker = integer(state["growth_tracker"], "growth_tracker", owner="LossScaler")
        scaler.skipped = integer(state["skipped"], "skipped", owner="LossScaler")
        return scaler

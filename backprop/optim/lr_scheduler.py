"""Learning-rate schedules for any backprop optimizer, step for step as ``torch.optim.lr_scheduler``.

A schedule reads and writes ``optimizer.lr``. Build it after the optimizer (building it sets the
epoch-0 learning rate, as PyTorch does) and call `step()` once per epoch, after the epoch's
``optimizer.step()`` calls; `ReduceLROnPlateau.step` takes the monitored metric instead. The
lr of epoch ``t`` is a closed form of ``t`` and the base lr wherever PyTorch's recursive form
gives the same values (to rounding), so a schedule never drifts and resumes exactly from its
`state_dict`.

The base lr is the optimizer's lr when the first schedule is attached: that schedule records it as
``optimizer.initial_lr`` and later schedules on the same optimizer start from it, like PyTorch's
``param_group["initial_lr"]`` (so a warm-up and the cosine after it share one base).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from ..registry import SCHEDULES
from ..validation import choice, integer, real
from .base import Optimizer

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "LinearWarmup",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]


class LRScheduler:
    """Base class: a schedule ``lr_at(epoch)`` applied to ``optimizer.lr``.

    Building the schedule applies epoch 0; each `step()` advances one epoch and applies its lr.
    Subclasses set their hyperparameters, then call ``super().__init__(optimizer)``, and write
    `lr_at` and `get_config`.
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = _checked_optimizer(optimizer, type(self).__name__)
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = optimizer.lr  # type: ignore[attr-defined]
        self.base_lr = float(optimizer.initial_lr)  # type: ignore[attr-defined]
        self.last_epoch = 0
        self.last_lr = self.base_lr
        self._go_to(0)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0 is the epoch before the first `step`)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's settings (besides ``optimizer``) as JSON values, for saving and
        printing: ``from_config(optimizer, config)`` makes a new schedule with them."""
        return {}

    @classmethod
    def from_config(cls, optimizer: Optimizer, config: dict[str, Any]) -> LRScheduler:
        """A new schedule of ``optimizer`` with `get_config`'s settings, at its first epoch."""
        return cls(optimizer, **config)

    def step(self) -> None:
        """Advance one epoch and set ``optimizer.lr`` to its learning rate."""
        self._go_to(self.last_epoch + 1)

    def get_last_lr(self) -> float:
        """The learning rate this schedule set last (the one the next optimizer steps use)."""
        return self.last_lr

    def state_dict(self) -> dict[str, Any]:
        """Type, hyperparameters and position, as plain JSON-serialisable values."""
        return {"type": type(self).__name__, "hyperparameters": self.get_config(), **self._state()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what `state_dict` returned and set ``optimizer.lr`` to the restored lr, so that
        the next `step` continues the saved sequence."""
        if saved.get("type") != type(self).__name__:
            raise ValueError(f"schedule state is for {saved.get('type')}, not {type(self).__name__}")
        for key, value in saved.get("hyperparameters", {}).items():
            setattr(self, key, value)
        self._load_state(saved)
        self.optimizer.lr = self.last_lr

    def _go_to(self, epoch: int) -> None:
        self.last_epoch = epoch
        self.last_lr = self.lr_at(epoch)
        self.optimizer.lr = self.last_lr

    def _state(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch, "last_lr": self.last_lr}

    def _load_state(self, saved: dict[str, Any]) -> None:
        self.base_lr = float(saved["base_lr"])
        self.last_epoch = int(saved["last_epoch"])
        self.last_lr = float(saved["last_lr"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@SCHEDULES.register
class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``: decay by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = integer(step_size, "step_size", minimum=1)
        self.gamma = real(gamma, "gamma", low=0.0, low_open=True)
        super().__init__(optimizer)

    def get_config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


@SCHEDULES.register
class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** epoch``: decay by ``gamma`` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = real(gamma, "gamma", low=0.0, low_open=True)
        super().__init__(optimizer)

    def get_config(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch


@SCHEDULES.register
class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    From ``base_lr`` at epoch 0 down to ``eta_min`` at epoch ``T_max``; past ``T_max`` it rises
    again along the same cosine (period ``2 * T_max``), as PyTorch's recursive form does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = integer(T_max, "T_max", minimum=1)
        self.eta_min = real(eta_min, "eta_min", low=0.0)
        super().__init__(optimizer)

    def get_config(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0


@SCHEDULES.register
class LinearLR(LRScheduler):
    """``lr = base_lr * (start_factor + (end_factor - start_factor) * min(epoch, total_iters) / total_iters)``.

    Moves the lr linearly from ``start_factor * base_lr`` to ``end_factor * base_lr`` over
    ``total_iters`` epochs, then holds it: with ``end_factor=1`` a linear warm-up.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ):
        self.start_factor = real(start_factor, "start_factor", low=0.0, high=1.0, low_open=True)
        self.end_factor = real(end_factor, "end_factor", low=0.0, high=1.0)
        self.total_iters = integer(total_iters, "total_iters", minimum=1)
        super().__init__(optimizer)

    def get_config(self) -> dict[str, Any]:
        return {"start_factor": self.start_factor, "end_factor": self.end_factor, "total_iters": self.total_iters}

    def lr_at(self, epoch: int) -> float:
        progress = min(self.total_iters, epoch) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


@SCHEDULES.register
class LinearWarmup(LinearLR):
    """Linear warm-up: exactly ``LinearLR(optimizer, start_factor, end_factor=1.0, total_iters=warmup_steps)``."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 1.0 / 3):
        super().__init__(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)


@SCHEDULES.register
class SequentialLR(LRScheduler):
    """Runs ``schedulers[i]`` from epoch ``milestones[i - 1]`` (0 for the first) on, each restarted
    at its own epoch 0 when its turn comes: ``lr = schedulers[i].lr_at(epoch - milestones[i - 1])``.

    ``SequentialLR(opt, [LinearWarmup(opt, 5), CosineAnnealingLR(opt, T_max=95)], milestones=[5])``
    warms up for 5 epochs, then anneals from the base lr.
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]):
        self.schedulers = list(schedulers)
        if not self.schedulers:
            raise ValueError("SequentialLR needs at least one scheduler")
        for i, s in enumerate(self.schedulers):
            if not isinstance(s, LRScheduler):
                raise TypeError(f"SequentialLR takes bp.optim schedules; schedulers[{i}] is {type(s).__name__}")
            if isinstance(s, ReduceLROnPlateau):
                raise TypeError(f"SequentialLR takes epoch schedules, not ReduceLROnPlateau (schedulers[{i}])")
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}] ({type(s).__name__}) drives another optimizer than SequentialLR's")
        self.milestones = [integer(m, "each milestone", minimum=1) for m in milestones]
        if len(self.milestones) != len(self.schedulers) - 1:
            raise ValueError(
                f"SequentialLR needs one milestone fewer than schedulers; got {len(self.schedulers)} schedulers "
                f"and {len(self.milestones)} milestones"
            )
        if any(a >= b for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones must increase strictly; got {list(milestones)!r}")
        super().__init__(optimizer)

    def get_config(self) -> dict[str, Any]:
        return {"milestones": list(self.milestones)}

    def lr_at(self, epoch: int) -> float:
        scheduler, local = self._phase(epoch)
        return scheduler.lr_at(local)

    def _phase(self, epoch: int) -> tuple[LRScheduler, int]:
        i = bisect_right(self.milestones, epoch)
        return self.schedulers[i], epoch - (self.milestones[i - 1] if i else 0)

    def _go_to(self, epoch: int) -> None:
        scheduler, local = self._phase(epoch)
        scheduler._go_to(local)
        self.last_epoch = epoch
        self.last_lr = scheduler.last_lr

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "schedulers": [s.state_dict() for s in self.schedulers]}

    def _load_state(self, saved: dict[str, Any]) -> None:
        if len(saved["schedulers"]) != len(self.schedulers):
            raise ValueError(
                f"schedule state has {len(saved['schedulers'])} schedulers, this SequentialLR {len(self.schedulers)}"
            )
        for s, d in zip(self.schedulers, saved["schedulers"]):
            s.load_state_dict(d)
        super()._load_state(saved)


@SCHEDULES.register
class ReduceLROnPlateau(LRScheduler):
    """Multiplies the lr by ``factor`` when the metric passed to `step` stops improving.

    A metric improves on the best so far when it is below ``best * (1 - threshold)``
    (``mode="min"``, ``threshold_mode="rel"``), below ``best - threshold`` (``"abs"``), or above
    ``best * (1 + threshold)`` / ``best + threshold`` in ``mode="max"``. After more than
    ``patience`` epochs in a row without improvement:

        lr = max(lr * factor, min_lr)      (skipped when it would change lr by eps or less)

    and the next ``cooldown`` epochs count no bad epochs. This schedule reads the optimizer's
    current lr instead of a base lr, so it composes with manual lr changes.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ):
        self.optimizer = _checked_optimizer(optimizer, type(self).__name__)
        self.mode = choice(mode, "mode", ("min", "max"))
        self.threshold_mode = choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.factor = real(factor, "factor", low=0.0, high=1.0, high_open=True)
        self.patience = integer(patience, "patience")
        self.threshold = real(threshold, "threshold", low=0.0)
        self.cooldown = integer(cooldown, "cooldown")
        self.min_lr = real(min_lr, "min_lr", low=0.0)
        self.eps = real(eps, "eps", low=0.0)
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self.last_lr = float(optimizer.lr)
        self.best: float | None = None  # None until the first metric: worse than anything
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def get_config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "eps": self.eps,
        }

    def lr_at(self, epoch: int) -> float:
        raise TypeError("ReduceLROnPlateau's lr depends on the metrics passed to step(metric), not on the epoch alone")

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Record one epoch's ``metric`` (e.g. the validation loss); reduce the lr if it has plateaued."""
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = float(self.optimizer.lr)

    def _is_better(self, current: float) -> bool:
        best = self.best if self.best is not None else (math.inf if self.mode == "min" else -math.inf)
        if self.mode == "min":
            return current < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return current > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "best": self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
        }

    def _load_state(self, saved: dict[str, Any]) -> None:
        super()._load_state(saved)
        self.best = None if saved["best"] is None else float(saved["best"])
        self.num_bad_epochs = int(saved["num_bad_epochs"])
        self.cooldown_counter = int(saved["cooldown_counter"])


def _checked_optimizer(optimizer: Any, who: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{who} takes a bp.optim optimizer (e.g. bp.optim.SGD(...)); got {type(optimizer).__name__}")
    return optimizer

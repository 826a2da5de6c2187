"""``--optimizer``, ``--lr``, ``--weight-decay``, ``--momentum`` and ``--lr-schedule``: the
optimizer and learning-rate schedule of a training run."""

from __future__ import annotations

from typing import Any

from .. import optim, registry
from ..parameter import Parameter
from .errors import UsageError

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule"]

#: ``--optimizer`` choices: the registered optimizers' lower-case names
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    name: registry.OPTIMIZERS[name] for name in registry.OPTIMIZERS.aliases()
}

#: The learning rate each optimizer gets when ``--lr`` is not given.
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 1e-3, "adagrad": 0.05}

#: ``--lr-schedule``: ``constant``, or ``cosine`` annealing from ``--lr`` to 0 over ``--epochs``.
SCHEDULES = ("constant", "cosine")

_WITH_MOMENTUM = ("sgd", "rmsprop")


def build_optimizer(
    name: str, params: list[Parameter], lr: float, weight_decay: float | None, momentum: float | None
) -> optim.Optimizer:
    """The optimizer ``name`` over ``params``; ``weight_decay``/``momentum`` left ``None`` keep
    the optimizer's own defaults (plain SGD gets momentum 0.9)."""
    options: dict[str, Any] = {"lr": lr}
    if weight_decay is not None:
        options["weight_decay"] = weight_decay
    if name in _WITH_MOMENTUM:
        options["momentum"] = 0.9 if momentum is None and name == "sgd" else (momentum or 0.0)
    elif momentum is not None:
        raise UsageError(f"--momentum applies to {' and '.join(_WITH_MOMENTUM)}, not to --optimizer {name}")
    return OPTIMIZERS[name](params, **options)


def build_schedule(kind: str, optimizer: optim.Optimizer, epochs: int) -> optim.LRScheduler | None:
    """The schedule ``kind`` over ``epochs`` epochs (``None`` for ``constant``)."""
    if kind == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    return None

"""Optimizers: update rules exactly as ``torch.optim`` documents them."""

from __future__ import annotations

from .adam import Adam
from .base import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "Optimizer"]

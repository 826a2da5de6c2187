"""What the trainer needs of a model, as a `typing.Protocol`: the trainer sits below the
user's `bp.Sequential` (which imports it to train itself), so it names what it uses instead
of importing the class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from ..backends import Array, Backend
from ..layers import Layer
from ..losses import Loss
from ..parameter import Parameter

__all__ = ["TrainableModel"]


class TrainableModel(Protocol):
    """A built model the trainer can run steps on (`bp.Sequential` is one)."""

    training: bool
    stop_training: bool
    out_features: int | None
    optimizer: Any  # the optimizer of the last `fit` (None before the first)
    shuffle_rng: np.random.Generator
    noise_rng: np.random.Generator

    @property
    def backend(self) -> Backend | None: ...

    @property
    def device(self) -> Any: ...

    def walk(self) -> Iterator[Layer]: ...

    def parameters(self) -> list[Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...

    def apply(self, X: Array, training: bool) -> tuple[Array, Any]: ...

    def train_batch(self, X: Array, T: Array, loss: Loss, scale: float | None = None) -> tuple[Array, Array]: ...

    def checked_data(self, X: Any, y: Any, loss: Loss, x_name: str = "X", y_name: str = "y") -> tuple[Array, Array]: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any: ...

    def _require_built(self) -> Backend: ...

    def _check_loss(self, loss: Loss) -> None: ...

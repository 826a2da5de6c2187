"""What checkpoints need of a model, as a `typing.Protocol`.

Checkpoints sit below the model (the user's `bp.Sequential` imports them to save itself), so
they name the methods and attributes they use instead of the class: any object with these
can be saved, and loading builds the model through the `ModelFactory` its caller passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import numpy as np

from ..backends import Backend, DeviceLike
from ..layers import Layer
from ..parameter import Parameter

__all__ = ["CheckpointedModel", "M", "ModelFactory"]


class CheckpointedModel(Protocol):
    """A built model: its layers (`walk`), variables, random generators, seed and mode."""

    seed: int
    training: bool
    shuffle_rng: np.random.Generator
    noise_rng: np.random.Generator

    @property
    def device(self) -> Any: ...

    @property
    def dtype(self) -> str: ...

    def walk(self) -> Iterator[Layer]: ...

    def named_variables(self) -> Iterator[tuple[str, Parameter]]: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def _require_built(self) -> Backend: ...


#: the model class a checkpoint is loaded as (`bp.Sequential` for `bp.load_checkpoint`)
M = TypeVar("M", bound=CheckpointedModel)
_M_co = TypeVar("_M_co", bound=CheckpointedModel, covariant=True)


class ModelFactory(Protocol[_M_co]):
    """Builds a model from its layers on a device: `bp.Sequential` is one."""

    def __call__(
        self, *layers: Layer, device: DeviceLike, dtype: str, seed: int | None, precision: str = "fp32"
    ) -> _M_co: ...

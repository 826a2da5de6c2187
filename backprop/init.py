"""Weight initialisers, drawn on the host so the backend cannot change the numbers.

Each initialiser maps ``(rng, fan_in, fan_out)`` to a float64 NumPy array of shape
``(fan_in, fan_out)``; the model casts it to its dtype and moves it to its device, so the
same seed gives bit-identical weights on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HeNormal",
    "HeUniform",
    "Initializer",
    "Normal",
    "XavierNormal",
    "XavierUniform",
    "Zeros",
    "get_initializer",
]

Initializer = Callable[[np.random.Generator, int, int], np.ndarray]


@dataclass(frozen=True)
class XavierUniform:
    """Glorot uniform: ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``."""

    gain: float = 1.0

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        a = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=(fan_in, fan_out))


@dataclass(frozen=True)
class XavierNormal:
    """Glorot normal: ``N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""

    gain: float = 1.0

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return rng.standard_normal((fan_in, fan_out)) * (self.gain * math.sqrt(2.0 / (fan_in + fan_out)))


@dataclass(frozen=True)
class HeUniform:
    """Kaiming uniform (fan-in mode): ``U(-a, a)``, ``a = gain * sqrt(3 / fan_in)``, gain sqrt(2) for ReLU."""

    gain: float = math.sqrt(2.0)

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        a = self.gain * math.sqrt(3.0 / fan_in)
        return rng.uniform(-a, a, size=(fan_in, fan_out))


@dataclass(frozen=True)
class HeNormal:
    """Kaiming normal (fan-in mode): ``N(0, std^2)``, ``std = gain / sqrt(fan_in)``, gain sqrt(2) for ReLU."""

    gain: float = math.sqrt(2.0)

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return rng.standard_normal((fan_in, fan_out)) * (self.gain / math.sqrt(fan_in))


@dataclass(frozen=True)
class Normal:
    """``N(mean, std^2)``; the tutorial's ``0.01 * randn`` is ``Normal(0.01)``."""

    std: float = 0.01
    mean: float = 0.0

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return rng.standard_normal((fan_in, fan_out)) * self.std + self.mean


@dataclass(frozen=True)
class Zeros:
    """All zeros (symmetric: every unit learns the same thing; for tests and output layers)."""

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return np.zeros((fan_in, fan_out))


_NAMED: dict[str, Initializer] = {
    "xavier": XavierUniform(),
    "xavier_uniform": XavierUniform(),
    "xavier_normal": XavierNormal(),
    "glorot": XavierUniform(),
    "he": HeNormal(),
    "he_normal": HeNormal(),
    "he_uniform": HeUniform(),
    "kaiming": HeNormal(),
    "normal": Normal(),
    "zeros": Zeros(),
}


def get_initializer(init: str | Initializer) -> Initializer:
    """Resolve an initialiser name (``"xavier"`` = Glorot uniform, ``"he"`` = Kaiming normal,
    ``"normal"`` = ``0.01 * randn``, ...) or pass a callable through."""
    if callable(init):
        return init
    if isinstance(init, str) and init.lower() in _NAMED:
        return _NAMED[init.lower()]
    raise ValueError(
        f"unknown init {init!r}: use one of {', '.join(sorted(_NAMED))} or a callable (rng, fan_in, fan_out) -> array"
    )

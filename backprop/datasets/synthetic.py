"""`sine`: a small synthetic regression data set for examples."""

from __future__ import annotations

import math

import numpy as np

from .dataset import Dataset
from .errors import DataError

__all__ = ["sine"]


def sine(n: int = 256, noise: float = 0.1, test_size: float = 0.2, seed: int | None = 0) -> Dataset:
    """``y = sin(x) + noise * N(0, 1)`` for ``n`` points ``x`` drawn uniformly from
    ``[-pi, pi]``: one feature ``"x"``, float32 targets of shape ``(n, 1)``, ``task="regression"``.

    ``seed`` fixes both the points and the (plain, shuffled) train/test split; the points come
    from a stream spawned from the seed, so they are independent of the split.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise DataError(f"sine needs n >= 2 samples; got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise DataError(f"noise is the standard deviation of the added noise, >= 0; got {noise!r}")
    (data_seed,) = np.random.SeedSequence(seed).spawn(1)
    rng = np.random.default_rng(data_seed)
    x = rng.uniform(-math.pi, math.pi, size=(n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return Dataset.from_arrays(
        x, y, task="regression", name="sine", feature_names=["x"], target_name="y",
        test_size=test_size, seed=seed,
    )

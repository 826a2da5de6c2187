"""`Standardize`: preprocessing inside the model, ``Y = (X - mean) / std`` per feature, with
statistics learnt from data (`adapt`) and saved with the weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Array, to_numpy
from ..registry import LAYERS
from ..validation import integer
from .base import Backward, BuildContext, Layer

__all__ = ["Standardize", "feature_statistics"]


def feature_statistics(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, std)`` of a finite float64 array of shape ``(samples, features)``,
    with the zero-variance guard that keeps every output finite.

    ``std`` is the population standard deviation (``ddof=0``, as scikit-learn's
    ``StandardScaler``). A **constant feature** (all values equal, or a deviation below ``1e-12``
    of the mean's magnitude, which is rounding noise) gets ``std = 1``: it is only centred, on
    the exact constant when all values are equal, so its training values become 0 exactly.
    The CLI's `bp.datasets.Standardizer` uses the same numbers."""
    all_equal = (values == values[:1]).all(axis=0)
    mean = np.where(all_equal, values[0], values.mean(axis=0))  # exact for constants: no rounding
    std = values.std(axis=0)
    constant = all_equal | (std <= 1e-12 * np.maximum(np.abs(mean), 1.0))
    return mean, np.where(constant, 1.0, std)


@LAYERS.register
class Standardize(Layer):
    """Standardisation of every feature, learnt from training data and carried by the model
    (Keras' ``Normalization`` layer with ``adapt``; the statistics are those of
    `feature_statistics`, not Keras' ``sqrt(var + eps)``).

    Forward:  ``Y = (X - mean) / std``  with X, Y ``(N, F)`` and mean, std ``(F,)``.
    Backward: ``dX = dY / std``; nothing is trained.

    ``mean`` and ``std`` are saved state (``state_dict``, checkpoints, moved by ``to``), not
    parameters: optimizers, weight decay and the flat parameter buffer never see them, and
    training does not change them. Give them in one of three ways:

    - ``bp.Standardize().adapt(X_train)``: computed from the training features on the host in
      float64 (before or after the model is built; after, the model's copies are replaced);
    - ``bp.Standardize(mean=m, std=s)``: given (``std`` must be positive);
    - ``bp.Standardize(features)``: the identity (mean 0, std 1) until `adapt` or a checkpoint
      loads them, which is how a saved model is rebuilt.
    """

    def __init__(self, features: int | None = None, *, mean: Any = None, std: Any = None):
        super().__init__()
        self.features = None if features is None else integer(features, "features", minimum=1, owner="Standardize")
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        if (mean is None) != (std is None):
            raise ValueError("Standardize needs both mean= and std= (or neither, then adapt(X) learns them)")
        if mean is not None:
            self._set_statistics(_vector(mean, "mean"), _vector(std, "std"))

    # ------------------------------------------------------------------ statistics
    def adapt(self, X: Any) -> Standardize:
        """Learn ``mean`` and ``std`` from ``X`` (shape ``(samples, features)``, finite numbers,
        a host array or one `bp.to_numpy` brings home), in float64. Returns ``self``."""
        try:
            data = np.asarray(to_numpy(X))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Standardize.adapt needs an array of numbers; got {type(X).__name__} ({exc})") from None
        if data.dtype.kind not in "biuf":
            raise TypeError(f"Standardize.adapt needs numeric data; got dtype {data.dtype}")
        if data.ndim != 2 or data.shape[0] == 0:
            hint = " (one feature? X.reshape(-1, 1))" if data.ndim == 1 else ""
            raise ValueError(
                f"Standardize.adapt needs a 2-D array with at least one sample, shape (samples, features); "
                f"got shape {data.shape}{hint}"
            )
        values = data.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("Standardize.adapt got NaN or Inf values: clean or impute them first")
        self._set_statistics(*feature_statistics(values))
        return self

    @property
    def mean(self) -> np.ndarray | None:
        """The per-feature means as a host float64 copy (``None`` before any are known)."""
        if self.backend is not None:
            return np.asarray(to_numpy(self._variables["mean"].data), dtype=np.float64)
        return None if self._mean is None else self._mean.copy()

    @property
    def std(self) -> np.ndarray | None:
        """The per-feature standard deviations as a host float64 copy (``None`` before any)."""
        if self.backend is not None:
            return np.asarray(to_numpy(self._variables["std"].data), dtype=np.float64)
        return None if self._std is None else self._std.copy()

    def _set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        if mean.shape != std.shape:
            raise ValueError(f"Standardize: mean has {mean.shape[0]} values but std has {std.shape[0]}")
        if self.features is not None and mean.shape[0] != self.features:
            raise ValueError(
                f"{self.describe()} standardises {self.features} features but got statistics of {mean.shape[0]}: "
                "adapt it on data with the model's input columns"
            )
        if not (std > 0).all():
            raise ValueError("Standardize: std must be positive for every feature (a constant feature gets std=1)")
        self.features = int(mean.shape[0])
        self._mean, self._std = mean, std
        if self.backend is not None:  # built: replace the model's copies, as loading a state would
            for name, value in (("mean", mean), ("std", std)):
                variable = self._variables[name]
                variable.data = self.backend.from_host(value)
                variable.grad = None

    # ------------------------------------------------------------------ layer protocol
    def size_estimate(self) -> int:
        return 2 * (self.features or 0)

    def build(self, in_features: int | None, ctx: BuildContext) -> int:
        features = self.features if self.features is not None else in_features
        if features is None:
            raise ValueError(
                "Standardize does not know how many features it standardises: give Standardize(features), "
                "statistics (mean=, std=) or call adapt(X_train) before building the model"
            )
        if in_features is not None and in_features != features:
            raise ValueError(
                f"{self.describe()} expects {features} input features but the layer before it produces "
                f"{in_features}; make them agree"
            )
        super().build(in_features, ctx)
        self.features = features
        mean = self._mean if self._mean is not None else np.zeros(features)
        std = self._std if self._std is not None else np.ones(features)
        self.add_variable("mean", mean, ctx, trainable=False)
        self.add_variable("std", std, ctx, trainable=False)
        return features

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        self._check_input(X, self._require_features())
        std = self._variables["std"].data  # captured: adapt may replace it later
        Y = (X - self._variables["mean"].data) / std

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return dY / std if need_dX else None

        return Y, backward

    def _require_features(self) -> int:
        assert self.features is not None  # set by build
        return self.features

    def get_config(self) -> dict[str, Any]:
        # the statistics are state, saved with the weights (as a Dense layer's W is)
        return {} if self.features is None else {"features": self.features}

    def __repr__(self) -> str:
        return "Standardize()" if self.features is None else f"Standardize({self.features})"


def _vector(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Standardize: {name} must be a 1-D array of numbers; got {type(value).__name__} ({exc})") \
            from None
    if array.ndim != 1 or array.shape[0] == 0 or not np.isfinite(array).all():
        raise ValueError(f"Standardize: {name} must be a non-empty 1-D array of finite numbers; got {array.shape}")
    return array.copy()

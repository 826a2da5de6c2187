"""`Standardizer`: per-feature ``(x - mean) / std`` fitted on training data, serialisable."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.standardize import feature_statistics
from .errors import DataError

__all__ = ["Standardizer"]

_KIND = "Standardizer"


class Standardizer:
    """Scales every feature to zero mean and unit standard deviation: ``(X - mean) / scale``.

    Fit it on the training data only (`fit`), then apply the same statistics to the test data
    and to anything predicted later (`transform`): the test set must not leak into them.

    - ``mean`` and ``scale`` are float64 arrays, one value per feature; ``scale`` is the
      population standard deviation (``ddof=0``, as scikit-learn's ``StandardScaler``).
    - **Constant features** (standard deviation zero, or below ``1e-12`` relative to the mean's
      magnitude, which is rounding noise) get ``scale = 1``: they are only centred (on the exact
      constant when all values are equal), so training values become 0 and no NaN or Inf
      appears, while a test value that differs still shows up as its offset from the constant.
    - `transform` never modifies its input; it returns a new array of the input's floating dtype
      (float32 stays float32; integer inputs become float64, float16 becomes float32).
    - Works on host (NumPy-convertible) arrays; standardise before moving data to a device.
    - `to_dict` / `from_dict` store it as plain JSON types, so a checkpoint can carry it and a
      later ``predict`` can apply the same scaling.
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting and applying
    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `from_dict`) has set the statistics."""
        return self.mean is not None

    @property
    def n_features(self) -> int:
        """How many features it was fitted on."""
        return int(self._fitted()[0].shape[0])

    def fit(self, X: Any) -> Standardizer:
        """Learn per-feature mean and scale from ``X`` (shape ``(samples, features)``, finite
        values, at least one sample). Returns ``self``."""
        data = _as_2d(X, "fit")
        if data.shape[0] == 0:
            raise DataError("Standardizer.fit needs at least one sample; got an empty array")
        values = data.astype(np.float64)
        if not np.isfinite(values).all():
            raise DataError("Standardizer.fit got NaN or Inf values: clean or impute them before fitting")
        self.mean, self.scale = feature_statistics(values)  # the numbers bp.Standardize learns
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(X - mean) / scale`` as a new array; ``X`` must have the fitted number of features."""
        mean, scale = self._fitted()
        data = _as_2d(X, "transform")
        if data.shape[1] != mean.shape[0]:
            raise DataError(
                f"Standardizer was fitted on {mean.shape[0]} features but transform got {data.shape[1]} "
                f"(shape {data.shape}): pass data with the same columns, in the same order, as the training data"
            )
        dtype = _float_dtype(data)
        return ((data.astype(np.float64) - mean) / scale).astype(dtype)

    def fit_transform(self, X: Any) -> np.ndarray:
        """`fit` on ``X``, then `transform` it."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """``Z * scale + mean``: undo `transform` (for example on predicted regression targets)."""
        mean, scale = self._fitted()
        data = _as_2d(Z, "inverse_transform")
        if data.shape[1] != mean.shape[0]:
            raise DataError(
                f"Standardizer was fitted on {mean.shape[0]} features but inverse_transform got {data.shape[1]}"
            )
        return (data.astype(np.float64) * scale + mean).astype(_float_dtype(data))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The fitted statistics as JSON-serialisable types (float64 values survive exactly)."""
        mean, scale = self._fitted()
        return {"kind": _KIND, "mean": [float(v) for v in mean], "scale": [float(v) for v in scale]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Standardizer:
        """A fitted Standardizer from what `to_dict` returned."""
        if not isinstance(state, dict) or state.get("kind") != _KIND or "mean" not in state or "scale" not in state:
            raise DataError(
                "Standardizer.from_dict needs the dict Standardizer.to_dict() returned, "
                f"with kind={_KIND!r}, 'mean' and 'scale'; got {_describe(state)}"
            )
        mean = np.asarray(state["mean"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or mean.shape[0] == 0:
            raise DataError(
                "Standardizer state needs equally long, non-empty 'mean' and 'scale' lists; "
                f"got shapes {mean.shape} and {scale.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise DataError("Standardizer state has non-finite values or a scale that is not positive: it is damaged")
        new = cls()
        new.mean, new.scale = mean, scale
        return new

    def __repr__(self) -> str:
        return f"Standardizer(n_features={self.n_features})" if self.is_fitted else "Standardizer(not fitted)"

    # ------------------------------------------------------------------ helpers
    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.scale is None:
            raise DataError("this Standardizer is not fitted yet: call fit(X_train) (or fit_transform) first")
        return self.mean, self.scale


def _as_2d(X: Any, method: str) -> np.ndarray:
    try:
        data = np.asarray(X)
    except TypeError as exc:  # a device array that refuses implicit host conversion
        raise DataError(
            f"Standardizer.{method} works on host arrays: bring the data home with bp.to_numpy first ({exc})"
        ) from None
    if data.dtype.kind not in "biuf":
        raise DataError(f"Standardizer.{method} needs numeric data; got dtype {data.dtype}")
    if data.ndim != 2:
        hint = " (one sample? use X.reshape(1, -1); one feature? X.reshape(-1, 1))" if data.ndim == 1 else ""
        raise DataError(
            f"Standardizer.{method} needs a 2-D array, shape (samples, features); got shape {data.shape}{hint}"
        )
    return data


def _float_dtype(data: np.ndarray) -> np.dtype:
    return np.result_type(data.dtype, np.float32) if data.dtype.kind == "f" else np.dtype(np.float64)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a dict with keys " + ", ".join(repr(k) for k in value)
    return type(value).__name__

"""Regression metrics: mean absolute and squared error, and the coefficient of determination R².

Outputs ``P`` and targets ``T`` are ``(N, k)`` (1-D targets of a one-output model are
reshaped to ``(N, 1)`` when checked). With several outputs each metric is the mean over the
outputs, scikit-learn's ``multioutput="uniform_average"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends import Array
from ..losses import Loss
from .base import Metric, check_loss

__all__ = ["MAE", "MSE", "R2"]


class _OfValues(Metric):
    """A per-sample mean over the outputs, for a loss on values (regression)."""

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        check_loss(self.name, loss, "values")
        return self


class MAE(_OfValues):
    """Mean absolute error ``mean_n mean_j |P_nj - T_nj|`` (``sklearn.metrics.mean_absolute_error``)."""

    name = "mae"
    higher_is_better = False

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        return xp.sum(xp.abs(P - T)) / P.shape[1]


class MSE(_OfValues):
    """Mean squared error ``mean_n mean_j (P_nj - T_nj)^2`` (``sklearn.metrics.mean_squared_error``;
    with `BCE`'s probabilities, the Brier score)."""

    name = "mse"
    higher_is_better = False

    def batch_sum(self, xp: Any, P: Array, T: Array) -> Array:
        D = P - T
        return xp.sum(D * D) / P.shape[1]


class R2(Metric):
    """Coefficient of determination, per output ``j`` then averaged (``sklearn.metrics.r2_score``):

    ``R²_j = 1 - SS_res / SS_tot`` with ``SS_res = sum_n (T_nj - P_nj)^2`` and
    ``SS_tot = sum_n (T_nj - mean_n T_nj)^2 = sum_n T_nj^2 - (sum_n T_nj)^2 / N``.

    The state is ``[SS_res_j..., sum T_j..., sum T_j^2...]`` (``3k`` sums), as Keras'
    ``R2Score`` and torchmetrics' keep it, but summed in float64 whatever the model's dtype.
    The last form of ``SS_tot`` subtracts two large numbers when the targets' mean is far from
    0 next to their spread, which costs about ``eps * mean² / variance`` of relative
    precision: with float32 sums (theirs), targets of mean 1e4 and spread 1 leave no correct
    digit; with float64 sums (a float32 value squares exactly in float64) about eight. An
    output whose targets are all equal (``SS_tot = 0``) has R² 1 if it is predicted exactly
    and 0 otherwise (scikit-learn's ``force_finite=True``).
    """

    name = "r2"

    def __init__(self) -> None:
        self.outputs: int | None = None

    def bind(self, loss: Loss, outputs: int | None) -> Metric:
        check_loss(self.name, loss, "values")
        return self._configured(outputs=outputs)

    def state_size(self) -> int:
        if self.outputs is None:
            raise ValueError(f"{self!r} is not bound to a model: pass it to fit or evaluate, which bind it")
        return 3 * self.outputs

    def batch_state(self, xp: Any, P: Array, T: Array) -> Array:
        T, P = xp.astype(T, xp.float64), xp.astype(P, xp.float64)
        D = T - P
        return xp.concat([xp.sum(D * D, axis=0), xp.sum(T, axis=0), xp.sum(T * T, axis=0)])

    def result(self, sums: Sequence[float], samples: float) -> float:
        residual, total, squares = np.reshape(np.asarray(sums, dtype=np.float64), (3, -1))
        spread = np.maximum(squares - total * total / samples, 0.0)
        constant = spread == 0.0
        ratio = np.divide(residual, spread, out=np.zeros_like(spread), where=~constant)
        r2 = np.where(constant, np.where(residual == 0.0, 1.0, 0.0), 1.0 - ratio)
        return float(r2.mean())

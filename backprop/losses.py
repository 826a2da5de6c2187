"""Losses, all averaged over the batch (over every element for element-wise losses, as PyTorch).

Each loss gives its value and its gradient with respect to the model output ``P`` in one go:
``L, dP = loss.value_and_grad(ops, P, T)`` with the backend's `Ops` (``model.backend.ops``),
which computes them fused where it can. ``loss(P, T)`` is the value alone, for any Array API
arrays. Shapes: ``P`` is ``(N, k)``; targets are described per loss.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from .backends import Array, Backend, Ops, array_device, host_array
from .registry import LOSSES
from .validation import real

__all__ = ["BCE", "MAE", "MSE", "BCEWithLogits", "Huber", "Loss", "SoftmaxCrossEntropy", "get_loss"]


class Loss:
    """Base class: subclasses implement `value_and_grad` and `value`."""

    #: what the model must output: ``"probabilities"``, ``"logits"`` or ``"any"`` values
    expects = "any"
    #: whether targets are integer class labels ``(N,)`` rather than values shaped like the outputs
    labels = False

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        """``(L, dL/dP)``: a 0-d array and an array shaped like ``P``."""
        raise NotImplementedError

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        """``L`` alone, as a 0-d array on P's device."""
        raise NotImplementedError

    def __call__(self, P: Array, T: Array) -> Array:
        return self.value(Ops(array_api_compat.array_namespace(P, T)), P, T)

    def prepare_target(self, backend: Backend, y: Any, n_samples: int, out_features: int, what: str = "y") -> Array:
        """Check ``y`` against the model's output shape ``(n_samples, out_features)`` and move it
        to the device in the dtype this loss needs. A model with one output also takes one
        target per sample, shape ``(n_samples,)`` (a regression target, a binary 0/1 label):
        unambiguous there, it is read as the column ``(n_samples, 1)``."""
        T = backend.asarray(y, what=what)
        shape = tuple(T.shape)
        if shape == (n_samples,) and out_features == 1:
            T = backend.xp.reshape(T, (n_samples, 1))
        elif shape != (n_samples, out_features):
            hint = ""
            if shape == (n_samples,):
                hint = (
                    f": one value per sample cannot fill {out_features} outputs. Pass one column per output, "
                    f"shape {(n_samples, out_features)}, or end the model with one output"
                )
                if self.expects != "any":
                    hint += (
                        f"; if y holds class labels 0..{out_features - 1}, train with loss='cross_entropy' "
                        "(softmax over the outputs)"
                    )
            raise ValueError(
                f"{what} must have shape {(n_samples, out_features)} to match the model output; got {shape}{hint}"
            )
        if not backend.all_finite(T):
            raise ValueError(f"{what} contains NaN or Inf values; clean or drop those samples first")
        return T

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, as JSON values (none for the built-in losses)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@LOSSES.register(aliases=('mse',))
class MSE(Loss):
    """Mean squared error ``L = mean((P - T)^2)``; ``dP = 2 (P - T) / P.size``. T shaped like P."""

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        D = P - T
        return ops.xp.mean(D * D), D * (2.0 / _size(P))

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        D = P - T
        return ops.xp.mean(D * D)


@LOSSES.register(aliases=("mae", "l1"))
class MAE(Loss):
    """Mean absolute error, as ``torch.nn.L1Loss``: ``L = mean(|P - T|)``;
    ``dP = sign(P - T) / P.size`` (0 where ``P == T``, as PyTorch). T shaped like P. Less
    swayed by outliers than `MSE`: each residual pulls with the same force."""

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        D = P - T
        return ops.xp.mean(ops.xp.abs(D)), ops.xp.sign(D) / _size(P)

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        return ops.xp.mean(ops.xp.abs(P - T))


@LOSSES.register(aliases=("huber",))
class Huber(Loss):
    """Huber loss, as ``torch.nn.HuberLoss(delta=delta)``: quadratic for small residuals,
    linear for large ones. With ``D = P - T``::

        L = mean(0.5 D^2 if |D| <= delta else delta (|D| - 0.5 delta))
        dP = clip(D, -delta, delta) / P.size

    T shaped like P. ``delta`` (> 0, default 1.0): where the quadratic part ends.
    """

    def __init__(self, delta: float = 1.0):
        self.delta = real(delta, "delta", low=0.0, low_open=True, owner="Huber")

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        D = P - T
        return self._value(ops.xp, D), ops.xp.clip(D, -self.delta, self.delta) / _size(P)

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        return self._value(ops.xp, P - T)

    def _value(self, xp: Any, D: Array) -> Array:
        # both branches in one expression (no where): min(|D|, delta) is squared, the rest counts linearly
        A = xp.abs(D)
        small = xp.minimum(A, self.delta)
        return xp.mean(0.5 * small * small + self.delta * (A - small))

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta:g})"


@LOSSES.register(aliases=('bce',))
class BCE(Loss):
    """Binary cross-entropy on probabilities (the tutorial's loss), as ``torch.nn.BCELoss``:

    ``L = -mean(T log P + (1 - T) log(1 - P))`` with each log clamped at -100 so that
    ``P = 0`` or ``1`` give a finite loss; ``dP = (P - T) / max(P (1 - P), 1e-12) / P.size``.
    T is shaped like P, with values in [0, 1]. Prefer `BCEWithLogits` on raw scores.
    """

    expects = "probabilities"

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        return ops.bce(P, T)

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        return ops.bce_value(P, T)

    def prepare_target(self, backend: Backend, y: Any, n_samples: int, out_features: int, what: str = "y") -> Array:
        T = super().prepare_target(backend, y, n_samples, out_features, what)
        _check_unit_interval(backend, T, what)
        return T


@LOSSES.register(aliases=('bce_with_logits',))
class BCEWithLogits(Loss):
    """Binary cross-entropy on logits Z, as ``torch.nn.BCEWithLogitsLoss``:

    ``L = mean(max(Z, 0) - Z T + log(1 + exp(-|Z|)))``;  ``dZ = (sigmoid(Z) - T) / Z.size``.
    T is shaped like Z, with values in [0, 1].
    """

    expects = "logits"

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        # the generic two-branch sigmoid, as always here (NumPy's fused one rounds differently)
        return self.value(ops, P, T), (Ops.sigmoid(ops, P) - T) / _size(P)

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        xp = ops.xp
        return xp.mean(xp.maximum(P, 0.0) - P * T + xp.log1p(xp.exp(-xp.abs(P))))

    def prepare_target(self, backend: Backend, y: Any, n_samples: int, out_features: int, what: str = "y") -> Array:
        T = super().prepare_target(backend, y, n_samples, out_features, what)
        _check_unit_interval(backend, T, what)
        return T


@LOSSES.register(aliases=('softmax_cross_entropy', 'cross_entropy'))
class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on logits Z ``(N, C)`` with integer class labels y ``(N,)``,
    as ``torch.nn.CrossEntropyLoss``:

    ``L = mean_n(logsumexp(Z_n) - Z_n[y_n])``;  ``dZ = (softmax(Z) - onehot(y)) / N``.
    The max is subtracted before exponentiating, so any finite logits are safe.
    """

    expects = "logits"
    labels = True

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        return ops.softmax_cross_entropy(P, T)

    def value(self, ops: Ops, P: Array, T: Array) -> Array:
        xp = ops.xp
        shifted = P - xp.max(P, axis=1, keepdims=True)
        lse = xp.log(xp.sum(xp.exp(shifted), axis=1))
        return xp.mean(lse) - xp.sum(shifted * ops.onehot(T, P)) / P.shape[0]

    def prepare_target(self, backend: Backend, y: Any, n_samples: int, out_features: int, what: str = "y") -> Array:
        labels = _host_labels(backend, y, what)
        if labels.shape == (n_samples, 1):
            labels = labels.reshape(-1)
        if labels.shape != (n_samples,):
            hint = " (one-hot targets? pass y.argmax(axis=1))" if labels.shape == (n_samples, out_features) else ""
            raise ValueError(
                f"{what} must hold one integer class label per sample, shape ({n_samples},); got {labels.shape}{hint}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= out_features):
            raise ValueError(
                f"{what} has class labels from {labels.min()} to {labels.max()}, but the model has "
                f"{out_features} outputs, so labels must lie in [0, {out_features - 1}]"
            )
        return backend.from_host(labels, dtype=backend.xp.int64)


def _size(P: Array) -> int:
    return math.prod(P.shape)


def _check_unit_interval(backend: Backend, T: Array, what: str) -> None:
    xp = backend.xp
    with backend.activate():
        bad = bool(xp.any((T < 0) | (T > 1)))
    if bad:
        raise ValueError(f"{what} must hold targets in [0, 1] for binary cross-entropy")


def _host_labels(backend: Backend, y: Any, what: str) -> np.ndarray:
    """Labels as host int64, checking they are whole numbers (labels are small; one copy is cheap)."""
    if array_device(y) not in (None, backend.device):
        backend.asarray(y, what=what)  # raises the device-mismatch error
    host = host_array(y, what) if array_device(y) is None else np.asarray(backend.to_numpy(y))
    if host.dtype.kind == "f":
        if not np.isfinite(host).all():
            raise ValueError(f"{what} contains NaN or Inf; class labels must be integers")
        if not np.array_equal(host, np.round(host)):
            raise ValueError(f"{what} must hold integer class labels; got non-integer values")
    elif host.dtype.kind not in "iub":
        raise TypeError(f"{what} must hold integer class labels; got dtype {host.dtype}")
    return host.astype(np.int64, copy=False)  # from_host copies it to the device anyway


def get_loss(loss: str | Loss) -> Loss:
    """A loss from its name (``"mse"``, ``"bce"``, ``"bce_with_logits"``, ``"cross_entropy"``, a
    registered class name) or instance."""
    if isinstance(loss, Loss):
        return loss
    try:
        cls = LOSSES[loss]
    except ValueError:
        names = ", ".join(LOSSES.aliases())
        raise ValueError(f"unknown loss {loss!r}: use one of {names} or a bp.losses.Loss") from None
    return cls()

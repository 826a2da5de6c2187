"""Normalisation layers: `BatchNorm` (over the batch) and `LayerNorm` (over the features)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import Array, Ops
from ..parameter import Parameter
from ..registry import LAYERS
from ..validation import integer, real
from .base import Backward, BuildContext, Layer, ShardContext

__all__ = ["BatchNorm", "LayerNorm"]


def _column_sums(ops: Ops, p: Parameter, A: Array) -> Array:
    """``p.grad = sum_n A[n, :]`` (written into its gradient slot where it has one); returns it."""
    p.grad = ops.sum_rows(A, out=p.grad_slot)
    return p.grad


class _Norm(Layer):
    """Shared parts: the feature count, ``gamma``/``beta`` and the build-time check."""

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__()
        owner = type(self).__name__
        self.features = integer(features, "features", minimum=1, owner=owner)
        self.eps = real(eps, "eps", low=0.0, high=math.inf, low_open=True, owner=owner)

    def size_estimate(self) -> int:
        return (4 if self.updates_state else 2) * self.features  # gamma, beta (and running statistics)

    def build(self, in_features: int | None, ctx: BuildContext) -> int:
        if in_features is not None and in_features != self.features:
            raise ValueError(
                f"{self.describe()} expects {self.features} input features but the layer before "
                f"it produces {in_features}; make them agree"
            )
        super().build(in_features, ctx)
        self.gamma = self.add_variable("gamma", np.ones(self.features), ctx)
        self.beta = self.add_variable("beta", np.zeros(self.features), ctx)
        return self.features

    def __repr__(self) -> str:
        defaults = type(self)(1).get_config()  # show only the options that differ from the defaults
        extra = "".join(f", {k}={v!r}" for k, v in self.get_config().items() if k != "features" and v != defaults[k])
        return f"{type(self).__name__}({self.features}{extra})"


@LAYERS.register
class BatchNorm(_Norm):
    """Batch normalisation over the batch axis, as ``torch.nn.BatchNorm1d(features, momentum, eps)``.

    Training (batch statistics, X ``(N, F)``, mean/var/gamma/beta ``(F,)``):

        mean = sum_n X / N          var = sum_n (X - mean)^2 / N        (biased)
        xhat = (X - mean) * inv_std,   inv_std = 1 / sqrt(var + eps)
        Y    = gamma * xhat + beta
        running_mean = (1 - m) running_mean + m mean
        running_var  = (1 - m) running_var  + m var * N / (N - 1)      (unbiased, as PyTorch)

        dX     = gamma * inv_std / N * (N dY - sum_n dY - xhat * sum_n (dY xhat))
        dgamma = sum_n dY xhat,   dbeta = sum_n dY

    Inference uses the running statistics: ``Y = gamma * (X - running_mean) * inv_std + beta``
    with ``inv_std = 1 / sqrt(running_var + eps)``, so ``dX = dY * gamma * inv_std``.

    ``gamma`` (ones) and ``beta`` (zeros) are trained; ``running_mean`` (zeros) and
    ``running_var`` (ones) are saved state (in ``state_dict``, not in ``parameters()``),
    updated by every forward pass in training mode. Training needs batches of at least 2.

    In data-parallel training (`fit(distributed=world)`) it is *synchronised*: the statistics
    are those of the global batch, summed over the processes, so that N processes train as one
    does (`_apply_synced`).
    """

    updates_state = True
    collective = True  # synchronised statistics in data-parallel training

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(features, eps)
        self.momentum = real(momentum, "momentum", low=0.0, high=1.0, owner="BatchNorm")

    def build(self, in_features: int | None, ctx: BuildContext) -> int:
        out = super().build(in_features, ctx)
        self.running_mean = self.add_variable("running_mean", np.zeros(self.features), ctx, trainable=False)
        self.running_var = self.add_variable("running_var", np.ones(self.features), ctx, trainable=False)
        return out

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        ops = self.ops
        xp = ops.xp
        self._check_input(X, self.features)
        gamma = self.gamma.data
        if not training:
            # Captured now: a later training pass replaces the running statistics.
            inv_std = 1.0 / xp.sqrt(self.running_var.data + self.eps)
            xhat = (X - self.running_mean.data) * inv_std
            Y = gamma * xhat + self.beta.data

            def backward_eval(dY: Array, need_dX: bool = True) -> Array | None:
                _column_sums(ops, self.gamma, dY * xhat)
                _column_sums(ops, self.beta, dY)
                return dY * (gamma * inv_std) if need_dX else None

            return Y, backward_eval

        shard = self.shard
        if shard is not None and shard.size > 1:
            return self._apply_synced(X, shard)
        N = X.shape[0]
        if N < 2:
            raise ValueError(
                f"{self.describe()} needs at least 2 samples per batch in training mode to compute batch "
                f"statistics; got a batch of {N}. Use larger batches (with fit, a batch_size that does "
                "not leave a last batch of 1 sample), or call model.eval() to use the running statistics."
            )
        mean = xp.mean(X, axis=0)
        Xc = X - mean
        var = xp.mean(Xc * Xc, axis=0)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = Xc * inv_std
        Y = gamma * xhat + self.beta.data
        m = self.momentum
        # New arrays, not in-place updates: the old ones may still be referenced elsewhere.
        self.running_mean.data = (1.0 - m) * self.running_mean.data + m * mean
        self.running_var.data = (1.0 - m) * self.running_var.data + (m * N / (N - 1)) * var

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            sum_dY_xhat = _column_sums(ops, self.gamma, dY * xhat)
            sum_dY = _column_sums(ops, self.beta, dY)
            if not need_dX:
                return None
            return (gamma * inv_std / N) * (N * dY - sum_dY - xhat * sum_dY_xhat)

        return Y, backward

    def _apply_synced(self, X: Array, shard: ShardContext) -> tuple[Array, Backward]:
        """Training on this process's ``n`` rows of a global batch of ``B`` rows.

        Forward: ``mean = allreduce(sum_n X) / B``, then ``var = allreduce(sum_n (X - mean)^2) / B``
        (two passes, as one process computes them, rather than ``E[X^2] - mean^2``, which
        cancels); the running statistics get the global ``mean`` and ``var * B / (B - 1)``.

        Backward: each process's ``dY`` is the gradient of *its* mean loss, while one process's
        would be of the global mean: the trainer scales every gradient by ``w = n / B`` after
        backward (`ShardContext.weight`). So the sums of the formula are all-reduced as
        ``S1 = allreduce(w sum_n dY)`` and ``S2 = allreduce(w sum_n dY xhat)`` (one call, one
        buffer of ``2F``), and ``dX = gamma inv_std (dY - (S1 + xhat S2) / n)``, which is the
        global ``dX`` divided by ``w``, as every other gradient here is until that scaling.
        ``dgamma``/``dbeta`` are this process's own sums (the trainer's scaled sum makes them
        global). A process with no rows still makes both reductions, with zeros."""
        ops = self.ops
        xp = ops.xp
        N, n, w = shard.batch_rows, shard.count, shard.weight
        if N < 2:
            raise ValueError(
                f"{self.describe()} needs at least 2 samples per global batch in training mode; got a batch of "
                f"{N}. Use a batch_size that does not leave a last batch of 1 sample, or call model.eval()."
            )
        total = ops.sum_rows(X)
        shard.allreduce_sum_(total)
        mean = total / N
        Xc = X - mean
        squares = ops.sum_rows(Xc * Xc)
        shard.allreduce_sum_(squares)
        var = squares / N
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = Xc * inv_std
        gamma = self.gamma.data
        Y = gamma * xhat + self.beta.data
        m = self.momentum
        self.running_mean.data = (1.0 - m) * self.running_mean.data + m * mean
        self.running_var.data = (1.0 - m) * self.running_var.data + (m * N / (N - 1)) * var
        F = self.features

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            sum_dY_xhat = _column_sums(ops, self.gamma, dY * xhat)
            sum_dY = _column_sums(ops, self.beta, dY)
            S = xp.concat([sum_dY * w, sum_dY_xhat * w])
            shard.allreduce_sum_(S)  # every process, whether or not it needs dX
            if not need_dX:
                return None
            if n == 0:
                return dY  # no rows: nothing to compute, an empty dX
            return (gamma * inv_std) * (dY - (S[:F] + xhat * S[F:]) * (1.0 / n))

        return Y, backward

    def get_config(self) -> dict[str, Any]:
        return {"features": self.features, "momentum": self.momentum, "eps": self.eps}


@LAYERS.register
class LayerNorm(_Norm):
    """Layer normalisation over the features of each row, as ``torch.nn.LayerNorm(features, eps)``.

    With X ``(N, F)``, per-row mean/var ``(N, 1)`` and gamma/beta ``(F,)``:

        mean = sum_f X / F          var = sum_f (X - mean)^2 / F        (biased)
        xhat = (X - mean) * inv_std,   inv_std = 1 / sqrt(var + eps)
        Y    = gamma * xhat + beta

        g      = dY * gamma
        dX     = inv_std / F * (F g - sum_f g - xhat * sum_f (g xhat))
        dgamma = sum_n dY xhat,   dbeta = sum_n dY

    The same computation in training and inference; no running state.
    """

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__(features, eps)

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        ops = self.ops
        xp = ops.xp
        self._check_input(X, self.features)
        F = self.features
        gamma = self.gamma.data
        mean = xp.mean(X, axis=1, keepdims=True)
        Xc = X - mean
        var = xp.mean(Xc * Xc, axis=1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = Xc * inv_std
        Y = gamma * xhat + self.beta.data

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            _column_sums(ops, self.gamma, dY * xhat)
            _column_sums(ops, self.beta, dY)
            if not need_dX:
                return None
            g = dY * gamma
            sum_g = xp.sum(g, axis=1, keepdims=True)
            sum_g_xhat = xp.sum(g * xhat, axis=1, keepdims=True)
            return (inv_std / F) * (F * g - sum_g - xhat * sum_g_xhat)

        return Y, backward

    def get_config(self) -> dict[str, Any]:
        return {"features": self.features, "eps": self.eps}

"""`Ops`: every computation a backend may do its own way, written once against the Array API.

Layers, losses and optimizers call ``ops.<method>(...)`` and never ask which backend they are
on. This class is the reference: plain Array API code that runs on any namespace (it is what
array-api-strict runs). `NumpyOps` and `CupyOps` subclass it and override only what they fuse,
with the same signatures and the same numbers (tested method by method against this class).

Conventions: X, Y, dY, dX are ``(N, features)`` arrays; an activation's ``bias_<name>(Z, b)``
is ``<name>(Z + b)`` and may overwrite ``Z`` (a temporary its caller owns); nothing else
writes into an array it was given, except the optimizer updates, which update ``p`` and their
state in place by design.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from . import rounding
from .special import INV_SQRT2, INV_SQRT_2PI, erf

__all__ = ["Array", "Ops", "adam_constants"]

Array = Any  # an array of the backend's namespace; the Array API has no common base class

_LOG_FLOOR = -100.0  # PyTorch's BCELoss clamps log terms here so 0 and 1 give finite losses
TINY = math.exp(_LOG_FLOOR)  # below it the clamped log is -100 anyway; keeps log(0) from warning


class Ops:
    """The generic computations of one Array API namespace ``xp``."""

    def __init__(self, xp: Any):
        self.xp = xp

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.xp, '__name__', self.xp)!r})"

    # ------------------------------------------------------------------ matrix products
    # ``kind`` (`rounding.OPERANDS`) says what the operands of a product are: ``"float32"``
    # values, or values rounded by `round_operand` to a narrower format (mixed precision).
    # Either way the products are summed in float32 (or the dtype's own precision). Backends
    # whose matrix units convert float32 inputs themselves (cuBLAS's TF32) read ``kind``;
    # the others were handed operands already rounded and multiply them as they are.
    def matmul(self, A: Array, B: Array, kind: str = "float32") -> Array:
        """``A @ B``: ``(m, k) @ (k, n) -> (m, n)``."""
        return self.xp.matmul(A, B)

    def matmul_tn(self, A: Array, B: Array, out: Array | None = None, kind: str = "float32") -> Array:
        """``A^T @ B`` (a weight gradient ``X^T dY``); may be written into ``out`` (a gradient
        slot of the flat buffer), and is then ``out``."""
        C = self.xp.matmul(self.xp.matrix_transpose(A), B)
        return _into(C, out)

    def matmul_nt(self, A: Array, B: Array, kind: str = "float32") -> Array:
        """``A @ B^T`` (an input gradient ``dY W^T``)."""
        return self.xp.matmul(A, self.xp.matrix_transpose(B))

    def round_operand(self, X: Array, kind: str, out: Array | None = None) -> Array:
        """``X`` as a ``kind`` operand of a matrix product (`backprop.backends.rounding`): the
        float32 values of ``X`` rounded as the GPU rounds its low-precision inputs, ``X`` itself
        for ``"float32"``. ``X`` is left as it is; with ``out`` the result is written there.

        Here, for any namespace, the values make a round trip through host memory (the
        Array API has no bit views); NumPy rounds in place, CuPy in one kernel."""
        if kind == "float32":
            return X if out is None else _into(X, out)
        # the host's copy (DLPack cannot bring a GPU tensor to the host: torch's own way for those)
        values = X.detach().cpu().numpy() if array_api_compat.is_torch_array(X) else np.from_dlpack(X)
        host = rounding.round_operand(np.ascontiguousarray(values, dtype=np.float32), kind)
        return _into(self.xp.asarray(host, device=array_api_compat.device(X)), out)

    def sum_rows(self, A: Array, out: Array | None = None) -> Array:
        """``sum_n A[n, :]`` (a bias gradient), ``(N, F) -> (F,)``; may be written into ``out``."""
        return _into(self.xp.sum(A, axis=0), out)

    # ------------------------------------------------------------------ activations
    def relu(self, X: Array) -> Array:
        """``max(X, 0)``."""
        return self.xp.maximum(X, 0.0)

    def bias_relu(self, Z: Array, b: Array) -> Array:
        return self.relu(Z + b)

    def relu_backward(self, dY: Array, Y: Array) -> Array:
        """``dY * 1[Y > 0]`` (0 at the kink, as PyTorch; NaN in dY kept)."""
        return self.xp.where(Y > 0, dY, 0.0)

    def leaky_relu(self, X: Array, alpha: float) -> Array:
        """``X if X > 0 else alpha X``."""
        return self.xp.where(X > 0, X, alpha * X)

    def bias_leaky_relu(self, Z: Array, b: Array, alpha: float) -> Array:
        return self.leaky_relu(Z + b, alpha)

    def leaky_relu_backward(self, dY: Array, X: Array, alpha: float) -> Array:
        """``dY if X > 0 else alpha dY``."""
        return self.xp.where(X > 0, dY, alpha * dY)

    def sigmoid(self, X: Array) -> Array:
        """``1 / (1 + exp(-X))`` without overflow: ``exp`` only ever sees ``-|X|``."""
        xp = self.xp
        e = xp.exp(-xp.abs(X))
        return xp.where(X >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def bias_sigmoid(self, Z: Array, b: Array) -> Array:
        return self.sigmoid(Z + b)

    def sigmoid_backward(self, dY: Array, Y: Array) -> Array:
        """``dY * Y * (1 - Y)``."""
        return dY * Y * (1.0 - Y)

    def tanh(self, X: Array) -> Array:
        return self.xp.tanh(X)

    def bias_tanh(self, Z: Array, b: Array) -> Array:
        return self.tanh(Z + b)

    def tanh_backward(self, dY: Array, Y: Array) -> Array:
        """``dY * (1 - Y^2)``."""
        return dY * (1.0 - Y * Y)

    def gelu(self, X: Array) -> Array:
        """Exact GELU ``X * Phi(X)``, ``Phi(X) = (1 + erf(X / sqrt 2)) / 2``."""
        return X * (0.5 * (1.0 + erf(self.xp, X * INV_SQRT2)))

    def bias_gelu(self, Z: Array, b: Array) -> Array:
        return self.gelu(Z + b)

    def gelu_backward(self, dY: Array, X: Array) -> Array:
        """``dY * (Phi(X) + X * phi(X))`` with the normal density ``phi``."""
        xp = self.xp
        Phi = 0.5 * (1.0 + erf(xp, X * INV_SQRT2))
        # Clamping keeps X*X finite; beyond |X| = 40 the density is exactly 0 anyway.
        Xc = xp.minimum(xp.maximum(X, -40.0), 40.0)  # not clip: a host sync on CuPy
        return dY * (Phi + X * (xp.exp(-0.5 * Xc * Xc) * INV_SQRT_2PI))

    # ------------------------------------------------------------------ losses
    def softmax_cross_entropy(self, Z: Array, labels: Array) -> tuple[Array, Array]:
        """``(mean_n logsumexp(Z_n) - Z_n[y_n], (softmax(Z) - onehot(y)) / N)`` for logits
        ``Z (N, C)`` and int64 labels ``(N,)``; the max is subtracted before ``exp``."""
        xp = self.xp
        shifted = Z - xp.max(Z, axis=1, keepdims=True)
        E = xp.exp(shifted)
        S = xp.sum(E, axis=1, keepdims=True)
        onehot = self.onehot(labels, Z)
        n = Z.shape[0]
        L = xp.sum(xp.log(S)) / n - xp.sum(shifted * onehot) / n
        return L, (E / S - onehot) / n

    def onehot(self, labels: Array, like: Array) -> Array:
        """``(N, C)`` one-hot rows of ``labels`` in ``like``'s dtype and device (C = like's columns)."""
        xp = self.xp
        classes = xp.arange(like.shape[1], dtype=labels.dtype, device=array_api_compat.device(like))
        return xp.astype(labels[:, None] == classes[None, :], like.dtype)

    def bce(self, P: Array, T: Array) -> tuple[Array, Array]:
        """Binary cross-entropy on probabilities, as ``torch.nn.BCELoss``:
        ``L = -mean(T log P + (1 - T) log(1 - P))`` (each log clamped at -100) and
        ``dP = (P - T) / max(P (1 - P), 1e-12) / P.size``."""
        xp = self.xp
        dP = (P - T) / (xp.maximum(P * (1.0 - P), 1e-12) * math.prod(P.shape))
        return self.bce_value(P, T), dP

    def bce_value(self, P: Array, T: Array) -> Array:
        """`bce`'s loss alone."""
        xp = self.xp
        log_p = xp.maximum(xp.log(xp.maximum(P, TINY)), _LOG_FLOOR)
        log_q = xp.maximum(xp.log(xp.maximum(1.0 - P, TINY)), _LOG_FLOOR)
        return -xp.mean(T * log_p + (1.0 - T) * log_q)

    # ------------------------------------------------------------------ batches
    def rows_buffer(self, X: Array, rows: int) -> Array | None:
        """Room for ``rows`` rows of ``X`` that `take_rows` may fill, reused batch after
        batch; ``None`` where the namespace has no ``out=`` (the Array API has none)."""
        return None

    def take_rows(self, X: Array, idx: Array, out: Array | None = None) -> Array:
        """``X[idx, ...]``, written into the first ``len(idx)`` rows of ``out`` (a
        `rows_buffer`) where the backend can, else a new array. ``idx`` holds valid rows."""
        return self.xp.take(X, idx, axis=0)

    # ------------------------------------------------------------------ dropout
    def dropout(self, X: Array, U: Array, keep: float) -> tuple[Array, Array]:
        """``(Y, scale)`` with ``scale = 1[U < keep] / keep`` (mask and rescaling in one array,
        kept for the backward pass ``dX = dY * scale``) and ``Y = X * scale``."""
        scale = self.xp.astype(U < keep, X.dtype) * (1.0 / keep)
        return X * scale, scale

    # ------------------------------------------------------------------ optimizer updates
    def adam_update(
        self, p: Array, g: Array, m: Array, v: Array, *, step: int, lr: float, beta1: float, beta2: float,
        eps: float, weight_decay: float, decoupled: bool, scalars: Array | None = None,
    ) -> None:
        """`bp.optim.Adam`/`AdamW`'s rule on flat arrays, in place (``g`` is left as it is):

            p *= 1 - lr wd                        (decoupled weight decay, AdamW)
            g' = g + wd p                         (coupled weight decay, Adam)
            m = b1 m + (1 - b1) g';   v = b2 v + (1 - b2) g'^2
            p -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)),   bc_i = 1 - b_i^step

        (the reference's ``lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`` with one pass fewer).
        ``scalars`` is the device copy of the step's scalars that GPU kernels read; host
        values serve here."""
        eps_hat, step_size = adam_constants(step, lr, beta1, beta2, eps)
        if weight_decay and decoupled:
            p *= 1.0 - lr * weight_decay
        elif weight_decay:
            g = p * weight_decay + g
        m *= beta1
        m += g * (1.0 - beta1)
        v *= beta2
        v += (g * g) * (1.0 - beta2)
        p -= (m / (self.xp.sqrt(v) + eps_hat)) * step_size

    def sgd_update(
        self, p: Array, g: Array, *buf: Array, fresh: bool, lr: float, momentum: float, dampening: float,
        nesterov: bool, weight_decay: float, scalars: Array | None = None,
    ) -> None:
        """`bp.optim.SGD`'s rule on flat arrays, in place (``buf``: the momentum buffer, if any;
        ``fresh``: it holds nothing yet):

            g' = g + wd p;   b = g' (fresh) or momentum b + (1 - dampening) g';
            p -= lr (g' + momentum b  if nesterov  else b)"""
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            (b,) = buf
            if fresh:
                b[...] = g
            else:
                b *= momentum
                b += g if dampening == 0 else (1.0 - dampening) * g
            g = g + momentum * b if nesterov else b
        p -= lr * g

    # ------------------------------------------------------------------ checks
    def all_finite(self, X: Array) -> bool:
        """Whether every entry is finite (one device sync)."""
        return bool(self.xp.all(self.xp.isfinite(X)))


def adam_constants(step: int, lr: float, beta1: float, beta2: float, eps: float) -> tuple[float, float]:
    """``(eps_hat, step_size) = (eps sqrt(bc2), lr sqrt(bc2) / bc1)``, ``bc_i = 1 - beta_i^step``:
    the bias corrections folded into two constants, computed once on the host in this order by
    every flat-buffer Adam (so all give the same numbers, bit for bit)."""
    root_bc2 = math.sqrt(1.0 - beta2**step)
    return eps * root_bc2, lr * root_bc2 / (1.0 - beta1**step)


def _into(C: Array, out: Array | None) -> Array:
    if out is None:
        return C
    out[...] = C
    return out

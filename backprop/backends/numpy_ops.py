"""`NumpyOps`: the generic `Ops` with in-place NumPy twins where they save passes over memory.

Each override has its generic method's signature and computes the same numbers: ``where``
replaced by masked products, results built in place in arrays the method allocated itself,
and a ``bias_*`` method free to overwrite the ``Z`` it is given (a temporary its caller owns).
Nothing here writes into an array the caller still reads.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from .finite import host_all_finite
from .ops import TINY, Ops, adam_constants
from .rounding import round_operand

__all__ = ["ADAM_CHUNK", "NumpyOps"]

ADAM_CHUNK = 1 << 17  # 512 KiB of float32 per array: measured best of 2**13..2**20 on 2 EPYC cores


class NumpyOps(Ops):
    """`Ops` for host NumPy arrays."""

    def __init__(self) -> None:
        super().__init__(xp_numpy)

    # ------------------------------------------------------------------ matrix products
    def matmul(self, A: np.ndarray, B: np.ndarray, kind: str = "float32") -> np.ndarray:
        return np.matmul(A, B)

    def matmul_tn(
        self, A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None, kind: str = "float32"
    ) -> np.ndarray:
        return np.matmul(A.T, B, out=out)  # BLAS reads the transpose in place: no copy

    def matmul_nt(self, A: np.ndarray, B: np.ndarray, kind: str = "float32") -> np.ndarray:
        return np.matmul(A, B.T)

    def round_operand(self, X: np.ndarray, kind: str, out: np.ndarray | None = None) -> np.ndarray:
        """On the bits of the float32 values, in a few passes and no host round trip."""
        return round_operand(X, kind, out)

    def sum_rows(self, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.add.reduce(A, axis=0, out=out)

    # ------------------------------------------------------------------ activations
    def bias_relu(self, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``max(Z + b, 0)`` in place. The 0 is a scalar, not a broadcast row of zeros: NumPy's
        SIMD loop for two arrays is faster on a lucky row (0.13 against 0.4 ms on a (512, 1024)
        float32 array) but, on the 2-core AMD EPYC we benchmark on, takes 0.8-1.8 ms for a
        freshly made row at some addresses, and that was most processes' bias + ReLU inside a
        training step. The scalar's loop costs the same wherever the arrays lie."""
        Z += b
        return np.maximum(Z, 0, out=Z)

    def relu_backward(self, dY: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``dY`` where ``Y > 0``, else +0, as the bits of dY ANDed with an all-ones or all-zeros
        mask: 0.21 ms on a (512, 1024) float32 array against 2.4 for ``where`` and 0.27 for
        ``dY * (Y > 0)``, which would also turn an inf or NaN of dY into NaN where it must be 0."""
        ints = np.int32 if dY.dtype == np.float32 else np.int64
        mask = np.negative(np.greater(Y, 0).view(np.int8), dtype=ints)
        return np.bitwise_and(dY.view(ints), mask, out=mask).view(dY.dtype)

    def sigmoid(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid_of_negated(np.negative(X))

    def bias_sigmoid(self, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
        Z += b
        return _sigmoid_of_negated(np.negative(Z, out=Z))

    def sigmoid_backward(self, dY: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dX = np.subtract(1, Y)
        dX *= Y
        dX *= dY
        return dX

    def bias_tanh(self, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
        Z += b
        return np.tanh(Z, out=Z)

    def tanh_backward(self, dY: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dX = np.multiply(Y, Y)
        np.subtract(1, dX, out=dX)
        dX *= dY
        return dX

    def leaky_relu(self, X: np.ndarray, alpha: float) -> np.ndarray:
        if not 0.0 <= alpha <= 1.0:  # max(X, alpha X) is the leaky ReLU only for alpha in [0, 1]
            return np.where(X > 0, X, alpha * X)
        Y = np.multiply(X, alpha)
        return np.maximum(Y, X, out=Y)

    def leaky_relu_backward(self, dY: np.ndarray, X: np.ndarray, alpha: float) -> np.ndarray:
        dX = np.multiply(dY, alpha)
        np.copyto(dX, dY, where=X > 0)
        return dX

    # ------------------------------------------------------------------ losses
    def softmax_cross_entropy(self, Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One exp pass, the label entries picked by indexing instead of a one-hot product."""
        n = Z.shape[0]
        shifted = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(shifted)
        S = E.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        L = (np.log(S).sum() - shifted[rows, labels].sum()) / n
        E /= S
        E[rows, labels] -= 1
        E *= 1.0 / n
        return np.asarray(L, dtype=Z.dtype), E

    def bce(self, P: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fewer passes: clamping the argument at exp(-100) clamps the log, and keeps log(0)
        from warning."""
        Q = 1 - P
        log_p = np.log(np.maximum(P, TINY))
        log_q = np.log(np.maximum(Q, TINY))
        log_p *= T
        log_q *= 1 - T
        log_p += log_q
        L = np.add.reduce(log_p, axis=None) / -P.size
        denom = np.multiply(P, Q)
        np.maximum(denom, 1e-12, out=denom)
        denom *= P.size
        return np.asarray(L, dtype=P.dtype), np.divide(P - T, denom, out=denom)

    # ------------------------------------------------------------------ batches
    def rows_buffer(self, X: np.ndarray, rows: int) -> np.ndarray:
        return np.empty((rows, *X.shape[1:]), dtype=X.dtype)

    def take_rows(self, X: np.ndarray, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            return np.take(X, idx, axis=0)
        # mode="clip": with "raise" (the default) and out=, NumPy gathers into a temporary and
        # copies it over: 2-3x slower. ``idx`` is a permutation's slice, so nothing is clipped.
        return np.take(X, idx, axis=0, out=out[: idx.shape[0]], mode="clip")

    # ------------------------------------------------------------------ checks
    def all_finite(self, X: np.ndarray) -> bool:
        """Block by block, without a boolean array as large as ``X`` (`host_all_finite`)."""
        return host_all_finite(X)

    # ------------------------------------------------------------------ optimizer updates
    def adam_update(
        self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, step: int, lr: float,
        beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool, scalars: Any = None
    ) -> None:
        """The arrays are walked in chunks of `ADAM_CHUNK` elements, so that a chunk of
        ``p, g, m, v`` and the scratch stay in cache across the rule's dozen passes (on 1.9 M
        parameters this takes 6.4 -> 5.0 ms). Every element sees the generic method's
        operations in its order whatever the chunking: the same numbers, bit for bit."""
        constants = (beta1, beta2, *adam_constants(step, lr, beta1, beta2, eps))
        n = p.shape[0]
        tmp = np.empty(min(n, ADAM_CHUNK), dtype=p.dtype)
        decay = tmp.copy() if weight_decay and not decoupled else None
        for start in range(0, n, ADAM_CHUNK):
            chunk = slice(start, start + ADAM_CHUNK)
            pc, gc = p[chunk], g[chunk]
            t = tmp[: pc.shape[0]]
            if weight_decay and decoupled:
                pc *= 1.0 - lr * weight_decay
            elif decay is not None:  # p wd + g in scratch: the caller's gradient stays as backprop left it
                gc = np.multiply(pc, weight_decay, out=decay[: pc.shape[0]])
                gc += g[chunk]
            _adam_chunk(pc, gc, m[chunk], v[chunk], t, *constants)


def _sigmoid_of_negated(Y: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(Y))`` in place. exp overflows to inf for Y > ~88 (float32), and
    1 / inf = 0 is the correctly rounded sigmoid there, so the overflow is expected."""
    with np.errstate(over="ignore"):
        np.exp(Y, out=Y)
    Y += 1
    return np.reciprocal(Y, out=Y)


def _adam_chunk(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    tmp: np.ndarray,
    beta1: float,
    beta2: float,
    eps_hat: float,
    step_size: float,
) -> None:
    """``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= step_size * m / (sqrt(v) + eps_hat)``."""
    np.multiply(g, 1.0 - beta1, out=tmp)
    m *= beta1
    m += tmp
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - beta2
    v *= beta2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp += eps_hat
    np.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp

"""Fused NumPy kernels: in-place twins of the generic kernels (see `Backend.kernel`).

Each has the signature of its generic twin and computes the same numbers with fewer passes
over memory: ``where`` replaced by masked products, results built in place in arrays the
kernel allocated itself, and a ``bias_*`` kernel free to overwrite the ``Z`` it is given (a
temporary its caller owns). Nothing here writes into an array the caller still reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["KERNELS"]


def matmul(xp: Any, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.matmul(A, B)


def matmul_tn(xp: Any, A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.matmul(A.T, B, out=out)  # BLAS reads the transpose in place: no copy


def matmul_nt(xp: Any, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.matmul(A, B.T)


def sum_rows(xp: Any, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.add.reduce(A, axis=0, out=out)


def bias_relu_forward(xp: Any, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``max(Z + b, 0)`` in place. The 0 is a scalar, not a broadcast row of zeros: NumPy's
    SIMD loop for two arrays is faster on a lucky row (0.13 against 0.4 ms on a (512, 1024)
    float32 array) but, on the 2-core AMD EPYC we benchmark on, takes 0.8-1.8 ms for a freshly
    made row at some addresses, and that was most processes' bias + ReLU inside a training
    step. The scalar's loop costs the same wherever the arrays lie."""
    Z += b
    return np.maximum(Z, 0, out=Z)


def relu_backward(xp: Any, dY: np.ndarray, X: Any, Y: np.ndarray) -> np.ndarray:
    return np.multiply(dY, Y > 0)  # 7x faster than where(Y > 0, dY, 0)


def sigmoid_forward(xp: Any, X: np.ndarray) -> np.ndarray:
    Y = np.negative(X)
    return _sigmoid_of_negated(Y)


def bias_sigmoid_forward(xp: Any, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
    Z += b
    return _sigmoid_of_negated(np.negative(Z, out=Z))


def _sigmoid_of_negated(Y: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(Y))`` in place. exp overflows to inf for Y > ~88 (float32), and
    1 / inf = 0 is the correctly rounded sigmoid there, so the overflow is expected."""
    with np.errstate(over="ignore"):
        np.exp(Y, out=Y)
    Y += 1
    return np.reciprocal(Y, out=Y)


def sigmoid_backward(xp: Any, dY: np.ndarray, X: Any, Y: np.ndarray) -> np.ndarray:
    dX = np.subtract(1, Y)
    dX *= Y
    dX *= dY
    return dX


def tanh_forward(xp: Any, X: np.ndarray) -> np.ndarray:
    return np.tanh(X)


def bias_tanh_forward(xp: Any, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
    Z += b
    return np.tanh(Z, out=Z)


def tanh_backward(xp: Any, dY: np.ndarray, X: Any, Y: np.ndarray) -> np.ndarray:
    dX = np.multiply(Y, Y)
    np.subtract(1, dX, out=dX)
    dX *= dY
    return dX


def leaky_relu_forward(xp: Any, X: np.ndarray, alpha: float) -> np.ndarray:
    if not 0.0 <= alpha <= 1.0:  # max(X, alpha X) is the leaky ReLU only for alpha in [0, 1]
        return np.where(X > 0, X, alpha * X)
    Y = np.multiply(X, alpha)
    return np.maximum(Y, X, out=Y)


def leaky_relu_backward(xp: Any, dY: np.ndarray, X: np.ndarray, Y: Any, alpha: float) -> np.ndarray:
    dX = np.multiply(dY, alpha)
    np.copyto(dX, dY, where=X > 0)
    return dX


def softmax_cross_entropy(xp: Any, Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean_n logsumexp(Z_n) - Z_n[y_n], (softmax(Z) - onehot(y)) / N)`` with one exp pass
    and the label entries picked by indexing instead of a one-hot product."""
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


def bce(xp: Any, P: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`bp.losses.BCE` (each log clamped at -100, as PyTorch) in fewer passes: clamping the
    argument at exp(-100) clamps the log, and keeps log(0) from warning."""
    Q = 1 - P
    log_p = np.log(np.maximum(P, _TINY))
    log_q = np.log(np.maximum(Q, _TINY))
    log_p *= T
    log_q *= 1 - T
    log_p += log_q
    L = np.add.reduce(log_p, axis=None) / -P.size
    denom = np.multiply(P, Q)
    np.maximum(denom, 1e-12, out=denom)
    denom *= P.size
    return np.asarray(L, dtype=P.dtype), np.divide(P - T, denom, out=denom)


_TINY = math.exp(-100.0)  # below it the clamped log is -100 anyway; keeps log(0) from warning


def adam_update(
    xp: Any, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, fresh: bool, step: int,
    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool, scalars: Any = None,
) -> None:
    """`bp.optim.Adam`/`AdamW`'s rule on flat arrays, in place.
    (``scalars`` is the device copy of `Optimizer.step_scalars` that GPU kernels read; the host
    values serve here.)

    The arrays are walked in chunks of `ADAM_CHUNK` elements, so that a chunk of ``p, g, m, v``
    and the scratch stay in cache across the rule's dozen passes (on 1.9 M parameters this
    takes 6.4 -> 5.0 ms). Every element sees the same operations in the same order whatever the
    chunking, so the result is bit-for-bit that of one pass over the whole arrays."""
    # lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) = lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps*sqrt(bc2)): one pass fewer
    root_bc2 = math.sqrt(1.0 - beta2**step)
    constants = (beta1, beta2, eps * root_bc2, lr * root_bc2 / (1.0 - beta1**step))
    n = p.shape[0]
    tmp = np.empty(min(n, ADAM_CHUNK), dtype=p.dtype)
    decay = tmp.copy() if weight_decay and not decoupled else None
    for start in range(0, n, ADAM_CHUNK):
        chunk = slice(start, start + ADAM_CHUNK)
        pc, gc = p[chunk], g[chunk]
        t = tmp[: pc.shape[0]]
        if weight_decay and decoupled:
            pc *= 1.0 - lr * weight_decay
        elif weight_decay:  # g + wd * p in scratch: the caller's gradient stays as backprop left it
            gc = np.multiply(pc, weight_decay, out=decay[: pc.shape[0]])
            gc += g[chunk]
        _adam_chunk(pc, gc, m[chunk], v[chunk], t, *constants)


ADAM_CHUNK = 1 << 17  # 512 KiB of float32 per array: measured best of 2**13..2**20 on 2 EPYC cores


def _adam_chunk(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, tmp: np.ndarray,
    beta1: float, beta2: float, eps_hat: float, step_size: float,
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


def sgd_update(
    xp: Any, p: np.ndarray, g: np.ndarray, *buf: np.ndarray, fresh: bool,
    lr: float, momentum: float, dampening: float, nesterov: bool, weight_decay: float, scalars: Any = None,
) -> None:
    """`bp.optim.SGD`'s rule on flat arrays, in place (``buf`` is the momentum buffer, if any)."""
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


KERNELS: dict[str, Callable[..., Any]] = {
    "matmul": matmul,
    "matmul_tn": matmul_tn,
    "matmul_nt": matmul_nt,
    "sum_rows": sum_rows,
    "bce": bce,
    "adam_update": adam_update,
    "sgd_update": sgd_update,
    "bias_relu_forward": bias_relu_forward,
    "relu_backward": relu_backward,
    "sigmoid_forward": sigmoid_forward,
    "bias_sigmoid_forward": bias_sigmoid_forward,
    "sigmoid_backward": sigmoid_backward,
    "tanh_forward": tanh_forward,
    "bias_tanh_forward": bias_tanh_forward,
    "tanh_backward": tanh_backward,
    "leaky_relu_forward": leaky_relu_forward,
    "leaky_relu_backward": leaky_relu_backward,
    "softmax_cross_entropy": softmax_cross_entropy,
}

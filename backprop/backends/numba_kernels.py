"""The compiled CPU kernels `NumbaOps` calls; importing this module imports numba.

Only `numba_ops` imports it, and only when a kernel is first needed, so ``import backprop`` and
every model whose arrays stay below `NumbaOps`'s thresholds never load numba.

Every kernel is compiled on first use for the dtypes it meets (float32, float64) and cached on
disk (``cache=True``, see `numba_ops` for where), so only a machine's first run pays for
compilation. None uses ``fastmath``: without it LLVM neither reassociates sums nor contracts a
multiply and an add into one fused multiply-add, so each element sees the same IEEE float32 (or
float64) operations in the same order as the generic `Ops` method, and the elementwise kernels
give its numbers bit for bit. The scalars are passed in the arrays' dtype, converted from Python
floats exactly as NumPy converts them (``np.float32(1.0 - beta1)``), so that no float32 value is
promoted to float64 on the way.

Each kernel is one pass over memory on the calling thread (``nogil``: other Python threads run
meanwhile). Loops index from 0 to a length: LLVM then knows no index is negative (numba wraps
negative indices around) and vectorises them; it does not for ``range(lo, hi)``.
Arrays are C-contiguous (the caller checks).

Why one thread: numba's ``parallel=True`` kernels were measured inside training steps on the
2-core machines we benchmark on. With numba's default OpenMP layer, its worker threads spin
after each kernel while OpenBLAS's threads need both cores for the next matrix product, and a
mnist-small step took 56 ms instead of 2.4 (the NumPy-kernel model in the same process slowed
down fourfold with it). With ``OMP_WAIT_POLICY=passive`` (a process-wide setting) or the
workqueue layer there was no such collapse, but two threads were still never faster than one:
the kernels run right after a matrix product, while OpenBLAS's own threads still hold the
second core. So no threading layer is started at all.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

__all__ = ["CACHED", "adam", "bias_relu", "dropout", "relu_backward", "sgd", "softmax_cross_entropy", "sum_rows"]

CACHED = True  # whether the kernels are cached on disk (False: no writable cache directory)


def _jit(fn: Any) -> Any:
    """``numba.njit(cache=True, nogil=True)``, or without the cache where numba finds no
    writable directory for it (it raises then, at decoration): such a process compiles every
    kernel it uses once, and `numba_ops` warns about it. ``error_model="numpy"``: a division by
    zero gives inf or NaN, as in NumPy, instead of raising."""
    global CACHED
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        CACHED = False
        return numba.njit(nogil=True, error_model="numpy")(fn)


@_jit
def adam(p, g, m, v, mode, wd, decay, b1, c1, b2, c2, eps_hat, step_size):
    """Adam/AdamW on flat arrays, in place (``g`` only read). ``mode`` 0: no weight decay;
    1: coupled (``g' = p wd + g``); 2: decoupled (``p *= decay``, ``decay = 1 - lr wd``).
    ``c1 = 1 - b1``, ``c2 = 1 - b2``; per element, as `Ops.adam_update`:

        m = m b1 + g' c1;  v = v b2 + (g' g') c2;  p -= (m / (sqrt(v) + eps_hat)) step_size
    """
    for i in range(p.shape[0]):
        pi = p[i]
        gi = g[i]
        if mode == 2:
            pi = pi * decay
        elif mode == 1:
            gi = pi * wd + gi
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        p[i] = pi - (mi / (np.sqrt(vi) + eps_hat)) * step_size


@_jit
def sgd(p, g, b, wd, lr, momentum, damp, fresh, nesterov, use_momentum):
    """SGD on flat arrays, in place (``g`` only read; ``b`` the momentum buffer, used when
    ``use_momentum``; ``damp = 1 - dampening``), as `Ops.sgd_update`:

        g' = g + wd p;  b = g' (fresh) or b momentum + g' damp;  p -= lr (g' + momentum b or b)
    """
    for i in range(p.shape[0]):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        if use_momentum:
            if fresh:
                bi = gi
            elif damp == 1:
                bi = b[i] * momentum + gi
            else:
                bi = b[i] * momentum + damp * gi
            b[i] = bi
            gi = gi + momentum * bi if nesterov else bi
        p[i] = p[i] - lr * gi


@_jit
def bias_relu(Z, b):
    """``Z = max(Z + b, 0)`` in place, as NumPy's ``maximum`` (NaN kept, ``-0`` gives ``+0``)."""
    rows, cols = Z.shape
    for r in range(rows):
        for c in range(cols):
            z = Z[r, c] + b[c]
            Z[r, c] = z if (z > 0 or z != z) else 0


@_jit
def relu_backward(dY, Y, dX):
    """``dX = dY if Y > 0 else 0`` (flat arrays), as the generic ``where``."""
    for i in range(dY.shape[0]):
        dX[i] = dY[i] if Y[i] > 0 else 0


@_jit
def sum_rows(A, out):
    """``out[c] = sum_r A[r, c]`` (``A`` with at least one row), the rows added one after the
    other, as NumPy adds them in a reduction over the first axis of a C-contiguous array."""
    rows, cols = A.shape
    for c in range(cols):
        out[c] = A[0, c]
    for r in range(1, rows):
        for c in range(cols):
            out[c] += A[r, c]


@_jit
def softmax_cross_entropy(Z, labels, dZ):
    """One pass per row: ``dZ = (softmax(Z) - onehot) / N`` into ``dZ``; returns the summed
    loss ``sum_n log S_n - shifted_n[y_n]`` (float64 accumulation), or -1 - n for a label out of
    range at row n (nothing is then indexed with it)."""
    rows, cols = Z.shape
    total = 0.0
    for r in range(rows):
        y = labels[r]
        if y < 0 or y >= cols:
            return -1.0 - r
        mx = Z[r, 0]
        for c in range(1, cols):
            if Z[r, c] > mx or Z[r, c] != Z[r, c]:
                mx = Z[r, c]
        s = 0.0  # float64: a more accurate sum than NumPy's float32 one (the bound in numba_ops)
        for c in range(cols):
            e = np.exp(Z[r, c] - mx)
            dZ[r, c] = e
            s += e
        for c in range(cols):
            dZ[r, c] = dZ[r, c] / s
        dZ[r, y] = dZ[r, y] - 1
        for c in range(cols):
            dZ[r, c] = dZ[r, c] / rows
        total += math.log(s) - (Z[r, y] - mx)
    return total


@_jit
def dropout(X, U, keep, inv_keep, Y, scale):
    """``scale = 1[U < keep] inv_keep``, ``Y = X scale`` (flat arrays)."""
    for i in range(X.shape[0]):
        s = inv_keep if U[i] < keep else 0
        scale[i] = s
        Y[i] = X[i] * s

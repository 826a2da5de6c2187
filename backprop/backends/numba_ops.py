"""`NumbaOps`: `NumpyOps` with compiled, multi-threaded kernels (numba) where they pay.

Installed with ``pip install "backprop[cpu]"``; without numba the CPU backend is `NumpyOps`
and nothing changes. With it, ``Device("cpu")`` (``kernels="auto"``) computes with this class,
and ``Device("cpu", kernels="numpy")`` opts out (see `backprop.backends.Device`).

Each override takes the compiled kernel for arrays of at least `MIN_SIZE` elements (a
per-method table, measured: below it NumPy's one call costs less than a kernel launch, and a
model that never reaches it, such as one trained on the 8x8 digits, never imports numba), that
are C-contiguous and of one floating dtype; otherwise it is the `NumpyOps` method (``super()``).

What each kernel computes, against the generic `Ops` method (tests/test_kernels.py checks it):

- ``adam_update``, ``sgd_update``, ``bias_relu``, ``relu_backward``, ``dropout``: the same
  numbers, bit for bit (the operations of the generic method, in its order, in the arrays'
  dtype, without fused multiply-adds or reassociation).
- ``sum_rows``: the rows added one after the other, the order NumPy's reduction over the first
  axis of a C-contiguous array takes: NumPy's numbers on NumPy's layouts; the documented bound
  is that of any summation order, ``|error| <= rows * eps * sum_r |A[r, c]|``.
- ``softmax_cross_entropy``: ``exp`` and ``log`` are the C library's (NumPy has SIMD versions
  of its own; both are within an ulp or two), each row's sum and the loss are accumulated in
  float64: the loss and ``dZ`` within a few float32 ulps of the generic (tested at rtol 2e-6).

Compiled kernels are cached on disk, so only a machine's first run pays for compiling them
(numba's order of places: ``$NUMBA_CACHE_DIR`` when set; else ``__pycache__`` beside this
package's sources when writable; else the user's cache directory, ``~/.cache/numba`` or
``$XDG_CACHE_HOME/numba``). Where none is writable the kernels compile in every process, and
a `RuntimeWarning` says so and how to fix it (set ``NUMBA_CACHE_DIR``).

Threads: the kernels run on numba's threading layer (OpenMP where present, else its own
workqueue) with numba's thread count (``NUMBA_NUM_THREADS``, all cores by default; set
``numba.set_num_threads`` to change it). They run between the matrix products, never beside
them, so they do not compete with OpenBLAS's threads; see the README's Speed section for the
measurement.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from .numpy_ops import NumpyOps

__all__ = ["MIN_SIZE", "NumbaOps", "available"]

# Elements (of the largest array a call touches) from which each kernel is taken, measured on
# 2 AMD EPYC cores (see _MIN_SIZE_MEASURED in the commit message / README): the crossover where
# numba's launch (~10-20 us for a parallel kernel) is paid back, rounded up.
MIN_SIZE: dict[str, int] = {
    "adam_update": 1 << 15,
    "sgd_update": 1 << 15,
    "bias_relu": 1 << 15,
    "relu_backward": 1 << 15,
    "sum_rows": 1 << 15,
    "softmax_cross_entropy": 1 << 10,
    "dropout": 1 << 15,
}

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_kernels: ModuleType | None = None


def available() -> bool:
    """Whether numba is installed (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _load() -> ModuleType:
    """`numba_kernels`, imported on first use (this imports numba: about half a second)."""
    global _kernels
    if _kernels is None:
        from . import numba_kernels  # noqa: PLC0415 - numba is optional and slow to import

        if not numba_kernels.CACHED:
            warnings.warn(
                "numba finds no writable directory to cache backprop's compiled kernels in, so every "
                "process compiles them again (seconds); set NUMBA_CACHE_DIR to a writable directory",
                RuntimeWarning,
                stacklevel=3,
            )
        _kernels = numba_kernels
    return _kernels


def _fits(*arrays: Any) -> bool:
    """All NumPy arrays, C-contiguous, of one floating dtype (what the kernels are compiled for)."""
    dtype = arrays[0].dtype
    return dtype in _FLOATS and all(
        isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous for a in arrays
    )


class NumbaOps(NumpyOps):
    """`NumpyOps` with numba kernels for arrays of at least ``min_size[method]`` elements.

    ``min_size`` overrides `MIN_SIZE` (tests pass ``0`` for every method, to compare the
    kernels with the generic methods on small arrays)."""

    def __init__(self, min_size: dict[str, int] | int | None = None) -> None:
        super().__init__()
        if min_size is None:
            min_size = MIN_SIZE
        elif isinstance(min_size, int):
            min_size = dict.fromkeys(MIN_SIZE, min_size)
        self.min_size = {**MIN_SIZE, **min_size}
        # one attribute per method: a small model's every call pays this test, so it is cheap
        self._min_sum_rows = self.min_size["sum_rows"]
        self._min_bias_relu = self.min_size["bias_relu"]
        self._min_relu_backward = self.min_size["relu_backward"]
        self._min_softmax_cross_entropy = self.min_size["softmax_cross_entropy"]
        self._min_dropout = self.min_size["dropout"]
        self._min_adam_update = self.min_size["adam_update"]
        self._min_sgd_update = self.min_size["sgd_update"]

    # ------------------------------------------------------------------ matrix products
    def sum_rows(self, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if (
            A.size < self._min_sum_rows
            or A.ndim != 2
            or A.shape[0] == 0
            or not _fits(A, *(() if out is None else (out,)))
            or (out is not None and out.shape != A.shape[1:])
        ):
            return NumpyOps.sum_rows(self, A, out)
        if out is None:
            out = np.empty(A.shape[1], dtype=A.dtype)
        _load().sum_rows(A, out)
        return out

    # ------------------------------------------------------------------ activations
    def bias_relu(self, Z: np.ndarray, b: np.ndarray) -> np.ndarray:
        if Z.size < self._min_bias_relu or Z.ndim != 2 or b.shape != Z.shape[1:] or not _fits(Z, b):
            return NumpyOps.bias_relu(self, Z, b)
        _load().bias_relu(Z, b)
        return Z

    def relu_backward(self, dY: np.ndarray, Y: np.ndarray) -> np.ndarray:
        if dY.size < self._min_relu_backward or dY.shape != Y.shape or not _fits(dY, Y):
            return NumpyOps.relu_backward(self, dY, Y)
        dX = np.empty_like(dY)
        _load().relu_backward(dY.reshape(-1), Y.reshape(-1), dX.reshape(-1))
        return dX

    # ------------------------------------------------------------------ losses
    def softmax_cross_entropy(self, Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if (
            Z.size < self._min_softmax_cross_entropy
            or Z.ndim != 2
            or Z.shape[0] == 0
            or not _fits(Z)
            or not isinstance(labels, np.ndarray)
            or labels.dtype != np.int64
            or labels.shape != Z.shape[:1]
            or not labels.flags.c_contiguous
        ):
            return NumpyOps.softmax_cross_entropy(self, Z, labels)
        dZ = np.empty_like(Z)
        total = _load().softmax_cross_entropy(Z, labels, dZ)
        if total <= -1.0:  # a label out of range: the kernel's signal (a sum of losses is never negative)
            row = int(-1.0 - total)
            raise IndexError(f"label {int(labels[row])} at row {row} is out of range for {Z.shape[1]} classes")
        return np.asarray(total / Z.shape[0], dtype=Z.dtype), dZ

    # ------------------------------------------------------------------ dropout
    def dropout(self, X: np.ndarray, U: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
        if X.size < self._min_dropout or X.shape != U.shape or not _fits(X, U):
            return NumpyOps.dropout(self, X, U, keep)
        Y, scale = np.empty_like(X), np.empty_like(X)
        t = X.dtype.type
        _load().dropout(X.reshape(-1), U.reshape(-1), t(keep), t(1.0 / keep), Y.reshape(-1), scale.reshape(-1))
        return Y, scale

    # ------------------------------------------------------------------ optimizer updates
    def adam_update(
        self,
        p: np.ndarray,
        g: np.ndarray,
        m: np.ndarray,
        v: np.ndarray,
        *,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        decoupled: bool,
        scalars: Any = None,
    ) -> None:
        """The generic rule per element, in its order: the same numbers, bit for bit."""
        if p.size < self._min_adam_update or p.ndim != 1 or not _fits(p, g, m, v):
            return NumpyOps.adam_update(
                self,
                p,
                g,
                m,
                v,
                step=step,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=eps,
                weight_decay=weight_decay,
                decoupled=decoupled,
                scalars=scalars,
            )
        root_bc2 = math.sqrt(1.0 - beta2**step)
        t = p.dtype.type  # Python floats become the arrays' dtype as NumPy converts them
        mode = (2 if decoupled else 1) if weight_decay else 0
        _load().adam(
            p,
            g,
            m,
            v,
            mode,
            t(weight_decay),
            t(1.0 - lr * weight_decay),
            t(beta1),
            t(1.0 - beta1),
            t(beta2),
            t(1.0 - beta2),
            t(eps * root_bc2),
            t(lr * root_bc2 / (1.0 - beta1**step)),
        )
        return None

    def sgd_update(
        self,
        p: np.ndarray,
        g: np.ndarray,
        *buf: np.ndarray,
        fresh: bool,
        lr: float,
        momentum: float,
        dampening: float,
        nesterov: bool,
        weight_decay: float,
        scalars: Any = None,
    ) -> None:
        """The generic rule per element, in its order: the same numbers, bit for bit."""
        if p.size < self._min_sgd_update or p.ndim != 1 or not _fits(p, g, *buf):
            return NumpyOps.sgd_update(
                self,
                p,
                g,
                *buf,
                fresh=fresh,
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                nesterov=nesterov,
                weight_decay=weight_decay,
                scalars=scalars,
            )
        t = p.dtype.type
        b = buf[0] if momentum else p  # a placeholder the kernel never touches without momentum
        _load().sgd(
            p,
            g,
            b,
            t(weight_decay),
            t(lr),
            t(momentum),
            t(1.0 - dampening),
            bool(fresh),
            bool(nesterov),
            bool(momentum),
        )
        return None

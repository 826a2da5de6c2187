"""`NumbaOps`: `NumpyOps` with compiled, fused kernels (numba) where they pay.

Installed with ``pip install "backprop-nn[cpu]"``; without numba the CPU backend is `NumpyOps`
and nothing changes. With it, ``Device("cpu")`` (``kernels="auto"``) computes with this class,
and ``Device("cpu", kernels="numpy")`` opts out (see `backprop.backends.Device`).

When it pays: importing numba and loading the cached kernels costs a process about half a
second, so with ``kernels="auto"`` the kernels stay off (everything is `NumpyOps`, numba is
not imported) until the model's optimizer first updates at least ``MIN_SIZE["parameters"]``
(131,072) parameters: the one sure sign of a model large enough to win that back. Then each
override takes its kernel for arrays of at least ``MIN_SIZE[method]`` elements (measured: below
it NumPy's calls cost less than a kernel launch), C-contiguous and of one floating dtype, and is
the `NumpyOps` method otherwise. ``backprop train``'s digits model (9,610 parameters) never
switches them on, however large its evaluation batches; a model that only predicts neither.

What each kernel computes, against the generic `Ops` method (tests/backends/test_ops.py and test_numba_ops.py check it):

- ``adam_update``, ``sgd_update``, ``bias_relu``, ``relu_backward``, ``dropout``: the same
  numbers, bit for bit (the operations of the generic method, in its order, in the arrays'
  dtype, without fused multiply-adds or reassociation).
- ``sum_rows``: the rows added one after the other, the order NumPy's reduction over the first
  axis of a C-contiguous array takes: NumPy's numbers on NumPy's layouts; the documented bound
  is that of any summation order, ``|error| <= rows * eps * sum_r |A[r, c]|``.
- ``softmax_cross_entropy``: ``exp`` and ``log`` are the C library's (NumPy has SIMD versions
  of its own; both within an ulp or two of the exact value), each row's sum and the loss are
  accumulated in float64 (the generic sums pairwise in the dtype): the loss within 2e-6
  (relative, float32) of the generic's, and each ``dZ`` entry within ``(C + 4) eps`` of its
  size plus ``(C + 4) eps / N`` (C classes, N rows; tests/backends/test_numba_ops.py).

Compiled kernels are cached on disk, so only a machine's first run pays for compiling them
(numba's order of places: ``$NUMBA_CACHE_DIR`` when set; else ``__pycache__`` beside this
package's sources when writable; else the user's cache directory, ``~/.cache/numba`` or
``$XDG_CACHE_HOME/numba``). Where none is writable the kernels compile in every process, and
a `RuntimeWarning` says so and how to fix it (set ``NUMBA_CACHE_DIR``).

Threads: each kernel is one vectorised pass on the calling thread (numba's threading layer is
never started): measured inside training steps on 2 cores, numba's multi-threaded kernels were
never faster, since OpenBLAS's threads still hold the second core right after a matrix
product, and with numba's default OpenMP layer its spinning threads slowed the matrix products
down many times over (see `numba_kernels`). The kernels release the GIL.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from .numpy_ops import NumpyOps
from .ops import adam_constants

__all__ = ["MIN_SIZE", "NumbaOps", "available"]

# Elements (of the largest array a call touches) from which each method takes its kernel.
# Measured on 2 AMD EPYC cores, float32, median of 7 x 30 calls, numba's time / NumPy's in us:
#
#   elements          256         4096        16384        65536       262144
#   adam_update   12.8/23.5    17.0/44.1    26.3/66.6   45.5/146.0  161.2/572.2
#   sgd_update     8.5/3.8      9.9/5.7     10.2/7.9    16.1/19.9    46.4/73.9
#   bias_relu      4.0/5.3      4.7/11.1     4.9/23.7    9.6/75.2    29.8/264.8
#   relu_backward  6.4/5.9      7.6/9.2      6.7/11.6   14.7/32.9    45.0/134.1
#   sum_rows       4.6/3.3      5.3/4.6      4.9/5.8     9.2/15.1    30.0/55.1
#   softmax_ce     9.4/45.5    54.2/129.9  178.3/275.5 725.8/1034   3074/4031   (10 classes)
#   dropout        8.5/6.6     15.3/12.8    15.2/14.9   41.0/51.4   127.8/157.5
#
# A kernel launch costs ~4-8 us (numba checks each argument's type), so SGD (one NumPy pass
# without momentum), the column sums and dropout gain only on larger arrays; Adam, bias + ReLU
# and the loss gain at every size, but their first call imports numba and loads the compiled
# kernels (about half a second), which a small model would not win back: so `backprop train`'s
# digits model (a 64-128-10 network, batch 32) stays on NumPy throughout.
#
# And "parameters": with ``kernels="auto"`` the kernels stay off until the model's optimizer
# updates a flat buffer of this many parameters (a model large enough to win back numba's
# import); a model below it, or one that only predicts, runs on NumPy throughout, whatever its
# batches. ``Device("cpu", kernels="numba")`` switches them on from the start.
MIN_SIZE: dict[str, int] = {
    "parameters": 1 << 17,
    "adam_update": 1 << 15,
    "sgd_update": 1 << 16,
    "bias_relu": 1 << 15,
    "relu_backward": 1 << 15,
    "sum_rows": 1 << 15,
    "softmax_cross_entropy": 1 << 10,
    "dropout": 1 << 16,
}

_OFF = sys.maxsize  # a threshold no array reaches
_KERNEL_METHODS = ("sum_rows", "bias_relu", "relu_backward", "softmax_cross_entropy", "dropout")
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
    if dtype not in _FLOATS:
        return False
    for a in arrays:  # noqa: SIM110 - a loop, not all(<generator>): this runs on every large call
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return True


class NumbaOps(NumpyOps):
    """`NumpyOps` with numba kernels for arrays of at least ``min_size[method]`` elements, once
    switched on (``on``): from the start with ``on=True`` (``kernels="numba"``), else by the
    first optimizer update over ``min_size["parameters"]`` parameters or more.

    ``min_size`` overrides `MIN_SIZE` (an int: every entry; tests pass ``0``, which also
    switches the kernels on, to compare them with the generic methods on small arrays)."""

    def __init__(self, min_size: dict[str, int] | int | None = None, *, on: bool = False) -> None:
        super().__init__()
        if min_size is None:
            min_size = MIN_SIZE
        elif isinstance(min_size, int):
            min_size = dict.fromkeys(MIN_SIZE, min_size)
        self.min_size = {**MIN_SIZE, **min_size}
        # One attribute per method: a call below it pays one comparison more than NumpyOps'.
        self._min_sum_rows = self.min_size["sum_rows"]
        self._min_bias_relu = self.min_size["bias_relu"]
        self._min_relu_backward = self.min_size["relu_backward"]
        self._min_softmax_cross_entropy = self.min_size["softmax_cross_entropy"]
        self._min_dropout = self.min_size["dropout"]
        self.on = False
        # While off, the methods with kernels are NumpyOps' own, bound to this instance (they
        # shadow the class's), so that a model that never switches the kernels on (xor's, the
        # digits') runs exactly NumpyOps' code; only the optimizer updates keep watching the
        # size of what they update, and their kernel thresholds wait at _OFF.
        for name in _KERNEL_METHODS:
            setattr(self, name, getattr(NumpyOps, name).__get__(self))
        self._min_adam_update = self._min_sgd_update = _OFF
        self._switch_at = self.min_size["parameters"]
        if on or self._switch_at <= 0:
            self.switch_on()

    def switch_on(self) -> None:
        """Take the kernels from now on (for arrays over their thresholds)."""
        self.on = True
        for name in _KERNEL_METHODS:
            self.__dict__.pop(name, None)  # the class's methods, with kernels, show through
        self._switch_at = _OFF
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
        if p.size >= self._switch_at:
            self.switch_on()
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
        eps_hat, step_size = adam_constants(step, lr, beta1, beta2, eps)
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
            t(eps_hat),
            t(step_size),
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
        if p.size >= self._switch_at:
            self.switch_on()
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

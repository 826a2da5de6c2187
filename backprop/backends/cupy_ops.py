"""`CupyOps`: the generic `Ops` with one launch where the generic path makes several.

Elementwise work is a `cupy.ElementwiseKernel`, work across a row (softmax cross-entropy) a
`cupy.RawKernel`; their sources, and the options they are compiled with, are the data of
`cupy_sources`. Matrix products go through a cuBLAS handle of our own (`cublas.Gemm`), which,
unlike ``cupy.matmul``, may be captured in a CUDA graph. Step-dependent optimizer scalars (the
learning rate, Adam's bias corrections, computed on the host exactly as the reference rule
computes them) are read from device memory (``scalars``), so a captured graph replays them
correctly. Every override has its generic method's signature and is tested against it.

Made per `Backend` (the cuBLAS handle belongs to one device); kernels compile on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cublas import Gemm
from .cupy_kernels import elementwise, raw_kernel
from .ops import Ops

__all__ = ["CupyOps"]

_WARP = 32
_ROWS_PER_BLOCK = 4  # softmax cross-entropy: one warp per row, four rows per block


class _Activation:
    """The three kernels of one activation: forward, bias + forward (over Z), backward."""

    def __init__(self, cupy: Any, name: str):
        self.forward = elementwise(cupy, f"bp_{name}_forward")
        self.bias_forward = elementwise(cupy, f"bp_bias_{name}_forward")
        self.backward = elementwise(cupy, f"bp_{name}_backward")

    def bias(self, Z: Any, b: Any, *args: float) -> Any:
        self.bias_forward(b, *args, Z)  # writes f(Z + b) over Z, a temporary of the caller
        return Z


class CupyOps(Ops):
    """`Ops` for CuPy arrays on GPU ``device_index``: ``xp`` is array-api-compat's CuPy
    namespace, ``cupy`` the CuPy module."""

    def __init__(self, xp: Any, cupy: Any, device_index: int):
        super().__init__(xp)
        self._cupy = cupy
        self.gemm = Gemm(device_index)
        self._acts = {name: _Activation(cupy, name) for name in ("relu", "sigmoid", "tanh", "leaky_relu", "gelu")}
        self._ones: dict[tuple[int, Any], Any] = {}
        self._all_finite = cupy.ReductionKernel(
            "T x", "bool y", "isfinite(x)", "a && b", "y = a", "true", "bp_all_finite"
        )
        self._ce_rows = _by_dtype(cupy, "bp_softmax_ce_rows")
        self._mean = _by_dtype(cupy, "bp_mean")
        self._bce = elementwise(cupy, "bp_bce")
        self._adam = elementwise(cupy, "bp_adam_update")
        self._sgd_momentum = elementwise(cupy, "bp_sgd_momentum_update")
        self._sgd = elementwise(cupy, "bp_sgd_update")
        self._dropout = elementwise(cupy, "bp_dropout_forward")
        self._round = {kind: elementwise(cupy, f"bp_round_{kind}") for kind in ("bfloat16", "float16")}

    # ------------------------------------------------------------------ matrix products
    def matmul(self, A: Any, B: Any, kind: str = "float32") -> Any:
        return self.gemm(A, B, False, False, kind=kind)

    def matmul_tn(self, A: Any, B: Any, out: Any = None, kind: str = "float32") -> Any:
        return self.gemm(A, B, True, False, out, kind)

    def matmul_nt(self, A: Any, B: Any, kind: str = "float32") -> Any:
        return self.gemm(A, B, False, True, kind=kind)

    def round_operand(self, X: Any, kind: str, out: Any = None) -> Any:
        """The operand as cuBLAS takes it (`cublas.Gemm`): for ``"bfloat16"`` and
        ``"float16"`` the 16-bit storage (uint16 bits) of the values rounded to nearest even,
        in one kernel, bitwise `backprop.backends.rounding`'s values (`widen` gives them back);
        for ``"float32"`` and ``"tf32"`` ``X`` itself, which cuBLAS reads (as TF32 in the
        latter case: the tensor cores convert)."""
        if kind in ("float32", "tf32"):
            if out is None:
                return X
            out[...] = X
            return out
        kernel = self._round.get(kind)
        if kernel is None:
            raise ValueError(f"round_operand takes 'float32', 'tf32', 'bfloat16' or 'float16'; got {kind!r}")
        if X.dtype != self._cupy.float32:
            raise TypeError(f"{kind} operands are rounded from float32 arrays; got {X.dtype}")
        return kernel(X) if out is None else kernel(X, out)

    def sum_rows(self, A: Any, out: Any = None) -> Any:
        """The product ``ones(1, n) @ A`` through our cuBLAS handle: for a (2048, 4096) float32
        array 27.6 us against ``cupy.sum``'s 50.3 us on an H200, and at most 12.3 against 30.8
        us back to back on an H100 (where 12 us is the host's launch rate); on the smaller
        shapes of mnist-small and -wide the two cost the same. Capturable. The row of ones is
        made once per row count and dtype (in the eager steps before a capture, so a capture
        finds it made)."""
        key = (A.shape[0], A.dtype)
        u = self._ones.get(key)
        if u is None:
            u = self._ones[key] = self._cupy.ones((1, A.shape[0]), dtype=A.dtype)
        if out is not None and out.flags.c_contiguous:  # a gradient slot in the flat buffer
            self.gemm(u, A, False, False, out.reshape(1, A.shape[1]))
            return out
        C = self.gemm(u, A, False, False).reshape(A.shape[1])
        if out is None:
            return C
        out[...] = C
        return out

    # ------------------------------------------------------------------ activations
    def relu(self, X: Any) -> Any:
        return self._acts["relu"].forward(X)

    def bias_relu(self, Z: Any, b: Any) -> Any:
        return self._acts["relu"].bias(Z, b)

    def relu_backward(self, dY: Any, Y: Any) -> Any:
        return self._acts["relu"].backward(dY, Y, Y)

    def leaky_relu(self, X: Any, alpha: float) -> Any:
        return self._acts["leaky_relu"].forward(X, alpha)

    def bias_leaky_relu(self, Z: Any, b: Any, alpha: float) -> Any:
        return self._acts["leaky_relu"].bias(Z, b, alpha)

    def leaky_relu_backward(self, dY: Any, X: Any, alpha: float) -> Any:
        return self._acts["leaky_relu"].backward(dY, X, X, alpha)

    def sigmoid(self, X: Any) -> Any:
        return self._acts["sigmoid"].forward(X)

    def bias_sigmoid(self, Z: Any, b: Any) -> Any:
        return self._acts["sigmoid"].bias(Z, b)

    def sigmoid_backward(self, dY: Any, Y: Any) -> Any:
        return self._acts["sigmoid"].backward(dY, Y, Y)

    def tanh(self, X: Any) -> Any:
        return self._acts["tanh"].forward(X)

    def bias_tanh(self, Z: Any, b: Any) -> Any:
        return self._acts["tanh"].bias(Z, b)

    def tanh_backward(self, dY: Any, Y: Any) -> Any:
        return self._acts["tanh"].backward(dY, Y, Y)

    def gelu(self, X: Any) -> Any:
        return self._acts["gelu"].forward(X)

    def bias_gelu(self, Z: Any, b: Any) -> Any:
        return self._acts["gelu"].bias(Z, b)

    def gelu_backward(self, dY: Any, X: Any) -> Any:
        return self._acts["gelu"].backward(dY, X, X)

    # ------------------------------------------------------------------ losses
    def softmax_cross_entropy(self, Z: Any, labels: Any) -> tuple[Any, Any]:
        """One warp per row: one launch where the generic path takes eleven, then a mean."""
        cupy = self._cupy
        n, c = Z.shape
        if n == 0:  # as the generic mean over no rows
            return cupy.full((), cupy.nan, dtype=Z.dtype), cupy.empty_like(Z)
        Z = cupy.ascontiguousarray(Z)
        labels = cupy.ascontiguousarray(labels, dtype=cupy.int64)
        dZ, rows, L = cupy.empty_like(Z), cupy.empty(n, dtype=Z.dtype), cupy.empty((), dtype=Z.dtype)
        blocks = -(-n // _ROWS_PER_BLOCK)
        self._ce_rows(Z.dtype)((blocks,), (_ROWS_PER_BLOCK * _WARP,), (Z, labels, dZ, rows, np.int64(n), np.int32(c)))
        self._mean(Z.dtype)((1,), (_WARP,), (rows, L, np.int64(n)))
        return L, dZ

    def bce(self, P: Any, T: Any) -> tuple[Any, Any]:
        term, dP = self._bce(P, T, P.dtype.type(P.size))
        return -term.mean(), dP

    # ------------------------------------------------------------------ dropout
    def dropout(self, X: Any, U: Any, keep: float) -> tuple[Any, Any]:
        return self._dropout(X, U, keep)

    # ------------------------------------------------------------------ optimizer updates
    def adam_update(
        self, p: Any, g: Any, m: Any, v: Any, *, step: int, lr: float, beta1: float, beta2: float,
        eps: float, weight_decay: float, decoupled: bool, scalars: Any = None
    ) -> None:
        self._adam(g, scalars, beta1, beta2, eps, weight_decay, decoupled, p, m, v)

    def sgd_update(
        self,
        p: Any,
        g: Any,
        *buf: Any,
        fresh: bool,
        lr: float,
        momentum: float,
        dampening: float,
        nesterov: bool,
        weight_decay: float,
        scalars: Any = None,
    ) -> None:
        if buf:
            self._sgd_momentum(g, scalars, momentum, dampening, nesterov, weight_decay, fresh, p, buf[0])
        else:
            self._sgd(g, scalars, weight_decay, p)

    # ------------------------------------------------------------------ checks
    def all_finite(self, X: Any) -> bool:
        """One reduction launch, without the boolean array in between (half the host time of
        `fit`'s input check)."""
        if X.dtype.kind != "f":  # integers are always finite (and have no isfinite overload)
            return True
        return bool(self._all_finite(X))


#: the C type a raw kernel's ``T`` is for each array dtype it takes; any other dtype is refused
#: (a 2-byte array handed to the ``float`` kernel would be read past its end)
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _by_dtype(cupy: Any, name: str) -> Any:
    """``kernel(dtype)``: the `cupy.RawKernel` of ``RAW_SOURCES[name]`` for float dtype ``dtype``
    (each made once, compiled on its first launch)."""
    made: dict[Any, Any] = {}

    def kernel(dtype: Any) -> Any:
        found = made.get(dtype)  # arrays give np.dtype objects: found at once
        if found is None:
            key = np.dtype(dtype)
            ctype = C_TYPES.get(key)
            if ctype is None:
                raise TypeError(f"{name} has kernels for {', '.join(map(str, C_TYPES))} arrays; got {key}")
            found = made.get(key) or raw_kernel(cupy, name, ctype)
            made[dtype] = made[key] = found
        return found

    return kernel

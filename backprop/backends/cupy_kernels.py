"""Fused CuPy kernels: one launch where the generic path makes several (see `Backend.kernel`).

Each kernel has the signature of its generic twin (tests compare them on a GPU). Elementwise
work is a `cupy.ElementwiseKernel`, work across a row (softmax cross-entropy) and the writes
before a step or a replay are `cupy.RawKernel`s; their sources, and the options they are
compiled with, are the data of `cupy_sources`. Matrix products go through a cuBLAS handle of
our own (`cublas.Gemm`), which, unlike ``cupy.matmul``, may be captured in a CUDA graph.
Step-dependent optimizer scalars (the learning rate, Adam's bias corrections, computed on the
host exactly as the reference rule computes them) are read from device memory (``scalars``),
so a captured graph replays them correctly.

Kernels are made per `Backend` by `make_kernels` (the cuBLAS handle belongs to one device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .cupy_sources import ACTIVATIONS, DEFINITIONS, OPTIONS, raw_source

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["make_kernels", "raw_kernel", "scalar_args"]

_WARP = 32
_ROWS_PER_BLOCK = 4  # softmax cross-entropy: one warp per row, four rows per block


def scalar_args(kind: Any, values: Any, n: int) -> tuple[Any, ...]:
    """The first ``n`` of ``values`` as NumPy scalars of ``kind``, zeros after them: the fixed
    argument list of a raw kernel (CuPy passes a Python number as whatever type it guesses)."""
    return (*map(kind, values), *(kind(0),) * n)[:n]


def raw_kernel(cupy: Any, name: str, ctype: str = "double") -> Any:
    """The `cupy.RawKernel` of ``RAW_SOURCES[name]`` with ``T`` = ``ctype`` (compiled on first use)."""
    return cupy.RawKernel(raw_source(name, ctype), name, options=OPTIONS)


def make_kernels(backend: Backend) -> dict[str, Callable[..., Any]]:
    """The fused kernels for one CUDA backend (compiled lazily, on first use)."""
    import cupy  # noqa: PLC0415 - only CUDA backends get here

    from .cublas import Gemm  # noqa: PLC0415

    kernels: dict[str, Callable[..., Any]] = {}
    for name in ACTIVATIONS:
        kernels.update(_activation_kernels(cupy, name))
    gemm = Gemm(backend)
    kernels["matmul"] = lambda xp, A, B: gemm(A, B, False, False)
    kernels["matmul_tn"] = lambda xp, A, B, out=None: gemm(A, B, True, False, out)
    kernels["matmul_nt"] = lambda xp, A, B: gemm(A, B, False, True)
    kernels["sum_rows"] = _sum_rows_kernel(cupy, gemm)
    kernels["all_finite"] = _all_finite_kernel(cupy)
    kernels["bind_stream"] = gemm.bind_current_stream
    kernels.update(_loss_kernels(cupy))
    kernels.update(_optimizer_kernels(cupy))
    kernels["dropout_forward"] = _dropout_kernel(cupy)
    return kernels


def _sum_rows_kernel(cupy: Any, gemm: Any) -> Callable[..., Any]:
    """``sum_n A[n, :]`` (a bias gradient) as the product ``ones(1, n) @ A`` through our cuBLAS
    handle: for a (2048, 4096) float32 array 27.6 us against ``cupy.sum``'s 50.3 us on an H200,
    and at most 12.3 against 30.8 us back to back on an H100 (where 12 us is the host's launch
    rate); on the smaller shapes of mnist-small and -wide the two cost the same. Capturable.
    The row of ones is made once per row count and dtype (in the eager steps before a capture,
    so a capture finds it made)."""
    ones: dict[tuple[int, Any], Any] = {}

    def sum_rows(xp: Any, A: Any, out: Any = None) -> Any:
        key = (A.shape[0], A.dtype)
        u = ones.get(key)
        if u is None:
            u = ones[key] = cupy.ones((1, A.shape[0]), dtype=A.dtype)
        if out is not None and out.flags.c_contiguous:  # a gradient slot in the flat buffer
            gemm(u, A, False, False, out.reshape(1, A.shape[1]))
            return out
        C = gemm(u, A, False, False).reshape(A.shape[1])
        if out is None:
            return C
        out[...] = C
        return out

    return sum_rows


def _all_finite_kernel(cupy: Any) -> Callable[[Any, Any], bool]:
    """``all(isfinite(X))`` as one reduction launch, without the boolean array in between
    (half the host time of `fit`'s input check)."""
    reduce = cupy.ReductionKernel("T x", "bool y", "isfinite(x)", "a && b", "y = a", "true", "bp_all_finite")

    def all_finite(xp: Any, X: Any) -> bool:
        if X.dtype.kind != "f":  # integers are always finite (and have no isfinite overload)
            return True
        return bool(reduce(X))

    return all_finite


def _elementwise(cupy: Any, name: str) -> Any:
    """The ``cupy.ElementwiseKernel`` of ``DEFINITIONS[name]``."""
    d = DEFINITIONS[name]
    return cupy.ElementwiseKernel(d.inputs, d.outputs, d.body, name, options=OPTIONS, preamble=d.preamble)


def _activation_kernels(cupy: Any, name: str) -> dict[str, Callable[..., Any]]:
    fwd = _elementwise(cupy, f"bp_{name}_forward")
    bias_fwd = _elementwise(cupy, f"bp_bias_{name}_forward")
    bwd = _elementwise(cupy, f"bp_{name}_backward")

    def forward_kernel(xp: Any, X: Any, *args: float) -> Any:
        return fwd(X, *args)

    def bias_forward_kernel(xp: Any, Z: Any, b: Any, *args: float) -> Any:
        bias_fwd(b, *args, Z)
        return Z

    def backward_kernel(xp: Any, dY: Any, X: Any, Y: Any, *args: float) -> Any:
        return bwd(dY, Y if X is None else X, Y, *args)  # X is None when df reads only Y

    return {
        f"{name}_forward": forward_kernel,
        f"bias_{name}_forward": bias_forward_kernel,
        f"{name}_backward": backward_kernel,
    }


def _raw_kernels(cupy: Any, name: str) -> Callable[[Any], Any]:
    """``kernel(dtype)``: the `cupy.RawKernel` of ``RAW_SOURCES[name]`` for float dtype ``dtype``
    (each made once, compiled on its first launch)."""
    made: dict[Any, Any] = {}

    def kernel(dtype: Any) -> Any:
        found = made.get(dtype)
        if found is None:
            found = made[dtype] = raw_kernel(cupy, name, "double" if dtype == cupy.float64 else "float")
        return found

    return kernel


def _loss_kernels(cupy: Any) -> dict[str, Callable[..., Any]]:
    ce_rows = _raw_kernels(cupy, "bp_softmax_ce_rows")
    mean = _raw_kernels(cupy, "bp_mean")
    bce_terms = _elementwise(cupy, "bp_bce")

    def softmax_cross_entropy(xp: Any, Z: Any, labels: Any) -> tuple[Any, Any]:
        n, c = Z.shape
        if n == 0:  # as the generic mean over no rows
            return cupy.full((), cupy.nan, dtype=Z.dtype), cupy.empty_like(Z)
        Z = cupy.ascontiguousarray(Z)
        labels = cupy.ascontiguousarray(labels, dtype=cupy.int64)
        dZ, rows, L = cupy.empty_like(Z), cupy.empty(n, dtype=Z.dtype), cupy.empty((), dtype=Z.dtype)
        blocks = -(-n // _ROWS_PER_BLOCK)
        ce_rows(Z.dtype)((blocks,), (_ROWS_PER_BLOCK * _WARP,), (Z, labels, dZ, rows, np.int64(n), np.int32(c)))
        mean(Z.dtype)((1,), (_WARP,), (rows, L, np.int64(n)))
        return L, dZ

    def bce(xp: Any, P: Any, T: Any) -> tuple[Any, Any]:
        term, dP = bce_terms(P, T, P.dtype.type(P.size))
        return -term.mean(), dP

    return {"softmax_cross_entropy": softmax_cross_entropy, "bce": bce}


def _optimizer_kernels(cupy: Any) -> dict[str, Callable[..., Any]]:
    adam = _elementwise(cupy, "bp_adam_update")
    sgd_momentum = _elementwise(cupy, "bp_sgd_momentum_update")
    sgd_plain = _elementwise(cupy, "bp_sgd_update")
    set_scalars = raw_kernel(cupy, "bp_set_scalars")

    def write_scalars(scalars: Any, values: tuple[float, ...]) -> None:
        """Write up to three host floats into the float64 device array ``scalars`` (one launch,
        no copy from host memory, so it may precede a graph replay on the same stream)."""
        set_scalars((1,), (1,), (scalars, *scalar_args(np.float64, values, 3)))

    def adam_update(
        xp: Any,
        p: Any,
        g: Any,
        m: Any,
        v: Any,
        *,
        fresh: bool,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        decoupled: bool,
        scalars: Any,
    ) -> None:
        adam(g, scalars, beta1, beta2, eps, weight_decay, decoupled, p, m, v)

    def sgd_update(
        xp: Any,
        p: Any,
        g: Any,
        *buf: Any,
        fresh: bool,
        lr: float,
        momentum: float,
        dampening: float,
        nesterov: bool,
        weight_decay: float,
        scalars: Any,
    ) -> None:
        if buf:
            sgd_momentum(g, scalars, momentum, dampening, nesterov, weight_decay, fresh, p, buf[0])
        else:
            sgd_plain(g, scalars, weight_decay, p)

    return {"adam_update": adam_update, "sgd_update": sgd_update, "write_scalars": write_scalars}


def _dropout_kernel(cupy: Any) -> Callable[..., Any]:
    kernel = _elementwise(cupy, "bp_dropout_forward")

    def dropout_forward(xp: Any, X: Any, U: Any, keep: float) -> tuple[Any, Any]:
        return kernel(X, U, keep)

    return dropout_forward

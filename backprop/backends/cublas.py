"""`Gemm`: matrix products through a cuBLAS handle of our own, callable inside CUDA graphs.

``cupy.matmul`` refuses to run while a stream is being captured (its wrapper checks the
stream), but cuBLAS itself is capture-safe. This calls ``cublas<S|D>gemm_v2`` through
``ctypes`` on the ``libcublas`` that CuPy has loaded, with a handle created outside any
capture, its own workspace (``cublasSetWorkspace_v2``) and the current stream bound before
each call. Row-major ``C = op(A) @ op(B)`` is column-major ``C^T = op(B)^T @ op(A)^T``, so
the operands are passed swapped: ``gemm(opB, opA, n, m, k, B, A, C)``.
If the library cannot be found, `cupy.matmul` is used (eager steps only).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["Gemm"]

_OP_N, _OP_T = 0, 1
_WORKSPACE_BYTES = 32 * 2**20  # cuBLAS's recommendation for Hopper; ample for older GPUs


class Gemm:
    """``gemm(A, B, transpose_a, transpose_b, out=None)`` for C-contiguous CuPy matrices of one
    float dtype on ``backend``'s GPU."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._lib: Any = None
        self._handle: Any = None
        self._workspace: Any = None
        self._stream = -1
        self._unavailable = False

    def __call__(self, A: Any, B: Any, transpose_a: bool, transpose_b: bool, out: Any = None) -> Any:
        import cupy  # noqa: PLC0415 - only CUDA backends build this

        if self._handle is None and not self._unavailable:
            self._setup(cupy)
        if self._unavailable:
            C = cupy.matmul(A.T if transpose_a else A, B.T if transpose_b else B)
            if out is not None:
                out[...] = C
                return out
            return C
        A, B = cupy.ascontiguousarray(A), cupy.ascontiguousarray(B)
        m, k = (A.shape[1], A.shape[0]) if transpose_a else A.shape
        k_b, n = (B.shape[1], B.shape[0]) if transpose_b else B.shape
        if k != k_b:
            raise ValueError(f"matrix product of incompatible shapes {A.shape} and {B.shape}")
        C = cupy.empty((m, n), dtype=A.dtype) if out is None else out
        self._bind_stream(cupy.cuda.get_current_stream().ptr)
        double = A.dtype == cupy.float64
        scalar = ctypes.c_double if double else ctypes.c_float
        one, zero = scalar(1.0), scalar(0.0)
        gemm = self._lib.cublasDgemm_v2 if double else self._lib.cublasSgemm_v2
        _check(
            gemm(
                self._handle,
                _OP_T if transpose_b else _OP_N,
                _OP_T if transpose_a else _OP_N,
                n, m, k,
                ctypes.byref(one),
                ctypes.c_void_p(B.data.ptr), B.shape[1],
                ctypes.c_void_p(A.data.ptr), A.shape[1],
                ctypes.byref(zero),
                ctypes.c_void_p(C.data.ptr), n,
            ),
            "gemm",
        )
        return C

    def bind_current_stream(self) -> None:
        """Set up (if needed) and bind the handle to the current stream: a CUDA-graph capture
        calls this on its stream before capturing."""
        import cupy  # noqa: PLC0415

        if self._handle is None and not self._unavailable:
            self._setup(cupy)
        if not self._unavailable:
            self._bind_stream(cupy.cuda.get_current_stream().ptr)

    def _setup(self, cupy: Any) -> None:
        path = _libcublas_path()
        if path is None:
            self._unavailable = True
            return
        lib = ctypes.CDLL(path)
        for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
            getattr(lib, name).argtypes = [
                ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
            ]
        lib.cublasSetStream_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.cublasSetWorkspace_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(handle)), "create")
        self._lib, self._handle = lib, handle
        self._workspace = cupy.empty(_WORKSPACE_BYTES, dtype=cupy.uint8)

    def _bind_stream(self, stream: int) -> None:
        if stream == self._stream:
            return
        _check(self._lib.cublasSetStream_v2(self._handle, ctypes.c_void_p(stream)), "set stream")
        # setting a stream resets the workspace to cuBLAS's own pool, which is not capture-safe
        ptr = ctypes.c_void_p(self._workspace.data.ptr)
        _check(self._lib.cublasSetWorkspace_v2(self._handle, ptr, _WORKSPACE_BYTES), "set workspace")
        self._stream = stream

    def __del__(self) -> None:
        if self._handle is not None:
            try:
                self._lib.cublasDestroy_v2(self._handle)
            except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
                pass


def _libcublas_path() -> str | None:
    """The ``libcublas.so`` CuPy itself loaded (same version as its kernels expect)."""
    try:
        import cupy_backends.cuda.libs.cublas  # noqa: F401, PLC0415 - makes CuPy load libcublas
    except ImportError:
        return None
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcublas.so" in path:
                    return path
    except OSError:
        pass
    return ctypes.util.find_library("cublas")


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"cuBLAS {what} failed with status {status}")

"""`Gemm`: matrix products through a cuBLAS handle of our own, callable inside CUDA graphs.

``cupy.matmul`` refuses to run while a stream is being captured (its wrapper checks the
stream), but cuBLAS itself is capture-safe. This calls ``cublas<S|D>gemm_v2`` (and, for
mixed precision, ``cublasGemmEx`` with a compute type per call) through
``ctypes`` on the ``libcublas`` that CuPy has loaded, with a handle created outside any
capture, a workspace of its own per stream (``cublasSetWorkspace_v2``) and the current stream
bound before each call. As in PyTorch, there is one handle per (GPU, host thread), made on
first use and never destroyed (``cublasDestroy`` synchronizes the device, which would break a
capture if a garbage collection ran it at the wrong moment): ``ctypes`` releases the GIL, so a
handle shared by threads could be re-bound by one between another's bind and GEMM; and one
32 MiB workspace per stream, since split-K products on two streams would race on a shared one.
cuBLAS takes 32-bit sizes: larger products are refused (`gemm_shape`), never wrapped.
Row-major ``C = op(A) @ op(B)`` is column-major ``C^T = op(B)^T @ op(A)^T``, so the operands
are passed swapped: ``gemm(opB, opA, n, m, k, B, A, C)``.
If the library cannot be found, `cupy.matmul` is used (eager steps only).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import warnings
from typing import Any

__all__ = ["GEMM_EX", "Gemm", "gemm_shape", "operand_dtype"]

_OP_N, _OP_T = 0, 1
# cudaDataType_t (library_types.h), cublasComputeType_t and cublasGemmAlgo_t (cublas_api.h)
CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF = 0, 2, 14
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 77
CUBLAS_GEMM_DEFAULT = -1
#: ``cublasGemmEx``'s A/B data type and compute type for each reduced operand kind (C: float32)
GEMM_EX = {
    "tf32": (CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32),
    "bfloat16": (CUDA_R_16BF, CUBLAS_COMPUTE_32F),
    "float16": (CUDA_R_16F, CUBLAS_COMPUTE_32F),
}
_INT_MAX = 2**31 - 1  # cuBLAS's int arguments
_WORKSPACE_BYTES = 32 * 2**20  # cuBLAS's recommendation for Hopper; ample for older GPUs


class Gemm:
    """``gemm(A, B, transpose_a, transpose_b, out=None, kind="float32")`` for C-contiguous CuPy
    matrices on GPU ``device_index``, with ``C`` float32 (or float64 for two float64 matrices).

    ``kind`` (`rounding.OPERANDS`) picks the arithmetic per call, on this one handle: no math
    mode is set on it, so two models in one process never share a setting (PyTorch's TF32 flag
    is a process-wide ``cublasSetMathMode``). ``"float32"``: ``cublasSgemm`` (or ``Dgemm``).
    The others call ``cublasGemmEx`` with a float32 C and float32 accumulation (`GEMM_EX`):
    ``"tf32"`` takes float32 A and B, which the tensor cores read as TF32
    (``CUBLAS_COMPUTE_32F_FAST_TF32``); ``"bfloat16"`` and ``"float16"`` take the 16-bit
    storage `CupyOps.round_operand` makes (uint16 arrays of the bits, so that nothing here
    depends on CuPy's own 16-bit dtypes)."""

    def __init__(self, device_index: int):
        self.device_index = device_index

    def __call__(
        self, A: Any, B: Any, transpose_a: bool, transpose_b: bool, out: Any = None, kind: str = "float32"
    ) -> Any:
        import cupy  # noqa: PLC0415 - only CUDA backends build this

        handle = _handle(self.device_index, cupy)
        if handle is None:
            return _fallback(cupy, A, B, transpose_a, transpose_b, out, kind)
        A, B = cupy.ascontiguousarray(A), cupy.ascontiguousarray(B)
        m, n, k = gemm_shape(A.shape, B.shape, transpose_a, transpose_b)
        c_dtype = operand_dtype(A.dtype, B.dtype, kind, cupy)
        if out is None:
            C = cupy.empty((m, n), dtype=c_dtype)
        elif out.shape != (m, n) or out.dtype != c_dtype or not out.flags.c_contiguous:
            raise ValueError(
                f"gemm out must be a C-contiguous {c_dtype} array of shape {(m, n)}; got {out.dtype} {out.shape}"
            )
        else:
            C = out
        handle.bind(cupy.cuda.get_current_stream().ptr)
        ops = (_OP_T if transpose_b else _OP_N, _OP_T if transpose_a else _OP_N)
        b, a, c = ctypes.c_void_p(B.data.ptr), ctypes.c_void_p(A.data.ptr), ctypes.c_void_p(C.data.ptr)
        if kind == "float32":
            double = A.dtype == cupy.float64
            scalar = ctypes.c_double if double else ctypes.c_float
            one, zero = scalar(1.0), scalar(0.0)
            gemm = handle.lib.cublasDgemm_v2 if double else handle.lib.cublasSgemm_v2
            status = gemm(handle.handle, *ops, n, m, k, ctypes.byref(one), b, B.shape[1], a, A.shape[1],
                          ctypes.byref(zero), c, n)  # fmt: skip
        else:
            data_type, compute = GEMM_EX[kind]
            one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)  # the scalars of a 32F compute type are floats
            status = handle.lib.cublasGemmEx(
                handle.handle, *ops, n, m, k, ctypes.byref(one), b, data_type, B.shape[1], a, data_type, A.shape[1],
                ctypes.byref(zero), c, CUDA_R_32F, n, compute, CUBLAS_GEMM_DEFAULT,
            )  # fmt: skip
        _check(status, "gemm")
        return C

    def bind_current_stream(self) -> None:
        """Set up (if needed) and bind the handle to the current stream: a CUDA-graph capture
        calls this on its stream before capturing."""
        import cupy  # noqa: PLC0415

        handle = _handle(self.device_index, cupy)
        if handle is not None:
            handle.bind(cupy.cuda.get_current_stream().ptr)


def operand_dtype(a: Any, b: Any, kind: str, xp: Any) -> Any:
    """The dtype of the product of ``kind`` operands of dtypes ``a`` and ``b`` (float32, or
    float64 for two float64 ``"float32"``-kind matrices), after checking that they are what
    ``kind`` takes: float32 or float64 pairs for ``"float32"``, float32 for ``"tf32"``, 16-bit
    storage (uint16) for ``"bfloat16"`` and ``"float16"``."""
    wanted = {"float32": (xp.float32, xp.float64), "tf32": (xp.float32,)}.get(kind, (xp.uint16,))
    if kind not in GEMM_EX and kind != "float32":
        raise ValueError(f"gemm operands must be one of 'float32', {', '.join(map(repr, GEMM_EX))}; got {kind!r}")
    if a != b or a not in wanted:
        names = " or ".join(str(xp.dtype(w)) for w in wanted)
        raise TypeError(f"gemm of {kind} operands takes two {names} matrices; got {a} and {b}")
    return xp.dtype(a if kind == "float32" else xp.float32)


def _fallback(cupy: Any, A: Any, B: Any, transpose_a: bool, transpose_b: bool, out: Any, kind: str) -> Any:
    """``cupy.matmul`` where no handle of our own could be made (eager steps only): 16-bit
    operands widened to float32 first, whose products float32 holds exactly."""
    if kind in ("bfloat16", "float16"):
        A, B = (widen(cupy, X, kind) for X in (A, B))
    C = cupy.matmul(A.T if transpose_a else A, B.T if transpose_b else B)
    if out is not None:
        out[...] = C
        return out
    return C


def widen(cupy: Any, bits: Any, kind: str) -> Any:
    """The float32 values of an array of bfloat16 or float16 bits (uint16)."""
    if kind == "float16":
        return bits.view(cupy.float16).astype(cupy.float32)
    return (bits.astype(cupy.uint32) << 16).view(cupy.float32)


def gemm_shape(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], transpose_a: bool, transpose_b: bool
) -> tuple[int, int, int]:
    """``(m, n, k)`` of the row-major product ``op(A) @ op(B)`` of C-contiguous matrices, after
    checking that the shapes agree and that every size and leading dimension cuBLAS is given
    fits its 32-bit ``int`` (a larger one would wrap silently and compute a few rows only)."""
    m, k = (a_shape[1], a_shape[0]) if transpose_a else a_shape
    k_b, n = (b_shape[1], b_shape[0]) if transpose_b else b_shape
    if k != k_b:
        raise ValueError(f"matrix product of incompatible shapes {tuple(a_shape)} and {tuple(b_shape)}")
    largest = max(*a_shape, *b_shape, m, n, k)
    if largest > _INT_MAX:
        raise ValueError(
            f"a matrix product of shapes {tuple(a_shape)} and {tuple(b_shape)} has a dimension of {largest}, "
            f"beyond cuBLAS's 32-bit limit of {_INT_MAX}; split the work into smaller batches "
            "(e.g. model.predict(X, batch_size=...))"
        )
    return m, n, k


class _Handle:
    """A cuBLAS handle on one GPU for one host thread, its workspaces (one per stream) and the
    stream it is bound to."""

    def __init__(self, lib: Any, cupy: Any):
        handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(handle)), "create")
        self.lib, self.handle, self._cupy = lib, handle, cupy
        self.workspaces: dict[int, Any] = {}
        self.stream = -1

    def bind(self, stream: int) -> None:
        if stream == self.stream:
            return
        _check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream)), "set stream")
        # setting a stream resets the workspace to cuBLAS's own pool, which is not capture-safe;
        # each stream gets its own, made before any capture on it (see `Gemm.bind_current_stream`)
        workspace = self.workspaces.get(stream)
        if workspace is None:
            workspace = self.workspaces[stream] = self._cupy.empty(_WORKSPACE_BYTES, dtype=self._cupy.uint8)
        ptr = ctypes.c_void_p(workspace.data.ptr)
        _check(self.lib.cublasSetWorkspace_v2(self.handle, ptr, _WORKSPACE_BYTES), "set workspace")
        self.stream = stream


# One handle per (device id, host thread), or None where libcublas could not be found or a
# handle not be made (cupy.matmul then).
_HANDLES: dict[tuple[int, int], _Handle | None] = {}
_HANDLES_LOCK = threading.Lock()


def _handle(device: int, cupy: Any) -> _Handle | None:
    key = (device, threading.get_ident())
    found = _HANDLES.get(key, _MISSING)
    if found is not _MISSING:
        return found  # type: ignore[return-value]
    with _HANDLES_LOCK:
        lib = _load_library(cupy)
        handle = None
        if lib is not None:
            with cupy.cuda.Device(device):
                try:
                    handle = _Handle(lib, cupy)
                except RuntimeError as exc:  # e.g. CUBLAS_STATUS_NOT_INITIALIZED: out of memory
                    warnings.warn(
                        f"cuBLAS could not make a handle on cuda:{device} ({exc}); matrix products use "
                        "cupy.matmul instead, which a CUDA graph cannot capture",
                        RuntimeWarning,
                        stacklevel=3,
                    )
        _HANDLES[key] = handle
    return handle


_MISSING = object()


@functools.cache  # one CDLL per process, whichever thread asks first
def _load_library(cupy: Any) -> Any:
    path = _libcublas_path(cupy)
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    _declare_gemm_ex(lib)
    for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
        getattr(lib, name).argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
        ]
    lib.cublasSetStream_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.cublasSetWorkspace_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return lib


def _declare_gemm_ex(lib: Any) -> None:
    """``cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
    C, Ctype, ldc, computeType, algo)``."""
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.cublasGemmEx.argtypes = [p, i, i, i, i, i, p, p, i, i, p, i, i, p, p, i, i, i, i]


def _libcublas_path(cupy: Any) -> str | None:
    """The ``libcublas.so`` CuPy itself loaded (same version as its kernels expect): of those
    mapped into this process (PyTorch may bring its own), the one of CuPy's CUDA major version."""
    try:  # the `from` form: CuPy 14 finds and loads libcublas in its package's __getattr__,
        # which `import cupy_backends.cuda.libs.cublas` bypasses (it then fails where the CUDA
        # libraries come from pip wheels rather than the system's library path)
        from cupy_backends.cuda.libs import cublas  # noqa: F401, PLC0415
    except ImportError:
        return None
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcublas.so" in path and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    major = cupy.cuda.runtime.runtimeGetVersion() // 1000
    ours = [p for p in paths if f"libcublas.so.{major}" in p]
    found = ours or paths
    return found[0] if found else ctypes.util.find_library("cublas")


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"cuBLAS {what} failed with status {status}")

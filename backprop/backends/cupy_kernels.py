"""Fused CuPy kernels: one launch where the generic path makes several (see `Backend.kernel`).

Each kernel has the signature of its generic twin (tests compare them on a GPU). Elementwise
work is written as `cupy.ElementwiseKernel`s, whose sources are the data `DEFINITIONS`; work
across a row (softmax cross-entropy) and the optimizer's scalar write are `cupy.RawKernel`s
whose sources are `RAW_SOURCES` (a test compiles every one of both with NVRTC, without a
GPU). Matrix products go through a cuBLAS
handle of our own (`cublas.Gemm`), which, unlike ``cupy.matmul``, may be captured in a CUDA
graph. Step-dependent optimizer scalars (the learning rate, Adam's bias corrections, computed on
the host exactly as the reference rule computes them) are read from device memory
(``scalars``), so a captured graph replays them correctly.

Every kernel is compiled with ``--fmad=false`` (`OPTIONS`): NVRTC would otherwise contract
``a * b + c`` into one fused multiply-add, rounding once where the generic path rounds twice,
and the fused kernels would no longer give the generic path's numbers (``1 - y * y`` in tanh's
backward differs by up to 1e-4 relative in float32 near |y| = 1).

Kernels are made per `Backend` by `make_kernels` (the cuBLAS handle belongs to one device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._math import INV_SQRT2, INV_SQRT_2PI

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["DEFINITIONS", "OPTIONS", "RAW_SOURCES", "Definition", "make_kernels", "raw_kernel", "raw_source"]

OPTIONS = ("--fmad=false",)


@dataclass(frozen=True)
class Definition:
    """One ``cupy.ElementwiseKernel``: its input and output parameters, its body, which inputs
    its callers pass as scalars (the others are arrays), and code it needs before the kernel."""

    inputs: str
    outputs: str
    body: str
    scalars: tuple[str, ...] = ()
    preamble: str = ""


def _horner(var: str, t: str, num: tuple[float, ...], den: tuple[float, ...], lead: float) -> str:
    """C for `backprop._math._ratio`, operation for operation (constants rounded to T as the
    generic path's Python floats are)."""
    lines = [f"T {var}_n = (T){lead!r} * {t};", f"T {var}_d = {t};"]
    for a, b in zip(num[:-1], den[:-1]):
        lines += [f"{var}_n = ({var}_n + (T){a!r}) * {t};", f"{var}_d = ({var}_d + (T){b!r}) * {t};"]
    lines.append(f"const T {var} = ({var}_n + (T){num[-1]!r}) / ({var}_d + (T){den[-1]!r});")
    return "\n    ".join(lines)


def _erf_preamble() -> str:
    """``bp_erf``: `backprop._math.erf` as a device function, the same operations in the same
    order, so the fused GELU kernels give the generic path's numbers."""
    from .._math import _A, _B, _C, _D, _INV_SQRT_PI, _P, _Q  # noqa: PLC0415 - one source for the constants

    return f"""
template <typename T> __device__ T bp_exp_neg_square(T y) {{
    const T head = floor(y * (T)16.0) / (T)16.0;
    return exp(-head * head) * exp(-(y - head) * (y + head));
}}
template <typename T> __device__ T bp_erf(T x) {{
    const T y = fabs(x);
    const T small = min(y, (T)0.46875);
    const T t = small * small;
    {_horner("small_ratio", "t", _A[:4], _B, _A[4])}
    const T r_small = small * small_ratio;
    const T mid = min(max(y, (T)0.46875), (T)4.0);
    {_horner("mid_ratio", "mid", _C[:8], _D, _C[8])}
    const T erfc_mid = bp_exp_neg_square(mid) * mid_ratio;
    const T big = min(max(y, (T)4.0), (T)27.0);
    const T z = (T)1.0 / (big * big);
    {_horner("big_ratio", "z", _P[:5], _Q, _P[5])}
    const T tail = z * big_ratio;
    const T erfc_big = bp_exp_neg_square(big) * (((T){_INV_SQRT_PI!r} - tail) / big);
    const T r = y <= (T)0.46875 ? r_small : (y <= (T)4.0 ? (T)1.0 - erfc_mid : (T)1.0 - erfc_big);
    return x < 0 ? -r : r;
}}
"""


_GELU_PHI = "(T)0.5 * ((T)1.0 + bp_erf(x * (T)" + repr(INV_SQRT2) + "))"
_ACTIVATIONS = {
    # name: (forward Y = f(X), backward dX = df(dY, X, Y)), as the generic f and df compute them
    "relu": ("y = x > 0 ? x : (T)0", "dx = y > 0 ? dy : (T)0"),
    "sigmoid": ("y = (T)1 / ((T)1 + exp(-x))", "dx = dy * y * ((T)1 - y)"),
    "tanh": ("y = tanh(x)", "dx = dy * ((T)1 - y * y)"),
    "leaky_relu": ("y = x > 0 ? x : (T)alpha * x", "dx = x > 0 ? dy : (T)alpha * dy"),
    "gelu": (
        f"y = x * ({_GELU_PHI})",
        "const T xc = min(max(x, (T)-40.0), (T)40.0); "
        f"dx = dy * ({_GELU_PHI} + x * (exp((T)-0.5 * xc * xc) * (T){INV_SQRT_2PI!r}))",
    ),
}


def _activation_definitions() -> dict[str, Definition]:
    out = {}
    for name, (forward, backward) in _ACTIVATIONS.items():
        extra, scalars = (", float64 alpha", ("alpha",)) if name == "leaky_relu" else ("", ())
        preamble = _erf_preamble() if name == "gelu" else ""
        out[f"bp_{name}_forward"] = Definition(f"T x{extra}", "T y", forward, scalars, preamble)
        # Z is a temporary of the caller (a fresh matrix product): the fused bias kernel writes
        # the activation over it, so the pair costs one pass and no allocation.
        bias = f"T x = z + b; T y; {forward}; z = y"
        out[f"bp_bias_{name}_forward"] = Definition(f"T b{extra}", "T z", bias, scalars, preamble)
        out[f"bp_{name}_backward"] = Definition(f"T dy, T x, T y{extra}", "T dx", backward, scalars, preamble)
    return out


DEFINITIONS: dict[str, Definition] = {
    **_activation_definitions(),
    "bp_bce": Definition(
        "T p, T t, T scale",
        "T term, T dp",
        """
        T q = (T)1 - p;
        T log_p = p > 0 ? max(log(p), (T)-100) : (T)-100;
        T log_q = q > 0 ? max(log(q), (T)-100) : (T)-100;
        term = t * log_p + ((T)1 - t) * log_q;
        dp = (p - t) / (max(p * q, (T)1e-12) * scale);
        """,
        ("scale",),
    ),
    "bp_adam_update": Definition(
        "T g, raw float64 scalars, float64 beta1, float64 beta2, float64 eps, float64 wd, bool decoupled",
        "T p, T m, T v",
        """
        const double lr = scalars[0], step_size = scalars[1], root_bc2 = scalars[2];
        T grad = g;
        if (wd != 0) { if (decoupled) p = p * (T)(1.0 - lr * wd); else grad = grad + (T)wd * p; }
        m = (T)beta1 * m + (T)(1.0 - beta1) * grad;
        v = (T)beta2 * v + (T)(1.0 - beta2) * (grad * grad);
        T denom = sqrt(v) / (T)root_bc2 + (T)eps;
        p = p - (T)step_size * (m / denom);
        """,
        ("beta1", "beta2", "eps", "wd", "decoupled"),
    ),
    "bp_sgd_momentum_update": Definition(
        "T g, raw float64 scalars, float64 momentum, float64 dampening, bool nesterov, float64 wd, bool fresh",
        "T p, T buf",
        """
        const double lr = scalars[0];
        T grad = g;
        if (wd != 0) grad = grad + (T)wd * p;
        buf = fresh ? grad : (T)momentum * buf + (T)(1.0 - dampening) * grad;
        grad = nesterov ? grad + (T)momentum * buf : buf;
        p = p - (T)lr * grad;
        """,
        ("momentum", "dampening", "nesterov", "wd", "fresh"),
    ),
    "bp_sgd_update": Definition(
        "T g, raw float64 scalars, float64 wd",
        "T p",
        "T grad = g; if (wd != 0) grad = grad + (T)wd * p; p = p - (T)scalars[0] * grad",
        ("wd",),
    ),
    "bp_dropout_forward": Definition(
        "T x, T u, float64 keep", "T y, T scale", "scale = u < keep ? (T)(1.0 / keep) : (T)0; y = x * scale", ("keep",)
    ),
}


_WARP = 32
_ROWS_PER_BLOCK = 4  # softmax cross-entropy: one warp per row, four rows per block

# Sources of `cupy.RawKernel`s; ``T`` is the float type, set by a typedef (`raw_source`).
RAW_SOURCES: dict[str, str] = {
    # one warp per row of Z (n, c): the max, the sum of exponentials (each reduced across the
    # warp by a butterfly, which leaves every lane the same value), then the row's gradient
    # (softmax - onehot) / n and its loss logsumexp - z[label]; one launch where the generic
    # path takes eleven
    "bp_softmax_ce_rows": """
extern "C" __global__ void bp_softmax_ce_rows(const T* z, const long long* labels, T* dz, T* rows, long long n, int c) {
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= n) return;  // the whole warp: row is the same in all its lanes
    const T* zr = z + row * c;
    T m = zr[0];
    for (int j = lane; j < c; j += 32) m = zr[j] > m ? zr[j] : m;
    for (int o = 16; o > 0; o >>= 1) { const T other = __shfl_xor_sync(0xffffffffu, m, o); m = other > m ? other : m; }
    T s = (T)0;
    for (int j = lane; j < c; j += 32) s += exp(zr[j] - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const long long label = labels[row];
    T* dzr = dz + row * c;
    for (int j = lane; j < c; j += 32) dzr[j] = (exp(zr[j] - m) / s - (T)(j == label)) / (T)n;
    if (lane == 0) rows[row] = log(s) - (zr[label] - m);
}
""",
    # one warp: out = sum(x) / n, in a fixed order (lane-strided sums, then a butterfly)
    "bp_mean": """
extern "C" __global__ void bp_mean(const T* x, T* out, long long n) {
    T s = (T)0;
    for (long long i = threadIdx.x; i < n; i += 32) s += x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x == 0) out[0] = s / (T)n;
}
""",
    # the step-dependent optimizer scalars, written on the device's stream (so a graph replay
    # that follows reads them) for the cost of one bare launch
    "bp_set_scalars": """
extern "C" __global__ void bp_set_scalars(double* s, double a, double b, double c) { s[0] = a; s[1] = b; s[2] = c; }
""",
    # before a graph replay: its scalars and the addresses it reads its batch from and writes
    # its outputs to, in one launch (stream order keeps them from a replay still running)
    "bp_set_replay": """
extern "C" __global__ void bp_set_replay(double* s, double a, double b, double c, long long* slots,
                                         long long x, long long t, long long out0, long long out1) {
    s[0] = a; s[1] = b; s[2] = c;
    slots[0] = x; slots[1] = t; slots[2] = out0; slots[3] = out1;
}
""",
    # inside a graph: copy nbytes between buf and the address in slots[slot], into buf when
    # inward (a batch), out of it otherwise (an output); 16 bytes at a time where both ends are
    # aligned to 16
    "bp_copy_slot": """
extern "C" __global__ void bp_copy_slot(const long long* slots, int slot, unsigned char* buf, long long nbytes, int inward) {
    unsigned char* there = (unsigned char*)slots[slot];
    const unsigned char* src = inward ? there : buf;
    unsigned char* dst = inward ? buf : there;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if ((((unsigned long long)src | (unsigned long long)dst) & 15) == 0) {
        done = nbytes / 16 * 16;
        for (long long i = first; i < nbytes / 16; i += stride) ((uint4*)dst)[i] = ((const uint4*)src)[i];
    }
    for (long long i = done + first; i < nbytes; i += stride) dst[i] = src[i];
}
""",
}


def raw_source(name: str, ctype: str = "double") -> str:
    """The CUDA source of ``RAW_SOURCES[name]`` with ``T`` the C type ``ctype``."""
    return f"typedef {ctype} T;\n{RAW_SOURCES[name]}"


def raw_kernel(cupy: Any, name: str, ctype: str = "double") -> Any:
    """The `cupy.RawKernel` of ``RAW_SOURCES[name]`` with ``T`` = ``ctype`` (compiled on first use)."""
    return cupy.RawKernel(raw_source(name, ctype), name, options=OPTIONS)


def make_kernels(backend: Backend) -> dict[str, Callable[..., Any]]:
    """The fused kernels for one CUDA backend (compiled lazily, on first use)."""
    import cupy  # noqa: PLC0415 - only CUDA backends get here

    from .cublas import Gemm  # noqa: PLC0415

    kernels: dict[str, Callable[..., Any]] = {}
    for name in _ACTIVATIONS:
        kernels.update(_activation_kernels(cupy, name))
    gemm = Gemm(backend)
    kernels["matmul"] = lambda xp, A, B: gemm(A, B, False, False)
    kernels["matmul_tn"] = lambda xp, A, B, out=None: gemm(A, B, True, False, out)
    kernels["matmul_nt"] = lambda xp, A, B: gemm(A, B, False, True)
    kernels["sum_rows"] = lambda xp, A, out=None: cupy.sum(A, axis=0, out=out)
    kernels["all_finite"] = _all_finite_kernel(cupy)
    kernels["bind_stream"] = gemm.bind_current_stream
    kernels.update(_loss_kernels(cupy))
    kernels.update(_optimizer_kernels(cupy))
    kernels["dropout_forward"] = _dropout_kernel(cupy)
    return kernels


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
        # NumPy scalars: CuPy passes a Python float to a raw kernel as whatever it guesses
        a, b, c = (*map(np.float64, values), np.float64(0), np.float64(0), np.float64(0))[:3]
        set_scalars((1,), (1,), (scalars, a, b, c))

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


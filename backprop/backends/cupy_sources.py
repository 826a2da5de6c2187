"""The CUDA sources of the fused CuPy kernels, as data: the bodies of the elementwise kernels
(`DEFINITIONS`, each one ``cupy.ElementwiseKernel``) and the full sources of the raw kernels
(`RAW_SOURCES`, each one ``cupy.RawKernel``; ``T`` is the float type, set by `raw_source`),
and the options every one is compiled with (`OPTIONS`).

They are kept apart from `cupy_kernels`, which builds and launches them, because they need
neither CuPy nor a GPU: tests compile every one with NVRTC, and run every one as host C++
against the generic path, on machines without either.

Every kernel is compiled with ``--fmad=false``: NVRTC would otherwise contract ``a * b + c``
into one fused multiply-add, rounding once where the generic path rounds twice, and the fused
kernels would no longer give the generic path's numbers (``1 - y * y`` in tanh's backward
differs by up to 1e-4 relative in float32 near |y| = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .special import INV_SQRT2, INV_SQRT_2PI

__all__ = ["ACTIVATIONS", "DEFINITIONS", "OPTIONS", "RAW_SOURCES", "ROUNDING", "Definition", "raw_source"]

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
    """C for `backprop.backends.special._ratio`, operation for operation (constants rounded to T as the
    generic path's Python floats are)."""
    lines = [f"T {var}_n = (T){lead!r} * {t};", f"T {var}_d = {t};"]
    for a, b in zip(num[:-1], den[:-1]):
        lines += [f"{var}_n = ({var}_n + (T){a!r}) * {t};", f"{var}_d = ({var}_d + (T){b!r}) * {t};"]
    lines.append(f"const T {var} = ({var}_n + (T){num[-1]!r}) / ({var}_d + (T){den[-1]!r});")
    return "\n    ".join(lines)


def _erf_preamble() -> str:
    """``bp_erf``: `backprop.backends.special.erf` as a device function, the same operations in the same
    order, so the fused GELU kernels give the generic path's numbers."""
    from .special import _A, _B, _C, _D, _INV_SQRT_PI, _P, _Q  # noqa: PLC0415 - one source for the constants

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
ACTIVATIONS = {
    # name: (forward Y = f(X), backward dX = df(dY, X, Y)), as the generic f and df compute them
    "relu": ("y = x > 0 || x != x ? x : (T)0", "dx = y > 0 ? dy : (T)0"),  # NaN stays NaN, as max(NaN, 0)
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
    for name, (forward, backward) in ACTIVATIONS.items():
        extra, scalars = (", float64 alpha", ("alpha",)) if name == "leaky_relu" else ("", ())
        preamble = _erf_preamble() if name == "gelu" else ""
        out[f"bp_{name}_forward"] = Definition(f"T x{extra}", "T y", forward, scalars, preamble)
        # Z is a temporary of the caller (a fresh matrix product): the fused bias kernel writes
        # the activation over it, so the pair costs one pass and no allocation.
        bias = f"T x = z + b; T y; {forward}; z = y"
        out[f"bp_bias_{name}_forward"] = Definition(f"T b{extra}", "T z", bias, scalars, preamble)
        out[f"bp_{name}_backward"] = Definition(f"T dy, T x, T y{extra}", "T dx", backward, scalars, preamble)
    return out


# Mixed precision: float32 values to the bits of 16-bit matrix-product operands (uint16), by
# integer arithmetic on the float's bits, so that the host harness checks them bitwise against
# `backprop.backends.rounding` (ml_dtypes' bfloat16, NumPy's float16). Applied to a model's whole
# flat weight buffer, each is the one kernel per step that refreshes the 16-bit weights.
ROUNDING: dict[str, Definition] = {
    # round to nearest even; a NaN becomes the quiet NaN with its sign, as ml_dtypes makes it
    "bp_round_bfloat16": Definition(
        "float32 x",
        "uint16 y",
        """
        const unsigned int u = __float_as_uint(x);
        y = (unsigned short)(x != x ? ((u >> 16) & 0x8000u) | 0x7FC0u : (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        """,
    ),
    # round to nearest even with float16's subnormals, overflow to infinity, and a NaN's
    # payload kept in its top bits, as NumPy's float32 -> float16 conversion does
    "bp_round_float16": Definition(
        "float32 x",
        "uint16 y",
        """
        const unsigned int u = __float_as_uint(x);
        const unsigned int a = u & 0x7FFFFFFFu;
        unsigned int h = 0u;  // |x| <= 2^-25 (2^-25 itself a tie, to the even 0)
        if (a > 0x7F800000u) {  // NaN
            h = 0x7C00u | ((a & 0x7FFFFFu) >> 13);
            h = h == 0x7C00u ? 0x7C01u : h;
        } else if (a >= 0x47800000u) {  // |x| >= 2^16 and infinity
            h = 0x7C00u;
        } else if (a >= 0x38800000u) {  // normal in float16: the exponent rebiased, 13 bits rounded off
            h = (a - 0x38000000u + 0x0FFFu + ((a >> 13) & 1u)) >> 13;
        } else if (a > 0x33000000u) {  // subnormal in float16: units of 2^-24
            const unsigned int m = (a & 0x7FFFFFu) | 0x800000u;
            const unsigned int s = 126u - (a >> 23);
            const unsigned int rest = m & ((1u << s) - 1u), half = 1u << (s - 1u);
            h = (m >> s) + ((rest > half || (rest == half && ((m >> s) & 1u))) ? 1u : 0u);
        }
        y = (unsigned short)(((u >> 16) & 0x8000u) | h);
        """,
    ),
}

DEFINITIONS: dict[str, Definition] = {
    **_activation_definitions(),
    "bp_bce": Definition(
        "T p, T t, T scale",
        "T term, T dp",
        """
        T q = (T)1 - p;
        T log_p = p > 0 ? max(log(p), (T)-100) : p == p ? (T)-100 : p;  // a NaN p is a NaN loss
        T log_q = q > 0 ? max(log(q), (T)-100) : q == q ? (T)-100 : q;
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
    **ROUNDING,
}


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
extern "C" __global__ void bp_copy_slot(const long long* slots, int slot, unsigned char* buf, long long nbytes,
                                        int inward) {
    unsigned char* there = (unsigned char*)slots[slot];
    const unsigned char* src = inward ? there : buf;
    unsigned char* dst = inward ? buf : there;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
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

"""Rounding float32 values to the operands of low-precision matrix products, on the host.

A mixed-precision matrix product on a GPU takes its inputs in a narrower format and sums their
products in float32. The CPU emulates it exactly where the arithmetic allows: each operand is
rounded here to a float32 array whose every value is representable in the narrow format, and
NumPy's float32 GEMM then multiplies and adds them. The product of two such values is exact in
float32 (8 + 8, 11 + 11 significant bits against float32's 24), so the emulation differs from
the GPU only in the order of the float32 sums, never in what is summed.

The kinds of operand (`OPERANDS`):

``"float32"``
    the values themselves (no rounding): today's products.
``"bfloat16"``
    round to nearest, ties to even, on the bits: ``(u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000``
    for the uint32 view ``u``. Overflow goes to infinity, infinities stay, a NaN becomes the
    quiet NaN ``0x7FC00000`` with its sign: bitwise what ``ml_dtypes.bfloat16`` does (tested),
    and what our GPU kernel does (`cupy_sources`).
``"float16"``
    bitwise NumPy's float32 -> float16 conversion and back (round to nearest even, overflow to
    infinity, NaN payloads kept as NumPy keeps them), on the bits: what our GPU kernel does.
``"tf32"``
    the top 10 of float32's 23 explicit mantissa bits kept, the low 13 dropped (round toward
    zero), a NaN made the quiet NaN with its sign. With ``CUBLAS_COMPUTE_32F_FAST_TF32`` the
    tensor cores read float32 inputs themselves: "only the first 10 bits of the input mantissa
    are read" (PyTorch's notes on numerical accuracy, docs/source/notes/numerical_accuracy.rst,
    written with NVIDIA in pytorch#79537). NVIDIA does not document cuBLAS's conversion
    further; CUTLASS offers round-half-away as an option. `scripts/gpu_check.sh` measures which
    one a GPU's cuBLAS does (a k = 1 product reads back each converted input); until then this
    is the documented truncation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OPERANDS", "check_operands", "round_bfloat16", "round_float16", "round_operand", "round_tf32"]

OPERANDS = ("float32", "tf32", "bfloat16", "float16")

_SIGN = np.uint32(0x80000000)
_QUIET_NAN = np.uint32(0x7FC00000)


def check_operands(kind: str) -> str:
    """``kind`` if it is one of `OPERANDS`, else a `ValueError` listing them."""
    if kind not in OPERANDS:
        raise ValueError(f"matrix-product operands must be one of {', '.join(map(repr, OPERANDS))}; got {kind!r}")
    return kind


def round_operand(X: np.ndarray, kind: str, out: np.ndarray | None = None) -> np.ndarray:
    """``X`` (float32) rounded as a ``kind`` operand (see the module); ``X`` itself for
    ``"float32"`` (no copy) unless ``out`` is given. ``X`` is never modified; ``out`` (float32,
    ``X``'s shape) receives the result when given and is returned."""
    if kind == "float32":
        if out is None:
            return X
        out[...] = X
        return out
    if X.dtype != np.float32:
        raise TypeError(f"{kind} operands are rounded from float32 arrays; got {X.dtype}")
    if kind == "bfloat16":
        return round_bfloat16(X, out)
    if kind == "float16":
        return round_float16(X, out)
    if kind == "tf32":
        return round_tf32(X, out)
    raise ValueError(check_operands(kind))


def round_bfloat16(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 -> bfloat16 -> float32, round to nearest even (module docstring)."""
    u = np.ascontiguousarray(X).view(np.uint32)
    r = np.right_shift(u, 16)
    r &= 1
    r += 0x7FFF
    r += u  # wraps only for NaNs with all bits high, which are put right below
    r &= 0xFFFF0000
    return _with_nans(X, u, r, out)


def round_tf32(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 with the low 13 mantissa bits dropped (round toward zero; module docstring)."""
    u = np.ascontiguousarray(X).view(np.uint32)
    r = np.bitwise_and(u, 0xFFFFE000)
    return _with_nans(X, u, r, out)


def round_float16(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 -> float16 -> float32, bitwise NumPy's ``X.astype(float16).astype(float32)``
    (round to nearest even, overflow to infinity, float16's subnormals, a NaN's payload kept in
    its top bits), on the bits: a few passes instead of NumPy's conversion, which is elementwise
    scalar code on many CPUs (2.6 against 0.7 ms for 512 x 1024 values on the 2-core EPYC)."""
    u = np.ascontiguousarray(X).view(np.uint32)
    a = np.bitwise_and(u, 0x7FFFFFFF)
    r = np.right_shift(u, 13)
    r &= 1
    r += 0x0FFF
    r += u  # float16's normal range: round to nearest even at its 10 mantissa bits
    r &= 0xFFFFE000
    big = a >= 0x477FF000  # 65520 and beyond round to infinity (NaNs too, put right below)
    if big.any():
        r[big] = (u[big] & _SIGN) | 0x7F800000
        nan = a > 0x7F800000
        kept = u[nan] & 0xFFFFE000  # the payload's top bits, with at least one of them set, as NumPy keeps it
        r[nan] = np.where(kept & 0x007FE000, kept, kept | 0x2000)
    tiny = a < 0x38800000  # below 2^-14: float16's subnormals, multiples of 2^-24 (the scaling is exact)
    if tiny.any():
        r[tiny] = (np.rint(X.reshape(-1)[tiny.reshape(-1)] * np.float32(2.0**24)) * np.float32(2.0**-24)).view(
            np.uint32)  # fmt: skip
    values = r.view(np.float32).reshape(X.shape)
    if out is None:
        return values
    out[...] = values
    return out


def _with_nans(X: np.ndarray, u: np.ndarray, r: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The rounded bits ``r`` as float32 (in ``out`` if given), each NaN of ``X`` made the quiet
    NaN with its sign (bit tricks would have turned some into infinities or zeros)."""
    nan = np.isnan(X)
    if nan.any():
        r[nan] = (u[nan] & _SIGN) | _QUIET_NAN
    values = r.view(np.float32).reshape(X.shape)
    if out is None:
        return values
    out[...] = values
    return out

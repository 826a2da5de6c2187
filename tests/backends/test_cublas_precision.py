"""The mixed-precision GEMM calls, checked without a GPU through a fake libcublas and a fake
CuPy: each operand kind reaches ``cublasGemmEx`` with its data types and compute type (the real
enum values of library_types.h and cublas_api.h), a float32 C and float scalars, per call on one
handle (no math mode is ever set); float32 products still take ``cublasSgemm``; operands of the
wrong dtype are refused before cuBLAS sees them."""

from __future__ import annotations

import ctypes
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from backprop.backends import cublas

_ptr = [1 << 20]


class FakeArray:
    def __init__(self, shape: tuple[int, ...], dtype: Any):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        _ptr[0] += 1 << 16
        self.data = SimpleNamespace(ptr=_ptr[0])
        self.flags = SimpleNamespace(c_contiguous=True)


class FakeLib:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("cublas"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args)) or 0


@pytest.fixture
def lib(monkeypatch: pytest.MonkeyPatch) -> FakeLib:
    fake = FakeLib()
    handle = SimpleNamespace(lib=fake, handle=ctypes.c_void_p(42), bind=lambda stream: None)
    monkeypatch.setattr(cublas, "_handle", lambda device, cupy: handle)
    cupy = SimpleNamespace(
        float32=np.float32, float64=np.float64, uint16=np.uint16, dtype=np.dtype,
        ascontiguousarray=lambda a: a, empty=lambda shape, dtype: FakeArray(shape, dtype),
        cuda=SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=7)),
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return fake


@pytest.mark.parametrize(
    ("kind", "dtype", "data_type", "compute"),
    [("tf32", np.float32, 0, 77), ("bfloat16", np.uint16, 14, 68), ("float16", np.uint16, 2, 68)],
)
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True)])
def test_each_kind_calls_gemm_ex_with_its_types(
    kind: str, dtype: Any, data_type: int, compute: int, ta: bool, tb: bool, lib: FakeLib
) -> None:
    A = FakeArray((3, 5) if ta else (5, 3), dtype)
    B = FakeArray((4, 3) if tb else (3, 4), dtype)
    C = cublas.Gemm(0)(A, B, ta, tb, kind=kind)
    assert C.shape == (5, 4) and C.dtype == np.float32
    ((name, args),) = lib.calls
    assert name == "cublasGemmEx"
    (_handle, op_b, op_a, n, m, k, alpha, b, b_type, ldb, a, a_type, lda, beta, c, c_type, ldc, compute_type,
     algo) = args  # fmt: skip
    assert (op_b, op_a, n, m, k) == (int(tb), int(ta), 4, 5, 3)  # row-major C = A B as column-major C^T = B^T A^T
    assert (b.value, a.value, c.value) == (B.data.ptr, A.data.ptr, C.data.ptr)
    assert (a_type, b_type, c_type, compute_type, algo) == (data_type, data_type, 0, compute, -1)
    assert (lda, ldb, ldc) == (A.shape[1], B.shape[1], 4)
    assert alpha._obj.value == 1.0 and beta._obj.value == 0.0 and isinstance(alpha._obj, ctypes.c_float)
    assert cublas.GEMM_EX[kind] == (data_type, compute)


def test_float32_products_still_take_sgemm_and_an_out_slot(lib: FakeLib) -> None:
    A, B, out = FakeArray((5, 3), np.float32), FakeArray((3, 4), np.float32), FakeArray((5, 4), np.float32)
    assert cublas.Gemm(0)(A, B, False, False, out) is out
    assert [name for name, _ in lib.calls] == ["cublasSgemm_v2"]
    cublas.Gemm(0)(FakeArray((5, 3), np.float64), FakeArray((3, 4), np.float64), False, False)
    assert lib.calls[-1][0] == "cublasDgemm_v2"
    assert not any("MathMode" in name for name, _ in lib.calls)


@pytest.mark.parametrize(
    ("kind", "a", "b", "match"),
    [("bfloat16", np.float32, np.float32, "bfloat16 operands takes two uint16 matrices; got float32"),
     ("tf32", np.float64, np.float64, "tf32 operands takes two float32 matrices"),
     ("float32", np.uint16, np.uint16, "float32 or float64"),
     ("float16", np.uint16, np.float32, "got uint16 and float32")],
)  # fmt: skip
def test_operands_of_the_wrong_dtype_are_refused(kind: str, a: Any, b: Any, match: str, lib: FakeLib) -> None:
    with pytest.raises(TypeError, match=match):
        cublas.Gemm(0)(FakeArray((5, 3), a), FakeArray((3, 4), b), False, False, kind=kind)
    with pytest.raises(ValueError, match="gemm operands must be one of 'float32', 'tf32', 'bfloat16', 'float16'"):
        cublas.Gemm(0)(FakeArray((5, 3), np.uint16), FakeArray((3, 4), np.uint16), False, False, kind="int8")
    with pytest.raises(ValueError, match="gemm out must be a C-contiguous float32 array of shape"):
        cublas.Gemm(0)(FakeArray((5, 3), np.uint16), FakeArray((3, 4), np.uint16), False, False,
                       FakeArray((5, 4), np.uint16), "bfloat16")  # fmt: skip
    assert not lib.calls


def test_gemm_ex_is_declared_with_its_nineteen_arguments() -> None:
    fake = SimpleNamespace(cublasGemmEx=SimpleNamespace())
    cublas._declare_gemm_ex(fake)
    types = fake.cublasGemmEx.argtypes
    assert len(types) == 19 and types[6] is ctypes.c_void_p and types[8] is ctypes.c_int


def test_the_fallback_widens_16_bit_operands_exactly() -> None:
    """Without a handle of our own, 16-bit storage is widened to float32 values (bitwise the
    host rounding's) for ``cupy.matmul``; shown here with NumPy standing in for CuPy."""
    from backprop.backends import rounding  # noqa: PLC0415

    values = np.array([1.0, -2.5, 3.140625, 65504.0, np.inf], np.float32)
    bf16 = (rounding.round_bfloat16(values).view(np.uint32) >> 16).astype(np.uint16)
    np.testing.assert_array_equal(cublas.widen(np, bf16, "bfloat16"), rounding.round_bfloat16(values))
    fp16 = values.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(cublas.widen(np, fp16, "float16"), rounding.round_float16(values))

"""Rounding float32 values to mixed-precision operands, bitwise: the host functions
(`backprop.backends.rounding`) against ml_dtypes' bfloat16 and PyTorch's float16, and the GPU
kernels that make the 16-bit weights and activations (compiled as host C++, as
test_cupy_kernels_on_host.py runs every kernel body) against the host functions, over every
kind of float32: zeros, subnormals, normals near each rounding boundary, the largest values,
infinities and NaNs with all sorts of payloads."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest
from test_cupy_kernels_on_host import library, run  # noqa: F401 - the module's fixture, used here

from backprop.backends import rounding
from helpers import float32_patterns


@pytest.fixture(scope="module")
def ml_dtypes() -> Any:
    """The reference for bfloat16 (in the test extra; the tests that need it skip without it)."""
    return pytest.importorskip("ml_dtypes")


@pytest.fixture(scope="module")
def patterns() -> np.ndarray:
    return float32_patterns(np.random.default_rng(7))


def bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def test_bfloat16_is_ml_dtypes_bitwise(patterns: np.ndarray, ml_dtypes: Any) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        expected = patterns.astype(ml_dtypes.bfloat16).astype(np.float32)
    got = rounding.round_bfloat16(patterns)
    np.testing.assert_array_equal(bits(got), bits(expected))
    assert np.isinf(got[np.isinf(patterns)]).all() and np.isnan(got[np.isnan(patterns)]).all()
    assert np.isinf(rounding.round_bfloat16(np.array([3.4e38, -3.4e38], np.float32))).all()  # overflow


def test_float16_is_numpys_conversion_bitwise_nan_payloads_included(patterns: np.ndarray) -> None:
    """The bit arithmetic against NumPy's own conversion, contiguous and strided."""
    for X in (patterns, patterns[: 90_000 * 10].reshape(-1, 10)[:, ::3]):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = X.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(bits(rounding.round_float16(X)), bits(expected))


def test_float16_is_pytorch_bitwise(patterns: np.ndarray) -> None:
    """ml_dtypes has no float16 (NumPy's is the one it leaves to NumPy): the independent check is
    PyTorch's conversion; NaNs (whose payloads each library keeps its own way) stay NaNs."""
    torch = pytest.importorskip("torch")
    expected = torch.from_numpy(patterns.copy()).half().float().numpy()
    got = rounding.round_float16(patterns)
    nan = np.isnan(patterns)
    np.testing.assert_array_equal(bits(got)[~nan], bits(expected)[~nan])
    assert np.isnan(got[nan]).all()
    assert rounding.round_float16(np.array([65519.0, 65520.0], np.float32)).tolist() == [65504.0, np.inf]


def test_tf32_keeps_the_top_ten_mantissa_bits(patterns: np.ndarray) -> None:
    """Round toward zero onto TF32's grid: the low 13 bits dropped, against the arithmetic
    definition ``sign(x) floor(|x| / ulp) ulp`` with TF32's ulp (10 mantissa bits) in float64."""
    got = rounding.round_tf32(patterns)
    finite = np.isfinite(patterns)
    x = patterns[finite].astype(np.float64)
    _, exponent = np.frexp(np.abs(x))
    ulp = np.ldexp(1.0, np.maximum(exponent - 11, -136))  # below 2^-126 the subnormals' fixed grid
    expected = np.copysign(np.floor(np.abs(x) / ulp) * ulp, x).astype(np.float32)  # -0.0 stays -0.0
    np.testing.assert_array_equal(bits(got[finite]), bits(expected))
    assert not (bits(got[finite]) & 0x1FFF).any()
    np.testing.assert_array_equal(got[np.isinf(patterns)], patterns[np.isinf(patterns)])
    assert np.isnan(got[np.isnan(patterns)]).all()


@pytest.mark.parametrize("kind", rounding.OPERANDS)
def test_rounding_leaves_its_input_and_writes_into_out(kind: str, rng: np.random.Generator) -> None:
    X = rng.standard_normal((5, 7)).astype(np.float32)
    X[0, :3] = [np.nan, np.inf, 1e-40]
    before = X.copy()
    result = rounding.round_operand(X, kind)
    np.testing.assert_array_equal(bits(X), bits(before))
    assert (result is X) is (kind == "float32")
    out = np.empty_like(X)
    assert rounding.round_operand(X, kind, out=out) is out
    np.testing.assert_array_equal(bits(out), bits(result))
    assert result.dtype == np.float32 and result.shape == X.shape
    np.testing.assert_array_equal(bits(rounding.round_operand(result, kind)), bits(result))  # idempotent


def test_rounding_refuses_what_it_cannot_round() -> None:
    with pytest.raises(ValueError, match="'float32', 'tf32', 'bfloat16', 'float16'; got 'int8'"):
        rounding.check_operands("int8")
    with pytest.raises(TypeError, match="from float32 arrays; got float64"):
        rounding.round_operand(np.ones(3), "bfloat16")


def test_products_of_operands_are_exact_in_float32(rng: np.random.Generator) -> None:
    """Why the CPU emulation is honest: the product of two rounded operands is exact in
    float32 (only the sums round), so float32 GEMM sums exactly the GPU's products."""
    for kind in ("tf32", "bfloat16", "float16"):
        a = rounding.round_operand(rng.standard_normal(10_000).astype(np.float32), kind)
        b = rounding.round_operand(rng.standard_normal(10_000).astype(np.float32), kind)
        np.testing.assert_array_equal((a * b).astype(np.float64), a.astype(np.float64) * b.astype(np.float64))


def _kernel_bits(lib: ctypes.CDLL, name: str, x: np.ndarray) -> np.ndarray:
    return run(lib, name, x.size, x=x)["y"]


def test_bfloat16_kernel_is_ml_dtypes_bitwise(
    library: ctypes.CDLL,  # noqa: F811 - the imported fixture
    patterns: np.ndarray,
    ml_dtypes: Any,
) -> None:
    got = _kernel_bits(library, "bp_round_bfloat16", patterns)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = patterns.astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(got, expected)


def test_float16_kernel_is_numpy_bitwise_nan_payloads_included(
    library: ctypes.CDLL,  # noqa: F811 - the imported fixture
    patterns: np.ndarray,
) -> None:
    got = _kernel_bits(library, "bp_round_float16", patterns)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = patterns.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(got, expected)


def test_a_wrong_rounding_is_caught(library: ctypes.CDLL, patterns: np.ndarray) -> None:  # noqa: F811
    """The comparison can fail: truncating to bfloat16 (TF32's way) is not rounding to nearest."""
    got = _kernel_bits(library, "bp_round_bfloat16", patterns)
    truncated = (bits(patterns) >> 16).astype(np.uint16)
    assert (got != truncated).mean() > 0.3

"""Every fused CuPy kernel compiles, in float32 and float64, from the very source CuPy would
build for it: CuPy's own code generator and headers, NVRTC and our compile options. No GPU is
needed, only CuPy and NVRTC (``pip install nvidia-cuda-nvrtc-cu12`` where CuPy has none), so a
typo in a kernel shows up here instead of on the first GPU run. Skipped without them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backprop.backends import cupy_sources

_NDARRAY, _INDEXER, _SCALAR = 1, 2, 3  # CuPy's _ArgKind (cupy/_core/_kernel.pxd)


def _nvrtc() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415 - CuPy is optional

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 - any failure to load NVRTC means: cannot check here
        pytest.skip(f"NVRTC is not loadable ({type(exc).__name__}); pip install nvidia-cuda-nvrtc-cu12")
    return cupy


def _source(cupy: Any, name: str, definition: cupy_sources.Definition, dtype: np.dtype) -> str:
    """The CUDA source CuPy generates for the kernel called with ``dtype`` arrays."""
    from cupy._core import _carray, _kernel, _scalar, core  # noqa: PLC0415 - CuPy is optional

    kernel = cupy.ElementwiseKernel(
        definition.inputs, definition.outputs, definition.body, name, preamble=definition.preamble
    )
    in_types = tuple(dtype if p.dtype is None else np.dtype(p.dtype) for p in kernel.in_params)
    _, out_types, type_map = kernel._decide_params_type(in_types, ())
    args = []
    for param, t in zip(kernel.in_params + kernel.out_params, in_types + out_types):
        if param.name in definition.scalars:
            args.append(_kernel._ArgInfo(_SCALAR, _scalar.CScalar, t.type, 0, True, True))
        else:
            args.append(_kernel._ArgInfo(_NDARRAY, cupy.ndarray, t.type, 1, True, True))
    args.append(_kernel._ArgInfo(_INDEXER, _carray.Indexer, None, 1, True, True))
    code = _kernel._get_elementwise_kernel_code(
        tuple(args), type_map, kernel.params, kernel.operation, name, definition.preamble
    )
    return "".join(f"#include <{h}>\n" for h in core._cupy_header_list) + code


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(cupy_sources.DEFINITIONS))
def test_cupy_kernel_compiles(name: str, dtype: str) -> None:
    cupy = _nvrtc()
    from cupy._core import core  # noqa: PLC0415 - CuPy is optional
    from cupy.cuda import compiler  # noqa: PLC0415 - CuPy is optional

    source = _source(cupy, name, cupy_sources.DEFINITIONS[name], np.dtype(dtype))
    # CuPy adds -ftz=true to every kernel it compiles (cupy/cuda/compiler.py)
    options = core.assemble_cupy_compiler_options((*cupy_sources.OPTIONS, "-arch=compute_80", "-ftz=true"))
    try:
        compiler._NVRTCProgram(source, name=f"{name}.cu").compile(options=options)
    except compiler.CompileException as exc:
        pytest.fail(f"{name} ({dtype}) does not compile:\n{exc}")


@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("name", sorted(cupy_sources.RAW_SOURCES))
def test_cupy_raw_kernel_compiles(name: str, ctype: str) -> None:
    """The raw kernels (work across a row, the scalar write) compile as `cupy.RawKernel` builds
    them: their source with ``T`` set, our options, NVRTC."""
    _nvrtc()
    from cupy.cuda import compiler  # noqa: PLC0415 - CuPy is optional

    options = (*cupy_sources.OPTIONS, "-arch=compute_80", "-ftz=true")
    try:
        compiler._NVRTCProgram(cupy_sources.raw_source(name, ctype), name=f"{name}.cu").compile(options=options)
    except compiler.CompileException as exc:
        pytest.fail(f"{name} ({ctype}) does not compile:\n{exc}")


def test_a_broken_kernel_is_caught() -> None:
    """The check above can fail: a kernel with an undeclared name does not compile."""
    cupy = _nvrtc()
    from cupy._core import core  # noqa: PLC0415 - CuPy is optional
    from cupy.cuda import compiler  # noqa: PLC0415 - CuPy is optional

    broken = cupy_sources.Definition("T x", "T y", "y = x * undeclared")
    source = _source(cupy, "bp_broken", broken, np.dtype("float32"))
    with pytest.raises(compiler.CompileException, match="undeclared"):
        compiler._NVRTCProgram(source, name="bp_broken.cu").compile(options=core.assemble_cupy_compiler_options(()))

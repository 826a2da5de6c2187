"""CuPy kernel plumbing shared by `CupyOps` and the CUDA-graph machinery: building kernels
from `cupy_sources` with the project's compile options, their fixed argument lists, and the
GPU runtime (stream binding of our cuBLAS handle, device-side step scalars) that is not a
computation and so not part of the ops."""

from __future__ import annotations

from typing import Any

import numpy as np

from .cupy_sources import DEFINITIONS, OPTIONS, raw_source

__all__ = ["CudaRuntime", "elementwise", "raw_kernel", "scalar_args"]


def scalar_args(kind: Any, values: Any, n: int) -> tuple[Any, ...]:
    """The first ``n`` of ``values`` as NumPy scalars of ``kind``, zeros after them: the fixed
    argument list of a raw kernel (CuPy passes a Python number as whatever type it guesses)."""
    return (*map(kind, values), *(kind(0),) * n)[:n]


def raw_kernel(cupy: Any, name: str, ctype: str = "double") -> Any:
    """The `cupy.RawKernel` of ``RAW_SOURCES[name]`` with ``T`` = ``ctype`` (compiled on first use)."""
    return cupy.RawKernel(raw_source(name, ctype), name, options=OPTIONS)


def elementwise(cupy: Any, name: str) -> Any:
    """The ``cupy.ElementwiseKernel`` of ``DEFINITIONS[name]``."""
    d = DEFINITIONS[name]
    return cupy.ElementwiseKernel(d.inputs, d.outputs, d.body, name, options=OPTIONS, preamble=d.preamble)


class CudaRuntime:
    """What a fused GPU step needs besides its computations: binding our cuBLAS handle to the
    current stream (before a capture begins) and writing the step-dependent optimizer scalars
    into device memory (so a captured graph reads this step's values, not the captured ones)."""

    def __init__(self, cupy: Any, gemm: Any):
        self._gemm = gemm
        self._set_scalars = raw_kernel(cupy, "bp_set_scalars")

    def bind_stream(self) -> None:
        """Bind our cuBLAS handle to the current stream (cuBLAS must know a capture stream
        before the capture begins)."""
        self._gemm.bind_current_stream()

    def write_scalars(self, scalars: Any, values: tuple[float, ...]) -> None:
        """Write up to three host floats into the float64 device array ``scalars`` (one launch,
        no copy from host memory, so it may precede a graph replay on the same stream)."""
        self._set_scalars((1,), (1,), (scalars, *scalar_args(np.float64, values, 3)))

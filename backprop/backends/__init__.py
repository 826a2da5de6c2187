"""Backends: the only package that knows NumPy from CuPy from other Array API namespaces."""

from __future__ import annotations

from .backend import Array, Backend, DeviceMismatchError, array_device, host_array, in_dtype, not_finite, to_numpy
from .cuda import CudaUnavailableError, GpuInfo, cuda_gpus
from .device import Device, DeviceLike, get_device
from .ops import Ops

__all__ = [
    "Array",
    "Backend",
    "CudaUnavailableError",
    "Device",
    "DeviceLike",
    "DeviceMismatchError",
    "GpuInfo",
    "Ops",
    "array_device",
    "available_devices",
    "cuda_gpus",
    "get_device",
    "host_array",
    "in_dtype",
    "not_finite",
    "to_numpy",
]


def available_devices() -> list[Device]:
    """The CPU followed by every usable CUDA GPU."""
    gpus, _ = cuda_gpus()
    return [Device("cpu")] + [Device(f"cuda:{g.index}") for g in gpus]

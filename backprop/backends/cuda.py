"""Finding out whether CUDA is usable, and saying exactly why when it is not.

"CuPy imports" is not "a GPU is usable": the driver may be missing or too old, or there may
be no GPU at all. Each probe here imports CuPy only when called.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["CudaUnavailableError", "GpuInfo", "compute_capability", "cuda_gpus", "free_memory", "require_cupy"]

INSTALL_HINT = (
    "install the CuPy extra matching your CUDA driver: pip install 'backprop-nn[cuda12]' "
    "(CUDA 12.x) or 'backprop-nn[cuda13]' (CUDA 13.x)"
)


class CudaUnavailableError(RuntimeError):
    """Raised when a CUDA device is asked for but cannot be used; the message says why."""


@dataclass(frozen=True)
class GpuInfo:
    """One usable CUDA GPU."""

    index: int
    name: str
    total_memory: int
    compute_capability: str

    def describe(self) -> str:
        return (
            f"cuda:{self.index}  {self.name}  {self.total_memory / 2**30:.1f} GiB  "
            f"compute capability {self.compute_capability}"
        )


def _import_cupy() -> ModuleType:
    if importlib.util.find_spec("cupy") is None:
        raise CudaUnavailableError(f"CUDA was requested but CuPy is not installed: {INSTALL_HINT}")
    try:
        import cupy  # noqa: PLC0415 - lazy by design
    except Exception as exc:  # a broken CuPy install raises all sorts of things
        raise CudaUnavailableError(f"CUDA was requested but CuPy failed to import ({exc}); {INSTALL_HINT}") from exc
    return cupy


def _device_count(cupy: ModuleType) -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise CudaUnavailableError(
            f"CuPy is installed but CUDA is not usable: {exc}. There is no NVIDIA driver, or it is "
            "older than this CuPy build needs (check `nvidia-smi`; install the cupy-cuda12x/"
            "cupy-cuda13x wheel that matches the driver). Use device='cpu' to run without a GPU."
        ) from exc


def require_cupy(index: int) -> ModuleType:
    """Return the `cupy` module once GPU ``index`` is known to be usable, else raise why not."""
    cupy = _import_cupy()
    count = _device_count(cupy)
    if count == 0:
        raise CudaUnavailableError("CuPy is installed but no CUDA GPU was found; use device='cpu'")
    if index >= count:
        raise CudaUnavailableError(
            f"GPU cuda:{index} does not exist: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}"
        )
    return cupy


def cuda_gpus() -> tuple[list[GpuInfo], str | None]:
    """All usable GPUs, and when there are none, the reason why (else ``None``)."""
    try:
        cupy = _import_cupy()
        count = _device_count(cupy)
    except CudaUnavailableError as exc:
        return [], str(exc)
    if count == 0:
        return [], "CuPy is installed but no CUDA GPU was found"
    gpus = []
    for i in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"]
        gpus.append(
            GpuInfo(
                index=i,
                name=name.decode() if isinstance(name, bytes) else str(name),
                total_memory=int(props["totalGlobalMem"]),
                compute_capability=f"{props['major']}.{props['minor']}",
            )
        )
    return gpus, None


def compute_capability(index: int) -> tuple[int, int]:
    """GPU ``index``'s CUDA compute capability ``(major, minor)`` (8.0 for an A100, 9.0 for an
    H100 or H200); raises `CudaUnavailableError` where the GPU cannot be used."""
    props = require_cupy(index).cuda.runtime.getDeviceProperties(index)
    return int(props["major"]), int(props["minor"])


def free_memory(device: Any) -> int | None:
    """Free bytes on a CUDA device (a `Device`, ``"cuda:N"`` or an index) as CuPy reports
    them; ``None`` where CuPy or a driver cannot be asked (the size is then unknown, not an
    error): callers about to allocate something large compare their estimate with it."""
    index = getattr(device, "index", device)
    if isinstance(index, str):
        index = int(index.rsplit(":", 1)[1]) if ":" in index else 0
    try:
        cupy = _import_cupy()
        with cupy.cuda.Device(index or 0):
            free, _total = cupy.cuda.runtime.memGetInfo()
        return int(free)
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no such GPU: unknown
        return None

"""`Backend`: one (device, dtype) pair and everything that needs to know what it is.

Allocation, host <-> device transfer and input checks live here, and each backend carries its
`Ops` (``backend.ops``: the computations layers, losses and optimizers call, fused where the
backend can) so that those are written once against the Array API namespace.
"""

from __future__ import annotations

import contextlib
from typing import Any

import array_api_compat
import numpy as np

from .device import Device, DeviceLike, get_device
from .finite import host_all_finite
from .ops import Array, Ops
from .rounding import check_operands

__all__ = [
    "Array", "Backend", "DeviceMismatchError", "array_device", "host_array", "in_dtype", "not_finite", "to_numpy",
]  # fmt: skip

_FLOAT_DTYPES = ("float32", "float64")


class DeviceMismatchError(ValueError):
    """An array lives on a different device (or namespace) than the model that was given it."""


def array_device(x: Any) -> Device | None:
    """The `Device` an array lives on, or ``None`` for host data (NumPy arrays, lists, scalars)."""
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        return None
    if array_api_compat.is_cupy_array(x):
        return Device(f"cuda:{x.device.id}")
    if array_api_compat.is_torch_array(x):
        return Device(str(x.device), namespace="torch")
    if array_api_compat.is_array_api_obj(x):
        module = array_api_compat.array_namespace(x)
        name = getattr(module, "__name__", "")
        native = array_api_compat.device(x)
        return Device(str(getattr(native, "_device", native)), namespace=name)
    return None


def host_array(x: Any, what: str) -> np.ndarray:
    """User data (a NumPy array, nested lists, scalars) as a NumPy array, with a clear error
    for ragged lists, where NumPy's own speaks of an "inhomogeneous shape", and for ``None``
    (a forgotten argument), which NumPy takes as an object array."""
    if x is None:
        raise TypeError(f"{what} is None: pass an array")
    try:
        return np.asarray(x)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc) and "sequence" not in str(exc):
            raise
        raise ValueError(
            f"{what} is ragged: its rows have different lengths. Every sample needs the same number of "
            "values; pad or drop the short rows first"
        ) from None


def in_dtype(host: np.ndarray, dtype: str) -> np.ndarray:
    """``host`` in the floating ``dtype`` (no copy when it already is). A value beyond what
    ``dtype`` holds becomes infinite here, quietly: callers check finiteness after this, in
    the dtype the model computes with, so that 1e39 in a float32 model is refused, not NaN later."""
    with np.errstate(over="ignore"):
        return host.astype(dtype, copy=False)


def not_finite(what: str, host: np.ndarray, dtype: str) -> str:
    """The message for data that is not finite in ``dtype``: NaN/Inf in it, or values that
    overflow ``dtype`` (finite in the user's own dtype)."""
    if host.dtype.kind == "f" and not np.isfinite(host).all():
        return f"{what} contains NaN or Inf values; clean or impute them first"
    largest = float(np.finfo(dtype).max)
    return (
        f"{what} holds values beyond what {dtype} can represent (|x| > {largest:.3g}): scale the data, "
        "or build the model with dtype='float64'"
    )


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array from any supported device to a host NumPy array (NumPy arrays pass through)."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class Backend:
    """The namespace, device and floating dtype a model computes with, and the operands its
    matrix products take.

    ``xp`` is the array-api-compat namespace; ``dtype`` the model's floating dtype in it;
    ``operands`` what its matrix products multiply (`rounding.OPERANDS`: ``"float32"``, the
    values themselves, or ``"tf32"``, ``"bfloat16"``, ``"float16"`` for mixed precision, float32
    models only); ``ops`` its `Ops`; ``cuda`` the GPU runtime (`CudaRuntime`: stream binding,
    device-side step scalars) on CUDA devices, else ``None``.
    Backends are cheap value-like objects: make one with ``Backend("cuda:1", "float32")``.
    """

    xp: Any
    ops: Ops
    cuda: Any
    _cupy: Any

    def __init__(self, device: DeviceLike = "cpu", dtype: str | Any = "float32", operands: str = "float32"):
        self.device = get_device(device)
        self.dtype_name = _dtype_name(dtype)
        self.operands = check_operands(operands)
        if operands != "float32" and self.dtype_name != "float32":
            raise ValueError(f"{operands} matrix-product operands are rounded from float32, not {self.dtype_name}")
        self._cupy = None
        if self.device.type == "cuda":
            from .cuda import require_cupy  # noqa: PLC0415 - keeps `import backprop` free of CuPy

            self._cupy = require_cupy(self.device.index or 0)
            import array_api_compat.cupy as cupy_xp  # noqa: PLC0415

            self.xp = cupy_xp
        elif self.device.type == "cpu":
            import array_api_compat.numpy as numpy_xp  # noqa: PLC0415

            self.xp = numpy_xp
        else:
            self.xp = _generic_namespace(self.device)
        self.dtype = getattr(self.xp, self.dtype_name)
        if self.device.type == "array_api" and self.dtype_name == "float64":
            _check_float64(self)
        self.ops, self.cuda = _load_ops(self)

    # ------------------------------------------------------------------ identity
    def __repr__(self) -> str:
        operands = "" if self.operands == "float32" else f", operands={self.operands!r}"
        return f"Backend({self.device.name!r}, {self.dtype_name!r}{operands})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Backend:
        return self  # immutable: copies of a model share their backend

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as what it is made from: the namespace module and the `Ops` (CuPy handles,
        # compiled kernels) are made again where it is unpickled. One pickle shares one
        # Backend between everything that shared it, as `Optimizer.step` expects.
        return (Backend, (self.device, self.dtype_name, self.operands))

    # ------------------------------------------------------------------ execution
    def activate(self) -> contextlib.AbstractContextManager[Any]:
        """Context in which kernels launch on this backend's device (the GPU for CUDA)."""
        if self._cupy is not None:
            return self._cupy.cuda.Device(self.device.index)
        return _NOTHING

    def capturing(self) -> bool:
        """Whether work is being recorded into a CUDA graph right now (never off CUDA)."""
        return self._cupy is not None and bool(self._cupy.cuda.get_current_stream().is_capturing())

    @property
    def gather_bytes(self) -> int:
        """How many bytes of shuffled rows `fit` gathers at a time before slicing batches from
        them. Host memory: 1 MiB, refilled gather after gather (`Ops.rows_buffer`), so that a
        batch's rows are still in cache when its first product reads them. A GPU: 256 MiB, so
        that a data set of MNIST's size is one gather per epoch; each gather costs as much host
        time to launch as a layer's kernel (~15 us), and eager steps of mid-sized models are
        bound by that host time, while the device copies 256 MiB in well under a millisecond."""
        return (256 if self._cupy is not None else 1) * 2**20

    # ------------------------------------------------------------------ allocation
    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        """Zeros on this device (CuPy's creation functions ignore ``device=``, so we set it)."""
        with self.activate():
            if self.device.type == "array_api":
                return self.xp.zeros(shape, dtype=dtype or self.dtype, device=self.device.native)
            return self.xp.zeros(shape, dtype=dtype or self.dtype)

    def from_host(self, x: np.ndarray, dtype: Any = None) -> Array:
        """Copy a host NumPy array to this device, as ``dtype`` (default: the model dtype)."""
        dtype = self.dtype if dtype is None else dtype
        with self.activate():
            if self.device.type == "array_api":
                return self.xp.asarray(x, dtype=dtype, device=self.device.native)
            if self.device.type == "cpu":
                return np.asarray(x, dtype=dtype)
            return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        """Copy an array of this backend to a host NumPy array."""
        return to_numpy(x)

    # ------------------------------------------------------------------ randomness
    def device_generator(self, seed: int) -> Any:
        """A random generator that draws directly on this device: CuPy's for CUDA (fast, but
        its numbers differ from the host's), NumPy's elsewhere (host and device are the same
        memory, or the namespace has no generator of its own)."""
        if self._cupy is not None:
            with self.activate():
                return self._cupy.random.default_rng(seed)
        return np.random.default_rng(seed)

    def uniform(self, generator: Any, shape: tuple[int, ...]) -> Array:
        """``U[0, 1)`` samples of the model dtype on this device, from a host NumPy generator
        (drawn in float64 on the host, then moved: identical on every device) or from a
        `device_generator`."""
        if isinstance(generator, np.random.Generator):
            return self.from_host(generator.random(shape))
        with self.activate():
            return generator.random(
                shape, dtype=self._cupy.float32 if self.dtype_name == "float32" else self._cupy.float64
            )

    # ------------------------------------------------------------------ input checks
    def asarray(self, x: Any, *, what: str, dtype: Any = None) -> Array:
        """Bring user data onto this device as ``dtype`` (default: the model dtype).

        Host data (NumPy arrays, lists) is copied to the device once; arrays already on this
        device are used as they are (cast only if their dtype differs). An array on another
        device raises `DeviceMismatchError` naming ``what``, both devices and the fix.
        Nothing given is ever modified.
        """
        dtype = self.dtype if dtype is None else dtype
        where = array_device(x)
        if where is None:
            host = host_array(x, what)
            if host.dtype.kind not in "biuf":
                raise TypeError(f"{what} must be numeric; got an array of dtype {host.dtype}")
            if host.dtype.kind == "f" and dtype is self.dtype:  # overflow becomes inf: callers check
                host = in_dtype(host, self.dtype_name)
            return self.from_host(host, dtype)
        if where.namespace == "torch" and self.device.namespace != "torch":
            raise TypeError(
                f"{what} is a torch.Tensor, but the model computes with {self.device.namespace}: pass "
                f"tensor.detach().cpu().numpy(), or build the model on device='torch' to train on tensors"
            )
        if where != self.device:
            raise DeviceMismatchError(
                f"{what} is on {where.name} but the model is on {self.device.name}. Pass host data "
                f"instead (bp.to_numpy(x) is copied to {self.device.name} for you) or move the model "
                f"with model.to({where.name!r})."
                if where.type != "array_api"
                else f"{what} is on {where.name} but the model is on {self.device.name}; "
                f"create it on the model's device or pass bp.to_numpy(x)."
            )
        if x.dtype != dtype:
            with self.activate():
                return self.xp.astype(x, dtype)
        return x

    def all_finite(self, x: Array) -> bool:
        """Whether every entry is finite (one device sync)."""
        if isinstance(x, np.ndarray):
            return host_all_finite(x)
        with self.activate():
            return self.ops.all_finite(x)

    def to_floats(self, values: list[Array]) -> list[float]:
        """Many 0-d (or 1-D) arrays as Python floats, laid end to end: one transfer (and sync)
        for all of them."""
        if self.device.type == "cpu":  # already on the host: no stacking needed
            out: list[float] = []
            for v in values:
                if getattr(v, "ndim", 0):  # np.ndim's dispatch costs a microsecond a value: epochs of tiny batches
                    out += np.asarray(v, dtype=np.float64).tolist()
                else:
                    out.append(float(v))
            return out
        with self.activate():
            # CuPy's stack of 0-d arrays costs half again the host time (89 against 57 us for 32)
            flat = self.xp.concat([self.xp.reshape(v, (-1,)) for v in values])
            return np.asarray(to_numpy(flat), dtype=np.float64).tolist()

    def scalar(self, x: Array) -> float:
        """A 0-d device array as a Python float (a device sync on GPUs: call rarely)."""
        return float(to_numpy(x))


_NOTHING = contextlib.nullcontext()  # reusable, and entered every step: made once


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "__name__", None) or str(dtype)
    name = name.rsplit(".", 1)[-1]
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, _FLOAT_DTYPES))}; got {dtype!r}")
    return name


def _generic_namespace(device: Device) -> Any:
    import importlib  # noqa: PLC0415

    module = importlib.import_module(device.namespace)
    return array_api_compat.array_namespace(module.asarray(0.0, device=device.native))


def _check_float64(backend: Backend) -> None:
    try:
        backend.xp.asarray(0.0, dtype=backend.xp.float64, device=backend.device.native)
    except Exception as exc:
        raise ValueError(f"device {backend.device.name} does not support float64; use dtype='float32'") from exc


def _load_ops(backend: Backend) -> tuple[Ops, Any]:
    """The backend's `Ops` (NumPy's, numba's and CuPy's fuse; any other namespace gets the
    generic one) and, on CUDA, its GPU runtime.

    On the CPU the device's ``kernels`` decides: ``"auto"`` takes `NumbaOps` where numba is
    installed (found without importing it; `NumbaOps` imports it when a kernel is first
    needed, and switches its kernels on only for a model large enough to win that back),
    ``"numba"`` takes it with the kernels on from the start, ``"numpy"`` never does."""
    if backend.device.type == "cpu":
        kernels = backend.device.kernels
        if kernels != "numpy":
            from . import numba_ops  # noqa: PLC0415 - one backend's code loaded when used (imports no numba)

            if numba_ops.available():
                return numba_ops.NumbaOps(on=kernels == "numba"), None
            if kernels == "numba":
                raise ImportError(
                    "Device('cpu', kernels='numba') needs numba, which is not installed: "
                    'pip install "backprop-nn[cpu]" (or numba), or use kernels="auto"'
                )
        from .numpy_ops import NumpyOps  # noqa: PLC0415 - one backend's code loaded when used

        return NumpyOps(), None
    if backend.device.type == "cuda":
        from .cupy_kernels import CudaRuntime  # noqa: PLC0415 - imports of CuPy's kind happen here only
        from .cupy_ops import CupyOps  # noqa: PLC0415

        with backend.activate():
            ops = CupyOps(backend.xp, backend._cupy, backend.device.index or 0)
            return ops, CudaRuntime(backend._cupy, ops.gemm)
    return Ops(backend.xp), None

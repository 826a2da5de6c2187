"""`Device`: where a model's arrays live, parsed once from a user's spec.

A device is a pair (array namespace, device within it):

* ``"cpu"``            -> NumPy
* ``"cuda"``/``"cuda:N"`` -> CuPy on GPU ``N`` (``"cuda"`` means GPU 0)
* ``"torch"``, ``"torch:cuda"``, ``"torch:cuda:N"``, ``"torch:mps"`` -> PyTorch tensors on that
  device, through array-api-compat's wrapping of ``torch`` (``Device(namespace="torch")`` too)
* ``Device(namespace=array_api_strict)`` -> any Array API namespace, e.g. for tests

On the CPU, ``kernels=`` chooses how NumPy arrays are computed on: ``"auto"`` (the default)
takes numba's compiled kernels where numba is installed (``pip install "backprop-nn[cpu]"``) and
NumPy's otherwise; ``"numpy"`` opts out of numba (which is then never imported); ``"numba"``
insists on it (building a model raises where it is not installed). The choice belongs to the
device a model is given, not to the process: two models in one process may differ.

Nothing here imports CuPy or numba: the namespace is resolved lazily by `Device.xp`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["KERNELS", "Device", "DeviceLike", "get_device"]

_VALID = "'cpu', 'cuda' or 'cuda:N' (N = GPU index), 'torch', 'torch:cuda', 'torch:mps', or a bp.Device"
KERNELS = ("auto", "numpy", "numba")


class Device:
    """A device value object with a canonical name.

    Parameters
    ----------
    spec:
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; with ``namespace=`` given, the name of a
        device of that namespace (``None`` for its default device).
    namespace:
        An Array API namespace (module or importable module name) to run on instead of
        NumPy/CuPy, e.g. ``"array_api_strict"``.
    kernels:
        CPU only: ``"auto"`` (numba's compiled kernels where numba is installed, else NumPy's),
        ``"numpy"`` (never numba) or ``"numba"`` (numba's, or an error where it is missing).
        It says how arrays are computed on, not where they live, so it is no part of the
        device's identity: ``Device("cpu", kernels="numpy") == Device("cpu")``, and both are
        named ``"cpu"``.

    Examples
    --------
    >>> Device("cuda").name
    'cuda:0'
    >>> Device("cpu") == Device("CPU")
    True
    >>> Device("cpu", kernels="numpy")
    Device('cpu', kernels='numpy')
    """

    __slots__ = ("_native", "index", "kernels", "namespace", "type")

    type: str
    index: int | None
    namespace: str
    kernels: str
    _native: Any

    def __init__(self, spec: str | None = None, *, namespace: str | ModuleType | None = None, kernels: str = "auto"):
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(map(repr, KERNELS))}; got {kernels!r}")
        object.__setattr__(self, "kernels", kernels)
        if namespace is not None:
            self._init_generic(spec, namespace)
        else:
            self._init_named(spec)
        if kernels != "auto" and self.type != "cpu":
            raise ValueError(f"kernels={kernels!r} chooses the CPU's kernels; {self.name} has its own, leave it out")

    def _init_named(self, spec: str | None) -> None:
        spec = "cpu" if spec is None else spec
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string such as {_VALID}; got {type(spec).__name__} {spec!r}")
        text = spec.strip().lower()
        if text == "cpu":
            self._set("cpu", None, "numpy", None)
        elif text == "cuda" or text.startswith("cuda:"):
            index = 0 if text == "cuda" else _parse_index(spec, text[5:])
            self._set("cuda", index, "cupy", None)
        elif text == "torch" or text.startswith("torch:"):
            self._init_torch(text[6:] or None)
        else:
            hint = " ('gpu' is spelled 'cuda' here)" if text.startswith("gpu") else ""
            raise ValueError(f"unknown device {spec!r}{hint}: use {_VALID}")

    def _init_generic(self, spec: str | None, namespace: str | ModuleType) -> None:
        if namespace in ("torch", "array_api_compat.torch") or getattr(namespace, "__name__", "") in (
            "torch",
            "array_api_compat.torch",
        ):
            self._init_torch(spec)
            return
        module = importlib.import_module(namespace) if isinstance(namespace, str) else namespace
        name = module.__name__
        if name == "numpy" and spec in (None, "cpu"):
            self._set("cpu", None, "numpy", None)
            return
        if name == "cupy":
            raise ValueError("for CuPy use Device('cuda') or Device('cuda:N'), not namespace='cupy'")
        info = getattr(module, "__array_namespace_info__", None)
        if info is None:
            raise ValueError(
                f"{name} is not an Array API namespace (it has no __array_namespace_info__); name a "
                "namespace array-api-compat wraps ('torch'), or one that implements the standard itself"
            )
        native = info().default_device() if spec is None else _find_device(info().devices(), spec, name)
        _require_writeable(module, name, native)
        self._set("array_api", None, name, native)

    def _init_torch(self, spec: str | None) -> None:
        """PyTorch tensors on ``spec`` (``"cpu"`` by default, ``"cuda"``, ``"cuda:N"``, ``"mps"``),
        through array-api-compat's ``torch`` namespace (torch itself is not one)."""
        try:
            import torch  # noqa: PLC0415 - optional: only a model on torch tensors pays for it
        except ImportError:
            raise ValueError("device 'torch' needs PyTorch: pip install torch") from None
        try:
            native = torch.device(spec or "cpu")
        except RuntimeError as exc:
            raise ValueError(
                f"unknown torch device {spec!r}: use 'torch', 'torch:cuda', 'torch:cuda:N' or 'torch:mps'"
            ) from exc
        if native.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("device 'torch:cuda' needs a CUDA build of PyTorch and a GPU; this PyTorch sees none")
            native = torch.device("cuda", 0 if native.index is None else native.index)
        elif native.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(
                "device 'torch:mps' needs Apple silicon and a PyTorch built with MPS; it is not available here"
            )
        elif native.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"torch device type {native.type!r} is not supported: use cpu, cuda or mps")
        self._set("array_api", None, "torch", native)

    def _set(self, type_: str, index: int | None, namespace: str, native: Any) -> None:
        object.__setattr__(self, "type", type_)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "_native", native)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Device is immutable")

    @property
    def name(self) -> str:
        """Canonical name: ``"cpu"``, ``"cuda:0"``, ``"array_api_strict:CPU_DEVICE"``."""
        if self.type == "cpu":
            return "cpu"
        if self.type == "cuda":
            return f"cuda:{self.index}"
        native = getattr(self._native, "_device", None) or str(self._native)
        return f"{self.namespace}:{native}"

    @property
    def native(self) -> Any:
        """The device object the namespace understands (``"cpu"``, a CuPy device, ...)."""
        if self.type == "cpu":
            return "cpu"
        if self.type == "cuda":
            import cupy  # noqa: PLC0415 - lazy by design: only CUDA users pay for it

            return cupy.cuda.Device(self.index)
        return self._native

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        if self.type == "array_api":
            return f"Device({str(getattr(self._native, '_device', self._native))!r}, namespace={self.namespace!r})"
        if self.kernels != "auto":
            return f"Device({self.name!r}, kernels={self.kernels!r})"
        return f"Device({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, ...]:
        if self.type == "array_api":
            return (_rebuild_generic, (self.namespace, str(getattr(self._native, "_device", self._native))))
        if self.kernels != "auto":
            return (_rebuild_with_kernels, (self.name, self.kernels))
        return (Device, (self.name,))


def _rebuild_generic(namespace: str, native_name: str) -> Device:
    return Device(native_name, namespace=namespace)


def _rebuild_with_kernels(name: str, kernels: str) -> Device:
    return Device(name, kernels=kernels)


def _require_writeable(module: ModuleType, name: str, native: Any) -> None:
    """Refuse a namespace whose arrays cannot be written in place (JAX's): training updates
    weights, gradients and optimizer state in place, and the Array API has no other way."""
    import array_api_compat  # noqa: PLC0415 - the namespace check needs it; `import backprop` does not

    if not array_api_compat.is_writeable_array(module.asarray([0.0], device=native)):
        raise ValueError(
            f"{name}'s arrays are immutable, and backprop updates weights, gradients and optimizer state "
            "in place: use a namespace with writeable arrays (numpy, cupy through device='cuda', or "
            "torch through device='torch')"
        )


def _parse_index(spec: str, text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"unknown device {spec!r}: the GPU index after 'cuda:' must be a whole number; use {_VALID}")
    return int(text)


def _find_device(devices: Any, spec: str, namespace: str) -> Any:
    for dev in devices:
        if str(getattr(dev, "_device", dev)) == spec or str(dev) == spec:
            return dev
    names = ", ".join(repr(str(getattr(d, "_device", d))) for d in devices)
    raise ValueError(f"{namespace} has no device {spec!r}; its devices are {names}")


DeviceLike = str | Device


def get_device(spec: DeviceLike | None = "cpu") -> Device:
    """Parse a device spec (``"cpu"``, ``"cuda"``, ``"cuda:N"``, a `Device`) into a `Device`."""
    if isinstance(spec, Device):
        return spec
    if spec is None:
        return Device("cpu")
    return Device(spec)

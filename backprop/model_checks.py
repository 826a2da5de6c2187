"""The model's guards: what `bp.Sequential` refuses before it allocates or trains, each with
the reason and the fix — layers that already belong to a built model, a layer twice, a model
or data that cannot fit in the memory available, inputs that are not numbers, 2-D and finite,
and a loss that mixes up probabilities and logits with the model's last layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .backends import Array, Backend, array_device, host_array, in_dtype, not_finite, to_numpy
from .backends.cuda import free_memory
from .backends.finite import host_all_finite
from .layers.base import Layer
from .layers.sequential import Sequential as SequentialLayer
from .losses import Loss
from .memory import available_host_memory, format_bytes
from .parameter import Parameter
from .validation import flag

__all__ = [
    "UNCHECKED_BYTES",
    "check_data_fits",
    "check_fits",
    "check_loss",
    "check_unbuilt",
    "check_unique",
    "checked_input",
    "checked_state",
]


def check_fits(model: Layer, backend: Backend) -> None:
    """Refuse a model whose parameters cannot fit, before anything is allocated: each value is
    drawn in float64 on the host, then kept with its gradient (and its optimizer state, later)
    in the model's dtype on the device."""
    values = sum(layer.size_estimate() for layer in model.walk())
    itemsize = 8 if backend.dtype_name == "float64" else 4
    host_need, device_need = values * (8 + itemsize), values * 2 * itemsize
    checks = [("this machine", host_need, available_host_memory())]
    if backend.device.type == "cuda":
        checks.append((backend.device.name, device_need, free_memory(backend.device)))
    for where, need, room in checks:
        if room is not None and need > room:
            raise MemoryError(
                f"the model has {values:,} parameter values, which need about {format_bytes(need)} on "
                f"{where} to build, but only {format_bytes(room)} are available: make the layers smaller"
            )


#: What `check_data_fits` lets `fit` allocate without reading the memory limits: reading them
#: (/proc and the cgroup's files) costs a quarter of a millisecond, a visible share of a small
#: model's `fit` call, and any machine that runs Python has this much to spare.
UNCHECKED_BYTES = 16 * 2**20


def check_data_fits(model: SequentialLayer, X: Any, batch_size: Any) -> None:
    """Refuse to train on data that cannot fit where it goes, before anything is copied: the
    inputs in the model's dtype on its device (a GPU gets a copy of host data; the host a
    converted copy, unless they are already in the model's dtype; arrays already on the device
    in its dtype are used as they are), the shuffled rows `fit` gathers at a time (up to
    `Backend.gather_bytes`) and one batch's activations (forward outputs and their gradients).
    Data streamed from a file is read a batch at a time, so only the batch counts for it."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or isinstance(batch_size, bool) or not isinstance(batch_size, int):
        return  # lists, paths, bad shapes and batch sizes: checked, with their own messages, by fit
    backend = model._require_built()
    itemsize = 8 if backend.dtype_name == "float64" else 4
    widths = sum(layer.size_estimate() // max(1, getattr(layer, "in_features", 1) or 1) for layer in model.walk())
    batch = min(max(batch_size, 1), int(shape[0]))
    streamed = isinstance(X, np.memmap)
    data = 0 if streamed else int(shape[0]) * int(shape[1]) * itemsize
    copied = 0 if streamed or _used_in_place(backend, X) else data
    need = copied + min(data, backend.gather_bytes) + 3 * batch * (widths + int(shape[1])) * itemsize
    if need <= UNCHECKED_BYTES:
        return
    room = free_memory(backend.device) if backend.device.type == "cuda" else available_host_memory()
    if room is not None and need > room:
        raise MemoryError(
            f"training on {shape[0]:,} samples of {shape[1]:,} features in batches of {batch:,} needs about "
            f"{format_bytes(need)} on {backend.device.name}, but only {format_bytes(room)} are available: pass a "
            "memory-mapped array or a .npy path (read a batch at a time), or use smaller batches"
        )


def _used_in_place(backend: Backend, X: Any) -> bool:
    """Whether `fit` trains on ``X`` itself, without a copy: an array on the model's device in
    its dtype (on the CPU, a NumPy array in the model's dtype)."""
    where = array_device(X)
    host_on_cpu = where is None and isinstance(X, np.ndarray) and backend.device.type == "cpu"
    on_device = host_on_cpu or (where is not None and where == backend.device)
    return on_device and X.dtype == backend.dtype  # dtypes of one namespace only (strict's warn otherwise)


def check_unbuilt(model: Layer) -> None:
    """Refuse a layer that already belongs to a built model: building it again would draw new
    weights over the ones it has (a trained model's layers put in a new model would silently
    lose their training). A `bp.Sequential` given as a layer is rebuilt by its parent, on the
    parent's device, dtype and seed, as documented."""
    for _, child in model.children():
        if isinstance(child, SequentialLayer) and child.backend is not None and not child.path:
            continue
        if child.backend is not None:
            raise ValueError(
                f"{child!r} already belongs to a built model (as layer {child.path!r}); putting it in another "
                "would re-initialise its weights. Make a new layer, and copy trained weights with "
                "new_model.load_state_dict(old_model.state_dict(), strict=False) where the names match"
            )
        check_unbuilt(child)


def check_unique(model: Layer) -> None:
    seen: set[int] = set()
    for layer in model.walk():
        if id(layer) in seen:
            raise ValueError(
                f"the same {layer!r} object appears twice in the model; parameters cannot be shared "
                "between positions: create a new layer for each position"
            )
        seen.add(id(layer))


def checked_input(model: Any, X: Any) -> Array:
    """``X`` checked (numeric, 2-D, finite in the model's dtype) and on the model's device."""
    backend = model._require_built()
    first = model.layers[0] if model.layers else model
    what = f"the input to {first.describe()}"
    if array_device(X) is None:
        host = host_array(X, what)
        if host.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be numeric; got dtype {host.dtype}")
        if host.ndim != 2:
            raise ValueError(
                f"{what} must be 2-D, shape (samples, features); got shape {host.shape}"
                + (" (one sample? use X.reshape(1, -1); one feature? X.reshape(-1, 1))" if host.ndim == 1 else "")
            )
        # checked in the model's dtype: 1e39 is finite in float64 but inf in float32
        cast = in_dtype(host, backend.dtype_name)
        if not host_all_finite(cast):
            raise ValueError(not_finite(what, host, backend.dtype_name))
        return backend.from_host(cast)
    Xd = backend.asarray(X, what=what)
    if len(Xd.shape) != 2:
        raise ValueError(f"{what} must be 2-D, shape (samples, features); got shape {tuple(Xd.shape)}")
    if not backend.all_finite(Xd):
        raise ValueError(f"{what} contains NaN or Inf values; clean or impute them first")
    return Xd


def check_loss(model: Any, loss: Loss) -> None:
    """Catch the classic mix-ups of probabilities and logits before they train badly."""
    last = model.layers[-1] if model.layers else None
    if loss.expects == "probabilities" and last is not None and last.output_kind == "scores":
        raise ValueError(
            f"{loss!r} expects probabilities but the model ends with {last!r}, which gives raw "
            "scores: add bp.Sigmoid() at the end or use bp.losses.BCEWithLogits()"
        )
    if loss.expects == "logits" and last is not None and last.output_kind == "probabilities":
        raise ValueError(
            f"{loss!r} applies the sigmoid/softmax itself but the model already ends with "
            f"{last!r}: remove that last layer, or use bp.losses.BCE() on probabilities"
        )


def checked_state(
    own: dict[str, Parameter], state: Any, strict: Any, dtype: str
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """``(values, missing, unexpected)`` for `load_state_dict`: the values of ``state`` (a
    mapping of names to arrays) for the model's variables ``own``, as host copies in ``dtype``,
    and the names only one side has. Every problem is listed in one ValueError: with
    ``strict`` names that differ, and always shapes that differ, values that are not real
    numbers or not finite in ``dtype``."""
    if not isinstance(state, Mapping):
        raise TypeError(f"load_state_dict takes a state dict, names to arrays (model.state_dict()); got "
                        f"{type(state).__name__}")  # fmt: skip
    strict = flag(strict, "strict", owner="load_state_dict")
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    problems = [] if not strict else [f"missing {name!r} {own[name].shape}" for name in missing]
    problems += [] if not strict else [f"unexpected {name!r}" for name in unexpected]
    values = {}
    for name, p in own.items():
        if name not in state:
            continue
        host = np.asarray(to_numpy(state[name]))
        if tuple(host.shape) != p.shape:
            problems.append(f"{name!r} has shape {tuple(host.shape)} in the state but {p.shape} in the model")
        elif host.dtype.kind not in "iuf":
            problems.append(f"{name!r} holds {host.dtype} values, not real numbers")
        else:
            values[name] = np.array(in_dtype(host, dtype), copy=True)
            if not host_all_finite(values[name]):
                problems.append(not_finite(repr(name), host, dtype))
    if problems:
        raise ValueError("state does not fit this model: " + "; ".join(problems))
    return values, missing, unexpected

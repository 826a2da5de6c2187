"""The model's guards: what `bp.Sequential` refuses before it allocates or trains, each with
the reason and the fix — layers that already belong to a built model, a layer twice, a model
or data that cannot fit in the memory available."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import Backend
from .backends.cuda import free_memory
from .layers.base import Layer
from .layers.sequential import Sequential as SequentialLayer
from .memory import available_host_memory, format_bytes

__all__ = ["check_data_fits", "check_fits", "check_unbuilt", "check_unique"]


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


def check_data_fits(model: SequentialLayer, X: Any, batch_size: Any) -> None:
    """Refuse to train on data that cannot fit where it goes, before anything is copied: the
    inputs in the model's dtype on its device (a GPU gets a copy of all of them; the host a
    converted copy) and one batch's activations (forward outputs and their gradients). Data
    streamed from a file is read a batch at a time, so only the batch counts for it."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or isinstance(batch_size, bool) or not isinstance(batch_size, int):
        return  # lists, paths, bad shapes and batch sizes: checked, with their own messages, by fit
    backend = model._require_built()
    itemsize = 8 if backend.dtype_name == "float64" else 4
    widths = sum(layer.size_estimate() // max(1, getattr(layer, "in_features", 1) or 1) for layer in model.walk())
    batch = min(max(batch_size, 1), int(shape[0]))
    streamed = isinstance(X, np.memmap)
    data = 0 if streamed else int(shape[0]) * int(shape[1]) * itemsize
    need = data + 3 * batch * (widths + int(shape[1])) * itemsize
    room = free_memory(backend.device) if backend.device.type == "cuda" else available_host_memory()
    if room is not None and need > room:
        raise MemoryError(
            f"training on {shape[0]:,} samples of {shape[1]:,} features in batches of {batch:,} needs about "
            f"{format_bytes(need)} on {backend.device.name}, but only {format_bytes(room)} are available: pass a "
            "memory-mapped array or a .npy path (read a batch at a time), or use smaller batches"
        )


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

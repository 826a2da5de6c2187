"""JSON values with arrays in them: `pack` moves arrays into archive members, `unpack` back.

Metadata (hyperparameters, scheduler state, RNG states, the user's ``extra``) is JSON. NumPy
scalars become Python numbers and tuples become lists; arrays (NumPy, or on any device) are
stored as archive members and referenced as ``{"__ndarray__": "<member>"}``, so they come
back as NumPy arrays with their dtype and every bit intact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import array_device, to_numpy

__all__ = ["ARRAY_MARKER", "pack", "unpack"]

ARRAY_MARKER = "__ndarray__"


def pack(value: Any, where: str, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """A JSON-ready copy of ``value`` (which is not modified). Arrays are added to ``arrays``
    as ``"<prefix>/<n>"``; ``where`` names the value in error messages."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has key {key!r}; a checkpoint stores dictionaries with string keys only")
            if key == ARRAY_MARKER:
                raise ValueError(f"{where} uses the key {ARRAY_MARKER!r}, which checkpoints reserve")
            out[key] = pack(item, f"{where}[{key!r}]", arrays, prefix)
        return out
    if isinstance(value, (list, tuple)):
        return [pack(item, f"{where}[{i}]", arrays, prefix) for i, item in enumerate(value)]
    if isinstance(value, np.ndarray) or array_device(value) is not None:
        host = np.array(to_numpy(value), copy=True)
        if host.dtype.kind not in "biufcSU":
            raise TypeError(
                f"{where} is an array of dtype {host.dtype}; only numeric, boolean or string arrays can be saved"
            )
        name = f"{prefix}/{len([k for k in arrays if k.startswith(prefix + '/')])}"
        arrays[name] = host
        return {ARRAY_MARKER: name}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a checkpoint cannot store: use JSON values (dict, list, str, "
        "int, float, bool, None) and NumPy arrays"
    )


def unpack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Invert `pack`: array references become the stored arrays. Raises ``ValueError`` for a
    reference to a member that is not there."""
    if isinstance(value, dict):
        if set(value) == {ARRAY_MARKER}:
            name = value[ARRAY_MARKER]
            if not isinstance(name, str) or name not in arrays:
                raise ValueError(f"array member {name!r}, referenced by the metadata, is missing")
            return arrays[name]
        return {key: unpack(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [unpack(item, arrays) for item in value]
    return value

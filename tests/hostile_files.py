"""Hostile and broken checkpoint files, made from a valid one: the tools the hostile-input
tests (`test_hostile_checkpoints.py`) and the fuzz run (`fuzz_checkpoints.py`) share.

`base_checkpoint` trains a small model with every kind of state (BatchNorm running statistics,
a Residual block, Dropout, Adam moments and step counts, a cosine schedule, a history, extra
arrays) and saves it; the writers below rebuild a file from its parts, with any metadata, any
members, duplicates, compression and raw ``.npy`` headers, as an attacker could.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import backprop as bp
from backprop.checkpoint import archive

Entry = tuple[str, bytes, int]  # (file name in the zip, its bytes, zipfile compression)


def base_model(optimizer: str = "adam") -> tuple[bp.Sequential, Any, Any, bp.History]:
    """A trained model with BatchNorm, a Residual block with LayerNorm and Dropout, its
    optimizer, a schedule and the history."""
    model = bp.Sequential(
        bp.Dense(4, 6),
        bp.layers.BatchNorm(6),
        bp.ReLU(),
        bp.layers.Residual(bp.Dense(6, 6), bp.layers.LayerNorm(6), bp.Tanh(), bp.Dropout(0.1)),
        bp.Dense(6, 3),
        seed=0,
    )
    params = model.parameters()
    opt = {
        "adam": lambda: bp.optim.Adam(params, lr=0.01),
        "sgd": lambda: bp.optim.SGD(params, lr=0.05, momentum=0.9),
        "rmsprop": lambda: bp.optim.RMSprop(params, lr=0.01, momentum=0.5, centered=True),
        "adagrad": lambda: bp.optim.Adagrad(params, lr=0.05),
    }[optimizer]()
    schedule = bp.optim.CosineAnnealingLR(opt, T_max=5)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    history = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=8, scheduler=schedule,
                        verbose=0)
    return model, opt, schedule, history


def base_checkpoint(path: Path, optimizer: str = "adam") -> Path:
    model, opt, schedule, history = base_model(optimizer)
    bp.save_checkpoint(path, model, opt, scheduler=schedule, epoch=2, history=history,
                       extra={"mean": np.zeros(4), "names": ["a", "b"], "n": 3})
    return path


def parts(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A copy of a valid file's metadata and arrays."""
    metadata, arrays = archive.read_archive(path)
    return copy.deepcopy(metadata), {k: v.copy() for k, v in arrays.items()}


def npy(value: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, value, allow_pickle=True)
    return out.getvalue()


def npy_header(shape: Any, dtype: str, fortran: bool = False, version: tuple[int, int] = (1, 0),
               data: bytes = b"") -> bytes:
    """A ``.npy`` member with any header (a declared shape need not match its data)."""
    header = repr({"descr": dtype, "fortran_order": fortran, "shape": shape}).encode("latin1")
    header += b" " * ((64 - (len(header) + 11) % 64) % 64) + b"\n"
    if version == (1, 0):
        prefix = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
    else:
        prefix = b"\x93NUMPY" + bytes(version) + len(header).to_bytes(4, "little")
    return prefix + header + data


def metadata_bytes(metadata: dict[str, Any]) -> bytes:
    return json.dumps(metadata, allow_nan=True, separators=(",", ":")).encode()


def entries(metadata: dict[str, Any] | bytes, arrays: dict[str, np.ndarray]) -> list[Entry]:
    raw = metadata if isinstance(metadata, bytes) else metadata_bytes(metadata)
    out = [("metadata.npy", npy(np.frombuffer(raw, dtype=np.uint8)), zipfile.ZIP_STORED)]
    out += [(f"{name}.npy", npy(value), zipfile.ZIP_STORED) for name, value in arrays.items()]
    return out


def write_zip(path: Path, members: Sequence[Entry]) -> None:
    """A zip of exactly these members (duplicates and any compression included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: they are the point
        with zipfile.ZipFile(path, "w") as zf:
            for name, data, compression in members:
                zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type=compression)


def write_parts(path: Path, metadata: dict[str, Any] | bytes, arrays: dict[str, np.ndarray]) -> None:
    write_zip(path, entries(metadata, arrays))


Mutation = Callable[[dict[str, Any], dict[str, np.ndarray]], Any]


def edited(base: Path, target: Path, edit: Mutation) -> Path:
    """``base`` with ``edit(metadata, arrays)`` applied (it edits in place, or returns the raw
    metadata bytes or a list of zip entries to write instead)."""
    metadata, arrays = parts(base)
    result = edit(metadata, arrays)
    if isinstance(result, list):
        write_zip(target, result)
    else:
        write_parts(target, result if isinstance(result, bytes) else metadata, arrays)
    return target

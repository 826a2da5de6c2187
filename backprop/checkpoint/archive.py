"""The file: one ``.npz`` (a zip of ``.npy`` members) written atomically and read safely.

A checkpoint holds host NumPy arrays only, plus a member ``metadata``: UTF-8 JSON stored as
a ``uint8`` array. Everything is read with ``allow_pickle=False``, so no file can run code.
This module knows nothing about models; it moves ``(metadata, arrays)`` to and from disk and
turns every way a file can be unreadable into a `CheckpointError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .._version import __version__
from .errors import CheckpointError, checkpoint_error

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA", "atomic_write", "read_archive", "write_archive"]

FORMAT = "backprop.checkpoint"
FORMAT_VERSION = 1  # bump when a reader of the previous version could misread new files
METADATA = "metadata"
_ZIP_MAGIC = b"PK\x03\x04"
_STORABLE_KINDS = "biufcSU"  # numbers, booleans and strings: never object arrays (pickles)


# ---------------------------------------------------------------------------------- writing
def write_archive(path: str | os.PathLike[str], metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``metadata`` (JSON-serialisable) and ``arrays`` (host NumPy, by member name) to
    ``path`` atomically. The metadata is stamped with this library's ``format`` and
    ``format_version`` (any such keys in ``metadata`` are replaced)."""
    header: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    header.update((key, value) for key, value in metadata.items() if key not in header)
    payload = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    members = {METADATA: np.frombuffer(payload, dtype=np.uint8)}
    for name, value in arrays.items():
        if name in members:
            raise ValueError(f"member name {name!r} is reserved")
        if not isinstance(value, np.ndarray) or value.dtype.kind not in _STORABLE_KINDS:
            what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(
                f"checkpoint member {name!r} is {what}; only numeric, boolean or string arrays can be saved"
            )
        members[name] = value
    atomic_write(path, lambda fh: _write_zip(fh, members))


def _write_zip(fh: IO[bytes], members: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in members.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(value), allow_pickle=False)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, flush and fsync it, rename it
    over ``path`` and fsync the directory. On any failure the temporary file is removed and
    whatever was at ``path`` before is left untouched."""
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save checkpoint {os.fspath(path)!r}: directory {directory!r} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save checkpoint {os.fspath(path)!r}: it is a directory")
    temp, fd = _create_temp(directory, os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    _fsync_directory(directory)


def _create_temp(directory: str, base: str) -> tuple[str, int]:
    """A new file ``.<base>.<random>.tmp`` in ``directory`` (permissions follow the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue


def _fsync_directory(directory: str) -> None:
    """Make the rename durable. Windows cannot open directories (and needs no such step);
    a filesystem that refuses to fsync a directory is not an error: the file is in place."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------- reading
def read_archive(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint file: its metadata (format checked) and every other member, fully
    read and CRC-checked. Every failure raises `CheckpointError`."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a `with` would not let us word the errors
    except FileNotFoundError:
        raise checkpoint_error(path, "there is no such file (check the path and the working directory)") from None
    except IsADirectoryError:
        raise checkpoint_error(path, "it is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise checkpoint_error(path, f"the file cannot be opened ({exc.strerror or exc})") from exc
    with fh:
        head = fh.read(len(_ZIP_MAGIC))
        if head != _ZIP_MAGIC:
            what = "the file is empty" if not head else "the file is not a zip/.npz archive"
            raise checkpoint_error(path, f"it is not a backprop checkpoint: {what}")
        fh.seek(0)
        arrays = _read_members(path, fh)
    metadata = _decode_metadata(path, arrays.pop(METADATA))
    return metadata, arrays


def _read_members(path: str | os.PathLike[str], fh: IO[bytes]) -> dict[str, np.ndarray]:
    member = None
    try:
        with np.load(fh, allow_pickle=False) as npz:
            if METADATA not in npz.files:
                listed = ", ".join(repr(n) for n in npz.files[:5]) + (", ..." if len(npz.files) > 5 else "")
                raise checkpoint_error(
                    path,
                    "it is not a backprop checkpoint: a .npz archive without backprop's metadata "
                    f"(members: {listed or 'none'})",
                )
            arrays = {}
            for member in npz.files:
                value = npz[member]  # reads the whole member, which checks its CRC-32
                if not isinstance(value, np.ndarray):
                    raise checkpoint_error(
                        path, f"member {member!r} is not a NumPy array, so this is not a backprop checkpoint"
                    )
                arrays[member] = value
            return arrays
    except CheckpointError:
        raise
    except zipfile.BadZipFile as exc:
        text = str(exc)
        if "CRC" in text:
            problem = (
                f"the file is corrupted: member {member!r} fails its CRC-32 check (the bytes changed after saving)"
            )
        elif member is None:
            problem = (
                "the file is truncated or damaged: it starts like a zip archive but its directory is missing "
                "or unreadable (an interrupted copy or download?)"
            )
        else:
            problem = f"the file is damaged ({text}) at member {member!r}"
        raise checkpoint_error(path, problem) from exc
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            problem = (
                f"member {member!r} holds pickled Python objects; backprop checkpoints never do, and loading "
                "pickles can run arbitrary code, so the file is refused"
            )
        else:
            problem = f"member {member!r} is damaged or not a NumPy array ({exc})"
        raise checkpoint_error(path, problem) from exc
    except (OSError, EOFError, KeyError, zlib.error, struct.error, RuntimeError, NotImplementedError) as exc:
        where = "its directory" if member is None else f"member {member!r}"
        raise checkpoint_error(
            path, f"the file is truncated or damaged: {where} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def _decode_metadata(path: str | os.PathLike[str], raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise checkpoint_error(path, f"its metadata member is {raw.dtype} of shape {raw.shape}, not UTF-8 JSON bytes")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise checkpoint_error(path, f"its metadata is not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise checkpoint_error(
            path, "it is not a backprop checkpoint: its 'metadata' member was not written by backprop"
        )
    version = metadata.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise checkpoint_error(path, f"its metadata has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        writer = metadata.get("library_version", "an unknown version")
        raise checkpoint_error(
            path,
            f"it was written by backprop {writer} with format {version}; this is backprop {__version__} which reads "
            f"up to format {FORMAT_VERSION}: upgrade backprop (pip install -U backprop-nn) to load it",
        )
    return metadata

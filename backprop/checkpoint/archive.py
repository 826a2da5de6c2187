"""The file: one ``.npz`` (a zip of ``.npy`` members) written atomically and read safely.

A checkpoint holds host NumPy arrays only, plus a member ``metadata``: UTF-8 JSON stored as
a ``uint8`` array. This module knows nothing about models; it moves ``(metadata, arrays)`` to
and from disk and turns every way a file can be unreadable into a `CheckpointError`.

Reading checks before it allocates. `open_archive` reads the zip directory (after checking,
from the end record, how many entries it has and how large it is), refuses duplicate members,
members that are not ``.npy`` arrays, encrypted or oddly compressed ones, compression bombs
and a total size beyond `Limits`; then it parses every member's ``.npy`` header (a few hundred
bytes) and refuses pickled objects, structured or unknown dtypes and a declared shape that does
not match the member's size in the directory; then it decodes the metadata (bounded size, no
duplicate keys, bounded nesting). Only then can a caller, knowing what the members should be,
read them with `Archive.read`, which reads exactly the declared bytes into one array and checks
the CRC-32. Nothing is ever unpickled: no file can run code.

This module is the file's public face: the writer, `open_archive` and `read_archive`, and the
open `Archive`. The checks live below it: `members` (the format's constants, `Limits`,
`Member`), `zip_directory` (the end record and the directory's entries) and `npy_members`
(the ``.npy`` headers, reading a member's data, decoding the metadata). The writer reads
``FORMAT_VERSION`` and `open_archive` reads ``available_host_memory`` from this module's
namespace, so patching them here still takes effect.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from ..atomic import atomic_write
from ..memory import available_host_memory
from .errors import checkpoint_error
from .members import DEFAULT_LIMITS, FORMAT, FORMAT_VERSION, METADATA, STORABLE_KINDS, Limits, Member
from .npy_members import decode_metadata, parse_member, read_member
from .zip_directory import check_directory, check_end_record, open_zip

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT",
    "FORMAT_VERSION",
    "METADATA",
    "Archive",
    "Limits",
    "Member",
    "atomic_write",
    "open_archive",
    "read_archive",
    "write_archive",
]

_ZIP_MAGIC = b"PK\x03\x04"


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
        if not isinstance(value, np.ndarray) or value.dtype.kind not in STORABLE_KINDS:
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


class Archive:
    """An open checkpoint file whose directory, member headers and metadata are checked;
    `read` a member's data. Use as a context manager (or `close`)."""

    def __init__(self, path: str | os.PathLike[str], fh: IO[bytes], zf: zipfile.ZipFile,
                 members: dict[str, Member], metadata: dict[str, Any]):
        self.path, self._fh, self._zf = path, fh, zf
        self.members = members
        self.metadata = metadata

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zf.close()
        self._fh.close()

    @property
    def total_bytes(self) -> int:
        """The data bytes of every member but the metadata."""
        return sum(m.nbytes for name, m in self.members.items() if name != METADATA)

    def read(self, name: str) -> np.ndarray:
        """Member ``name``'s array, read in full and CRC-checked: exactly the bytes its header
        declared, into one array of its dtype and shape."""
        return read_member(self.path, self._zf, self.members[name])

    def read_all(self) -> dict[str, np.ndarray]:
        """Every member but the metadata, by name, in directory order."""
        return {name: self.read(name) for name in self.members if name != METADATA}



def read_archive(
    path: str | os.PathLike[str], limits: Limits | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint file: its metadata (format checked) and every other member, checked
    as `open_archive` does and fully read and CRC-checked. The metadata's contents are not
    interpreted (`read_checkpoint` does that). Every failure raises `CheckpointError`."""
    with open_archive(path, limits) as archive:
        return archive.metadata, archive.read_all()


def open_archive(path: str | os.PathLike[str], limits: Limits | None = None) -> Archive:
    """Open ``path`` and check everything that can be checked without reading member data
    (see the module's documentation); raises `CheckpointError` for the first problem."""
    limits = limits or DEFAULT_LIMITS
    fh = _open(path)
    try:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(len(_ZIP_MAGIC))
        if head != _ZIP_MAGIC:
            what = "the file is empty" if not head else "the file is not a zip/.npz archive"
            raise checkpoint_error(path, f"it is not a backprop checkpoint: {what}")
        check_end_record(path, fh, size, limits)
        zf = open_zip(path, fh)
        try:
            infos = check_directory(path, zf, limits, available_host_memory)
            members = {name: parse_member(path, zf, name, info) for name, info in infos.items()}
            metadata = decode_metadata(path, zf, members[METADATA], limits)
        except BaseException:
            zf.close()
            raise
    except BaseException:
        fh.close()
        raise
    return Archive(path, fh, zf, members, metadata)


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise checkpoint_error(path, "there is no such file (check the path and the working directory)") from None
    except OSError as exc:
        raise checkpoint_error(path, f"the file cannot be opened ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise checkpoint_error(path, "it is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise checkpoint_error(
            path,
            "it is not a regular file (a device, pipe or socket cannot be a checkpoint): give the path of a .npz file",
        )
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the Archive; a `with` would not let us word the errors
    except IsADirectoryError:
        raise checkpoint_error(path, "it is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise checkpoint_error(path, f"the file cannot be opened ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the check above
        fh.close()
        raise checkpoint_error(path, "it is not a regular file")
    return fh


def iter_members(archive: Archive, prefix: str) -> Iterator[Member]:
    """The members whose names start with ``prefix``."""
    return (m for name, m in archive.members.items() if name.startswith(prefix))

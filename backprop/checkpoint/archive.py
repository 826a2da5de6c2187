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
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np

from .._version import __version__
from ..atomic import atomic_write
from ..memory import available_host_memory, format_bytes
from .errors import CheckpointError, checkpoint_error
from .schema import json_depth

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

FORMAT = "backprop.checkpoint"
FORMAT_VERSION = 1  # bump when a reader of the previous version could misread new files
METADATA = "metadata"
_ZIP_MAGIC = b"PK\x03\x04"
_STORABLE_KINDS = "biufcSU"  # numbers, booleans and strings: never object arrays (pickles)
_CHUNK = 1 << 22  # bytes read at a time into a member's array


@dataclass(frozen=True)
class Limits:
    """What a checkpoint reader accepts before it reads any member's data.

    ``max_total_bytes``: the members' uncompressed sizes together (``None``: what
    `backprop.memory.available_host_memory` says this process can still allocate).
    ``max_ratio``: how far a compressed member may expand (backprop writes members stored,
    uncompressed; real weights barely compress) once it is larger than ``ratio_floor`` bytes.
    ``max_depth``: nesting of the metadata's JSON. The rest bound the directory and metadata.
    """

    max_members: int = 100_000
    max_directory_bytes: int = 64 << 20
    max_metadata_bytes: int = 64 << 20
    max_depth: int = 64
    max_ratio: float = 100.0
    ratio_floor: int = 1 << 20
    max_total_bytes: int | None = None

    def with_total(self, total: int | None) -> Limits:
        """These limits with another ``max_total_bytes``."""
        return replace(self, max_total_bytes=total)


DEFAULT_LIMITS = Limits()


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


# ---------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Member:
    """One ``.npy`` member as its directory entry and header declare it (nothing read yet)."""

    name: str
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    header_bytes: int

    @property
    def count(self) -> int:
        """Elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of data (the member's size less its header)."""
        return self.count * self.dtype.itemsize


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
        return _read_member(self.path, self._zf, self.members[name])

    def read_all(self) -> dict[str, np.ndarray]:
        """Every member but the metadata, by name, in directory order."""
        return {name: self.read(name) for name in self.members if name != METADATA}


def _read_member(path: str | os.PathLike[str], zf: zipfile.ZipFile, member: Member) -> np.ndarray:
    """Member ``name``'s array, read in full and CRC-checked: exactly the bytes its header
    declared, into one array of its dtype and shape."""
    name = member.name
    try:
        with zf.open(member.info) as stream:
            _read_exactly(stream, member.header_bytes)  # the header, checked by open_archive
            flat = np.empty(member.count, dtype=member.dtype)
            view = memoryview(flat.view(np.uint8).reshape(-1).data) if member.nbytes else memoryview(b"")
            done = 0
            while done < member.nbytes:
                chunk = stream.read(min(_CHUNK, member.nbytes - done))
                if not chunk:
                    raise EOFError(f"the data ends after {done} of {member.nbytes} bytes")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            if stream.read(1):  # also the read that reaches the end, where the CRC is checked
                raise ValueError("there are bytes after the array's data")
    except CheckpointError:
        raise
    except zipfile.BadZipFile as exc:
        raise _bad_zip(path, name, exc) from exc
    except MemoryError as exc:
        raise checkpoint_error(
            path, f"there is not enough memory to read member {name!r} ({format_bytes(member.nbytes)})"
        ) from exc
    except Exception as exc:
        raise checkpoint_error(
            path, f"the file is truncated or damaged: member {name!r} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if member.fortran_order:
        return flat.reshape(member.shape[::-1]).transpose()
    return flat.reshape(member.shape)



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
        _check_end_record(path, fh, size, limits)
        zf = _zip(path, fh)
        try:
            infos = _check_directory(path, zf, limits)
            members = {name: _member(path, zf, name, info) for name, info in infos.items()}
            metadata = _decode_metadata(path, zf, members[METADATA], limits)
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


_NO_DIRECTORY = (
    "the file is truncated or damaged: it starts like a zip archive but its directory is missing or unreadable "
    "(an interrupted copy or download?)"
)


def _check_end_record(path: str | os.PathLike[str], fh: IO[bytes], size: int, limits: Limits) -> None:
    """Read the zip's end-of-directory record (and its zip64 form) to learn how many entries
    the directory has and how large it is, before `zipfile` reads it."""
    tail_size = min(size, 22 + 65535)
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise checkpoint_error(path, _NO_DIRECTORY)
    (_, _, _, _, entries, directory_size, directory_offset, _) = struct.unpack("<4s4H2LH", tail[at : at + 22])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF or directory_offset == 0xFFFFFFFF:
        locator_at = size - tail_size + at - 20
        if locator_at < 0:
            raise checkpoint_error(path, _NO_DIRECTORY)
        fh.seek(locator_at)
        locator = fh.read(20)
        if len(locator) != 20 or locator[:4] != b"PK\x06\x07":
            raise checkpoint_error(path, _NO_DIRECTORY)
        (record_at,) = struct.unpack("<Q", locator[8:16])
        if record_at > size - 56:
            raise checkpoint_error(path, _NO_DIRECTORY)
        fh.seek(record_at)
        record = fh.read(56)
        if len(record) != 56 or record[:4] != b"PK\x06\x06":
            raise checkpoint_error(path, _NO_DIRECTORY)
        entries, directory_size, directory_offset = _zip64_fields(record)
    if entries > limits.max_members:
        raise checkpoint_error(
            path, f"its directory lists {entries:,} members; a checkpoint reader accepts at most {limits.max_members:,}"
        )
    if directory_size > min(size, limits.max_directory_bytes):
        raise checkpoint_error(
            path,
            f"its directory claims {format_bytes(directory_size)} in a file of {format_bytes(size)}"
            + (f" (at most {format_bytes(limits.max_directory_bytes)} are read)" if directory_size <= size else "")
            + ": the file is damaged or crafted",
        )
    if directory_offset + directory_size > size:
        raise checkpoint_error(path, _NO_DIRECTORY)
    fh.seek(0)


def _zip64_fields(record: bytes) -> tuple[int, int, int]:
    """The zip64 end record's entry count, directory size and directory offset."""
    fields = struct.unpack("<4sQ2H2L4Q", record)
    return fields[7], fields[8], fields[9]


def _zip(path: str | os.PathLike[str], fh: IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise checkpoint_error(path, _NO_DIRECTORY) from exc
    except Exception as exc:
        raise checkpoint_error(
            path, f"the file is truncated or damaged: its directory cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def _check_directory(path: str | os.PathLike[str], zf: zipfile.ZipFile, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    """The members by name (without ``.npy``), each checked from its directory entry alone."""
    infos = zf.infolist()
    names = [info.filename[:-4] if info.filename.endswith(".npy") else info.filename for info in infos]
    if METADATA not in names:
        listed = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise checkpoint_error(
            path,
            "it is not a backprop checkpoint: a .npz archive without backprop's metadata "
            f"(members: {listed or 'none'})",
        )
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for name, info in zip(names, infos):
        what = f"member {name!r}"
        if name in members:
            raise checkpoint_error(
                path,
                f"{what} appears twice in the archive's directory; a checkpoint holds each member once, and which "
                "copy a reader takes is undefined (a tampered or badly merged file)",
            )
        if not info.filename.endswith(".npy"):
            raise checkpoint_error(
                path, f"member {info.filename!r} is not a .npy array; a checkpoint holds nothing else"
            )
        if info.flag_bits & 0x1:
            raise checkpoint_error(path, f"{what} is encrypted; backprop checkpoints never are")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise checkpoint_error(
                path,
                f"{what} is compressed with zip method {info.compress_type}; backprop reads stored or deflated "
                "members only",
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise checkpoint_error(
                path,
                f"the file is damaged: {what} is stored uncompressed but its directory gives it "
                f"{info.compress_size} bytes in the file and {info.file_size} bytes of data",
            )
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise checkpoint_error(
                path,
                f"{what} would expand from {format_bytes(info.compress_size)} to {format_bytes(info.file_size)} "
                f"({info.file_size / max(info.compress_size, 1):,.0f} times; a compression bomb): backprop writes "
                f"members uncompressed and refuses any that expands more than {limits.max_ratio:g} times",
            )
        total += info.file_size
        members[name] = info
    budget = limits.max_total_bytes if limits.max_total_bytes is not None else available_host_memory()
    if budget is not None and total > budget:
        source = "the limit given" if limits.max_total_bytes is not None else "the memory available to this process"
        raise checkpoint_error(
            path,
            f"its members hold {format_bytes(total)} of data but {source} is {format_bytes(budget)}: it cannot be "
            "loaded here (free memory, or load it on a machine with more)",
        )
    return members


def _member(path: str | os.PathLike[str], zf: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> Member:
    """Parse a member's ``.npy`` header and check it against its size in the directory."""
    what = f"member {name!r}"
    try:
        with zf.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not one backprop writes")
            header_bytes = stream.tell()
    except zipfile.BadZipFile as exc:
        raise _bad_zip(path, name, exc) from exc
    except (ValueError, SyntaxError, TypeError) as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise _pickled(path, name) from exc
        raise checkpoint_error(path, f"{what} is damaged or not a NumPy array ({exc})") from exc
    except Exception as exc:
        raise checkpoint_error(
            path, f"the file is truncated or damaged: {what} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if dtype.hasobject:
        raise _pickled(path, name)
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _STORABLE_KINDS:
        raise checkpoint_error(
            path, f"{what} has dtype {dtype}; a checkpoint holds numeric, boolean or string arrays only"
        )
    if dtype.itemsize == 0:
        raise checkpoint_error(path, f"{what} has dtype {dtype}, whose elements hold nothing; no checkpoint has one")
    if len(shape) > 32 or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise checkpoint_error(path, f"{what} declares the impossible shape {shape}")
    member = Member(name, info, dtype, tuple(shape), bool(fortran), header_bytes)
    if header_bytes + member.nbytes != info.file_size:
        raise checkpoint_error(
            path,
            f"{what} declares {dtype} data of shape {member.shape} ({format_bytes(member.nbytes)}) but holds "
            f"{format_bytes(max(info.file_size - header_bytes, 0))}: the file is damaged or crafted",
        )
    return member


def _bad_zip(path: str | os.PathLike[str], name: str, exc: zipfile.BadZipFile) -> CheckpointError:
    if "CRC" in str(exc):
        return checkpoint_error(
            path, f"the file is corrupted: member {name!r} fails its CRC-32 check (the bytes changed after saving)"
        )
    return checkpoint_error(path, f"the file is damaged ({exc}) at member {name!r}")


def _pickled(path: str | os.PathLike[str], name: str) -> CheckpointError:
    return checkpoint_error(
        path,
        f"member {name!r} holds pickled Python objects; backprop checkpoints never do, and loading pickles can run "
        "arbitrary code, so the file is refused",
    )


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"the member ends after {len(data)} of {n} bytes")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _decode_metadata(
    path: str | os.PathLike[str], zf: zipfile.ZipFile, member: Member, limits: Limits
) -> dict[str, Any]:
    if member.dtype != np.uint8 or len(member.shape) != 1:
        raise checkpoint_error(
            path, f"its metadata member is {member.dtype} of shape {member.shape}, not UTF-8 JSON bytes"
        )
    if member.nbytes > limits.max_metadata_bytes:
        raise checkpoint_error(
            path,
            f"its metadata is {format_bytes(member.nbytes)}; a checkpoint reader accepts at most "
            f"{format_bytes(limits.max_metadata_bytes)}",
        )
    raw = _read_member(path, zf, member)
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        text = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise checkpoint_error(path, f"its metadata is not valid JSON ({text})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise checkpoint_error(
            path, "it is not a backprop checkpoint: its 'metadata' member was not written by backprop"
        )
    version = metadata.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        shown = repr(version) if len(repr(version)) <= 40 else repr(version)[:37] + "..."
        raise checkpoint_error(path, f"its metadata has an invalid format version {shown}")
    if version > FORMAT_VERSION:
        writer = metadata.get("library_version", "an unknown version")
        writer = writer[:40] if isinstance(writer, str) else "an unknown version"
        raise checkpoint_error(
            path,
            f"it was written by backprop {writer} with format {version}; this is backprop {__version__} which reads "
            f"up to format {FORMAT_VERSION}: upgrade backprop (pip install -U backprop-nn) to load it",
        )
    depth = json_depth(metadata, limits.max_depth)
    if depth > limits.max_depth:
        raise checkpoint_error(
            path, f"its metadata is nested more than {limits.max_depth} levels deep; no checkpoint backprop writes is"
        )
    return metadata


def iter_members(archive: Archive, prefix: str) -> Iterator[Member]:
    """The members whose names start with ``prefix``."""
    return (m for name, m in archive.members.items() if name.startswith(prefix))

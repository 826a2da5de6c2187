"""The zip container's checks, made before any member is read: the end-of-directory record
(how many entries, how large the directory), opening the directory, and each entry as the
directory declares it (``.npy`` members only, each once, not encrypted, stored or deflated, no
compression bombs, and a total size within `Limits` or the memory available)."""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable
from typing import IO

from ..memory import format_bytes
from .errors import checkpoint_error
from .members import METADATA, Limits

__all__ = ["check_directory", "check_end_record", "open_zip"]


_NO_DIRECTORY = (
    "the file is truncated or damaged: it starts like a zip archive but its directory is missing or unreadable "
    "(an interrupted copy or download?)"
)


def check_end_record(path: str | os.PathLike[str], fh: IO[bytes], size: int, limits: Limits) -> None:
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


def open_zip(path: str | os.PathLike[str], fh: IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise checkpoint_error(path, _NO_DIRECTORY) from exc
    except Exception as exc:
        raise checkpoint_error(
            path, f"the file is truncated or damaged: its directory cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def check_directory(
    path: str | os.PathLike[str], zf: zipfile.ZipFile, limits: Limits,
    available_host_memory: Callable[[], int | None],
) -> dict[str, zipfile.ZipInfo]:
    """The members by name (without ``.npy``), each checked from its directory entry alone;
    ``available_host_memory`` bounds their total when ``limits`` does not."""
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

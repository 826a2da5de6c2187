"""The ``.npy`` members: parsing and checking each one's header against its directory entry
(no pickled objects, no structured or unknown dtypes, a shape that matches its size), reading a
member's data (exactly the declared bytes, CRC-checked), and decoding the metadata member
(bounded size, UTF-8 JSON without duplicate keys, backprop's format and a version this reads,
bounded nesting). Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import zipfile
from typing import IO, Any

import numpy as np

from .._version import __version__
from ..memory import format_bytes
from .errors import CheckpointError, checkpoint_error
from .members import FORMAT, FORMAT_VERSION, STORABLE_KINDS, Limits, Member
from .schema import json_depth

__all__ = ["decode_metadata", "parse_member", "read_member"]

_CHUNK = 1 << 22  # bytes read at a time into a member's array


def read_member(path: str | os.PathLike[str], zf: zipfile.ZipFile, member: Member) -> np.ndarray:
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



def parse_member(path: str | os.PathLike[str], zf: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> Member:
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
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in STORABLE_KINDS:
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


def decode_metadata(
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
    raw = read_member(path, zf, member)
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

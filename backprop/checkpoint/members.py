"""What a checkpoint file is made of: the format's name and version, the metadata member's
name, the kinds of array a member may hold, the `Limits` a reader accepts, and one `Member` as
its zip directory entry and ``.npy`` header declare it (nothing of its data read)."""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["DEFAULT_LIMITS", "FORMAT", "FORMAT_VERSION", "METADATA", "STORABLE_KINDS", "Limits", "Member"]

FORMAT = "backprop.checkpoint"
FORMAT_VERSION = 1  # bump when a reader of the previous version could misread new files
METADATA = "metadata"
STORABLE_KINDS = "biufcSU"  # numbers, booleans and strings: never object arrays (pickles)


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

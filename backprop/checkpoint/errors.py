"""`CheckpointError`: the one exception a checkpoint that cannot be read raises."""

from __future__ import annotations

import os

__all__ = ["CheckpointError"]


class CheckpointError(ValueError):
    """A file could not be used as a backprop checkpoint.

    Raised for a missing file, a file that is not a checkpoint, a truncated or corrupted one,
    one written in a newer format, one whose contents do not make sense, and one whose
    weights do not fit the model they are loaded into. The message is one paragraph naming
    the file and the problem; ``path`` holds the file name. The low-level error, if any, is
    chained as ``__cause__``.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


def checkpoint_error(path: str | os.PathLike[str], problem: str) -> CheckpointError:
    """A `CheckpointError` whose message starts by naming the file."""
    return CheckpointError(f"cannot load checkpoint {os.fspath(path)!r}: {problem}", path)

"""`load_checkpoint` and `load`: a saved model rebuilt as a `bp.Sequential`.

Checkpoints (`backprop.checkpoint`) sit below the model and never import it; building the
model is this module's part, on the model's floor: it hands `bp.Sequential` to
`read_checkpoint`, which does the rest.
"""

from __future__ import annotations

import os

from .backends import DeviceLike
from .checkpoint import Checkpoint, read_checkpoint
from .model import Sequential

__all__ = ["load", "load_checkpoint"]


def load_checkpoint(
    path: str | os.PathLike[str], device: DeviceLike | None = None, dtype: str | None = None,
    precision: str | None = None,
) -> Checkpoint[Sequential]:  # fmt: skip
    """Load a file written by `save_checkpoint`, ready to continue training exactly.

    The model is rebuilt from the saved architecture as a `bp.Sequential` on ``device``
    (default ``"cpu"``, wherever the file was saved from) as ``dtype`` in ``precision``
    (default: the saved ones; older files hold fp32 models), its weights, loss scaler and
    random generators' states are restored, and so is the optimizer.
    Any problem with the file raises `CheckpointError` naming it.
    """
    return read_checkpoint(path, Sequential, device, dtype, precision=precision)


def load(path: str | os.PathLike[str], device: DeviceLike | None = None) -> Sequential:
    """The model saved in a checkpoint, on ``device`` (default ``"cpu"``); see `load_checkpoint`."""
    return load_checkpoint(path, device).model

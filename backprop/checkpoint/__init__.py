"""Checkpoints: a model and its training state in one portable, safe file.

`save_checkpoint` writes the architecture, weights, optimizer and scheduler state, random
generators' states, epoch, history and your own ``extra`` values to one ``.npz`` file of
host NumPy arrays and JSON metadata, atomically. `read_checkpoint` rebuilds everything on
any device so training continues exactly (`bp.load_checkpoint` and `bp.load` call it with
`bp.Sequential`: this package sits below the model and never imports it); `load_weights`
fills a model you built. Files are read with ``allow_pickle=False``: loading one never runs
code, and every unreadable file raises `CheckpointError` saying what is wrong with it.
"""

from __future__ import annotations

from .errors import CheckpointError
from .load import Checkpoint, load_weights, read_checkpoint
from .members import FORMAT_VERSION
from .protocol import CheckpointedModel, ModelFactory
from .save import checkpoint_contents, save_checkpoint

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointedModel",
    "ModelFactory",
    "checkpoint_contents",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
]

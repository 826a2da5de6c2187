"""Checkpoints: a model and its training state in one portable, safe file.

`save_checkpoint` writes the architecture, weights, optimizer and scheduler state, random
generators' states, epoch, history and your own ``extra`` values to one ``.npz`` file of
host NumPy arrays and JSON metadata, atomically. `load_checkpoint` rebuilds everything on
any device so training continues exactly; `load` gives just the model and `load_weights`
fills a model you built. Files are read with ``allow_pickle=False``: loading one never runs
code, and every unreadable file raises `CheckpointError` saying what is wrong with it.
"""

from __future__ import annotations

from .archive import FORMAT_VERSION
from .errors import CheckpointError
from .load import Checkpoint, load, load_checkpoint, load_weights
from .save import save_checkpoint

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "load",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
]

"""`save_checkpoint`: a model and its training state, written to one portable file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..history import History
from ..labels import classes_json
from ..layers import layer_config
from ..validation import InvalidParameterError
from .archive import write_archive
from .jsonable import pack
from .protocol import CheckpointedModel
from .rng import rng_states

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["CheckpointContents", "checkpoint_contents", "checkpoint_path", "save_checkpoint"]

CheckpointContents = tuple[dict[str, Any], dict[str, np.ndarray]]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: CheckpointedModel,
    optimizer: Optimizer | None = None,
    *,
    scheduler: Any = None,
    epoch: int = 0,
    history: History | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save everything needed to resume training to ``path`` (one ``.npz`` file), atomically.

    Stored: the architecture, dtype, precision (and loss scaler), seed, weights, saved state
    and class labels (``classes``, ``threshold``) of ``model``; its random
    generators' states; the ``optimizer``'s type, hyperparameters and state; the
    ``scheduler``'s ``state_dict()`` (any object with one, JSON values and arrays); ``epoch``;
    the ``history``; and ``extra``, a dict of JSON values and NumPy arrays of your own (say a
    standardiser's mean and scale). The device is recorded for information only: load the
    file on any device. Arrays are host NumPy copies; nothing is pickled.

    The file appears under ``path`` only once completely written and synced; if saving
    fails, a previous file at ``path`` is left untouched. Nothing passed in is modified.
    """
    path = checkpoint_path(path)
    contents = checkpoint_contents(model, optimizer, scheduler=scheduler, epoch=epoch, history=history, extra=extra)
    write_archive(path, *contents)


def checkpoint_path(path: str | os.PathLike[str], what: str = "path") -> str:
    """``path`` as a string, if it names a ``.npz`` file; else an `InvalidParameterError`.

    A checkpoint is a ``.npz`` file, and its name says so: a name such as ``model.pt`` would
    promise a format the file is not in, and NumPy's ``np.savez`` appends ``.npz`` to such a
    name silently, so that code written for either finds no file under the name it gave."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise InvalidParameterError(f"{what} must be a file name ending in .npz; got {path!r}") from None
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name.lower().endswith(".npz"):
        stem, suffix = os.path.splitext(name)
        ending = f"ends in {suffix!r}" if suffix else "has no suffix"
        raise InvalidParameterError(
            f"{what} {name!r} {ending}, but a checkpoint is a .npz file (a zip of NumPy arrays, not a pickle): "
            f"name it {(stem if suffix else name) + '.npz'!r}"
        )
    return name


def checkpoint_contents(
    model: CheckpointedModel,
    optimizer: Optimizer | None = None,
    *,
    scheduler: Any = None,
    epoch: int = 0,
    history: History | None = None,
    extra: dict[str, Any] | None = None,
) -> CheckpointContents:
    """What `save_checkpoint` writes, as ``(metadata, arrays)`` of host copies: a snapshot
    that stays valid while training goes on (`fit` keeps one per epoch, so an interrupted run
    can still save its last completed epoch). Write it with `archive.write_archive`."""
    if not hasattr(model, "named_variables") or not hasattr(model, "shuffle_rng"):
        raise TypeError(f"save_checkpoint saves a bp.Sequential model; got {type(model).__name__}")
    model._require_built()
    arrays: dict[str, np.ndarray] = {f"model/{name}": value for name, value in model.state_dict().items()}
    metadata: dict[str, Any] = {
        "library_version": __version__,
        "architecture": layer_config(model),  # type: ignore[arg-type]  # a model is a layer
        "dtype": model.dtype,
        "precision": getattr(model, "precision", "fp32"),
        "loss_scaler": _loss_scaler(getattr(model, "loss_scaler", None)),
        "device": model.device.name,
        "seed": int(model.seed),
        "training": bool(model.training),
        "rng": pack(rng_states(model), "the random generators' states", arrays, "rng"),
        "optimizer": None if optimizer is None else _optimizer_metadata(model, optimizer, arrays),
        "scheduler": None if scheduler is None else _scheduler_metadata(scheduler, arrays),
        "epoch": _epoch(epoch),
        "history": None if history is None else pack(_history_dict(history), "history", arrays, "history"),
        "extra": pack(_extra(extra), "extra", arrays, "extra"),
        "classes": classes_json(getattr(model, "classes", None)),  # the labels the model predicts
        "threshold": getattr(model, "threshold", None),  # its cut of one output into two labels
    }
    return metadata, arrays


def _optimizer_metadata(
    model: CheckpointedModel, optimizer: Optimizer, arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The optimizer's type, hyperparameters, which of the model's parameters it updates (by
    name) and its state: arrays become ``optimizer/<i>.<key>`` members, scalars stay here."""
    if not hasattr(optimizer, "state_dict") or not hasattr(optimizer, "params"):
        raise TypeError(f"optimizer must be a bp.optim optimizer; got {type(optimizer).__name__}")
    names = {id(p): name for name, p in model.named_variables()}
    foreign = [getattr(p, "name", repr(p)) for p in optimizer.params if id(p) not in names]
    if foreign:
        raise ValueError(
            f"the optimizer updates parameters that are not this model's ({', '.join(map(repr, foreign))}): it was "
            "built for another model (or before this one was rebuilt); pass the optimizer made with this "
            "model's parameters()"
        )
    saved = optimizer.state_dict()
    scalars = {}
    for key, value in saved["state"].items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer/{key}"] = value
        else:
            scalars[key] = pack(value, f"optimizer state {key!r}", arrays, "optimizer_scalars")
    return {
        "type": saved["type"],
        "hyperparameters": pack(saved["hyperparameters"], "optimizer hyperparameters", arrays, "optimizer_hp"),
        "params": [names[id(p)] for p in optimizer.params],
        "scalars": scalars,
        # the base lr a learning-rate schedule records on the optimizer (see optim.lr_scheduler)
        "initial_lr": pack(getattr(optimizer, "initial_lr", None), "optimizer.initial_lr", arrays, "optimizer_hp"),
        # an optimizer saved before its first step holds no state: said so, a reader can tell
        # it from a file whose state was lost (which it refuses)
        "empty_state": not saved["state"],
    }


def _loss_scaler(scaler: Any) -> dict[str, Any] | None:
    """A model's dynamic loss scaling (`LossScaler.state_dict`: JSON numbers), or ``None``."""
    return None if scaler is None else scaler.state_dict()


def _scheduler_metadata(scheduler: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if not callable(getattr(scheduler, "state_dict", None)):
        raise TypeError(f"scheduler must have a state_dict() method; got {type(scheduler).__name__}")
    return {
        "type": type(scheduler).__name__,
        "state": pack(scheduler.state_dict(), "scheduler state", arrays, "scheduler"),
    }


def _history_dict(history: History) -> dict[str, Any]:
    if not callable(getattr(history, "to_dict", None)):
        raise TypeError(f"history must be a bp.History (what fit returns); got {type(history).__name__}")
    return history.to_dict()


def _extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict of JSON values and NumPy arrays; got {type(extra).__name__}")
    return extra


def _epoch(epoch: Any) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer; got {epoch!r}")
    return int(epoch)

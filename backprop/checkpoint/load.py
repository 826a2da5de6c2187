"""Loading: `read_checkpoint` (model and training state, the model built by the caller's
`ModelFactory`) and `load_weights` (weights into a model you built).

`bp.load_checkpoint` and `bp.load` (`backprop.loading`) call `read_checkpoint` with
`bp.Sequential`: checkpoints sit below the model, so they never import it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..backends import DeviceLike, get_device
from ..history import History
from ..layers import layer_config, layer_from_config
from ..registry import OPTIMIZERS
from .archive import read_archive
from .errors import CheckpointError, checkpoint_error
from .jsonable import unpack
from .protocol import CheckpointedModel, ModelFactory
from .rng import restore_rng_states

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["Checkpoint", "load_weights", "read_checkpoint"]

_MODEL = "model/"
_OPTIMIZER = "optimizer/"


@dataclass
class Checkpoint:
    """What `load_checkpoint` (`read_checkpoint`) restores.

    ``optimizer`` is rebuilt from its saved type and hyperparameters, bound to the model's
    parameters, with its state loaded (``None`` if none was saved). ``scheduler_state`` is the
    saved scheduler's ``state_dict()``: build your scheduler on ``optimizer`` and call its
    ``load_state_dict(scheduler_state)``. ``metadata`` is everything the file records
    (library version, device it was saved from, ...).
    """

    model: CheckpointedModel
    optimizer: Optimizer | None
    scheduler_state: dict[str, Any] | None
    epoch: int
    history: History
    extra: dict[str, Any]
    metadata: dict[str, Any] = field(repr=False)


def read_checkpoint(
    path: str | os.PathLike[str], build: ModelFactory, device: DeviceLike | None = None, dtype: str | None = None
) -> Checkpoint:
    """Load a file written by `save_checkpoint`, ready to continue training exactly.

    The model is rebuilt from the saved architecture by ``build(*layers, device=, dtype=,
    seed=)`` (`bp.Sequential`) on ``device`` (default ``"cpu"``, wherever the file was saved
    from) as ``dtype`` (default: the saved one), its weights and random generators' states
    are restored, and so is the optimizer. Any problem with the file raises `CheckpointError`
    naming it.
    """
    target = get_device(device)
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64' (or None for the saved one); got {dtype!r}")
    packed, arrays = read_archive(path)
    with _translate(path, "its metadata"):
        metadata = unpack(packed, arrays)
        epoch = metadata["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch is {epoch!r}, not an integer")
        extra = metadata["extra"]
        if not isinstance(extra, dict):
            raise TypeError(f"extra is a {type(extra).__name__}, not a dict")
        history = History() if metadata["history"] is None else History.from_dict(metadata["history"])
        scheduler = metadata["scheduler"]
        scheduler_state = None if scheduler is None else scheduler["state"]
        has_optimizer = metadata["optimizer"] is not None
    model = _build_model(path, build, metadata, arrays, target, dtype)
    optimizer = _build_optimizer(path, metadata, arrays, model) if has_optimizer else None
    return Checkpoint(model, optimizer, scheduler_state, epoch, history, extra, metadata)


def load_weights(model: CheckpointedModel, path: str | os.PathLike[str]) -> None:
    """Copy a checkpoint's weights (and saved state) into ``model``, which keeps its device,
    dtype, random generators and everything else. The checkpoint's architecture must be the
    model's: otherwise `CheckpointError` lists the differing layers and parameters (names
    and shapes) and the model is unchanged."""
    packed, arrays = read_archive(path)
    state = {name[len(_MODEL) :]: value for name, value in arrays.items() if name.startswith(_MODEL)}
    with _translate(path, "its architecture"):
        problems = _layer_differences(packed["architecture"], model)
    problems += _weight_differences(state, model)
    if problems:
        raise checkpoint_error(path, "its weights do not fit this model: " + "; ".join(problems))
    with _translate(path, "its weights"):
        model.load_state_dict(state)


# ---------------------------------------------------------------------------------- rebuilding
def _build_model(
    path: str | os.PathLike[str],
    build: ModelFactory,
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    device: Any,
    dtype: str | None,
) -> CheckpointedModel:
    with _translate(path, "its architecture"):
        architecture = metadata["architecture"]
        if architecture.get("class") != "Sequential":
            raise ValueError(f"the saved model is a {architecture.get('class')!r}, not a Sequential")
        try:
            layers = [layer_from_config(d) for d in architecture["config"]["layers"]]
        except ValueError as exc:
            if "unknown layer type" not in str(exc):
                raise
            raise ValueError(
                f"{exc}. The file was written by backprop {metadata.get('library_version')}; this is backprop "
                f"{__version__}: a newer version may know that layer"
            ) from exc
        model = build(*layers, device=device, dtype=dtype or metadata["dtype"], seed=metadata["seed"])
    state = {name[len(_MODEL) :]: value for name, value in arrays.items() if name.startswith(_MODEL)}
    with _translate(path, "its weights"):
        model.load_state_dict(state)
    with _translate(path, "its random generators' states"):
        restore_rng_states(model, metadata["rng"])
        model.train(bool(metadata.get("training", True)))
    return model


def _build_optimizer(
    path: str | os.PathLike[str], metadata: dict[str, Any], arrays: dict[str, np.ndarray], model: CheckpointedModel
) -> Optimizer:
    with _translate(path, "its optimizer"):
        saved = metadata["optimizer"]
        name = saved["type"]
        if not isinstance(name, str) or name not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer type {name!r} (this backprop {__version__} has {', '.join(OPTIMIZERS)}; "
                "an optimizer of your own must be registered first: @bp.register_optimizer)"
            )
        cls = OPTIMIZERS[name]
        own = dict(model.named_variables())
        missing = [n for n in saved["params"] if n not in own]
        if missing:
            raise ValueError(f"it updates parameters {missing} that the model does not have")
        optimizer = cls.from_config([own[n] for n in saved["params"]], saved["hyperparameters"])
        state = dict(saved["scalars"])
        state.update({key[len(_OPTIMIZER) :]: value for key, value in arrays.items() if key.startswith(_OPTIMIZER)})
        optimizer.load_state_dict({"type": name, "hyperparameters": saved["hyperparameters"], "state": state})
        if saved.get("initial_lr") is not None:  # the base lr a learning-rate schedule recorded
            optimizer.initial_lr = float(saved["initial_lr"])  # type: ignore[attr-defined]
    return optimizer


# ---------------------------------------------------------------------------------- comparing
def _layer_differences(saved: dict[str, Any], model: CheckpointedModel) -> list[str]:
    """Where the layer types differ, position by position (empty if the model cannot be
    described: then only the weights are compared)."""
    try:
        ours = _layer_types(layer_config(model))  # type: ignore[arg-type]  # a model is a layer
    except TypeError:
        return []
    theirs = _layer_types(saved)
    problems = []
    for position in sorted(set(ours) | set(theirs), key=lambda p: [int(s) if s.isdigit() else s for s in p.split(".")]):
        a, b = theirs.get(position), ours.get(position)
        if a != b:
            problems.append(f"layer {position!r} is {a or 'absent'} in the checkpoint but {b or 'absent'} in the model")
    return problems


def _layer_types(description: dict[str, Any], position: str = "") -> dict[str, str]:
    """``{position: layer class}`` for every layer in a `layer_config` description; the
    layers of a container (a config with a ``"layers"`` list) are numbered inside it."""
    types = {position: str(description["class"])} if position else {}
    for i, child in enumerate(description.get("config", {}).get("layers", [])):
        types.update(_layer_types(child, f"{position}.{i}" if position else str(i)))
    return types


def _weight_differences(state: dict[str, np.ndarray], model: CheckpointedModel) -> list[str]:
    own = {name: p.shape for name, p in model.named_variables()}
    problems = [f"the model's {n!r} {shape} is not in the checkpoint" for n, shape in own.items() if n not in state]
    problems += [f"the checkpoint's {n!r} {v.shape} is not in the model" for n, v in state.items() if n not in own]
    problems += [
        f"{n!r} is {state[n].shape} in the checkpoint but {shape} in the model"
        for n, shape in own.items()
        if n in state and tuple(state[n].shape) != shape
    ]
    return problems


@contextlib.contextmanager
def _translate(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn the errors a malformed file provokes while it is being interpreted into a
    `CheckpointError` that says which part of the file is wrong."""
    try:
        yield
    except CheckpointError:
        raise
    except KeyError as exc:
        missing = exc.args[0] if exc.args else "an entry"
        raise checkpoint_error(path, f"{what} cannot be read: the entry {missing!r} is missing") from exc
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise checkpoint_error(path, f"{what} cannot be used: {exc}") from exc

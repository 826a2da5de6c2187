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
from typing import TYPE_CHECKING, Any, Generic

import numpy as np

from ..backends import DeviceLike, get_device
from ..history import History
from ..layers import layer_config
from ..loss_scaling import LossScaler
from ..memory import available_host_memory, format_bytes
from ..registry import OPTIMIZERS
from . import contents
from .archive import Archive, open_archive
from .errors import CheckpointError, checkpoint_error
from .jsonable import unpack
from .members import Limits
from .protocol import CheckpointedModel, M, ModelFactory
from .rng import restore_rng_states

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["Checkpoint", "load_weights", "read_checkpoint"]

_MODEL = "model/"
_OPTIMIZER = "optimizer/"


@dataclass
class Checkpoint(Generic[M]):
    """What `load_checkpoint` (`read_checkpoint`) restores.

    ``optimizer`` is rebuilt from its saved type and hyperparameters, bound to the model's
    parameters, with its state loaded (``None`` if none was saved). ``scheduler_state`` is the
    saved scheduler's ``state_dict()``: build your scheduler on ``optimizer`` and call its
    ``load_state_dict(scheduler_state)``. ``metadata`` is everything the file records
    (library version, device it was saved from, ...).
    """

    model: M
    optimizer: Optimizer | None
    scheduler_state: dict[str, Any] | None
    epoch: int
    history: History
    extra: dict[str, Any]
    metadata: dict[str, Any] = field(repr=False)


def read_checkpoint(
    path: str | os.PathLike[str],
    build: ModelFactory[M],
    device: DeviceLike | None = None,
    dtype: str | None = None,
    *,
    precision: str | None = None,
    limits: Limits | None = None,
) -> Checkpoint[M]:
    """Load a file written by `save_checkpoint`, ready to continue training exactly.

    The model is rebuilt from the saved architecture by ``build(*layers, device=, dtype=,
    seed=)`` (`bp.Sequential`) on ``device`` (default ``"cpu"``, wherever the file was saved
    from) as ``dtype`` in ``precision`` (default: the saved ones; files from before mixed
    precision hold fp32 models), its weights, loss scaler and random generators' states are
    restored, and so is the optimizer (also kept as ``model.optimizer``, which a later
    ``fit(optimizer="<its name>")`` continues). The whole file is checked before anything is
    allocated for it (see `backprop.checkpoint.contents`); ``limits`` bounds what is accepted
    (`archive.Limits`). Any problem with the file raises `CheckpointError` naming it.
    """
    target = get_device(device)
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64' (or None for the saved one); got {dtype!r}")
    with open_archive(path, limits) as archive:
        plan = contents.plan(path, archive, dtype)
        _check_memory(path, archive, plan, target)
        arrays = contents.read_arrays(path, archive, plan)
        packed = archive.metadata
    with _translate(path, "its metadata"):
        metadata = unpack(packed, arrays)
    _check_rng_states(path, metadata["rng"])
    epoch = metadata["epoch"]
    extra = metadata["extra"]
    with _translate(path, "its history"):
        history = History() if metadata["history"] is None else History.from_dict(metadata["history"])
    scheduler = metadata["scheduler"]
    scheduler_state = None if scheduler is None else scheduler["state"]
    model = _build_model(path, build, metadata, plan, arrays, target, dtype, precision)
    optimizer = _build_optimizer(path, metadata, arrays, model) if metadata["optimizer"] is not None else None
    if optimizer is not None and hasattr(model, "optimizer"):
        # as the model's own: a later fit(optimizer="adam") continues it instead of starting over
        model.optimizer = optimizer
    return Checkpoint(model, optimizer, scheduler_state, epoch, history, extra, metadata)


def load_weights(model: CheckpointedModel, path: str | os.PathLike[str], *, limits: Limits | None = None) -> None:
    """Copy a checkpoint's weights (and saved state) into ``model``, which keeps its device,
    dtype, random generators and everything else. The checkpoint's architecture must be the
    model's: otherwise `CheckpointError` lists the differing layers and parameters (names
    and shapes) and the model is unchanged. The file is checked in full first, as
    `read_checkpoint` checks it."""
    with open_archive(path, limits) as archive:
        plan = contents.plan(path, archive, getattr(model, "dtype", None))
        packed = archive.metadata
        state_shapes = {
            name[len(_MODEL) :]: member.shape for name, member in archive.members.items() if name.startswith(_MODEL)
        }
        with _translate(path, "its architecture"):
            problems = _layer_differences(packed["architecture"], model)
        problems += _weight_differences(state_shapes, model)
        if problems:
            raise checkpoint_error(path, "its weights do not fit this model: " + "; ".join(problems))
        _check_memory(path, archive, plan, None)
        arrays = contents.read_arrays(path, archive, plan)
    state = {name[len(_MODEL) :]: value for name, value in arrays.items() if name.startswith(_MODEL)}
    with _translate(path, "its weights"):
        model.load_state_dict(state)


def _check_memory(path: str | os.PathLike[str], archive: Archive, plan: contents.Plan, device: Any) -> None:
    """Refuse, before reading any data, a file whose loading needs more memory than this
    process has: its members, plus (when the model is built on the host) the model's weights
    and the largest layer's float64 initial values, which building draws first."""
    available = available_host_memory()
    if available is None:
        return
    on_host = device is None or getattr(device, "type", "cpu") == "cpu"
    needed = archive.total_bytes + plan.largest_parameter * 8 + (plan.parameter_bytes if on_host else 0)
    if needed > available:
        raise checkpoint_error(
            path,
            f"loading it needs about {format_bytes(needed)} of memory ({format_bytes(archive.total_bytes)} of arrays "
            f"and a model of {format_bytes(plan.parameter_bytes)}) but this process has {format_bytes(available)} "
            "available: free memory or load it on a machine with more",
        )


def _check_rng_states(path: str | os.PathLike[str], states: dict[str, Any]) -> None:
    """Set each saved state on a new generator of its kind: a state NumPy would refuse (or
    overflow on) is refused here, before the model exists."""
    for key, state in states.items():
        if key.endswith(":streams"):
            continue
        try:
            generator = getattr(np.random, state["bit_generator"])()
            generator.state = state
        except Exception as exc:
            raise checkpoint_error(
                path,
                f"its random generators' states cannot be used: the state of {key!r} is not a valid "
                f"{state.get('bit_generator')} state ({type(exc).__name__}: {exc})",
            ) from exc


# ---------------------------------------------------------------------------------- rebuilding
def _build_model(
    path: str | os.PathLike[str],
    build: ModelFactory[M],
    metadata: dict[str, Any],
    plan: contents.Plan,
    arrays: dict[str, np.ndarray],
    device: Any,
    dtype: str | None,
    precision: str | None,
) -> M:
    mode = precision or metadata.get("precision", "fp32")
    options = {} if mode == "fp32" and precision is None else {"precision": mode}  # a factory of fp32 models needs none
    with _translate(path, "its architecture"):
        model = build(*plan.layers, device=device, dtype=dtype or metadata["dtype"], seed=metadata["seed"], **options)
    scaler = metadata.get("loss_scaler")
    if scaler is not None and getattr(model, "loss_scaler", None) is not None:
        with _translate(path, "its loss scaler"):
            model.loss_scaler = LossScaler.from_state_dict(scaler)  # type: ignore[attr-defined]
    state = {name[len(_MODEL) :]: value for name, value in arrays.items() if name.startswith(_MODEL)}
    with _translate(path, "its weights"):
        model.load_state_dict(state)
    with _translate(path, "its random generators' states"):
        restore_rng_states(model, metadata["rng"])
        model.train(metadata["training"])
    if metadata.get("classes") is not None:
        with _translate(path, "its class labels"):  # one per output class, else refused
            model.classes = metadata["classes"]  # type: ignore[attr-defined]  # a bp.Sequential's
    if metadata.get("threshold") is not None:
        model.threshold = float(metadata["threshold"])  # type: ignore[attr-defined]  # a finite number
    return model


def _build_optimizer(
    path: str | os.PathLike[str], metadata: dict[str, Any], arrays: dict[str, np.ndarray], model: CheckpointedModel
) -> Optimizer:
    with _translate(path, "its optimizer"):
        saved = metadata["optimizer"]
        name = saved["type"]
        cls: Any = OPTIMIZERS[name]
        own = dict(model.named_variables())
        missing = [n for n in saved["params"] if n not in own]
        if missing:
            raise ValueError(f"it updates parameters {missing} that the model does not have")
        optimizer: Optimizer = cls.from_config([own[n] for n in saved["params"]], saved["hyperparameters"])
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


def _weight_differences(state: dict[str, tuple[int, ...]], model: CheckpointedModel) -> list[str]:
    own = {name: tuple(p.shape) for name, p in model.named_variables()}
    problems = [f"the model's {n!r} {shape} is not in the checkpoint" for n, shape in own.items() if n not in state]
    problems += [f"the checkpoint's {n!r} {shape} is not in the model" for n, shape in state.items() if n not in own]
    problems += [
        f"{n!r} is {state[n]} in the checkpoint but {shape} in the model"
        for n, shape in own.items()
        if n in state and tuple(state[n]) != shape
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

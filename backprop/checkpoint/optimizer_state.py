"""The optimizer's part of a checkpoint: its type is registered, a built-in optimizer's
hyperparameters are in range, it updates trainable parameters the architecture has, and its
state (scalars in the metadata, arrays as members ``optimizer/<index>.<state>``) is exactly
what its type keeps for every parameter once it has stepped, each array a float of the
parameter's shape."""

from __future__ import annotations

import re
from typing import Any

from .._version import __version__
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop
from ..registry import OPTIMIZERS
from .architecture import OPTIMIZER, Plan, check_float_member
from .archive import Archive
from .errors import checkpoint_error
from .metadata_fields import NAME
from .schema import Bool, Int, ListOf, Number, Record, SchemaError

__all__ = ["check_optimizer"]

_LR = Number(low=0)
_NN = Number(low=0)
_HYPERPARAMETERS: dict[type, Record] = {
    SGD: Record({"lr": _LR, "momentum": _NN, "nesterov": Bool(), "weight_decay": _NN,
                 "dampening": Number(0, 1)}),
    Adam: Record({"lr": _LR, "betas": ListOf(Number(0, 1), min_length=2, max_length=2), "eps": _NN,
                  "weight_decay": _NN}),
    RMSprop: Record({"lr": _LR, "alpha": Number(0, 1), "eps": _NN, "weight_decay": _NN, "momentum": _NN,
                     "centered": Bool()}),
    Adagrad: Record({"lr": _LR, "lr_decay": _NN, "weight_decay": _NN, "initial_accumulator_value": _NN,
                     "eps": _NN}),
}
_HYPERPARAMETERS[AdamW] = _HYPERPARAMETERS[Adam]


def _state_keys(kind: type, hp: dict[str, Any]) -> tuple[dict[str, bool], tuple[str, ...]] | None:
    """A built-in optimizer's per-parameter state once it has stepped: its arrays (name ->
    whether they are non-negative) and its step counts; ``None`` for another optimizer."""
    if kind is SGD:
        return ({"momentum_buffer": False} if hp["momentum"] else {}), ()
    if kind is Adam or kind is AdamW:
        return {"exp_avg": False, "exp_avg_sq": True}, ("step",)
    if kind is RMSprop:
        arrays = {"square_avg": True}
        if hp["centered"]:
            arrays["grad_avg"] = False
        if hp["momentum"]:
            arrays["momentum_buffer"] = False
        return arrays, ()
    if kind is Adagrad:
        return {"sum": True}, ("step",)
    return None


def check_optimizer(path: Any, saved: dict[str, Any], archive: Archive, result: Plan) -> None:
    what = "its optimizer cannot be used"
    name = saved["type"]
    if name not in OPTIMIZERS:
        raise checkpoint_error(
            path,
            f"{what}: unknown optimizer type {name!r} (this backprop {__version__} has {', '.join(OPTIMIZERS)}; "
            "an optimizer of your own must be registered first: @bp.register_optimizer)",
        )
    kind = OPTIMIZERS[name]
    hp = saved["hyperparameters"]
    schema = _HYPERPARAMETERS.get(kind)
    if schema is not None:
        try:
            schema.check(hp, "optimizer['hyperparameters']")
        except SchemaError as exc:
            raise checkpoint_error(path, f"{what}: {exc}") from None
    params = saved["params"]
    shapes: list[tuple[int, ...] | None] = []
    for param in params:
        variable = result.weight_shape(param)
        if variable is None or not variable.trainable:
            reason = "that the model does not have" if variable is None else "that are not trainable"
            raise checkpoint_error(path, f"{what}: it updates parameters {[param]} {reason}")
        shapes.append(variable.shape)
    # the state: scalars in the metadata, arrays as members "optimizer/<i>.<key>"
    state: dict[int, dict[str, str]] = {}
    for key in saved["scalars"]:
        index, _, entry = key.partition(".")
        state.setdefault(int(index), {})[entry] = "scalar"
    for member_name in archive.members:
        if not member_name.startswith(OPTIMIZER):
            continue
        key = member_name[len(OPTIMIZER):]
        match = re.fullmatch(rf"(\d{{1,9}})\.({NAME})", key)
        if match is None:
            raise checkpoint_error(path, f"{what}: member {member_name!r} is not named optimizer/<index>.<state>")
        index, entry = int(match.group(1)), match.group(2)
        if entry in state.get(index, {}):
            raise checkpoint_error(path, f"{what}: state {key!r} is both a scalar and an array member")
        state.setdefault(index, {})[entry] = "array"
    for index, entries in state.items():
        if index >= len(params):
            first = next(iter(entries))
            raise checkpoint_error(
                path, f"{what}: it has state {index}.{first} but it updates {len(params)} parameters (0 to "
                f"{len(params) - 1})"
            )
    rules = None if schema is None else _state_keys(kind, hp)
    for index, entries in state.items():
        for entry, form in entries.items():
            non_negative = False
            if rules is not None:
                arrays, counts = rules
                if entry not in arrays and entry not in counts:
                    keeps = ", ".join([*arrays, *counts]) or "no state"
                    raise checkpoint_error(path, f"{what}: it has state {index}.{entry}, but {name} keeps {keeps}")
                wanted = "array" if entry in arrays else "scalar"
                if form != wanted:
                    raise checkpoint_error(
                        path, f"{what}: state {index}.{entry} is {'an array member' if form == 'array' else 'a scalar'}"
                        f" but {name} keeps it as {'an array' if wanted == 'array' else 'a whole number'}"
                    )
                non_negative = arrays.get(entry, False)
                if entry in counts:
                    try:
                        key = f"{index}.{entry}"
                        Int(1, 2**53).check(saved["scalars"][key], f"optimizer['scalars'][{key!r}]")
                    except SchemaError as exc:
                        raise checkpoint_error(path, f"{what}: {exc} (a count of the updates made)") from None
            if form == "array":
                member = archive.members[f"{OPTIMIZER}{index}.{entry}"]
                check_float_member(path, member, result, "its optimizer", shapes[index],
                                    f"parameter {params[index]!r}")
                result.optimizer_arrays[member.name] = (shapes[index], non_negative)
    if rules is None:
        return
    arrays, counts = rules
    expected = set(arrays) | set(counts)
    empty = saved.get("empty_state")
    if empty and state:
        raise checkpoint_error(path, f"{what}: the file says its state is empty, but it has state")
    if not expected or (empty and not state):
        return  # no state to keep, or an optimizer saved before its first step
    if not state:
        raise checkpoint_error(
            path,
            f"{what}: its state is empty, but {name} keeps {', '.join(sorted(expected))} for every parameter once it "
            "has made a step, and the file does not say it was saved before one; loading it would silently restart "
            "the optimizer (load the weights alone with load_weights if that is what you want)",
        )
    for index in range(len(params)):
        have = set(state.get(index, {}))
        if have != expected:
            lacking = ", ".join(sorted(expected - have))
            raise checkpoint_error(
                path,
                f"{what}: the state of parameter {index} ({params[index]!r}) lacks {lacking}; {name} keeps "
                f"{', '.join(sorted(expected))} for every parameter it updates, so the file is incomplete",
            )

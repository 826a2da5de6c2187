"""What a checkpoint must contain, checked before any member's data is read.

`plan` takes an `Archive` whose directory, headers and metadata JSON are already checked for
form (`archive.open_archive`) and checks the metadata against its schema (`metadata_schema`:
every field's type, range and nesting), then the consistency between its parts: the layers
the architecture names are registered and their configurations are what the layers read back;
the parameters the architecture implies (Dense in and out features, norm features) are exactly
the weight members, with the declared shapes and the checkpoint's dtype; the optimizer updates
parameters the model has and its state is complete for its type; every array reference names a
member under its field's prefix; and no member is there that nothing refers to. The `Plan` it
returns says what each member must hold, and `read_arrays` reads them and checks their values
(weights and optimizer state finite real floats that fit the target dtype, Adam's second
moments and running variances non-negative). Every refusal is a `CheckpointError` paragraph.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..layers import (
    GELU,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    layer_from_config,
)
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop
from ..registry import LAYERS, OPTIMIZERS, SCHEDULES
from .archive import METADATA, Archive, Member
from .errors import checkpoint_error
from .schema import (
    JSON,
    Bool,
    Check,
    Int,
    ListOf,
    MapOf,
    Nullable,
    Number,
    Record,
    SchemaError,
    Spec,
    Str,
    describe,
    references,
)

__all__ = ["FIELDS", "Plan", "metadata_schema", "plan", "read_arrays"]

MODEL = "model/"
OPTIMIZER = "optimizer/"
MAX_CONTAINER_DEPTH = 16
MAX_LAYERS = 100_000
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,99}"
_PARAMETER = rf"(?:\d{{1,9}}|block)(?:\.(?:\d{{1,9}}|block))*\.{_NAME}"
_PCG = ("PCG64", "PCG64DXSM")
_BIT_GENERATORS = (*_PCG, "MT19937", "Philox", "SFC64")


# ---------------------------------------------------------------------------------- the schema
def _bit_generator_state(prefix: str) -> Spec:
    """A NumPy bit generator's ``state`` dict: PCG64's checked field by field; the others'
    arrays are references, checked by setting them on a generator of that type later."""
    u128, u32 = Int(0, 2**128 - 1), Int(0, 2**32 - 1)

    def fields(value: dict[str, Any], where: str) -> None:
        if value["bit_generator"] in _PCG:
            Record(
                {"bit_generator": Str(), "state": Record({"state": u128, "inc": u128}),
                 "has_uint32": Int(0, 1), "uinteger": u32},
            ).check(value, where)

    return Check(Record({"bit_generator": Str(choices=_BIT_GENERATORS)}, others=JSON(prefix)), fields)


def _history_consistent(value: dict[str, Any], where: str) -> None:
    epochs = value["epochs"]
    for i in range(1, len(epochs)):
        if epochs[i] <= epochs[i - 1]:
            raise SchemaError(f"{where}['epochs'][{i}]", f"is {epochs[i]} after {epochs[i - 1]}; epochs must increase")
    for key, series in value["history"].items():
        if len(series) > len(epochs):
            raise SchemaError(
                f"{where}['history'][{key!r}]",
                f"has {len(series)} values for {len(epochs)} epochs; a history has at most one value per epoch",
            )


def _scheduler_consistent(value: dict[str, Any], where: str) -> None:
    state = value["state"]
    kind = state.get("type")
    if kind is None:
        return  # a schedule of the user's own: any state_dict()
    if kind != value["type"]:
        raise SchemaError(
            f"{where}['state']['type']", f"is {describe(kind)} but the scheduler is {describe(value['type'])}"
        )
    if isinstance(kind, str) and kind in SCHEDULES:
        Record(
            {"type": Str(), "hyperparameters": MapOf(Str(), JSON("scheduler")), "base_lr": Number(low=0),
             "last_epoch": Int(0, 2**53), "last_lr": Number(low=0)},
            others=JSON("scheduler"),
        ).check(state, f"{where}['state']")


#: One layer's description: its registered name and its configuration (JSON, no arrays).
_DESCRIPTION = Record({"class": Str(max_length=200)}, {"config": MapOf(Str(), JSON(None))})

#: The top-level fields: how messages name each, and its spec.
FIELDS: dict[str, tuple[str, Spec]] = {
    "architecture": (
        "its architecture",
        Record({"class": Str(), "config": Record({"layers": ListOf(_DESCRIPTION, max_length=MAX_LAYERS)})}),
    ),
    "dtype": ("its dtype", Str(choices=("float32", "float64"))),
    "seed": ("its seed", Int(0, 2**63 - 1)),
    "training": ("its training mode", Bool()),
    "rng": (
        "its random generators' states",
        Check(
            MapOf(Str(pattern=rf"shuffle|noise|[0-9A-Za-z_.]{{1,1000}}:{_NAME}"), JSON("rng"), max_length=MAX_LAYERS),
            lambda value, where: _rng_entries(value, where),
        ),
    ),
    "optimizer": (
        "its optimizer",
        Nullable(Record(
            {
                "type": Str(max_length=200),
                "hyperparameters": MapOf(Str(pattern=_NAME), JSON("optimizer_hp"), max_length=100),
                "params": ListOf(Str(pattern=_PARAMETER), min_length=1, max_length=10 * MAX_LAYERS, unique=True),
                "scalars": MapOf(Str(pattern=rf"\d{{1,9}}\.{_NAME}"), JSON("optimizer_scalars")),
                "initial_lr": Nullable(Number(low=0)),
            },
            {"empty_state": Bool()},
        )),
    ),
    "scheduler": (
        "its scheduler state",
        Nullable(Check(Record({"type": Str(max_length=200), "state": MapOf(Str(), JSON("scheduler"))}),
                       _scheduler_consistent)),
    ),
    "epoch": ("its epoch", Int(0, 2**53)),
    "history": (
        "its history",
        Nullable(Check(
            Record({"epochs": ListOf(Int(1, 2**53)),
                    "history": MapOf(Str(max_length=200), ListOf(Number(finite=False)), max_length=10_000)},
                   {"warnings": ListOf(Record({"epoch": Int(1, 2**53), "message": Str(max_length=10_000)}),
                                       max_length=10_000)}),
            _history_consistent,
        )),
    ),
    "extra": ("its extra values", MapOf(Str(max_length=10_000), JSON("extra"))),
    "library_version": ("its library version", Str(max_length=100)),
    "device": ("its device", Str(max_length=100)),
}
_OPTIONAL = ("library_version", "device")


def _rng_entries(value: dict[str, Any], where: str) -> None:
    for key in ("shuffle", "noise"):
        if key not in value:
            raise SchemaError(where, f"has no entry {key!r}")
    for key, state in value.items():
        if key.endswith(":streams"):
            Record({"spawned": Int(0, 2**32)}).check(state, f"{where}[{key!r}]")
        else:
            _bit_generator_state("rng").check(state, f"{where}[{key!r}]")
    for key in ("shuffle", "noise"):
        if value[key]["bit_generator"] != "PCG64":
            raise SchemaError(f"{where}[{key!r}]['bit_generator']", f"is {describe(value[key]['bit_generator'])}; a "
                              "model's own generators are PCG64")


def metadata_schema(path: Any, metadata: dict[str, Any]) -> None:
    """Check every top-level field of ``metadata`` against `FIELDS`."""
    for key, (what, spec) in FIELDS.items():
        if key not in metadata:
            if key in _OPTIONAL:
                continue
            raise checkpoint_error(path, f"{what} cannot be read: the entry {key!r} is missing")
        try:
            spec.check(metadata[key], key)
        except SchemaError as exc:
            raise checkpoint_error(path, f"{what} cannot be used: {exc}") from None


# ---------------------------------------------------------------------------------- the plan
@dataclass
class Variable:
    """A weight member the architecture implies: its shape (``None``: a layer of the user's
    own, whose variables are not known before it is built) and value rules."""

    shape: tuple[int, ...] | None
    trainable: bool = True
    non_negative: bool = False
    layer: str = ""


@dataclass
class Plan:
    """What every member of a checked checkpoint must hold."""

    dtype: np.dtype  # the checkpoint's float dtype
    target: np.dtype  # the dtype the arrays will be used as
    layers: list[Layer]
    variables: dict[str, Variable]  # by parameter name ("0.W")
    open_prefixes: tuple[str, ...]  # parameter-name prefixes of layers whose variables are unknown
    layer_paths: set[str]
    optimizer_arrays: dict[str, tuple[tuple[int, ...] | None, bool]] = field(default_factory=dict)
    referenced: dict[str, str] = field(default_factory=dict)  # member -> the field that refers to it

    def weight_shape(self, name: str) -> Variable | None:
        found = self.variables.get(name)
        if found is not None:
            return found
        if any(name.startswith(prefix) for prefix in self.open_prefixes):
            return Variable(None, layer="a layer of your own")
        return None

    @property
    def parameter_bytes(self) -> int:
        """Bytes of the known variables in the target dtype."""
        return sum(math.prod(v.shape) for v in self.variables.values() if v.shape is not None) * self.target.itemsize

    @property
    def largest_parameter(self) -> int:
        return max((math.prod(v.shape) for v in self.variables.values() if v.shape is not None), default=0)


def plan(path: Any, archive: Archive, dtype: str | None = None) -> Plan:
    """Check ``archive``'s metadata and members without reading their data (see the module's
    documentation); ``dtype`` is the dtype the model will be built in (default the saved one)."""
    metadata = archive.metadata
    metadata_schema(path, metadata)
    saved = np.dtype(metadata["dtype"])
    layers = _layers(path, metadata)
    variables, open_prefixes, layer_paths = _variables(layers)
    result = Plan(saved, np.dtype(dtype) if dtype else saved, layers, variables, open_prefixes, layer_paths)
    _check_rng_paths(path, metadata["rng"], layer_paths)
    _check_references(path, metadata, archive, result)
    _check_weights(path, archive, result)
    if metadata["optimizer"] is not None:
        _check_optimizer(path, metadata["optimizer"], archive, result)
    unexpected = [
        name for name in archive.members
        if name != METADATA and name not in result.referenced and name not in result.optimizer_arrays
        and not (name.startswith(MODEL) and result.weight_shape(name[len(MODEL):]) is not None)
    ]
    if unexpected:
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        listed = ", ".join(map(repr, unexpected[:5])) + more
        raise checkpoint_error(
            path,
            f"it has members that nothing in it refers to ({listed}): neither the architecture's weights, the "
            "optimizer's state nor an array its metadata references; a file backprop writes has no such members "
            "(a tampered or badly merged file)",
        )
    return result


def _layers(path: Any, metadata: dict[str, Any]) -> list[Layer]:
    """The architecture's layers, rebuilt unbuilt (nothing allocated), each checked to read
    back the configuration it was given."""
    architecture = metadata["architecture"]
    if architecture["class"] != "Sequential":
        raise checkpoint_error(
            path,
            f"its architecture cannot be used: the saved model is a {describe(architecture['class'])}, not a "
            "Sequential",
        )
    _check_container_depth(path, architecture)
    layers = []
    for i, description in enumerate(architecture["config"]["layers"]):
        where = f"layer {i}"
        try:
            layer = layer_from_config(description)
        except ValueError as exc:
            if "unknown layer type" in str(exc):
                raise checkpoint_error(
                    path,
                    f"its architecture cannot be used: {exc}. The file was written by backprop "
                    f"{str(metadata.get('library_version'))[:40]}; this is backprop {__version__}: a newer version may "
                    "know that layer",
                ) from exc
            raise checkpoint_error(path, f"its architecture cannot be used: {where}: {exc}") from exc
        except (TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            raise checkpoint_error(
                path, f"its architecture cannot be used: {where} ({description.get('class')!r}) cannot be built from "
                f"its configuration ({type(exc).__name__}: {exc})"
            ) from exc
        _check_read_back(path, layer, description, str(i))
        layers.append(layer)
    return layers


def _check_container_depth(path: Any, architecture: dict[str, Any]) -> None:
    """Containers nested at most `MAX_CONTAINER_DEPTH` deep, `MAX_LAYERS` layers in all, and
    every container's configuration exactly ``{"layers": [descriptions]}``."""
    stack = [(architecture, 0)]
    count = 0
    while stack:
        description, depth = stack.pop()
        count += 1
        if depth > MAX_CONTAINER_DEPTH or count > MAX_LAYERS:
            what = (f"containers nested more than {MAX_CONTAINER_DEPTH} deep" if depth > MAX_CONTAINER_DEPTH
                    else f"more than {MAX_LAYERS:,} layers")
            raise checkpoint_error(path, f"its architecture cannot be used: it has {what}")
        name = description["class"]
        if depth and not (name in LAYERS and issubclass(LAYERS[name], (Sequential, Residual))):
            continue
        config = description.get("config")
        if not isinstance(config, dict) or set(config) != {"layers"} or not isinstance(config["layers"], list):
            raise checkpoint_error(
                path, f"its architecture cannot be used: a {name} container's configuration is {describe(config)}, "
                "not {'layers': [...]}"
            )
        for i, child in enumerate(config["layers"]):
            if depth:  # the model's own layers are checked by the schema already
                try:
                    _DESCRIPTION.check(child, f"a {name}'s layer {i}")
                except SchemaError as exc:
                    raise checkpoint_error(path, f"its architecture cannot be used: {exc}") from None
            stack.append((child, depth + 1))


def _normal(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _check_read_back(path: Any, layer: Layer, description: dict[str, Any], position: str) -> None:
    """A configuration value the layer silently turned into something else (``bias: "no"``
    read as ``True``) is refused, as are nested layers' ones."""
    config = description.get("config", {})
    if isinstance(layer, (Sequential, Residual)):
        inner = layer.block if isinstance(layer, Residual) else layer
        prefix = f"{position}.block" if isinstance(layer, Residual) else position
        for i, (child, child_description) in enumerate(zip(inner.layers, config.get("layers", []))):
            _check_read_back(path, child, child_description, f"{prefix}.{i}")
        return
    for key, value in config.items():
        if type(layer) not in _BUILT_IN or key == "layers" or not hasattr(layer, key):
            continue
        held = getattr(layer, key)
        if isinstance(held, bool) != isinstance(value, bool) or _normal(held) != _normal(value):
            raise checkpoint_error(
                path,
                f"its architecture cannot be used: layer {position!r} ({description['class']}) has {key} "
                f"{describe(value)}, which it reads as {describe(held)}",
            )


_BUILT_IN = (Dense, BatchNorm, LayerNorm, Dropout, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax)


def _variables(layers: list[Layer]) -> tuple[dict[str, Variable], tuple[str, ...], set[str]]:
    """The variables each built-in layer will have, by parameter name, with nothing
    allocated; layers of the user's own leave their name prefix open."""
    variables: dict[str, Variable] = {}
    open_prefixes: list[str] = []
    paths: set[str] = set()
    stack: list[tuple[str, Layer]] = [(str(i), layer) for i, layer in reversed(list(enumerate(layers)))]
    while stack:
        position, layer = stack.pop()
        paths.add(position)
        kind = type(layer)
        if kind is Sequential or kind is Residual:
            children = layer.block.children() if isinstance(layer, Residual) else layer.children()
            base = f"{position}.block" if isinstance(layer, Residual) else position
            if isinstance(layer, Residual):
                paths.add(base)
            stack.extend((f"{base}.{name}", child) for name, child in reversed(children))
        elif kind is Dense and isinstance(layer, Dense):
            variables[f"{position}.W"] = Variable((layer.in_features, layer.out_features), layer=repr(layer))
            if layer.bias:
                variables[f"{position}.b"] = Variable((layer.out_features,), layer=repr(layer))
        elif (kind is BatchNorm or kind is LayerNorm) and isinstance(layer, (BatchNorm, LayerNorm)):
            shape = (layer.features,)
            variables[f"{position}.gamma"] = Variable(shape, layer=repr(layer))
            variables[f"{position}.beta"] = Variable(shape, layer=repr(layer))
            if kind is BatchNorm:
                variables[f"{position}.running_mean"] = Variable(shape, trainable=False, layer=repr(layer))
                variables[f"{position}.running_var"] = Variable(shape, trainable=False, non_negative=True,
                                                                layer=repr(layer))
        elif kind in _BUILT_IN:
            pass  # activations and dropout: no variables
        else:
            open_prefixes.append(position + ".")
    return variables, tuple(open_prefixes), paths


def _check_rng_paths(path: Any, states: dict[str, Any], layer_paths: set[str]) -> None:
    for key in states:
        if key in ("shuffle", "noise"):
            continue
        position = key.rpartition(":")[0]
        if position not in layer_paths:
            raise checkpoint_error(
                path,
                f"its random generators' states cannot be used: the entry {key!r} is for a layer {position!r} its "
                "architecture does not have",
            )


_PREFIXES = {
    "rng": "rng",
    "extra": "extra",
    "history": "history",
    "scheduler": "scheduler",
}


def _check_references(path: Any, metadata: dict[str, Any], archive: Archive, result: Plan) -> None:
    """Every array reference names an existing member under its field's prefix."""
    fields: list[tuple[str, Any]] = [(key, metadata[key]) for key in _PREFIXES]
    optimizer = metadata["optimizer"]
    if optimizer is not None:
        fields += [("optimizer", optimizer["hyperparameters"]), ("optimizer", optimizer["scalars"]),
                   ("optimizer", optimizer["initial_lr"])]
    for key, value in fields:
        for name in references(value):
            what = FIELDS[key][0]
            if name not in archive.members:
                raise checkpoint_error(
                    path, f"{what} cannot be used: array member {name!r}, referenced by the metadata, is missing"
                )
            if name in result.referenced:
                raise checkpoint_error(path, f"{what} cannot be used: array member {name!r} is referenced twice")
            result.referenced[name] = key


def _check_weights(path: Any, archive: Archive, result: Plan) -> None:
    present = {name[len(MODEL):]: member for name, member in archive.members.items() if name.startswith(MODEL)}
    missing = [name for name in result.variables if name not in present]
    if missing:
        name = missing[0]
        variable = result.variables[name]
        raise checkpoint_error(
            path,
            f"its weights cannot be used: the file is missing {name!r} (member '{MODEL}{name}', {variable.shape} for "
            f"{variable.layer}), which its architecture has"
            + (f"; {len(missing) - 1} more are missing" if len(missing) > 1 else ""),
        )
    for name, member in present.items():
        found = result.weight_shape(name)
        if found is not None:  # otherwise reported as a member nothing refers to
            _check_float_member(path, member, result, "its weights", found.shape, found.layer)


def _check_float_member(path: Any, member: Member, result: Plan, what: str, shape: tuple[int, ...] | None,
                        owner: str) -> None:
    dtype = member.dtype
    if dtype.kind != "f" or dtype.itemsize != result.dtype.itemsize:
        raise checkpoint_error(
            path,
            f"{what} cannot be used: member {member.name!r} is {dtype}; weights and optimizer state are real "
            f"floating-point numbers of the checkpoint's dtype, {result.dtype}",
        )
    if shape is not None and member.shape != shape:
        raise checkpoint_error(
            path, f"{what} cannot be used: member {member.name!r} has shape {member.shape} but {owner} needs {shape}"
        )


# ---------------------------------------------------------------------------------- the optimizer
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


def _check_optimizer(path: Any, saved: dict[str, Any], archive: Archive, result: Plan) -> None:
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
        match = re.fullmatch(rf"(\d{{1,9}})\.({_NAME})", key)
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
                _check_float_member(path, member, result, "its optimizer", shapes[index],
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


# ---------------------------------------------------------------------------------- reading values
def read_arrays(path: Any, archive: Archive, result: Plan) -> dict[str, np.ndarray]:
    """Every member but the metadata, read and CRC-checked; weights and optimizer state are
    also checked to be finite, to fit ``result.target`` and, where it matters, non-negative,
    and come back in the native byte order."""
    arrays: dict[str, np.ndarray] = {}
    limit = float(np.finfo(result.target).max)
    for name in archive.members:
        if name == METADATA:
            continue
        value = archive.read(name)
        rule: tuple[str, bool] | None = None
        if name.startswith(MODEL):
            variable = result.weight_shape(name[len(MODEL):])
            rule = ("its weights", bool(variable and variable.non_negative))
        elif name in result.optimizer_arrays:
            rule = ("its optimizer", result.optimizer_arrays[name][1])
        if rule is not None:
            what, non_negative = rule
            if not value.dtype.isnative:
                value = value.astype(value.dtype.newbyteorder("="))
            _check_values(path, name, value, what, non_negative, limit, result.target)
        arrays[name] = value
    return arrays


def _check_values(path: Any, name: str, value: np.ndarray, what: str, non_negative: bool, limit: float,
                  target: np.dtype) -> None:
    if value.size == 0:
        return
    finite = np.isfinite(value)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise checkpoint_error(
            path, f"{what} cannot be used: member {name!r} holds {float(value[where])} at {where}; the values must be "
            "finite"
        )
    del finite
    largest = float(np.max(np.abs(value)))
    if largest > limit:
        raise checkpoint_error(
            path,
            f"{what} cannot be used: member {name!r} holds {largest:.4g}, which does not fit {target} (at most "
            f"{limit:.4g}): it would become infinite",
        )
    if non_negative and float(np.min(value)) < 0:
        where = tuple(int(i) for i in np.argwhere(value < 0)[0])
        raise checkpoint_error(
            path,
            f"{what} cannot be used: member {name!r} holds {float(value[where]):.4g} at {where}; it is a running "
            "average of squares (or a variance) and cannot be negative",
        )

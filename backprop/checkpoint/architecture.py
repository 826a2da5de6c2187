"""The architecture a checkpoint names and the `Plan` built from it: the layers rebuilt unbuilt
(nothing allocated) and checked to read back their configurations, containers nested within
bounds, the variables each built-in layer will have (by parameter name, with their shapes), and
the check that a weight or optimizer-state member is a float of the checkpoint's dtype and the
shape its owner needs."""

from __future__ import annotations

import math
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
    Standardize,
    Tanh,
    layer_from_config,
)
from ..registry import LAYERS
from .errors import checkpoint_error
from .members import Member
from .metadata_fields import DESCRIPTION, MAX_LAYERS
from .schema import SchemaError, describe

__all__ = [
    "MAX_CONTAINER_DEPTH",
    "MODEL",
    "OPTIMIZER",
    "Plan",
    "Variable",
    "check_float_member",
    "layer_variables",
    "rebuild_layers",
]

MODEL = "model/"
OPTIMIZER = "optimizer/"
MAX_CONTAINER_DEPTH = 16


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



def rebuild_layers(path: Any, metadata: dict[str, Any]) -> list[Layer]:
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
                    DESCRIPTION.check(child, f"a {name}'s layer {i}")
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


_BUILT_IN = (Dense, BatchNorm, LayerNorm, Dropout, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, Standardize)


def layer_variables(layers: list[Layer]) -> tuple[dict[str, Variable], tuple[str, ...], set[str]]:
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
        elif kind is Standardize and isinstance(layer, Standardize) and layer.features is not None:
            shape = (layer.features,)
            variables[f"{position}.mean"] = Variable(shape, trainable=False, layer=repr(layer))
            variables[f"{position}.std"] = Variable(shape, trainable=False, non_negative=True, layer=repr(layer))
        elif kind in _BUILT_IN and kind is not Standardize:
            pass  # activations and dropout: no variables
        else:
            open_prefixes.append(position + ".")
    return variables, tuple(open_prefixes), paths


def check_float_member(path: Any, member: Member, result: Plan, what: str, shape: tuple[int, ...] | None,
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

"""The built-in layers by name: `layer_config` describes a layer (nested ones included) as
JSON values and `layer_from_config` rebuilds it. Checkpoints store architectures this way."""

from __future__ import annotations

from typing import Any

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .norm import BatchNorm, LayerNorm
from .residual import Residual
from .sequential import Sequential, layer_description

__all__ = ["BUILT_IN", "layer_config", "layer_from_config"]

#: every built-in layer class by name. A subclass of one of them (the user's `bp.Sequential`
#: is one of `Sequential`) is described under its class name, so it must keep that name.
BUILT_IN: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (Dense, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, Dropout, BatchNorm, LayerNorm, Residual, Sequential)
}

_CONTAINERS = ("Sequential", "Residual")  # their config is a list of nested descriptions


def layer_config(layer: Layer) -> dict[str, Any]:
    """A JSON-serialisable description that `layer_from_config` turns back into the layer.
    Raises `TypeError` naming the first layer (depth first) that is not a built-in one."""
    for sub in layer.walk():
        name = type(sub).__name__
        if name not in BUILT_IN:
            raise TypeError(f"{name} is not a built-in layer, so it cannot be described for saving")
    return layer_description(layer)


def layer_from_config(description: dict[str, Any]) -> Layer:
    """Rebuild an (unbuilt) layer from `layer_config`'s description. A nested ``Sequential``
    comes back as the container layer; the model around it rebuilds it on its device."""
    name = description.get("class")
    if name not in BUILT_IN:
        raise ValueError(f"unknown layer type {name!r}; known layers are {', '.join(sorted(BUILT_IN))}")
    config = dict(description.get("config", {}))
    if name in _CONTAINERS:  # rebuild the nested layers first
        return BUILT_IN[name](*[layer_from_config(d) for d in config.pop("layers", [])])
    return BUILT_IN[name](**config)

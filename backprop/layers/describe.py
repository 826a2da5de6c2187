"""Layers as JSON values: `layer_config` describes a layer (nested ones included) by its
registered name (`backprop.registry.LAYERS`) and `get_config`, and `layer_from_config`
rebuilds it. Checkpoints store architectures this way; a name read from a file is only looked
up in the registry, never imported, so a layer of your own is saved and loaded once it is
registered (``@bp.register_layer``)."""

from __future__ import annotations

from typing import Any

from ..registry import LAYERS
from .base import Layer
from .residual import Residual
from .sequential import Sequential, layer_description

__all__ = ["layer_config", "layer_from_config"]

_CONTAINERS = (Sequential, Residual)  # their config is a list of nested descriptions


def layer_config(layer: Layer) -> dict[str, Any]:
    """A JSON-serialisable description that `layer_from_config` turns back into the layer.
    Raises `TypeError` naming the first layer (depth first) whose class is not registered."""
    return layer_description(layer)


def layer_from_config(description: dict[str, Any]) -> Layer:
    """Rebuild an (unbuilt) layer from `layer_config`'s description. A nested ``Sequential``
    comes back as the container layer; the model around it rebuilds it on its device."""
    name = description.get("class")
    if not isinstance(name, str) or name not in LAYERS:
        raise ValueError(
            f"unknown layer type {name!r}; known layers are {', '.join(LAYERS)}. A layer class of "
            "your own must be registered (@bp.register_layer) before the file is loaded"
        )
    cls: type[Layer] = LAYERS[name]
    config = dict(description.get("config", {}))
    if issubclass(cls, _CONTAINERS):  # rebuild the nested layers first
        return cls(*[layer_from_config(d) for d in config.pop("layers", [])])
    layer = cls.from_config(config)
    if not isinstance(layer, Layer):
        raise TypeError(f"{name}.from_config made a {type(layer).__name__}, not a bp.Layer")
    return layer

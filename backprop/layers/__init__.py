"""Layers: one small file per family, forward and backward side by side."""

from __future__ import annotations

from typing import Any

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from .base import Backward, BuildContext, Layer
from .dense import Dense
from .dropout import Dropout
from .norm import BatchNorm, LayerNorm
from .residual import Residual

__all__ = [
    "GELU",
    "Backward",
    "BatchNorm",
    "BuildContext",
    "Dense",
    "Dropout",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "get_activation",
    "layer_config",
    "layer_from_config",
]


def _registry() -> dict[str, type[Layer]]:
    from ..model import Sequential

    classes: list[type[Layer]] = [
        Dense,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        GELU,
        Softmax,
        Dropout,
        BatchNorm,
        LayerNorm,
        Residual,
        Sequential,
    ]
    return {cls.__name__: cls for cls in classes}


def layer_config(layer: Layer) -> dict[str, Any]:
    """A JSON-serialisable description that `layer_from_config` turns back into the layer."""
    name = type(layer).__name__
    if name not in _registry():
        raise TypeError(f"{name} is not a built-in layer, so it cannot be described for saving")
    return {"class": name, "config": layer.get_config()}


def layer_from_config(description: dict[str, Any]) -> Layer:
    """Rebuild an (unbuilt) layer from `layer_config`'s description."""
    registry = _registry()
    name = description.get("class")
    if name not in registry:
        raise ValueError(f"unknown layer type {name!r}; known layers are {', '.join(sorted(registry))}")
    config = dict(description.get("config", {}))
    if name in ("Sequential", "Residual"):  # containers: rebuild the nested layers first
        return registry[name](*[layer_from_config(d) for d in config.pop("layers", [])])
    return registry[name](**config)

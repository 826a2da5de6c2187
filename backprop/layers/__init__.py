"""Layers: one small file per family, forward and backward side by side; the containers
(`Sequential`, `Residual`) are layers too, as is the preprocessing `Standardize`; `describe`
turns layers into JSON values and back."""

from __future__ import annotations

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from .base import Backward, BuildContext, Layer, ShardContext
from .dense import Dense
from .describe import layer_config, layer_from_config
from .dropout import Dropout
from .norm import BatchNorm, LayerNorm
from .residual import Residual
from .sequential import Sequential
from .standardize import Standardize

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
    "Sequential",
    "ShardContext",
    "Sigmoid",
    "Softmax",
    "Standardize",
    "Tanh",
    "get_activation",
    "layer_config",
    "layer_from_config",
]

"""backprop: neural networks with explicit, hand-written backpropagation on NumPy, CuPy and
any Array API namespace. The device is chosen when the model is built."""

from __future__ import annotations

from . import checkpoint, datasets, distributed, init, losses, metrics, optim
from ._version import __version__
from .backends import Device, DeviceMismatchError, available_devices, get_device, to_numpy
from .backends.cuda import CudaUnavailableError
from .checkpoint import Checkpoint, CheckpointError, load, load_checkpoint, load_weights, save_checkpoint
from .clip import clip_grad_norm, clip_grad_value
from .early_stopping import EarlyStopping
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .layers import GELU, BatchNorm, Dense, Dropout, Layer, LayerNorm, LeakyReLU, ReLU, Residual, Sigmoid, Softmax, Tanh
from .model import Sequential
from .parameter import Parameter
from .training import TrainingDivergedError

__all__ = [
    "GELU",
    "BatchNorm",
    "Checkpoint",
    "CheckpointError",
    "CudaUnavailableError",
    "Dense",
    "Device",
    "DeviceMismatchError",
    "Dropout",
    "EarlyStopping",
    "GradcheckResult",
    "History",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TrainingDivergedError",
    "__version__",
    "available_devices",
    "checkpoint",
    "clip_grad_norm",
    "clip_grad_value",
    "datasets",
    "distributed",
    "get_device",
    "gradcheck",
    "init",
    "load",
    "load_checkpoint",
    "load_weights",
    "losses",
    "metrics",
    "optim",
    "save_checkpoint",
    "to_numpy",
]

"""backprop: neural networks with explicit, hand-written backpropagation on NumPy, CuPy and
any Array API namespace. The device is chosen when the model is built."""

from __future__ import annotations

from . import callbacks, checkpoint, datasets, distributed, init, losses, metrics, optim, precision
from ._version import __version__
from .backends import Device, DeviceMismatchError, available_devices, get_device, to_numpy
from .backends.cuda import CudaUnavailableError
from .callbacks import EarlyStopping
from .checkpoint import Checkpoint, CheckpointError, load_weights, save_checkpoint
from .clip import clip_grad_norm, clip_grad_value
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .layers import (
    GELU,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Standardize,
    Tanh,
)
from .loading import load, load_checkpoint
from .loss_scaling import LossScaler
from .model import Sequential
from .parameter import Parameter
from .registry import register_layer, register_loss, register_optimizer, register_schedule
from .training import TrainingDivergedError
from .validation import InvalidParameterError

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
    "InvalidParameterError",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "LossScaler",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Standardize",
    "Tanh",
    "TrainingDivergedError",
    "__version__",
    "available_devices",
    "callbacks",
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
    "precision",
    "register_layer",
    "register_loss",
    "register_optimizer",
    "register_schedule",
    "save_checkpoint",
    "to_numpy",
]

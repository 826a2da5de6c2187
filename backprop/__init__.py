"""backprop: neural networks with explicit, hand-written backpropagation on NumPy, CuPy and
any Array API namespace. The device is chosen when the model is built."""

from __future__ import annotations

from . import init, losses, optim
from ._version import __version__
from .backends import Device, DeviceMismatchError, available_devices, get_device, to_numpy
from .backends.cuda import CudaUnavailableError
from .clip import clip_grad_norm, clip_grad_value
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .layers import GELU, Dense, Layer, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .model import Sequential
from .parameter import Parameter
from .training import TrainingDivergedError

__all__ = [
    "GELU",
    "CudaUnavailableError",
    "Dense",
    "Device",
    "DeviceMismatchError",
    "GradcheckResult",
    "History",
    "Layer",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TrainingDivergedError",
    "__version__",
    "available_devices",
    "clip_grad_norm",
    "clip_grad_value",
    "get_device",
    "gradcheck",
    "init",
    "losses",
    "optim",
    "to_numpy",
]

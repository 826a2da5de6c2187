"""Shared test tools: host/device conversion, central differences, a PyTorch twin of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import backprop as bp


def host(x: Any) -> np.ndarray:
    return np.asarray(bp.to_numpy(x))


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Numerical gradient of a scalar function of a float64 array, entry by entry."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = (f(plus) - f(minus)) / (2 * eps)
    return grad


def away_from_kinks(x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Push entries at least ``margin`` away from 0, where ReLU-like functions have kinks."""
    return np.where(x >= 0, x + margin, x - margin)


def torch_twin(model: bp.Sequential) -> Any:
    """A ``torch.nn.Sequential`` with the same architecture and weights (float64)."""
    import torch

    layers = []
    for layer in model.layers:
        if isinstance(layer, bp.Dense):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(host(layer.W.data).T.astype(np.float64)))
                if layer.bias:
                    lin.bias.copy_(torch.from_numpy(host(layer.b.data).astype(np.float64)))
            layers.append(lin)
        else:
            layers.append(torch_activation(layer))
    return torch.nn.Sequential(*layers)


def torch_activation(layer: bp.Layer) -> Any:
    """The ``torch.nn`` module computing the same function as a backprop activation layer."""
    import torch

    name = type(layer).__name__
    if name == "LeakyReLU":
        return torch.nn.LeakyReLU(layer.alpha)
    if name == "Softmax":
        return torch.nn.Softmax(dim=1)
    return getattr(torch.nn, name)()


def torch_params(twin: Any) -> list[np.ndarray]:
    """Torch parameters in backprop's order and layout (W as (in, out), then b)."""
    out = []
    for module in twin:
        if hasattr(module, "weight"):
            out.append(module.weight.detach().numpy().T)
            if module.bias is not None:
                out.append(module.bias.detach().numpy())
    return out

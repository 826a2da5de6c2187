"""Shared test tools: host/device conversion, central differences, a PyTorch twin of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import backprop as bp


def host(x: Any) -> np.ndarray:
    return np.asarray(bp.to_numpy(x))


def float32_patterns(rng: np.random.Generator) -> np.ndarray:
    """float32 values of every kind, for rounding tests: every sign, exponent and top mantissa
    bits (all 2^16 high halves of the bits), each with low halves on and around bfloat16's and
    float16's rounding boundaries, plus random bits (NaNs, infinities, subnormals included)."""
    high = np.arange(2**16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x7FFF, 0x8000, 0x8001, 0xEFFF, 0xF000, 0xFFFF], np.uint32)
    bits = (high[:, None] | lows[None, :]).ravel()
    return np.concatenate([bits, rng.integers(0, 2**32, 200_000, dtype=np.uint32)]).view(np.float32)


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Numerical gradient of a scalar function of a float64 array, entry by entry."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = (f(plus) - f(minus)) / (2 * eps)
    return grad


def assert_parameter_grads_match(
    model: bp.Sequential, loss_of_input: Callable[[np.ndarray], float], X: np.ndarray, eps: float = 1e-6
) -> None:
    """Every parameter's ``.grad`` (already filled by a backward pass on ``X``) against central
    differences of ``loss_of_input(X)`` with that parameter perturbed; each is restored after."""
    backend = model.backend
    for p in model.parameters():
        theta = host(p.data).copy()

        def loss_of_param(value: np.ndarray, p: bp.Parameter = p) -> float:
            p.data = backend.from_host(value)
            return loss_of_input(X)

        numeric = central_difference(loss_of_param, theta, eps)
        p.data = backend.from_host(theta)
        np.testing.assert_allclose(host(p.grad), numeric, rtol=1e-7, atol=1e-9, err_msg=p.name)


def assert_gradients_match_central_differences(
    model: bp.Sequential, X: np.ndarray, R: np.ndarray, training: bool, step: float = 1e-5
) -> None:
    """dX and every parameter's gradient of ``L = sum(R * model(X))`` against float64 central
    differences, in the given mode.

    The step is 1e-5 by default rather than `central_difference`'s 1e-6: these losses sum a
    few dozen O(1) outputs, so rounding alone puts ~1e-16 * 20 / 1e-6 = 2e-9 of noise into each
    difference at 1e-6, above the atol, while the truncation error at 1e-5 is ~1e-10."""
    backend = model.backend

    def loss_of_input(Xp: np.ndarray) -> float:
        with backend.activate():
            return float(np.sum(host(model.apply(backend.from_host(Xp), training)[0]) * R))

    with backend.activate():
        _, backward = model.apply(backend.from_host(X), training)
        dX = host(backward(backend.from_host(R), True))
    np.testing.assert_allclose(dX, central_difference(loss_of_input, X, step), rtol=1e-7, atol=1e-9)
    assert_parameter_grads_match(model, loss_of_input, X, step)


def away_from_kinks(x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Push entries at least ``margin`` away from 0, where ReLU-like functions have kinks."""
    return np.where(x >= 0, x + margin, x - margin)


def torch_twin(model: bp.Sequential | list[bp.Layer]) -> Any:
    """A float64 ``torch.nn.Sequential`` with the same architecture, weights and state
    (Dense, BatchNorm, LayerNorm, Dropout, Residual and the activations)."""
    import torch  # noqa: PLC0415 - optional: only the tests that compare with PyTorch need it

    class TorchResidual(torch.nn.Module):
        def __init__(self, block: torch.nn.Module):
            super().__init__()
            self.block = block

        def forward(self, x):
            return x + self.block(x)

    def copy_into(tensor, param: bp.Parameter, transpose: bool = False) -> None:
        value = host(param.data).astype(np.float64)
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(value.T.copy() if transpose else value))

    modules = []
    for layer in model.layers if isinstance(model, bp.Sequential) else model:
        if isinstance(layer, bp.Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias, dtype=torch.float64)
            copy_into(module.weight, layer.W, transpose=True)
            if layer.bias:
                copy_into(module.bias, layer.b)
        elif isinstance(layer, bp.BatchNorm):
            module = torch.nn.BatchNorm1d(layer.features, momentum=layer.momentum, eps=layer.eps, dtype=torch.float64)
            copy_into(module.running_mean, layer.running_mean)
            copy_into(module.running_var, layer.running_var)
        elif isinstance(layer, bp.LayerNorm):
            module = torch.nn.LayerNorm(layer.features, eps=layer.eps, dtype=torch.float64)
        elif isinstance(layer, bp.Residual):
            module = TorchResidual(torch_twin(layer.block.layers))
        elif isinstance(layer, bp.Dropout):
            module = torch.nn.Dropout(layer.p)
        else:
            module = torch_activation(layer)
        if isinstance(layer, (bp.BatchNorm, bp.LayerNorm)):
            copy_into(module.weight, layer.gamma)
            copy_into(module.bias, layer.beta)
        modules.append(module)
    return torch.nn.Sequential(*modules)


def torch_activation(layer: bp.Layer) -> Any:
    """The ``torch.nn`` module computing the same function as a backprop activation layer."""
    import torch  # noqa: PLC0415 - optional: only the tests that compare with PyTorch need it

    name = type(layer).__name__
    if name == "LeakyReLU":
        return torch.nn.LeakyReLU(layer.alpha)
    if name == "Softmax":
        return torch.nn.Softmax(dim=1)
    return getattr(torch.nn, name)()


def torch_params(twin: Any) -> list[np.ndarray]:
    """Torch's parameters in backprop's order and layout (a Linear's W as (in, out))."""
    import torch  # noqa: PLC0415 - optional: only the tests that compare with PyTorch need it

    out = []
    for module in twin.modules():
        if isinstance(module, torch.nn.Linear):
            out.append(module.weight.detach().numpy().T)
            if module.bias is not None:
                out.append(module.bias.detach().numpy())
        elif isinstance(module, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            out += [module.weight.detach().numpy(), module.bias.detach().numpy()]
    return out


def optimizer_pair(name: str, model: bp.Sequential, twin: Any) -> tuple[Any, Any]:
    """The same optimizer for ``model`` and its torch ``twin``: "SGD-momentum" or "Adam"."""
    import torch  # noqa: PLC0415 - optional: only the tests that compare with PyTorch need it

    if name == "Adam":
        return bp.optim.Adam(model.parameters(), lr=0.01), torch.optim.Adam(twin.parameters(), lr=0.01)
    return (
        bp.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9),
    )


def assert_trains_like_torch(
    model: bp.Sequential,
    twin: Any,
    ours: Any,
    theirs: Any,
    rng: np.random.Generator,
    shift: float = 0.0,
    steps: int = 20,
) -> None:
    """``steps`` MSE training steps on random batches of shape (8, 3) -> (8, 2), side by side:
    the losses and every parameter agree to float64 tolerance after each step."""
    import torch  # noqa: PLC0415 - optional: only the tests that compare with PyTorch need it

    for step in range(steps):
        X, y = shift + (1.0 + shift) * rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
        loss = model.backprop(X, y, bp.losses.MSE())
        ours.step()
        theirs.zero_grad()
        tloss = torch.nn.functional.mse_loss(twin(torch.tensor(X)), torch.tensor(y))
        tloss.backward()
        theirs.step()
        assert abs(loss - tloss.item()) <= 1e-12 * abs(tloss.item()), f"step {step}: {loss} != {tloss.item()}"
        for param, expected in zip(model.parameters(), torch_params(twin), strict=True):
            np.testing.assert_allclose(
                host(param.data), expected, rtol=1e-10, atol=1e-13, err_msg=f"{param.name} step {step}"
            )

"""Every layer: float64 central differences, PyTorch autograd, every backend."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from helpers import assert_parameter_grads_match, away_from_kinks, central_difference, host, torch_activation

LAYERS = {
    "Dense": lambda: bp.Dense(5, 3, init="xavier_normal"),
    "Dense-nobias": lambda: bp.Dense(5, 3, bias=False),
    "ReLU": bp.ReLU,
    "LeakyReLU": lambda: bp.LeakyReLU(0.1),
    "Sigmoid": bp.Sigmoid,
    "Tanh": bp.Tanh,
    "GELU": bp.GELU,
    "Softmax": bp.Softmax,
}


def run_layer(layer: bp.Layer, device: bp.Device, X: np.ndarray, R: np.ndarray):
    """Forward X through a one-layer float64 model and back-propagate R = dL/dY, L = sum(Y * R)."""
    model = bp.Sequential(layer, device=device, dtype="float64", seed=3)
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), True)
        dX = backward(backend.from_host(R), True)
    return model, host(Y), host(dX)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_central_differences(name: str, device: bp.Device, rng: np.random.Generator) -> None:
    X = away_from_kinks(rng.standard_normal((4, 5)))
    R = rng.standard_normal((4, 3 if "Dense" in name else 5))
    model, _, dX = run_layer(LAYERS[name](), device, X, R)
    backend = model.backend

    def loss_of_input(Xp: np.ndarray) -> float:
        with backend.activate():
            return float(np.sum(host(model.apply(backend.from_host(Xp), True)[0]) * R))

    np.testing.assert_allclose(dX, central_difference(loss_of_input, X), rtol=1e-7, atol=1e-9)
    assert_parameter_grads_match(model, loss_of_input, X)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_pytorch(name: str, device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    X = rng.standard_normal((6, 5))
    layer = LAYERS[name]()
    out = 3 if isinstance(layer, bp.Dense) else 5
    R = rng.standard_normal((6, out))
    _, Y, dX = run_layer(layer, device, X, R)
    Xt = torch.tensor(X, requires_grad=True)
    if isinstance(layer, bp.Dense):
        Wt = torch.tensor(host(layer.W.data), requires_grad=True)
        Yt = Xt @ Wt
        if layer.bias:
            bt = torch.tensor(host(layer.b.data), requires_grad=True)
            Yt = Yt + bt
    else:
        Yt = torch_activation(layer)(Xt)
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    if isinstance(layer, bp.Dense):
        np.testing.assert_allclose(host(layer.W.grad), Wt.grad.numpy(), rtol=1e-12, atol=1e-14)
        if layer.bias:
            np.testing.assert_allclose(host(layer.b.grad), bt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", [n for n in LAYERS if "Dense" not in n])
def test_activation_is_stable_at_extremes(name: str, device: bp.Device, dtype: str) -> None:
    """No overflow (warnings are errors here), finite outputs and gradients at +-1000."""
    X = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    model = bp.Sequential(LAYERS[name](), device=device, dtype=dtype, seed=0)
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), True)
        dX = backward(backend.from_host(np.ones_like(X)), True)
    assert np.isfinite(host(Y)).all() and np.isfinite(host(dX)).all()
    assert host(Y).dtype == np.dtype(dtype) and host(dX).dtype == np.dtype(dtype)


def test_sigmoid_and_gelu_limits(device: bp.Device) -> None:
    X = np.array([[-1000.0, 1000.0]])
    for layer, expected in ((bp.Sigmoid(), [0.0, 1.0]), (bp.GELU(), [0.0, 1000.0]), (bp.Tanh(), [-1.0, 1.0])):
        model = bp.Sequential(layer, device=device, dtype="float64")
        np.testing.assert_array_equal(host(model(X)), [expected])


def test_dense_initialisers_have_documented_scale() -> None:
    rng = np.random.default_rng(0)
    fan_in, fan_out = 400, 300
    cases = {
        "xavier": np.sqrt(6 / (fan_in + fan_out)) / np.sqrt(3),
        "xavier_normal": np.sqrt(2 / (fan_in + fan_out)),
        "he": np.sqrt(2 / fan_in),
        "he_uniform": np.sqrt(6 / fan_in) / np.sqrt(3),
        "normal": 0.01,
    }
    for name, std in cases.items():
        W = bp.init.get_initializer(name)(rng, fan_in, fan_out)
        assert W.shape == (fan_in, fan_out)
        assert abs(W.std() / std - 1) < 0.02, name
        assert abs(W.mean()) < 0.05 * std, name
    assert not bp.init.get_initializer("zeros")(rng, 3, 2).any()
    bound = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(bp.init.XavierUniform()(rng, fan_in, fan_out)).max() <= bound


def test_dense_accepts_a_callable_initialiser(device: bp.Device) -> None:
    model = bp.Sequential(bp.Dense(2, 3, init=bp.init.Normal(std=0.0, mean=0.5)), device=device)
    np.testing.assert_array_equal(host(model.layers[0].W.data), np.full((2, 3), 0.5, dtype=np.float32))

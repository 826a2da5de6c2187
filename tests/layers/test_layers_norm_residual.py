"""BatchNorm, LayerNorm and Residual: central differences, PyTorch autograd and trajectories,
nesting, saving, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backprop as bp
from backprop.layers import BatchNorm, Dropout, LayerNorm, Residual, layer_config, layer_from_config
from helpers import (
    assert_gradients_match_central_differences,
    assert_trains_like_torch,
    host,
    optimizer_pair,
    torch_twin,
)


def randomise(model: bp.Sequential, rng: np.random.Generator) -> None:
    """Give every parameter (and BatchNorm's running statistics) non-trivial values, so that
    gamma = 1, beta = 0 and the initial running stats cannot hide a wrong formula."""
    state = model.state_dict()
    for name, value in state.items():
        if name.endswith(("running_var", "gamma")):
            state[name] = 0.5 + rng.random(value.shape)
        else:
            state[name] = rng.standard_normal(value.shape)
    model.load_state_dict(state)


# ---------------------------------------------------------------------------- central differences
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_matches_central_differences(training: bool, device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(BatchNorm(4), device=device, dtype="float64", seed=0)
    randomise(model, rng)
    X, R = 1.0 + 2.0 * rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    assert_gradients_match_central_differences(model, X, R, training)


def test_layernorm_matches_central_differences(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(LayerNorm(5), device=device, dtype="float64", seed=0)
    randomise(model, rng)
    X, R = 1.0 + 2.0 * rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert_gradients_match_central_differences(model, X, R, training=True)


def test_residual_matches_central_differences(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(
        Residual(bp.Dense(4, 6), bp.Tanh(), bp.Dense(6, 4), LayerNorm(4)), device=device, dtype="float64", seed=1
    )
    randomise(model, rng)
    X, R = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    assert_gradients_match_central_differences(model, X, R, training=True)


def test_residual_without_need_dX_still_fills_the_block_gradients(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(Residual(bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, 3)), device=device, dtype="float64", seed=2)
    backend = model.backend
    X, R = backend.from_host(rng.standard_normal((4, 3))), backend.from_host(rng.standard_normal((4, 3)))
    with backend.activate():
        model.apply(X, True)[1](R, True)
        expected = [host(p.grad) for p in model.parameters()]
        model.zero_grad()
        assert model.apply(X, True)[1](R, False) is None
    for p, g in zip(model.parameters(), expected, strict=True):
        np.testing.assert_array_equal(host(p.grad), g, err_msg=p.name)


# ---------------------------------------------------------------------------- PyTorch autograd
def test_batchnorm_matches_pytorch_in_training_and_eval(device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    features, momentum, eps = 4, 0.3, 1e-3
    model = bp.Sequential(BatchNorm(features, momentum=momentum, eps=eps), device=device, dtype="float64", seed=0)
    randomise(model, rng)
    layer = model.layers[0]
    twin = torch.nn.BatchNorm1d(features, momentum=momentum, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        for ours, theirs in ((layer.gamma, twin.weight), (layer.beta, twin.bias)):
            theirs.copy_(torch.from_numpy(host(ours.data)))
        twin.running_mean.copy_(torch.from_numpy(host(layer.running_mean.data)))
        twin.running_var.copy_(torch.from_numpy(host(layer.running_var.data)))
    backend = model.backend
    for batch, training in enumerate([True, True, True, True, False, False]):
        model.train(training)
        twin.train(training)
        X = 3.0 + 2.0 * rng.standard_normal((5 + batch, features))
        R = rng.standard_normal(X.shape)
        with backend.activate():
            Y, backward = model.apply(backend.from_host(X), training)
            dX = backward(backend.from_host(R), True)
        Xt = torch.tensor(X, requires_grad=True)
        twin.zero_grad()
        Yt = twin(Xt)
        (Yt * torch.tensor(R)).sum().backward()
        where = f"batch {batch} ({'train' if training else 'eval'})"
        np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=where)
        np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=where)
        np.testing.assert_allclose(
            host(layer.gamma.grad), twin.weight.grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=where
        )
        np.testing.assert_allclose(host(layer.beta.grad), twin.bias.grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=where)
        np.testing.assert_allclose(host(layer.running_mean.data), twin.running_mean.numpy(), rtol=1e-12, err_msg=where)
        np.testing.assert_allclose(host(layer.running_var.data), twin.running_var.numpy(), rtol=1e-12, err_msg=where)


def test_layernorm_matches_pytorch(device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential(LayerNorm(6, eps=1e-4), device=device, dtype="float64", seed=0)
    randomise(model, rng)
    layer = model.layers[0]
    twin = torch.nn.LayerNorm(6, eps=1e-4, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(host(layer.gamma.data)))
        twin.bias.copy_(torch.from_numpy(host(layer.beta.data)))
    X, R = 2.0 + 3.0 * rng.standard_normal((7, 6)), rng.standard_normal((7, 6))
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), True)
        dX = backward(backend.from_host(R), True)
    Xt = torch.tensor(X, requires_grad=True)
    Yt = twin(Xt)
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(host(layer.gamma.grad), twin.weight.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(host(layer.beta.grad), twin.bias.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_residual_matches_pytorch(device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential(Residual(bp.Dense(4, 6), bp.GELU(), bp.Dense(6, 4)), device=device, dtype="float64", seed=3)
    randomise(model, rng)
    W1, b1, W2, b2 = (torch.tensor(host(p.data), requires_grad=True) for p in model.parameters())
    X, R = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), True)
        dX = backward(backend.from_host(R), True)
    Xt = torch.tensor(X, requires_grad=True)
    Yt = Xt + torch.nn.functional.gelu(Xt @ W1 + b1) @ W2 + b2
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=1e-12, atol=1e-13)
    for p, t in zip(model.parameters(), (W1, b1, W2, b2), strict=True):
        np.testing.assert_allclose(host(p.grad), t.grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=p.name)


# ---------------------------------------------------------------------------- PyTorch trajectories
# A bias right before a BatchNorm has an exactly zero gradient (the batch mean removes it);
# Adam would turn its rounding noise into O(lr) steps, so it is left out, as is usual.
TRAJECTORY_MODELS = {
    "BatchNorm": lambda: [bp.Dense(3, 6, bias=False), BatchNorm(6, momentum=0.2), bp.Tanh(), bp.Dense(6, 2)],
    "LayerNorm": lambda: [bp.Dense(3, 6), LayerNorm(6), bp.ReLU(), bp.Dense(6, 2)],
    "Residual": lambda: [bp.Dense(3, 5), Residual(bp.Dense(5, 5), bp.Tanh(), BatchNorm(5)), bp.Dense(5, 2)],
}


@pytest.mark.parametrize("opt", ["SGD-momentum", "Adam"])
@pytest.mark.parametrize("arch", TRAJECTORY_MODELS)
def test_training_matches_pytorch_for_20_steps(
    arch: str, opt: str, device: bp.Device, rng: np.random.Generator
) -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential(*TRAJECTORY_MODELS[arch](), device=device, dtype="float64", seed=7)
    twin = torch_twin(model.layers)
    ours, theirs = optimizer_pair(opt, model, twin)
    assert_trains_like_torch(model, twin, ours, theirs, rng, shift=1.0)
    # Running statistics and inference-mode outputs agree after the 20 steps too.
    twin_state = {k: v.numpy() for k, v in twin.state_dict().items() if "running" in k}
    ours_state = {k: v for k, v in model.state_dict().items() if "running" in k}
    assert len(twin_state) == len(ours_state) == (0 if arch == "LayerNorm" else 2)
    for (name, value), expected in zip(ours_state.items(), twin_state.values(), strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-10, err_msg=name)
    X = rng.standard_normal((6, 3))
    twin.eval()
    np.testing.assert_allclose(host(model.predict(X)), twin(torch.tensor(X)).detach().numpy(), rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------- nesting and saving
def nested_model(device: bp.Device, seed: int) -> bp.Sequential:
    """Sequential inside Residual inside Sequential."""
    inner = bp.Sequential(bp.Dense(4, 5), bp.Tanh(), bp.Dense(5, 4))
    return bp.Sequential(
        bp.Dense(3, 4),
        Residual(inner, LayerNorm(4)),
        BatchNorm(4),
        bp.Dense(4, 2),
        device=device,
        dtype="float64",
        seed=seed,
    )


NESTED_NAMES = [
    "0.W", "0.b",
    "1.block.0.0.W", "1.block.0.0.b", "1.block.0.2.W", "1.block.0.2.b",
    "1.block.1.gamma", "1.block.1.beta",
    "2.gamma", "2.beta",
    "3.W", "3.b",
]  # fmt: skip


def test_nested_parameter_names_and_order(device: bp.Device) -> None:
    model = nested_model(device, seed=0)
    assert [p.name for p in model.parameters()] == NESTED_NAMES
    assert list(model.state_dict()) == [*NESTED_NAMES[:10], "2.running_mean", "2.running_var", *NESTED_NAMES[10:]]
    residual = model.layers[1]
    assert residual.children() == [("block", residual.block)]
    assert [layer.path for layer in residual.walk()] == [
        "1",
        "1.block",
        "1.block.0",
        "1.block.0.0",
        "1.block.0.1",
        "1.block.0.2",
        "1.block.1",
    ]
    assert all(layer.backend is model.backend for layer in model.walk())


def test_nested_state_dict_round_trip(device: bp.Device, rng: np.random.Generator) -> None:
    a, b = nested_model(device, seed=0), nested_model(device, seed=1)
    X = rng.standard_normal((6, 3))
    a.fit(
        X,
        rng.standard_normal((6, 2)),
        loss="mse",
        optimizer=bp.optim.Adam(a.parameters(), lr=0.01),
        epochs=3,
        batch_size=3,
        verbose=0,
    )
    assert not np.array_equal(host(a.predict(X)), host(b.predict(X)))
    b.load_state_dict(a.state_dict())
    for (name, value), other in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(value, other, err_msg=name)
    np.testing.assert_array_equal(host(a.predict(X)), host(b.predict(X)))


def test_nested_gradcheck_passes(device: bp.Device, rng: np.random.Generator) -> None:
    model = nested_model(device, seed=2)
    randomise(model, rng)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    for mode in ("train", "eval"):
        getattr(model, mode)()
        result = bp.gradcheck(model, X, y, "mse")
        assert result.ok, f"{mode}\n{result}"
        assert set(result.checked) == set(NESTED_NAMES)


def test_config_round_trips_through_json(device: bp.Device, rng: np.random.Generator) -> None:
    model = nested_model(device, seed=3)
    description = json.loads(json.dumps(layer_config(model)))
    rebuilt = layer_from_config(description)
    assert repr(rebuilt.layers) == repr(model.layers)
    rebuilt = bp.Sequential(*rebuilt.layers, device=device, dtype="float64", seed=4)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    rebuilt.load_state_dict(model.state_dict())
    X = rng.standard_normal((5, 3))
    np.testing.assert_array_equal(host(rebuilt.predict(X)), host(model.predict(X)))
    for layer in (BatchNorm(3, momentum=0.05, eps=1e-3), LayerNorm(2, eps=1e-6), Residual(bp.ReLU(), Dropout(0.1))):
        again = layer_from_config(json.loads(json.dumps(layer_config(layer))))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_model_to_moves_running_statistics(device: bp.Device, rng: np.random.Generator) -> None:
    model = nested_model("cpu", seed=5)
    X = rng.standard_normal((6, 3))
    model(X)  # one training pass: running statistics move away from 0 and 1
    expected = host(model.predict(X))
    model.to(device)
    for name, p in model.named_variables():
        assert bp.backends.array_device(p.data) in (None, device), name
    np.testing.assert_allclose(host(model.predict(X)), expected, rtol=1e-12)


# ---------------------------------------------------------------------------- validation
def test_residual_block_must_keep_the_feature_count() -> None:
    with pytest.raises(ValueError, match=r"layer '1' \(Residual\).*turns 4 input features into 5"):
        bp.Sequential(bp.Dense(3, 4), Residual(bp.Dense(4, 5), bp.ReLU()))
    with pytest.raises(ValueError, match="turns 3 input features into 2"):
        bp.Sequential(Residual(bp.Dense(3, 2)))
    with pytest.raises(ValueError, match="expects 4 input features but the layer before it produces 3"):
        bp.Sequential(bp.Dense(2, 3), Residual(bp.Dense(4, 4)))


@pytest.mark.parametrize("cls", [BatchNorm, LayerNorm])
def test_norm_layers_check_the_feature_count(cls: type[bp.Layer]) -> None:
    with pytest.raises(
        ValueError, match=rf"layer '1' \({cls.__name__}.*expects 5 input features but the layer before it produces 4"
    ):
        bp.Sequential(bp.Dense(3, 4), cls(5))
    model = bp.Sequential(cls(3))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 3\)"):
        model(np.ones((4, 2)))


def test_norm_layers_reject_bad_settings() -> None:
    for bad in (0, -2):
        with pytest.raises(ValueError, match="features must be a positive int"):
            BatchNorm(bad)
    with pytest.raises(TypeError, match="LayerNorm features must be a positive int"):
        LayerNorm(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\]"):
        BatchNorm(3, momentum=1.5)
    for cls in (BatchNorm, LayerNorm):
        with pytest.raises(ValueError, match=r"eps must lie in \(0, inf\]"):
            cls(3, eps=0.0)


def test_batchnorm_needs_two_samples_in_training(device: bp.Device) -> None:
    model = bp.Sequential(bp.Dense(3, 4), BatchNorm(4), device=device)
    with pytest.raises(ValueError, match=r"layer '1' \(BatchNorm.*at least 2 samples.*got a batch of 1"):
        model(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.backprop(np.ones((1, 3)), np.ones((1, 4)), "mse")
    assert host(model.predict(np.ones((1, 3)))).shape == (1, 4)  # inference uses running stats


def test_no_dtype_drift_in_float32(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(
        bp.Dense(3, 6), BatchNorm(6), Residual(bp.Dense(6, 6), bp.Tanh(), LayerNorm(6)), Dropout(0.2), bp.Dense(6, 1),
        device=device, dtype="float32", seed=0,
    )  # fmt: skip
    X, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    model.fit(
        X,
        y,
        loss="mse",
        optimizer=bp.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        epochs=3,
        batch_size=5,
        verbose=0,
    )
    for name, p in model.named_variables():
        assert host(p.data).dtype == np.float32, name
        assert p.grad is None or host(p.grad).dtype == np.float32, name
    assert host(model.predict(X)).dtype == np.float32
    assert not np.allclose(host(model.layers[1].running_mean.data), 0.0)  # the statistics did move


@pytest.mark.parametrize(
    "make",
    [lambda: BatchNorm(5), lambda: LayerNorm(5), lambda: Residual(bp.Dense(5, 5), bp.Tanh()), lambda: bp.Dropout(0.5)],
    ids=["BatchNorm", "LayerNorm", "Residual", "Dropout"],
)
def test_inputs_are_never_modified(make, device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(make(), device=device, dtype="float64", seed=0)
    randomise(model, rng)
    backend = model.backend
    X, R = backend.from_host(rng.standard_normal((6, 5))), backend.from_host(rng.standard_normal((6, 5)))
    X0, R0 = host(X).copy(), host(R).copy()
    for training in (True, False):
        with backend.activate():
            _, backward = model.apply(X, training)
            backward(R, True)
    np.testing.assert_array_equal(host(X), X0)
    np.testing.assert_array_equal(host(R), R0)

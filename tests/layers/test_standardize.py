"""Standardize: statistics against scikit-learn and the CLI's Standardizer, the backward pass
against central differences and PyTorch autograd, on every backend; its statistics are saved
state that training, optimizers and weight decay leave alone, moved by to() and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.datasets import Standardizer
from backprop.layers import layer_config, layer_from_config
from helpers import assert_gradients_match_central_differences, host


def data(rng: np.random.Generator, n: int = 30) -> np.ndarray:
    """Features of very different scales, one of them constant (the zero-variance guard)."""
    X = rng.normal([5.0, -300.0, 0.0, 2.0], [2.0, 50.0, 1.0, 1.0], size=(n, 4))
    X[:, 3] = 7.25
    return X


def test_statistics_match_scikit_learn_and_the_standardizer(rng: np.random.Generator) -> None:
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    X = data(rng)
    layer = bp.Standardize().adapt(X)
    scaler = preprocessing.StandardScaler().fit(X)
    np.testing.assert_allclose(layer.mean, scaler.mean_, rtol=1e-14)
    np.testing.assert_allclose(layer.std, scaler.scale_, rtol=1e-14)
    assert layer.std[3] == 1.0 and layer.mean[3] == 7.25  # the constant feature: centred only
    ours = Standardizer().fit(X)
    np.testing.assert_array_equal(layer.mean, ours.mean)  # the CLI's numbers, bit for bit
    np.testing.assert_array_equal(layer.std, ours.scale)


def test_forward_is_the_standardizers_transform_on_every_backend(device: bp.Device, rng: np.random.Generator) -> None:
    X = data(rng)
    model = bp.Sequential(bp.Standardize().adapt(X), device=device, dtype="float64", seed=0)
    Y = model.predict(X)
    assert bp.to_numpy(Y).dtype == np.float64
    assert type(Y) is type(model.backend.from_host(X))  # an array of the model's namespace
    np.testing.assert_array_equal(host(Y), Standardizer().fit(X).transform(X))
    assert host(Y)[:, 3].tolist() == [0.0] * len(X)


def test_backward_matches_central_differences(device: bp.Device, rng: np.random.Generator) -> None:
    X, R = data(rng, 5), rng.standard_normal((5, 4))
    model = bp.Sequential(bp.Standardize().adapt(data(rng)), device=device, dtype="float64", seed=0)
    assert_gradients_match_central_differences(model, X, R, training=True, step=1e-4)


def test_forward_and_backward_match_pytorch(device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    X, R = data(rng, 6), rng.standard_normal((6, 3))
    model = bp.Sequential(bp.Standardize().adapt(data(rng)), bp.Dense(4, 3), device=device, dtype="float64", seed=2)
    state = model.state_dict()
    Xt = torch.tensor(X, requires_grad=True)
    mean, std = torch.tensor(state["0.mean"]), torch.tensor(state["0.std"])
    W, b = torch.tensor(state["1.W"], requires_grad=True), torch.tensor(state["1.b"], requires_grad=True)
    Yt = ((Xt - mean) / std) @ W + b
    (Yt * torch.tensor(R)).sum().backward()
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), True)
        dX = backward(backend.from_host(R), True)
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(model.parameters()[0].grad), W.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_statistics_are_state_that_training_leaves_alone(rng: np.random.Generator) -> None:
    X = data(rng, 40)
    y = (X[:, 0] > 5).astype(np.int64)
    model = bp.Sequential(bp.Standardize().adapt(X), bp.Dense(4, 2), seed=0)
    names = [name for name, _ in model.named_variables()]
    assert names == ["0.mean", "0.std", "1.W", "1.b"]
    assert [p.name for p in model.parameters()] == ["1.W", "1.b"]  # not trained, not in the flat buffer
    before = model.state_dict()
    model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5),
              epochs=3, batch_size=8, verbose=0)
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.mean"], before["0.mean"])
    np.testing.assert_array_equal(after["0.std"], before["0.std"])
    assert not np.array_equal(after["1.W"], before["1.W"])  # while the Dense layer did train


def test_saved_moved_and_rebuilt(tmp_path, rng: np.random.Generator) -> None:
    X = data(rng)
    model = bp.Sequential(bp.Standardize().adapt(X), bp.Dense(4, 2), dtype="float64", seed=0)
    expected = host(model.predict(X))
    model.save(tmp_path / "m.npz")
    loaded = bp.load_checkpoint(tmp_path / "m.npz", dtype="float64").model
    np.testing.assert_array_equal(host(loaded.predict(X)), expected)
    np.testing.assert_array_equal(loaded.layers[0].std, model.layers[0].std)
    moved = loaded.to(bp.Device(namespace="array_api_strict"))
    assert type(moved.layers[0]._variables["mean"].data).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(host(moved.predict(X)), expected, rtol=1e-15)
    # the configuration names the width; the statistics are state, as a Dense layer's weights
    description = layer_config(model.layers[0])
    assert description == {"class": "Standardize", "config": {"features": 4}}
    assert repr(layer_from_config(description)) == "Standardize(4)"


def test_adapt_after_building_replaces_the_models_statistics(rng: np.random.Generator) -> None:
    X = data(rng)
    model = bp.Sequential(bp.Standardize(4), seed=0)
    np.testing.assert_array_equal(host(model.predict(X)), X.astype(np.float32))  # the identity until adapted
    model.layers[0].adapt(X)
    np.testing.assert_allclose(host(model.predict(X)), Standardizer().fit(X).transform(X), rtol=1e-5, atol=1e-5)
    given = bp.Standardize(mean=[1.0, 2.0], std=[2.0, 4.0])
    np.testing.assert_array_equal(host(bp.Sequential(given).predict(np.array([[3.0, 6.0]]))), [[1.0, 1.0]])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bp.Sequential(bp.Standardize(), bp.Dense(3, 1)), "does not know how many features"),
        (lambda: bp.Standardize(3).adapt(np.ones((4, 2))), "standardises 3 features but got statistics of 2"),
        (lambda: bp.Standardize().adapt(np.ones(4)), "2-D array"),
        (lambda: bp.Standardize().adapt(np.full((2, 2), np.nan)), "NaN or Inf"),
        (lambda: bp.Standardize().adapt(np.array([["a"]])), "numeric data"),
        (lambda: bp.Standardize(mean=[0.0, 1.0]), "both mean= and std="),
        (lambda: bp.Standardize(mean=[0.0], std=[0.0]), "std must be positive"),
        (lambda: bp.Standardize(mean=[0.0], std=[1.0, 2.0]), "mean has 1 values but std has 2"),
        (lambda: bp.Standardize(0), "features"),
        (lambda: bp.Sequential(bp.Standardize(2), bp.Dense(3, 1)), "expects 3 input features"),
    ],
)
def test_bad_input_is_refused_with_the_fix(make, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()

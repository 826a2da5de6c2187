"""Dropout: mask statistics, reproducibility, held-fixed gradients, PyTorch trajectories."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import backprop as bp
from backprop.layers import Dropout, layer_config, layer_from_config
from helpers import (
    assert_parameter_grads_match,
    assert_trains_like_torch,
    central_difference,
    host,
    optimizer_pair,
    torch_twin,
)


def forward_backward(model: bp.Sequential, X: np.ndarray, R: np.ndarray, training: bool = True):
    """One forward and backward pass of ``model`` on host data; returns host ``(Y, dX)``."""
    backend = model.backend
    with backend.activate():
        Y, backward = model.apply(backend.from_host(X), training)
        dX = backward(backend.from_host(R), True)
    return host(Y), host(dX)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_dropout_rejects_p_outside_0_1(p: float) -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
        Dropout(p)


def test_dropout_rejects_bad_types_and_mask_source() -> None:
    with pytest.raises(TypeError, match="Dropout p must be a float"):
        Dropout("0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Dropout p must be a float"):
        Dropout(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="masks must be 'host' or 'device'"):
        Dropout(0.5, masks="gpu")


def test_dropout_outside_a_model_says_so() -> None:
    with pytest.raises(RuntimeError, match="not part of a model"):
        Dropout(0.5).apply(np.ones((2, 2)), True)


# ---------------------------------------------------------------------------- masks
@pytest.mark.parametrize("masks", ["host", "device"])
def test_keep_rate_and_inverted_scaling(masks: str, device: bp.Device) -> None:
    p, shape = 0.3, (2000, 50)
    model = bp.Sequential(Dropout(p, masks=masks), device=device, dtype="float64", seed=11)
    X = 1.0 + np.abs(np.random.default_rng(0).standard_normal(shape))
    Y = host(model(X))
    kept = Y != 0
    # Every entry is either dropped or scaled by exactly 1 / (1 - p).
    np.testing.assert_allclose(Y[kept], X[kept] / (1 - p), rtol=1e-15)
    n = kept.size
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    # Inverted scaling: E[Y] = X, so the mean of Y / X is 1 within sampling error.
    ratio = Y / X
    assert abs(ratio.mean() - 1.0) < 5 * ratio.std() / np.sqrt(n)


def test_a_new_mask_every_call(device: bp.Device) -> None:
    model = bp.Sequential(Dropout(0.5), device=device, dtype="float64", seed=2)
    X = np.ones((10, 20))
    assert not np.array_equal(host(model(X)), host(model(X)))


def test_backward_uses_the_forward_mask(device: bp.Device, rng: np.random.Generator) -> None:
    p = 0.4
    model = bp.Sequential(Dropout(p), device=device, dtype="float64", seed=5)
    X = 1.0 + np.abs(rng.standard_normal((30, 8)))
    R = rng.standard_normal((30, 8))
    Y, dX = forward_backward(model, X, R)
    scale = (Y != 0) * (1.0 / (1.0 - p))
    assert 0 < (Y != 0).mean() < 1
    np.testing.assert_array_equal(Y, X * scale)
    np.testing.assert_array_equal(dX, R * scale)


def test_dropout_in_training_matches_central_differences_with_masks_held(
    device: bp.Device, rng: np.random.Generator
) -> None:
    """d/dX of sum(R * Y) through Dense -> Dropout -> Dense, the mask fixed by restoring the
    model's noise generator before each evaluation (what bp.gradcheck does)."""
    model = bp.Sequential(bp.Dense(4, 6), Dropout(0.5), bp.Dense(6, 3), device=device, dtype="float64", seed=8)
    backend = model.backend
    X, R = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    state = copy.deepcopy(model.noise_rng.bit_generator.state)

    def loss(Xp: np.ndarray) -> float:
        model.noise_rng.bit_generator.state = state
        with backend.activate():
            return float(np.sum(host(model.apply(backend.from_host(Xp), True)[0]) * R))

    model.noise_rng.bit_generator.state = state
    _, dX = forward_backward(model, X, R)
    np.testing.assert_allclose(dX, central_difference(loss, X), rtol=1e-7, atol=1e-9)
    assert_parameter_grads_match(model, loss, X)
    # The mask really dropped some hidden units in this batch (else the check proves little).
    model.noise_rng.bit_generator.state = state
    hidden = model.layers[0].apply(backend.from_host(X), True)[0]
    dropped = host(model.layers[1].apply(hidden, True)[0]) == 0
    assert 0 < dropped.mean() < 1


def test_gradcheck_holds_host_masks_fixed(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(
        bp.Dense(3, 8), bp.Tanh(), Dropout(0.3), bp.Dense(8, 2), device=device, dtype="float32", seed=4
    )
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    result = bp.gradcheck(model, X, y, "mse")
    assert result.ok, str(result)
    assert model.training and model.dtype == "float32"


def test_gradcheck_refuses_device_masks_in_training_mode(rng: np.random.Generator) -> None:
    model = bp.Sequential(bp.Dense(3, 8), bp.Tanh(), Dropout(0.3, masks="device"), bp.Dense(8, 2), seed=4)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    with pytest.raises(ValueError, match=r"cannot hold the masks of Dropout '2' fixed.*model.eval\(\)"):
        bp.gradcheck(model, X, y, "mse")
    assert bp.gradcheck(model.eval(), X, y, "mse").ok  # in eval mode dropout is the identity


def test_eval_mode_is_the_identity_and_draws_nothing(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(Dropout(0.7), device=device, dtype="float64", seed=1).eval()
    X, R = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    before = copy.deepcopy(model.noise_rng.bit_generator.state)
    Y, dX = forward_backward(model, X, R, training=False)
    np.testing.assert_array_equal(Y, X)
    np.testing.assert_array_equal(dX, R)
    assert model.noise_rng.bit_generator.state == before


def test_predict_is_deterministic(device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(bp.Dense(3, 16), bp.ReLU(), Dropout(0.5), bp.Dense(16, 2), device=device, seed=0)
    X = rng.standard_normal((10, 3))
    first, second = host(model.predict(X)), host(model.predict(X))
    np.testing.assert_array_equal(first, second)
    assert model.training  # predict restores the mode
    assert not np.array_equal(host(model(X)), host(model(X)))  # training mode does drop
    np.testing.assert_array_equal(host(model.eval()(X)), first)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_p_zero_is_an_exact_identity(dtype: str, device: bp.Device, rng: np.random.Generator) -> None:
    model = bp.Sequential(Dropout(0.0), device=device, dtype=dtype, seed=3)
    X, R = rng.standard_normal((50, 40)).astype(dtype), rng.standard_normal((50, 40)).astype(dtype)
    Y, dX = forward_backward(model, X, R)
    np.testing.assert_array_equal(Y, X)
    np.testing.assert_array_equal(dX, R)
    assert Y.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_host_masks_are_identical_on_every_device(dtype: str, device: bp.Device) -> None:
    X = np.ones((40, 30))
    ref = bp.Sequential(Dropout(0.5), device="cpu", dtype=dtype, seed=21)
    other = bp.Sequential(Dropout(0.5), device=device, dtype=dtype, seed=21)
    for _ in range(3):
        np.testing.assert_array_equal(host(other(X)), host(ref(X)))


def test_different_seeds_give_different_masks(device: bp.Device) -> None:
    X = np.ones((40, 30))
    a = bp.Sequential(Dropout(0.5), device=device, seed=1)
    b = bp.Sequential(Dropout(0.5), device=device, seed=2)
    assert not np.array_equal(host(a(X)), host(b(X)))


def test_device_masks_are_reproducible_from_the_seed(device: bp.Device) -> None:
    X = np.ones((40, 30))
    a = bp.Sequential(Dropout(0.5, masks="device"), device=device, seed=9)
    b = bp.Sequential(Dropout(0.5, masks="device"), device=device, seed=9)
    c = bp.Sequential(Dropout(0.5, masks="device"), device=device, seed=10)
    Ya = host(a(X))
    np.testing.assert_array_equal(Ya, host(b(X)))
    assert not np.array_equal(Ya, host(c(X)))


def test_device_masks_keep_working_after_moving_the_model(device: bp.Device) -> None:
    p = 0.25
    model = bp.Sequential(Dropout(p, masks="device"), device=device, dtype="float64", seed=6)
    X = np.ones((300, 40))
    first = host(model(X))
    target = bp.Device(namespace="array_api_strict") if device.type == "cpu" else bp.Device("cpu")
    model.to(target)
    Y = model(X)
    assert bp.backends.array_device(Y) in (None, target)
    Y = host(Y)
    assert abs((Y != 0).mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / Y.size)
    assert not np.array_equal(Y, first)  # a new generator, not a replay of the first masks
    model.to(device)
    assert abs((host(model(X)) != 0).mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / Y.size)


def test_device_masks_survive_a_deep_copy(device: bp.Device) -> None:
    model = bp.Sequential(bp.Dense(3, 4), Dropout(0.5, masks="device"), device=device, seed=6)
    clone = copy.deepcopy(model)
    assert host(clone(np.ones((8, 3)))).shape == (8, 4)


@pytest.mark.parametrize("layer", [Dropout(0.25), Dropout(0.0), Dropout(0.5, masks="device")], ids=repr)
def test_dropout_config_round_trips(layer: Dropout) -> None:
    description = json.loads(json.dumps(layer_config(layer)))
    rebuilt = layer_from_config(description)
    assert isinstance(rebuilt, Dropout)
    assert (rebuilt.p, rebuilt.masks) == (layer.p, layer.masks)
    assert repr(rebuilt) == repr(layer)


# ---------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("opt", ["SGD-momentum", "Adam"])
@pytest.mark.parametrize("case", ["p=0 training", "p=0.5 eval"])
def test_disabled_dropout_trains_like_pytorch_for_20_steps(
    case: str, opt: str, device: bp.Device, rng: np.random.Generator
) -> None:
    pytest.importorskip("torch")
    p = 0.0 if case.startswith("p=0 ") else 0.5
    model = bp.Sequential(
        bp.Dense(3, 6), bp.ReLU(), Dropout(p), bp.Dense(6, 2), device=device, dtype="float64", seed=12
    )
    twin = torch_twin(model)
    if case.endswith("eval"):
        model.eval()
        twin.eval()
    ours, theirs = optimizer_pair(opt, model, twin)
    assert_trains_like_torch(model, twin, ours, theirs, rng)

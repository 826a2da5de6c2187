"""The model API: parameters, backprop, fit, predict, to, state dicts, seeds and dtypes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from helpers import host


def mlp(device, dtype="float32", seed=0) -> bp.Sequential:
    return bp.Sequential(
        bp.Dense(4, 8, init="he"),
        bp.ReLU(),
        bp.Dense(8, 8),
        bp.GELU(),
        bp.Dense(8, 3),
        device=device,
        dtype=dtype,
        seed=seed,
    )


def data(rng, n=32):
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def test_parameters_are_named_in_layer_order(device: bp.Device) -> None:
    model = mlp(device)
    assert [p.name for p in model.parameters()] == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert [p.shape for p in model.parameters()][:2] == [(4, 8), (8,)]
    assert all(p.grad is None for p in model.parameters())
    assert list(model.state_dict()) == [p.name for p in model.parameters()]
    for p in model.parameters():
        assert bp.backends.array_device(p.data) in (None, device)


def test_same_seed_gives_bit_identical_weights_on_every_backend(device: bp.Device) -> None:
    reference = mlp("cpu", seed=11).state_dict()
    ours = mlp(device, seed=11).state_dict()
    for name, value in reference.items():
        assert ours[name].dtype == np.float32
        np.testing.assert_array_equal(ours[name], value)
    other = mlp(device, seed=12).state_dict()
    assert not np.array_equal(other["0.W"], reference["0.W"])


def test_seed_none_draws_and_records_a_seed() -> None:
    a, b = mlp("cpu", seed=None), mlp("cpu", seed=None)
    assert a.seed != b.seed
    np.testing.assert_array_equal(mlp("cpu", seed=a.seed).state_dict()["0.W"], a.state_dict()["0.W"])


def test_backprop_overwrites_gradients_and_returns_float(device: bp.Device, rng: np.random.Generator) -> None:
    model = mlp(device)
    X, y = data(rng)
    loss = model.backprop(X, y, bp.losses.SoftmaxCrossEntropy())
    assert isinstance(loss, float)
    first = [host(p.grad) for p in model.parameters()]
    model.backprop(X, y, bp.losses.SoftmaxCrossEntropy())
    for g, p in zip(first, model.parameters()):
        np.testing.assert_array_equal(host(p.grad), g)  # not doubled
        assert bp.backends.array_device(p.grad) in (None, device)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_fit_history_predict_and_no_dtype_drift(device: bp.Device, dtype: str, rng: np.random.Generator) -> None:
    model = mlp(device, dtype)
    X, y = data(rng, 64)
    Xv, yv = data(rng, 16)
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    history = model.fit(
        X, y, loss="cross_entropy", optimizer=opt, epochs=15, batch_size=16, validation_data=(Xv, yv), verbose=0
    )
    assert history.epochs == list(range(1, 16)) and len(history["val_loss"]) == 15
    assert history["loss"][-1] < history["loss"][0]
    for p in model.parameters():
        assert host(p.data).dtype == np.dtype(dtype) and host(p.grad).dtype == np.dtype(dtype)
    for state in opt.state:
        assert all(host(v).dtype == np.dtype(dtype) for k, v in state.items() if k in ("exp_avg", "exp_avg_sq"))
    P = model.predict(X)
    assert bp.backends.array_device(P) in (None, device)
    assert host(P).dtype == np.dtype(dtype) and host(P).shape == (64, 3)
    np.testing.assert_allclose(host(model.predict(X, batch_size=10)), host(P), rtol=1e-5, atol=1e-6)


def test_fit_loss_matches_mean_of_batch_losses(rng: np.random.Generator) -> None:
    """History's epoch loss is the sample-weighted mean of the batch losses, last batch partial."""
    X, y = data(rng, 10)
    a, b = mlp("cpu", "float64"), mlp("cpu", "float64")
    history = a.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=bp.optim.SGD(a.parameters(), lr=0.1),
        epochs=1,
        batch_size=4,
        shuffle=False,
        verbose=0,
    )
    opt = bp.optim.SGD(b.parameters(), lr=0.1)
    losses = []
    for s in (slice(0, 4), slice(4, 8), slice(8, 10)):
        losses.append(b.backprop(X[s], y[s], "cross_entropy") * (s.stop - s.start))
        opt.step()
    assert history["loss"][0] == pytest.approx(sum(losses) / 10, rel=1e-12)


def test_shuffling_follows_the_model_seed(rng: np.random.Generator) -> None:
    X, y = data(rng, 40)
    runs = []
    for _ in range(2):
        model = mlp("cpu", seed=5)
        runs.append(
            model.fit(
                X,
                y,
                loss="cross_entropy",
                optimizer=bp.optim.SGD(model.parameters(), lr=0.1),
                epochs=3,
                batch_size=8,
                verbose=0,
            )["loss"]
        )
    assert runs[0] == runs[1]


def test_inputs_are_never_mutated(device: bp.Device, rng: np.random.Generator) -> None:
    model = mlp(device)
    X, y = data(rng)
    X0, y0 = X.copy(), y.copy()
    opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=8, verbose=0)
    model.backprop(X, y, "cross_entropy")
    model.predict(X)
    state = model.state_dict()
    saved = {k: v.copy() for k, v in state.items()}
    model.load_state_dict(state)
    model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    for k in saved:
        np.testing.assert_array_equal(state[k], saved[k])


def test_device_arrays_are_used_as_given(device: bp.Device, rng: np.random.Generator) -> None:
    model = mlp(device)
    X, _ = data(rng)
    Xd = model.backend.from_host(X)
    np.testing.assert_array_equal(host(model.predict(Xd)), host(model.predict(X)))


def test_state_dict_round_trip_and_to(device: bp.Device, rng: np.random.Generator) -> None:
    X, _ = data(rng)
    source = mlp("cpu", "float64", seed=1)
    target = mlp(device, "float64", seed=2)
    target.load_state_dict(source.state_dict())
    np.testing.assert_allclose(host(target.predict(X)), host(source.predict(X)), rtol=1e-12)
    source.to(device)
    assert source.device == device and source.parameters()[0].backend.device == device
    np.testing.assert_allclose(host(source.predict(X)), host(target.predict(X)), rtol=1e-12)
    source.to(dtype="float32")
    assert source.dtype == "float32" and host(source.parameters()[0].data).dtype == np.float32


def test_state_dict_holds_copies_of_every_variable(device: bp.Device) -> None:
    """Read from one copy of the flat buffer, plus what lives outside it (BatchNorm's statistics,
    a parameter rebound by the user): every value right, none sharing the model's memory."""
    model = bp.Sequential(bp.Dense(3, 4), bp.BatchNorm(4), bp.Dense(4, 2), device=device, dtype="float64", seed=0)
    rebound = model.parameters()[-1]
    rebound.data = model.backend.from_host(np.full(rebound.shape, 0.5))
    state = model.state_dict()
    assert list(state) == [name for name, _ in model.named_variables()]
    for name, p in model.named_variables():
        np.testing.assert_array_equal(state[name], host(p.data))
        assert isinstance(state[name], np.ndarray) and state[name].shape == p.shape
    for value in state.values():
        value[...] = 7.0
    assert all(not np.any(host(p.data) == 7.0) for _, p in model.named_variables())


def test_load_state_dict_lists_every_mismatch_and_changes_nothing() -> None:
    model = mlp("cpu")
    before = model.state_dict()
    bad = dict(before)
    bad["0.W"] = np.zeros((5, 8))
    del bad["4.b"]
    bad["9.W"] = np.zeros(1)
    with pytest.raises(ValueError) as err:
        model.load_state_dict(bad)
    message = str(err.value)
    assert "'0.W' has shape (5, 8) in the state but (4, 8)" in message
    assert "missing '4.b'" in message and "unexpected '9.W'" in message
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_gradcheck_passes_on_a_model_and_catches_a_wrong_backward(device: bp.Device, rng: np.random.Generator) -> None:
    X, y = data(rng, 6)
    model = mlp(device)
    result = bp.gradcheck(model, X, y, "cross_entropy")
    assert result.ok and bool(result)
    assert set(result.errors) == {p.name for p in model.parameters()}
    assert result.max_error < 1e-6
    assert sum(result.checked.values()) >= 6 * 8  # large parameters: sampled entries + directions
    assert "gradient check OK" in str(result)
    assert model.dtype == "float32"  # the check ran on a float64 copy

    class WrongTanh(bp.Tanh):
        def apply(self, X, training):
            Y, backward = super().apply(X, training)
            return Y, lambda dY, need_dX=True: 1.01 * backward(dY, need_dX)

    broken = bp.Sequential(bp.Dense(4, 3), WrongTanh(), bp.Dense(3, 3), device=device, seed=0)
    result = bp.gradcheck(broken, X, y, "cross_entropy")
    assert not result.ok
    assert result.failed["0.W"] > 0 and result.failed["2.W"] == 0
    assert "FAILED" in str(result)


def test_gradcheck_skips_relu_kinks() -> None:
    """A ReLU input exactly at 0 is a kink; the check notices instead of failing."""
    model = bp.Sequential(bp.Dense(1, 1, init="zeros"), bp.ReLU(), bp.Dense(1, 1), device="cpu", dtype="float64")
    result = bp.gradcheck(model, np.array([[1.0]]), np.array([[1.0]]), "mse")
    assert result.ok and result.skipped["0.W"] == 1 and result.skipped["0.b"] == 1


def test_import_does_not_import_cupy() -> None:
    code = (
        "import sys, backprop; m = backprop.Sequential(backprop.Dense(2, 2)); m.predict([[1.0, 2.0]]); "
        "print('cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""fit's habits from Keras, PyTorch and scikit-learn: ``validation_split``, optimizers named by
a string (kept as ``model.optimizer``, continued by a second `fit`), and one target per sample
for one-output models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.registry import OPTIMIZERS
from fake_ranks import FakeWorld, run_ranks
from helpers import host


def regressor(device: Any = "cpu", dtype: str = "float64", seed: int = 0, outputs: int = 1) -> bp.Sequential:
    return bp.Sequential(bp.Dense(3, 8), bp.Tanh(), bp.Dense(8, outputs), device=device, dtype=dtype, seed=seed)


def regression(rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((n, 3))
    return X, (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)).reshape(-1, 1)


def states_equal(a: bp.Sequential, b: bp.Sequential) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


# ---------------------------------------------------------------------------- validation_split
def test_validation_split_holds_out_the_last_fraction_before_shuffling(device: bp.Device, rng) -> None:
    """10 samples, 0.25: the first floor(7.5) = 7 train (shuffled), the last 3 validate, as
    Keras; the same as passing that tail as validation_data."""
    X, y = regression(rng, 10)
    split = regressor(device)
    got = split.fit(X, y, loss="mse", optimizer="sgd", epochs=2, batch_size=3, validation_split=0.25, verbose=0)
    tail = regressor(device)
    want = tail.fit(X[:7], y[:7], loss="mse", optimizer="sgd", epochs=2, batch_size=3,
                    validation_data=(X[7:], y[7:]), verbose=0)  # fmt: skip
    assert list(got.history) == list(want.history) == ["loss", "lr", "val_loss"]
    for key in want.history:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)
    states_equal(split, tail)


def test_validation_split_of_device_arrays_and_lists(device: bp.Device, rng) -> None:
    """Arrays of the model's namespace are sliced there (X[a:b, ...]); lists as lists."""
    X, y = regression(rng, 10)
    want = regressor(device).fit(X, y, loss="mse", optimizer="sgd", epochs=2, validation_split=0.3, verbose=0)
    model = regressor(device)
    Xd, yd = model.backend.from_host(X), model.backend.from_host(y.ravel())
    got = model.fit(Xd, yd, loss="mse", optimizer="sgd", epochs=2, validation_split=0.3, verbose=0)
    np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=1e-12)
    listed = regressor(device).fit(X.tolist(), y.tolist(), loss="mse", optimizer="sgd", epochs=2,
                                   validation_split=0.3, verbose=0)  # fmt: skip
    np.testing.assert_allclose(listed["val_loss"], want["val_loss"], rtol=1e-12)


def test_validation_split_of_streamed_data(tmp_path, rng) -> None:
    """A .npy path keeps training streamed; its validation tail is read like validation_data."""
    X, y = regression(rng, 12)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    streamed = regressor()
    got = streamed.fit(tmp_path / "X.npy", tmp_path / "y.npy", loss="mse", optimizer="adam", epochs=2, batch_size=4,
                       validation_split=0.5, verbose=0)  # fmt: skip
    memory = regressor()
    want = memory.fit(X[:6], y[:6], loss="mse", optimizer="adam", epochs=2, batch_size=4,
                      validation_data=(X[6:], y[6:]), verbose=0)  # fmt: skip
    np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=1e-12)
    states_equal(streamed, memory)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (0.0, r"validation_split must lie in \(0, 1\); got 0.0"),
        (1.0, r"validation_split must lie in \(0, 1\); got 1.0"),
        (-0.2, r"validation_split must lie in \(0, 1\)"),
        ("0.2", "validation_split must be a float; got str"),
        (True, "validation_split must be a float; got bool"),
        (1e-17, r"validation_split=1e-17 of 10 sample\(s\) leaves 10 to train on and 0 to validate on"),
        (0.99, r"leaves 0 to train on and 10 to validate on"),
    ],
)
def test_bad_validation_splits_are_refused(split: Any, message: str, rng) -> None:
    X, y = regression(rng, 10)
    with pytest.raises(ValueError, match=message):
        regressor().fit(X, y, loss="mse", optimizer="sgd", validation_split=split, verbose=0)


def test_validation_split_and_validation_data_are_refused_together(rng) -> None:
    X, y = regression(rng, 10)
    with pytest.raises(ValueError, match="validation_split or validation_data, not both"):
        regressor().fit(X, y, loss="mse", optimizer="sgd", validation_split=0.2, validation_data=(X, y), verbose=0)
    with pytest.raises(ValueError, match="X has 10 samples but y has 9"):
        regressor().fit(X, y[:9], loss="mse", optimizer="sgd", validation_split=0.2, verbose=0)


def test_validation_split_in_data_parallel_training(rng) -> None:
    """Every rank splits its (identical) data alike; the ranks follow one process."""
    X, y = regression(rng, 16)
    options = {"loss": "mse", "optimizer": "adam", "epochs": 2, "batch_size": 5, "validation_split": 0.25,
               "verbose": 0}  # fmt: skip
    alone = regressor()
    want = alone.fit(X, y, **options)

    def body(world: FakeWorld) -> Any:
        model = regressor()
        history = model.fit(X, y, distributed=world, **options)
        return model.state_dict(), history

    for state, history in run_ranks(2, body):
        for key in want.history:
            np.testing.assert_allclose(history[key], want[key], rtol=1e-12, err_msg=key)
        for key, value in alone.state_dict().items():
            np.testing.assert_allclose(state[key], value, rtol=0, atol=1e-12, err_msg=key)


# ---------------------------------------------------------------------------- optimizer names
@pytest.mark.parametrize("name", OPTIMIZERS.aliases())
def test_every_registered_optimizer_by_name_is_its_class_with_defaults(name: str, rng) -> None:
    X, y = regression(rng, 20)
    by_name = regressor()
    by_name.fit(X, y, loss="mse", optimizer=name, epochs=2, batch_size=8, verbose=0)
    assert type(by_name.optimizer) is OPTIMIZERS[name]
    assert by_name.optimizer.params == by_name.parameters()
    by_hand = regressor()
    by_hand.fit(X, y, loss="mse", optimizer=OPTIMIZERS[name](by_hand.parameters()), epochs=2, batch_size=8, verbose=0)
    assert by_name.optimizer.get_config() == by_hand.optimizer.get_config()
    states_equal(by_name, by_hand)


def test_fit_twice_with_a_name_continues_its_state(device: bp.Device, rng) -> None:
    """Adam's moments and step count carry over: two fits of one epoch are one fit of two."""
    X, y = regression(rng, 20)
    twice = regressor(device)
    twice.fit(X, y, loss="mse", optimizer="adam", epochs=1, batch_size=8, verbose=0)
    first = twice.optimizer
    twice.fit(X, y, loss="mse", optimizer="Adam", epochs=1, batch_size=8, verbose=0)
    assert twice.optimizer is first
    once = regressor(device)
    once.fit(X, y, loss="mse", optimizer="adam", epochs=2, batch_size=8, verbose=0)
    states_equal(twice, once)
    twice.fit(X, y, loss="mse", optimizer="sgd", epochs=1, verbose=0)  # another name: a new optimizer
    assert isinstance(twice.optimizer, bp.optim.SGD)


def test_an_instance_becomes_model_optimizer_and_a_name_of_its_class_continues_it(rng) -> None:
    X, y = regression(rng, 20)
    model = regressor()
    adam = bp.optim.Adam(model.parameters(), lr=0.05)
    model.fit(X, y, loss="mse", optimizer=adam, verbose=0)
    assert model.optimizer is adam
    model.fit(X, y, loss="mse", optimizer="adam", verbose=0)
    assert model.optimizer is adam and adam.lr == 0.05
    model.fit(X, y, loss="mse", optimizer="adamw", verbose=0)  # AdamW is an Adam, but another class
    assert type(model.optimizer) is bp.optim.AdamW


def test_unknown_optimizer_names_list_the_known_ones(rng) -> None:
    X, y = regression(rng, 10)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm': use one of adagrad, adam, adamw, rmsprop, sgd"):
        regressor().fit(X, y, loss="mse", optimizer="adamm", verbose=0)
    with pytest.raises(TypeError, match="optimizer must be a bp.optim optimizer or a name"):
        regressor().fit(X, y, loss="mse", optimizer=0.01, verbose=0)


# ---------------------------------------------------------------------------- one target per sample
@pytest.mark.parametrize(
    ("loss", "last"),
    [("mse", None), ("mae", None), ("huber", None), ("bce", bp.Sigmoid), ("bce_with_logits", None)],
)
def test_one_output_models_take_one_target_per_sample(loss: str, last: Any, device: bp.Device, rng) -> None:
    """y of shape (N,) trains, evaluates and backpropagates exactly as y of shape (N, 1)."""
    X = rng.standard_normal((24, 3))
    y = (X[:, 0] > 0).astype(np.float64) if "bce" in loss else X @ np.array([1.0, -1.0, 2.0])

    def model() -> bp.Sequential:
        layers = [bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 1)] + ([last()] if last else [])
        return bp.Sequential(*layers, device=device, dtype="float64", seed=1)

    flat, column = model(), model()
    got = flat.fit(X, y, loss=loss, optimizer="adam", epochs=2, batch_size=5, validation_data=(X, y), verbose=0)
    want = column.fit(X, y.reshape(-1, 1), loss=loss, optimizer="adam", epochs=2, batch_size=5,
                      validation_data=(X, y.reshape(-1, 1)), verbose=0)  # fmt: skip
    for key in want.history:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    states_equal(flat, column)
    assert flat.evaluate(X, y, loss) == column.evaluate(X, y.reshape(-1, 1), loss)
    assert flat.backprop(X, y, loss) == column.backprop(X, y.reshape(-1, 1), loss)
    grads = [host(p.grad).copy() for p in flat.parameters()]
    column.backprop(X, y.reshape(-1, 1), loss)
    for g, p in zip(grads, column.parameters()):
        np.testing.assert_array_equal(g, host(p.grad))
    with flat.backend.activate():
        T = flat.checked_data(X, y, bp.losses.get_loss(loss))[1]
    assert tuple(T.shape) == (24, 1)


def test_one_target_per_sample_streamed_from_a_file(tmp_path, rng) -> None:
    X, y = regression(rng, 12)
    np.save(tmp_path / "y.npy", y.ravel())
    streamed, memory = regressor(), regressor()
    got = streamed.fit(X, tmp_path / "y.npy", loss="mse", optimizer="sgd", epochs=2, batch_size=5, verbose=0)
    want = memory.fit(X, y, loss="mse", optimizer="sgd", epochs=2, batch_size=5, verbose=0)
    np.testing.assert_array_equal(got["loss"], want["loss"])


def test_one_target_per_sample_for_several_outputs_is_ambiguous(rng) -> None:
    X = rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(6, 2\).*got \(6,\): one value per sample cannot fill "
                                         r"2 outputs. Pass one column per output, shape \(6, 2\)"):  # fmt: skip
        regressor(outputs=2).backprop(X, np.zeros(6), "mse")
    binary = bp.Sequential(bp.Dense(3, 3), bp.Sigmoid(), seed=0)
    with pytest.raises(ValueError, match=r"class labels 0..2, train with loss='cross_entropy'"):
        binary.evaluate(X, np.array([0, 1, 2, 0, 1, 2]), "bce")
    labels = bp.Sequential(bp.Dense(3, 3), seed=0)  # integer labels (N,) stay the multi-class form
    assert labels.evaluate(X, np.array([0, 1, 2, 0, 1, 2]), "cross_entropy")["loss"] > 0


def test_a_loaded_checkpoint_continues_with_the_named_optimizer(tmp_path, rng) -> None:
    """Resuming: the checkpoint's optimizer becomes model.optimizer, so optimizer="adam" goes on
    with its moments and step count (and the restored generators shuffle on alike)."""
    X, y = regression(rng, 20)
    model = regressor()
    model.fit(X, y, loss="mse", optimizer="adam", epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "ckpt.npz", model.optimizer)
    resumed = bp.load_checkpoint(tmp_path / "ckpt.npz")
    assert resumed.model.optimizer is resumed.optimizer
    resumed.model.fit(X, y, loss="mse", optimizer="adam", epochs=1, batch_size=8, verbose=0)
    assert resumed.model.optimizer is resumed.optimizer
    once = regressor()
    once.fit(X, y, loss="mse", optimizer="adam", epochs=2, batch_size=8, verbose=0)
    states_equal(resumed.model, once)

"""Metrics by name through `fit` and `evaluate`: with lr=0 the weights never change, so an
epoch's metric (states added up over its batches) equals scikit-learn's on the model's own
predictions, and so do the validation metric and `evaluate`'s."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop as bp
from helpers import host

metrics_sk = pytest.importorskip("sklearn.metrics")


def frozen_fit(model: bp.Sequential, X: np.ndarray, y: np.ndarray, loss: str, names: list[str]) -> dict[str, Any]:
    history = model.fit(
        X, y, loss=loss, optimizer=bp.optim.SGD(model.parameters(), lr=0.0), epochs=1, batch_size=16,
        metrics=names, validation_data=(X, y), verbose=0,
    )  # fmt: skip
    return {key: values[0] for key, values in history.history.items()}


def test_classification_metrics_by_name_match_sklearn(device: bp.Device, rng: np.random.Generator) -> None:
    X = rng.standard_normal((75, 4)).astype(np.float32)
    y = rng.integers(0, 4, 75)
    model = bp.Sequential(bp.Dense(4, 4), device=device, dtype="float64", seed=3)
    names = ["accuracy", "top_2_accuracy", "precision", "recall", "f1"]
    values = frozen_fit(model, X, y, "cross_entropy", names)
    P = host(model.predict(X))
    predicted = P.argmax(axis=1)
    expected = {
        "accuracy": metrics_sk.accuracy_score(y, predicted),
        "top_2_accuracy": metrics_sk.top_k_accuracy_score(y, P, k=2, labels=range(4)),
        "precision": metrics_sk.precision_score(y, predicted, average="macro", zero_division=0),
        "recall": metrics_sk.recall_score(y, predicted, average="macro", zero_division=0),
        "f1": metrics_sk.f1_score(y, predicted, average="macro", zero_division=0),
    }
    evaluated = model.evaluate(X, y, "cross_entropy", metrics=names)
    for name, value in expected.items():
        assert 0.0 < value < 1.0, name
        assert values[name] == pytest.approx(value, rel=1e-12), name
        assert values[f"val_{name}"] == pytest.approx(value, rel=1e-12), name
        assert evaluated[name] == pytest.approx(value, rel=1e-12), name


def test_binary_metrics_on_logits(device: bp.Device, rng: np.random.Generator) -> None:
    X = rng.standard_normal((70, 3))
    y = (rng.uniform(size=(70, 1)) > 0.5).astype(np.float64)
    model = bp.Sequential(bp.Dense(3, 1), device=device, dtype="float64", seed=1)
    values = frozen_fit(model, X, y, "bce_with_logits", ["precision", "recall", "f1"])
    predicted = (host(model.predict(X))[:, 0] > 0).astype(int)
    for name, fn in (("precision", metrics_sk.precision_score), ("recall", metrics_sk.recall_score),
                     ("f1", metrics_sk.f1_score)):  # fmt: skip
        expected = fn(y[:, 0].astype(int), predicted, zero_division=0)
        assert 0.0 < expected < 1.0
        assert values[name] == pytest.approx(expected, rel=1e-12), name
        assert values[f"val_{name}"] == pytest.approx(expected, rel=1e-12), name


def test_regression_metrics_by_name_match_sklearn(device: bp.Device, rng: np.random.Generator) -> None:
    X = rng.standard_normal((70, 3))
    T = X @ rng.standard_normal((3, 2)) + 0.3 * rng.standard_normal((70, 2))
    model = bp.Sequential(bp.Dense(3, 2), device=device, dtype="float64", seed=2)
    values = frozen_fit(model, X, T, "mse", ["mae", "mse", "r2"])
    P = host(model.predict(X))
    expected = {
        "mae": metrics_sk.mean_absolute_error(T, P),
        "mse": metrics_sk.mean_squared_error(T, P),
        "r2": metrics_sk.r2_score(T, P),
    }
    evaluated = model.evaluate(X, T, "mse", metrics=["mae", "mse", "r2"])
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, rel=1e-12), name
        assert values[f"val_{name}"] == pytest.approx(value, rel=1e-12), name
        assert evaluated[name] == pytest.approx(value, rel=1e-12), name
    assert values["mse"] == pytest.approx(values["loss"], rel=1e-12)  # the MSE loss is the same mean


def test_evaluate_adds_up_states_over_its_batches(rng: np.random.Generator) -> None:
    """`evaluate` reads 1024 rows at a time: 2500 rows are three batches, whose F1 and R²
    states add up to the whole set's."""
    X = rng.standard_normal((2500, 3))
    y = rng.integers(0, 3, 2500)
    model = bp.Sequential(bp.Dense(3, 3), dtype="float64", seed=4)
    predicted = host(model.predict(X)).argmax(axis=1)
    f1 = model.evaluate(X, y, "cross_entropy", metrics=["f1"])["f1"]
    assert f1 == pytest.approx(metrics_sk.f1_score(y, predicted, average="macro"), rel=1e-12)
    T = rng.standard_normal((2500, 3))
    r2 = model.evaluate(X, T, "mse", metrics=["r2"])["r2"]
    assert r2 == pytest.approx(metrics_sk.r2_score(T, host(model.predict(X))), rel=1e-12)


def test_deferred_epochs_read_in_one_block_keep_each_epochs_metric(rng: np.random.Generator) -> None:
    """With verbose=0 and nothing reading epochs as they end, several epochs' states are read
    at once: each epoch's F1 is still its own (the same every epoch, as lr=0)."""
    X = rng.standard_normal((50, 3))
    y = rng.integers(0, 3, 50)
    model = bp.Sequential(bp.Dense(3, 3), dtype="float64", seed=5)
    history = model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.SGD(model.parameters(), lr=0.0), epochs=3,
                        batch_size=8, metrics=["f1"], verbose=0)  # fmt: skip
    expected = metrics_sk.f1_score(y, host(model.predict(X)).argmax(axis=1), average="macro")
    assert history["f1"] == pytest.approx([expected] * 3, rel=1e-12)

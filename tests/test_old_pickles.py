"""What an earlier version pickled still works: a model, its optimizer and scikit-learn
estimators pickled by the first version that pickled them (commit 2f7b787, before the stage
plan, layer widths, labels, the kept optimizer and device-mask ranks existed) predict what that
version predicted, and training goes on as it went on there. The fixture is written by
``tests/data/make_old_pickles.py``."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

FIXTURE = Path(__file__).parent / "data" / "old_pickles.pkl"


@pytest.fixture
def old() -> dict:
    with open(FIXTURE, "rb") as fh:
        return pickle.load(fh)


def test_the_fixture_is_from_before_those_attributes(old: dict) -> None:
    for name in (b"_stage_layers", b"layer_widths", b"_classes", b"_device_rng_rank"):
        assert name not in old["pickled"]


def test_an_old_model_predicts_and_trains_on_as_it_did(old: dict) -> None:
    model, optimizer, _, _ = pickle.loads(old["pickled"])
    X, y, expected = old["X"], old["y"], old["expected"]
    np.testing.assert_allclose(model.predict(X), expected["predict"], rtol=1e-12, atol=1e-14)
    history = model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(history["loss"], expected["continued_loss"], rtol=1e-12)
    np.testing.assert_allclose(model.predict(X), expected["continued_predict"], rtol=1e-12, atol=1e-14)


def test_an_old_model_has_what_newer_ones_have(old: dict, tmp_path) -> None:
    model = pickle.loads(old["pickled"])[0]
    X, y = old["X"], old["y"]
    assert model.classes is None and model.threshold is None and model.optimizer is None
    assert model.precision == "fp32" and model.loss_scaler is None
    assert model.summary(print_fn=None).rows[-1].output_shape == (None, 3)
    assert len(model) == 7 and isinstance(model[0], bp.Dense) and len(model[1:3]) == 2
    labels = model.predict_labels(X)
    assert labels.shape == (48,) and set(labels.tolist()) <= {0, 1, 2}
    model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=1, verbose=0, validation_split=0.25)
    assert isinstance(model.optimizer, bp.optim.Adam)
    model.save(tmp_path / "m.npz", model.optimizer)
    np.testing.assert_array_equal(bp.load_checkpoint(tmp_path / "m.npz").model.predict(X), model.predict(X))


def test_old_estimators_predict_and_fit_again(old: dict) -> None:
    pytest.importorskip("sklearn")
    _, _, clf, reg = pickle.loads(old["pickled"])
    X, y, expected = old["X"], old["y"], old["expected"]
    np.testing.assert_allclose(clf.predict_proba(X), expected["clf"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(reg.predict(X), expected["reg"], rtol=1e-12, atol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
        assert clf.partial_fit(X, y).score(X, y) >= 0 and reg.fit(X, X[:, 0]).predict(X).shape == (48,)

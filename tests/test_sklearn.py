"""The scikit-learn estimators: scikit-learn's own `check_estimator`, meta-estimators, joblib,
partial_fit, warm starts, and the estimator being the library's model underneath."""

from __future__ import annotations

import os

# scikit-learn runs its array-API check (numpy inputs with array_api_dispatch on) only when
# SciPy was imported with this set; without it that check would be skipped, not run
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")

import joblib
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import backprop as bp
from backprop.sklearn import MLPClassifier, MLPRegressor

# Small and quick, yet they must learn scikit-learn's check problems (3 blobs to > 83%
# accuracy, a regression to R^2 > 0.5), so the step size is larger than the default.
SMALL = {"hidden_layer_sizes": (8,), "max_iter": 60, "learning_rate_init": 0.02, "random_state": 0}
# small max_iter values rarely converge: scikit-learn's ConvergenceWarning is expected here
# (test_stopping_rules checks when it comes and when not)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def float32_not_applicable(estimator: object) -> dict[str, str]:
    """The checks that do not apply to a model that computes in float32 (``dtype="float32"``).
    With the default ``dtype=None`` (float64 for float64 data, as scikit-learn's MLP) every
    check passes. These still run, as expected failures; the first may also pass (it does for
    the regressor on this machine's BLAS, whose kernels decide which rows differ)."""
    if getattr(estimator, "dtype", None) != "float32":
        return {}
    reasons = {
        # predictions of a subset must equal those of the whole to rtol=atol=1e-7, tighter than
        # float32's resolution (1.2e-7 relative): BLAS sums a row's products in an order that
        # depends on the number of rows, so outputs differ in their last bit (measured: 4.8e-7)
        "check_methods_subset_invariance": "float32 outputs differ in the last bit between batch sizes",
    }
    if isinstance(estimator, MLPRegressor):
        # the check wants float64 predictions; a float32 model predicts float32
        reasons["check_regressor_multioutput"] = "a float32 model predicts float32"
    return reasons


@parametrize_with_checks(
    [
        MLPClassifier(**SMALL),
        MLPRegressor(**SMALL),
        MLPClassifier(**SMALL, dtype="float32"),
        MLPRegressor(**SMALL, dtype="float32"),
    ],
    expected_failed_checks=float32_not_applicable,
)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def test_pipeline_grid_search_and_cross_validation() -> None:
    X, y = iris()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, learning_rate_init=0.02, random_state=0))
    assert pipe.fit(X, y).score(X, y) > 0.9
    search = GridSearchCV(
        pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)], "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2
    )
    search.fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__hidden_layer_sizes", "mlpclassifier__alpha"}
    assert len(search.cv_results_["params"]) == 4
    assert (
        search.best_estimator_[-1].model_.layers[0].out_features
        == search.best_params_["mlpclassifier__hidden_layer_sizes"][0]
    )
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.6


def test_cross_validation_in_worker_processes() -> None:
    """joblib's process workers receive the estimator pickled and send it back fitted."""
    X, y = iris()
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=20, learning_rate_init=0.02, random_state=0))
    here = cross_val_score(pipe, X, y, cv=2)
    there = cross_val_score(pipe, X, y, cv=2, n_jobs=2)
    np.testing.assert_array_equal(there, here)


def test_joblib_round_trip_predicts_and_trains_on_identically(tmp_path) -> None:
    X, y = iris()
    clf = MLPClassifier((8,), max_iter=10, random_state=0).fit(X, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    for est in (clf, loaded):  # the optimizer's state travelled with the model
        est.partial_fit(X, y)
    for name, value in clf.model_.state_dict().items():
        np.testing.assert_array_equal(loaded.model_.state_dict()[name], value)


def test_clone_is_unfitted_with_the_same_parameters() -> None:
    clf = MLPClassifier((3, 2), activation="tanh", solver="sgd", device=bp.Device("cpu"), max_iter=2)
    with pytest.warns(ConvergenceWarning):
        clf.fit(*iris())
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.predict(iris()[0])


def test_the_estimator_trains_the_model_the_library_would() -> None:
    """``random_state`` is the model's seed, ``alpha`` scikit-learn's L2 penalty: the same
    model, fitted by hand, ends with the same weights bit for bit."""
    X, y = iris()
    clf = MLPClassifier((5,), alpha=0.01, batch_size=32, max_iter=3, random_state=4).fit(X, y)
    l2 = 0.5 * 0.01 / 32
    model = bp.Sequential(
        bp.Dense(4, 5, l2=l2), bp.ReLU(), bp.Dense(5, 3, l2=l2), device="cpu", dtype="float64", seed=4
    )
    labels = np.searchsorted(clf.classes_, y)
    history = model.fit(
        X, labels, loss="cross_entropy", optimizer=bp.optim.Adam(model.parameters(), lr=0.001), epochs=3,
        batch_size=32, verbose=0,
    )  # fmt: skip
    assert clf.model_.seed == 4 and clf.n_iter_ == 3
    assert clf.loss_curve_ == history["loss"]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(clf.model_.state_dict()[name], value, err_msg=name)


def test_classifier_outputs() -> None:
    X, y = iris()
    clf = MLPClassifier((8,), max_iter=100, learning_rate_init=0.02, random_state=0).fit(X, y)
    P = clf.predict_proba(X)
    assert P.shape == (150, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])
    assert clf.decision_function(X).shape == (150, 3)
    assert clf.score(X, y) > 0.9
    # two classes: two outputs, softmax; the decision function is the logit of classes_[1]
    binary = MLPClassifier((8,), max_iter=50, random_state=0).fit(X[:100], y[:100])
    assert binary.model_.out_features == 2
    d = binary.decision_function(X[:100])
    assert d.shape == (100,)
    np.testing.assert_allclose(binary.predict_proba(X[:100])[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-10)
    np.testing.assert_array_equal(binary.predict(X[:100]), binary.classes_[(d > 0).astype(int)])


def test_partial_fit_needs_classes_first_then_learns_in_chunks() -> None:
    X, y = iris()
    order = np.random.default_rng(0).permutation(150)
    X, y = X[order], y[order]
    clf = MLPClassifier((8,), learning_rate_init=0.02, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:50], y[:50])
    clf.partial_fit(X[:10][y[:10] != "setosa"], y[:10][y[:10] != "setosa"], classes=np.unique(y))
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"] and clf.n_iter_ == 1
    for _ in range(40):
        for start in range(0, 150, 50):
            clf.partial_fit(X[start : start + 50], y[start : start + 50])
    assert len(clf.loss_curve_) == 121
    assert clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:2], np.array(["setosa", "rose"]))
    with pytest.raises(ValueError, match="is not the same"):
        clf.partial_fit(X[:2], y[:2], classes=["setosa", "versicolor"])
    with pytest.raises(ValueError, match="4 features"):
        clf.partial_fit(X[:2, :3], y[:2])


def test_warm_start_continues_and_cold_start_starts_over() -> None:
    X, y = iris()
    cold = MLPClassifier((8,), max_iter=5, random_state=0)
    first = cold.fit(X, y).model_.state_dict()
    cold.fit(X, y)
    assert len(cold.loss_curve_) == 5
    for name, value in first.items():
        np.testing.assert_array_equal(cold.model_.state_dict()[name], value)

    warm = MLPClassifier((8,), max_iter=5, random_state=0, warm_start=True).fit(X, y)
    model, optimizer = warm.model_, warm.optimizer_
    warm.fit(X, y)
    assert warm.model_ is model and warm.optimizer_ is optimizer and warm.n_iter_ == 5
    assert len(warm.loss_curve_) == 10
    # ten epochs in two warm fits are ten epochs in one
    ten = MLPClassifier((8,), max_iter=10, random_state=0).fit(X, y)
    for name, value in ten.model_.state_dict().items():
        np.testing.assert_array_equal(warm.model_.state_dict()[name], value)
    with pytest.raises(ValueError, match="not in classes_"):
        warm.fit(X, np.where(y == "setosa", "rose", y))


def test_stopping_rules() -> None:
    X, y = iris()
    clf = MLPClassifier((8,), max_iter=500, tol=1e-3, n_iter_no_change=3, learning_rate_init=0.05, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # none: the training loss stopped improving
        clf.fit(X, y)
    assert clf.n_iter_ < 500
    early = MLPClassifier(
        (32,), max_iter=300, early_stopping=True, validation_fraction=0.2, n_iter_no_change=5, tol=0.0,
        learning_rate_init=0.05, random_state=0,
    ).fit(X, y)  # fmt: skip
    val = early.history_["val_loss"]
    assert early.n_iter_ == len(val) < 300
    # stopped after 5 epochs without a new lowest validation loss, with that epoch's weights
    best = int(np.argmin(val))
    assert best == len(val) - 1 - 5
    held_out = early.model_.evaluate(*_validation_split(early, X, y), loss="cross_entropy")["loss"]
    assert held_out == pytest.approx(val[best], rel=1e-12)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        early.partial_fit(X, y)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\)"):
        MLPClassifier((4,), max_iter=2).fit(X, y)


def test_regressor_keeps_the_shape_of_y() -> None:
    X, y = make_regression(80, 4, n_targets=2, random_state=0)
    y = y / y.std(axis=0)
    for target, shape in ((y[:, 0], (80,)), (y[:, :1], (80, 1)), (y, (80, 2))):
        reg = MLPRegressor((8,), max_iter=100, learning_rate_init=0.02, random_state=0).fit(X, target)
        assert reg.predict(X).shape == shape
        assert reg.n_outputs_ == (shape[1] if len(shape) == 2 else 1)
        assert reg.score(X, target) > 0.5
    with pytest.raises(ValueError, match="outputs"):
        reg.partial_fit(X, y[:, 0])


def test_dtype_follows_the_data_unless_given() -> None:
    X, y = iris()
    assert MLPClassifier((4,), max_iter=1).fit(X, y).model_.dtype == "float64"
    assert MLPClassifier((4,), max_iter=1).fit(X.astype(np.float32), y).model_.dtype == "float32"
    assert MLPClassifier((4,), max_iter=1, dtype="float32").fit(X, y).model_.dtype == "float32"
    reg = MLPRegressor((4,), max_iter=1, dtype="float32").fit(X, X[:, 0])
    assert reg.predict(X).dtype == np.float32


def test_every_backend_gives_the_same_estimator(device: bp.Device) -> None:
    X, y = iris()
    ref = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    clf = MLPClassifier((8,), max_iter=5, random_state=0, device=device).fit(X, y)
    assert clf.model_.device == device
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    again = pickle.loads(pickle.dumps(clf))
    assert again.model_.device == device
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def _validation_split(clf: MLPClassifier, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples ``early_stopping`` held out (drawn from the model's seed, stratified)."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    T = np.searchsorted(clf.classes_, y)
    _, X_val, _, T_val = train_test_split(
        X, T, test_size=clf.validation_fraction, random_state=clf.model_.seed % 2**32, stratify=T
    )
    return X_val, T_val


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes must be a positive integer"),
        ({"activation": "softplus"}, "activation"),
        ({"solver": "lbfgs"}, "solver"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"dtype": "float16"}, "dtype"),
        ({"device": "gpu"}, "spelled 'cuda'"),
    ],
)
def test_bad_hyperparameters_are_refused_by_fit_not_the_constructor(params, match) -> None:
    clf = MLPClassifier(**params)  # scikit-learn's rule: the constructor only stores
    with pytest.raises(ValueError, match=match):
        clf.fit(*iris())
    assert not hasattr(clf, "model_")  # refused before anything was built


def test_backprop_does_not_import_scikit_learn_and_says_what_to_install() -> None:
    code = (
        "import sys; import backprop; assert 'sklearn' not in sys.modules, 'imported'\n"
        "sys.modules['sklearn'] = None  # as if it were not installed\n"
        "try:\n    import backprop.sklearn\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "backprop-nn[sklearn]"' in out

"""Writes ``old_pickles.pkl``, the fixture of `tests/test_old_pickles.py`: models, an optimizer
and scikit-learn estimators as the first version that pickled them did (commit 2f7b787), with
what that version predicted and how its training went on. Run it with that version importable:

    git worktree add /tmp/bp-2f7b787 2f7b787
    PYTHONPATH=/tmp/bp-2f7b787 python tests/data/make_old_pickles.py
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np

import backprop as bp
from backprop.sklearn import MLPClassifier, MLPRegressor


def main() -> None:
    warnings.simplefilter("ignore")  # the estimators' ConvergenceWarning: a few iterations on purpose
    rng = np.random.default_rng(7)
    X = rng.standard_normal((48, 4))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    model = bp.Sequential(
        bp.Dense(4, 8), bp.ReLU(), bp.BatchNorm(8), bp.Dense(8, 8), bp.Dropout(0.2), bp.Tanh(), bp.Dense(8, 3),
        dtype="float64", seed=0,
    )  # fmt: skip
    optimizer = bp.optim.Adam(model.parameters(), lr=0.01)
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=3, batch_size=16, verbose=0)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, dtype="float64").fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0, dtype="float64").fit(X, X[:, 0])
    saved = pickle.dumps((model, optimizer, clf, reg))
    expected = {"predict": model.predict(X), "clf": clf.predict_proba(X), "reg": reg.predict(X)}
    history = model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=2, batch_size=16, verbose=0)
    expected.update(continued_loss=np.array(history["loss"]), continued_predict=model.predict(X))
    with open(Path(__file__).with_name("old_pickles.pkl"), "wb") as fh:
        pickle.dump({"pickled": saved, "X": X, "y": y, "expected": expected}, fh)


if __name__ == "__main__":
    main()

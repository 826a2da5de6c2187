"""Loading a ``--data`` set for a command: the split into training, validation and test parts,
and the features standardised by statistics of the training part only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..datasets import DataError, Dataset, Standardizer, load, split_indices
from .errors import CliError

__all__ = ["TrainingData", "class_indices", "load_dataset", "prepare_training_data"]


@dataclass(frozen=True)
class TrainingData:
    """A data set ready to train on: the features of every part, standardised with ``scaler``
    (fitted on the training part) unless ``raw``: then they are as the data set has them, for a
    model that standardises them itself (`bp.Standardize` first, built from ``scaler``).
    ``X_val`` is ``None`` when there is no validation part."""

    dataset: Dataset
    scaler: Standardizer
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray
    raw: bool = False

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(X_val, y_val)`` for `fit`, or ``None``."""
        return None if self.X_val is None or self.y_val is None else (self.X_val, self.y_val)

    def describe(self) -> str:
        """``digits: 1294 training, 144 validation, 360 test samples; 64 features, 10 classes``."""
        ds = self.dataset
        n_val = 0 if self.X_val is None else len(self.X_val)
        test = "tested on the training data (no held-out set)" if ds.test_is_train else f"{len(self.X_test)} test"
        kind = f"{ds.n_classes} classes" if ds.task == "classification" else "regression"
        return (
            f"{ds.name}: {len(self.X_train)} training, {n_val} validation, {test} samples; "
            f"{ds.n_features} features, {kind}"
        )


def load_dataset(spec: str, test_size: float, split_seed: int, task: str | None = None,
                 delimiter: str | None = None) -> Dataset:  # fmt: skip
    """`bp.datasets.load`, with a data problem (a missing or malformed CSV file) as a `CliError`.
    A CSV file's delimiter is sniffed unless ``delimiter`` is given."""
    if delimiter is None and spec.strip().lower().startswith("csv:"):
        delimiter = "auto"
    try:
        return load(spec, test_size=test_size, seed=split_seed, task=task, delimiter=delimiter)
    except DataError as exc:
        raise CliError(f"--data {spec}: {exc}") from None


def prepare_training_data(
    spec: str, test_size: float, split_seed: int, val_split: float, scaler: Standardizer | None = None,
    task: str | None = None, delimiter: str | None = None, *, raw: bool = False,
) -> TrainingData:
    """Load ``spec``, hold out ``val_split`` of the training part for validation (stratified by
    class, seeded by ``split_seed``; none for a set without held-out data such as ``xor``) and
    standardise every part with ``scaler``, by default one fitted on the remaining training
    samples only (a resumed run of an older version passes the one it saved). With ``raw`` the
    parts stay as they are and ``scaler`` only holds the statistics, for the model's own
    `bp.Standardize` layer. ``task`` and ``delimiter`` are the ``--task`` and ``--delimiter``
    options (see `load_dataset`)."""
    ds = load_dataset(spec, test_size, split_seed, task, delimiter)
    if scaler is not None and scaler.n_features != ds.n_features:
        raise CliError(f"--data {spec} has {ds.n_features} features but the model was trained on {scaler.n_features}")
    X, y = ds.X_train, ds.y_train
    X_val = y_val = None
    if val_split > 0 and not ds.test_is_train:
        stratify = y if y.ndim == 1 and ds.task == "classification" else None
        try:
            keep, held = split_indices(len(X), val_split, split_seed, stratify=stratify)
        except DataError as exc:
            raise CliError(f"--val-split {val_split}: {exc}") from None
        X, y, X_val, y_val = X[keep], y[keep], X[held], y[held]
    if scaler is None:
        scaler = Standardizer().fit(X)
    if raw:
        return TrainingData(ds, scaler, X, y, X_val, y_val, ds.X_test, ds.y_test, raw=True)
    try:
        scale = scaler.transform
        return TrainingData(
            ds, scaler, scale(X), y, None if X_val is None else scale(X_val), y_val, scale(ds.X_test), ds.y_test
        )
    except DataError as exc:
        raise CliError(f"--data {spec}: {exc}") from None


def class_indices(labels: np.ndarray, classes: Sequence[Any], where: str) -> np.ndarray:
    """Original class labels as indices into ``classes`` (a checkpoint's class list), so a file
    with fewer classes or another order is scored against the model's outputs correctly."""
    index = {_key(c): i for i, c in enumerate(classes)}
    unknown = sorted({_key(v) for v in labels.tolist()} - set(index), key=str)
    if unknown:
        raise CliError(
            f"{where} has labels the model was not trained on: {', '.join(map(repr, unknown[:10]))}; "
            f"its classes are {', '.join(map(repr, classes))}"
        )
    return np.array([index[_key(v)] for v in labels.tolist()], dtype=np.int64)


def _key(value: Any) -> Any:
    """Labels compare by value: ``3``, ``3.0`` and ``np.int64(3)`` are one class."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    return value

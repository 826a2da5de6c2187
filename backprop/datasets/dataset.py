"""`Dataset`: the train/test arrays and description every loader returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError
from .split import split_indices
from .standardize import Standardizer

__all__ = ["TASKS", "Dataset"]

TASKS = ("classification", "regression")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A data set split into training and test parts, with what a model needs to know about it.

    Arrays (host NumPy, owned by the Dataset):

    - ``X_train``, ``X_test``: float32 features, shape ``(samples, n_features)``.
    - ``y_train``, ``y_test``: for ``task="classification"`` int64 class indices ``0..K-1`` of
      shape ``(samples,)`` (what `bp.losses.SoftmaxCrossEntropy` takes); a binary data set may
      instead hold float32 0/1 targets of shape ``(samples, 1)`` for `BCE`/`BCEWithLogits` (only
      `xor` does). For ``task="regression"`` float32 targets of shape ``(samples, n_targets)``.

    Description:

    - ``task``: ``"classification"`` or ``"regression"``; ``name``: a short name.
    - ``feature_names``: one name per feature column.
    - ``n_classes`` and ``classes``: the number of classes and the original label of each class
      index (``classes[y]`` recovers the label: ints, floats or strings); ``None`` for regression.
    - ``target_name``: the label column's name, where there is one.
    - ``train_rows``, ``test_rows``: which rows of the source each sample came from (int64),
      where the loader split a source; ``None`` otherwise.
    - ``test_is_train``: ``True`` when there is no held-out data and the test arrays are copies
      of the training arrays (`xor`: 4 samples cannot be split).

    "Frozen" means fields cannot be reassigned; use `dataclasses.replace` for a changed copy.
    Build one from full arrays with `Dataset.from_arrays`.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    name: str
    feature_names: tuple[str, ...]
    n_classes: int | None = None
    classes: tuple[Any, ...] | None = None
    target_name: str | None = None
    train_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None
    test_is_train: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        X: Any,
        y: Any,
        *,
        task: str,
        name: str,
        feature_names: Sequence[str] | None = None,
        classes: Sequence[Any] | None = None,
        target_name: str | None = None,
        test_size: float = 0.2,
        seed: int | None = 0,
    ) -> Dataset:
        """Split full arrays into a Dataset (inputs are copied, never modified).

        ``X`` has shape ``(samples, features)``. For classification ``y`` holds integer class
        indices ``0..K-1``, shape ``(samples,)``, and the split is stratified by class;
        ``classes`` gives the original label of each index (default ``0..K-1``). For regression
        ``y`` has shape ``(samples,)`` or ``(samples, n_targets)`` and the split is a plain
        shuffle. See `split_indices` for ``test_size`` and ``seed``.
        """
        if task not in TASKS:
            raise DataError(f"task must be one of {TASKS}; got {task!r}")
        features = np.asarray(X)
        if features.ndim != 2:
            raise DataError(f"X must be 2-D, shape (samples, features); got shape {features.shape}")
        targets = np.asarray(y)
        labels: tuple[Any, ...] | None
        if task == "classification":
            targets, labels = _class_indices(targets, classes)
        else:
            labels = None if classes is None else tuple(classes)  # refused by _validate: regression has no classes
            targets = targets.reshape(-1, 1) if targets.ndim == 1 else targets
            targets = targets.astype(np.float32)
        if targets.shape[0] != features.shape[0]:
            raise DataError(f"X has {features.shape[0]} samples but y has {targets.shape[0]}: they must match")
        names = tuple(feature_names) if feature_names is not None else tuple(f"x{i}" for i in range(features.shape[1]))
        stratify = targets if task == "classification" else None
        train, test = split_indices(features.shape[0], test_size, seed, stratify=stratify)
        X32 = features.astype(np.float32)
        return cls(
            X_train=X32[train], y_train=targets[train], X_test=X32[test], y_test=targets[test],
            task=task, name=name, feature_names=names,
            n_classes=None if labels is None else len(labels), classes=labels,
            target_name=target_name, train_rows=train, test_rows=test,
        )

    # ------------------------------------------------------------------ what a model needs
    @property
    def n_features(self) -> int:
        """Features per sample: the first layer's ``in_features``."""
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        """Training samples."""
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """Test samples."""
        return int(self.X_test.shape[0])

    @property
    def out_features(self) -> int:
        """Outputs a model needs: ``n_classes`` for class-index labels, else the target width."""
        if self.y_train.ndim == 1:
            return int(self.n_classes or 0)
        return int(self.y_train.shape[1])

    @property
    def loss(self) -> str:
        """The loss name that fits these targets for a model ending in a `Dense` layer (raw
        outputs): ``"cross_entropy"`` for class indices, ``"bce_with_logits"`` for binary 0/1
        targets, ``"mse"`` for regression."""
        if self.task == "regression":
            return "mse"
        return "cross_entropy" if self.y_train.ndim == 1 else "bce_with_logits"

    def standardize(self) -> tuple[Dataset, Standardizer]:
        """A copy with features standardised by statistics of ``X_train`` only, and the fitted
        `Standardizer` (store ``scaler.to_dict()`` with a model to scale new inputs alike)."""
        scaler = Standardizer().fit(self.X_train)
        scaled = dataclasses.replace(self, X_train=scaler.transform(self.X_train), X_test=scaler.transform(self.X_test))
        return scaled, scaler

    def metadata(self) -> dict[str, Any]:
        """The description as JSON-serialisable types, for a checkpoint (no arrays)."""
        return {
            "name": self.name,
            "task": self.task,
            "n_features": self.n_features,
            "feature_names": list(self.feature_names),
            "n_classes": self.n_classes,
            "classes": None if self.classes is None else list(self.classes),
            "target_name": self.target_name,
        }

    def __repr__(self) -> str:
        kind = f"classification, {self.n_classes} classes" if self.task == "classification" else "regression"
        test = "test = train" if self.test_is_train else f"test {self.X_test.shape}"
        return f"Dataset({self.name!r}, {kind}, train {self.X_train.shape}, {test}, {self.n_features} features)"


def _class_indices(targets: np.ndarray, classes: Sequence[Any] | None) -> tuple[np.ndarray, tuple[Any, ...]]:
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets.reshape(-1)
    if targets.ndim != 1:
        raise DataError(f"classification labels must have shape (samples,); got {targets.shape}")
    if targets.size and (targets.dtype.kind not in "biuf" or not np.array_equal(targets, np.round(targets))):
        raise DataError(
            "classification labels must be integer class indices 0..K-1: map the original labels to indices first"
        )
    labels = targets.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(f"classification labels must be class indices 0..K-1; got {labels.min()}")
    if classes is None:
        classes = range(int(labels.max()) + 1 if labels.size else 0)
    classes = tuple(_plain(c) for c in classes)
    return labels, classes


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python int/float/str it holds, so metadata is JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def _validate(ds: Dataset) -> None:
    """Catch inconsistent fields when a Dataset is built by hand."""
    if ds.task not in TASKS:
        raise DataError(f"task must be one of {TASKS}; got {ds.task!r}")
    for part in ("train", "test"):
        X, y = getattr(ds, f"X_{part}"), getattr(ds, f"y_{part}")
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind != "f":
            raise DataError(f"X_{part} must be a 2-D floating NumPy array; got {_shape(X)}")
        if not isinstance(y, np.ndarray) or y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise DataError(
                f"y_{part} must be a NumPy array with one row per sample of X_{part} ({X.shape[0]}); got {_shape(y)}"
            )
    if ds.X_test.shape[1] != ds.X_train.shape[1] or len(ds.feature_names) != ds.X_train.shape[1]:
        raise DataError(
            f"X_train has {ds.X_train.shape[1]} features, X_test {ds.X_test.shape[1]}, and there are "
            f"{len(ds.feature_names)} feature names: all three must agree"
        )
    if ds.task == "regression":
        if ds.n_classes is not None or ds.classes is not None:
            raise DataError("a regression Dataset has no classes: leave n_classes and classes as None")
        return
    if ds.n_classes is None or ds.classes is None or len(ds.classes) != ds.n_classes:
        raise DataError("a classification Dataset needs n_classes and one entry of classes per class")
    for y in (ds.y_train, ds.y_test):
        if y.ndim == 1 and y.dtype != np.int64:
            raise DataError(f"class labels must be int64 indices of shape (samples,); got dtype {y.dtype}")
        if y.ndim == 1 and y.size and (y.min() < 0 or y.max() >= ds.n_classes):
            raise DataError(
                f"class labels must lie in 0..{ds.n_classes - 1} (n_classes={ds.n_classes}); got {y.min()}..{y.max()}"
            )
        if y.ndim == 2 and (ds.n_classes != 2 or y.shape[1] != 1):
            raise DataError("2-D classification targets are only for binary data: float 0/1 of shape (samples, 1)")


def _shape(value: Any) -> str:
    return f"shape {value.shape}, dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__

"""What ``backprop train`` stores in a checkpoint's ``extra`` besides the model, and reading
it back for ``resume``, ``evaluate``, ``predict`` and ``gradcheck``.

``extra`` holds: ``"data"`` (the ``--data`` spec), ``"task"``, ``"loss"``, ``"classes"`` (the
original label of each output class, or ``None`` for regression), ``"feature_names"``,
``"target_name"`` and ``"args"`` (the resolved training settings). The model itself starts
with a `bp.Standardize` layer and carries its class labels (``model.classes``); files of
older versions instead hold ``"standardizer"`` (`Standardizer.to_dict`) here, applied to the
features before the model, and still load and predict as they did. A checkpoint saved from
Python works too if its ``extra`` has at least ``"loss"``; without a standardiser either way
the features are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint, CheckpointError
from ..datasets import DataError, Dataset, Standardizer
from ..layers import Standardize
from ..loading import load_checkpoint
from ..losses import get_loss
from ..model import Sequential
from .errors import CliError
from .inputs import fitting
from .settings import check_saved_settings
from .tasks import REGRESSION_LOSSES

__all__ = ["SavedRun", "inputs_for", "model_classes", "open_checkpoint", "run_extra", "standardizes_itself"]


@dataclass(frozen=True)
class SavedRun:
    """The CLI's part of a checkpoint."""

    loss: str
    task: str
    classes: tuple[Any, ...] | None
    scaler: Standardizer | None
    data: str | None
    feature_names: tuple[str, ...] | None
    target_name: str | None
    args: dict[str, Any]

    def standardize(self, X: Any) -> Any:
        """``X`` scaled as the training features were (unchanged without a standardiser)."""
        return X if self.scaler is None else self.scaler.transform(X)


def run_extra(
    dataset: Dataset, scaler: Standardizer | None, loss: str, data: str, args: dict[str, Any]
) -> dict[str, Any]:
    """The ``extra`` dict a training run stores with every checkpoint; ``scaler`` only for a
    model without its own `bp.Standardize` layer (one resumed from an older version's file)."""
    extra = {
        "data": data,
        "task": dataset.task,
        "loss": loss,
        "classes": None if dataset.classes is None else list(dataset.classes),
        "feature_names": list(dataset.feature_names),
        "target_name": dataset.target_name,
        "args": args,
    }
    if scaler is not None:
        extra["standardizer"] = scaler.to_dict()
    return extra


def model_classes(dataset: Dataset, model: Sequential) -> list[Any] | None:
    """The labels ``model.classes`` gets for a classification data set: one per output class
    (``None`` for regression, or outputs that are not one class each, such as several
    independent binary targets)."""
    if dataset.task != "classification" or dataset.classes is None or model.out_features is None:
        return None
    return list(dataset.classes) if len(dataset.classes) == max(model.out_features, 2) else None


def inputs_for(model: Sequential, saved: SavedRun, X: np.ndarray, where: str) -> np.ndarray:
    """The features ``X`` (host float64) as ``model`` takes them: standardised by the file's
    standardiser (older files), or as they are for a model that standardises them itself.
    Either way a value that standardising makes too large for the model's dtype is refused
    (`fitting`), here on the host rather than as an overflow on the device."""
    if not standardizes_itself(model):
        return fitting(saved.standardize(X), model.dtype, where, standardized=saved.scaler is not None)
    layer = model.layers[0]
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is reported by fitting
        fitting((X - layer.mean) / layer.std, model.dtype, where, standardized=True)  # type: ignore[attr-defined]
    return fitting(X, model.dtype, where)


def standardizes_itself(model: Sequential) -> bool:
    """Whether the model's first layer standardises its inputs (`bp.Standardize`): then it
    takes the features as they come, and a checkpoint's ``extra`` holds no standardiser."""
    return len(model.layers) > 0 and isinstance(model.layers[0], Standardize)


def open_checkpoint(path: str, device: str, dtype: str | None = None) -> tuple[Checkpoint, SavedRun]:
    """Load ``path`` on ``device``; an unreadable file, or one without what the CLI needs,
    raises `CliError` (exit status 1) naming the file and the problem."""
    try:
        checkpoint = load_checkpoint(path, device=device, dtype=dtype)
    except CheckpointError as exc:
        raise CliError(f"{exc}") from None
    return checkpoint, _saved_run(path, checkpoint)


def _saved_run(path: str, checkpoint: Checkpoint) -> SavedRun:
    extra = checkpoint.extra
    what = f"checkpoint {path!r}"
    loss = extra.get("loss")
    if not isinstance(loss, str):
        raise CliError(
            f"{what} does not say which loss its model was trained with (no 'loss' in its extra values): it was "
            "not written by backprop train; save it with extra={'loss': 'cross_entropy', ...} or train it with "
            "backprop train --checkpoint"
        )
    try:
        get_loss(loss)
        scaler = Standardizer.from_dict(extra["standardizer"]) if extra.get("standardizer") is not None else None
    except (ValueError, DataError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise CliError(f"{what} has damaged extra values: {exc}") from None
    classes = extra.get("classes")
    task = extra.get("task") or ("regression" if loss in REGRESSION_LOSSES else "classification")
    names = extra.get("feature_names")
    target = extra.get("target_name")
    data = extra.get("data")
    damaged = (
        "'task' is not classification or regression" if task not in ("classification", "regression")
        else "'classes' is not a list of distinct labels" if classes is not None and not _labels(classes)
        else "'feature_names' is not a list of names" if names is not None and not _names(names)
        else "'target_name' is not a name" if target is not None and not isinstance(target, str)
        else "'data' is not a data spec" if data is not None and not isinstance(data, str)
        else ""
    )
    if damaged:
        raise CliError(f"{what} has damaged extra values: {damaged}")
    if scaler is not None and names is not None and len(names) != scaler.n_features:
        raise CliError(f"{what} has damaged extra values: {len(names)} feature names for a standardiser of "
                       f"{scaler.n_features} features")
    return SavedRun(
        loss=loss,
        task=str(task),
        classes=None if classes is None else tuple(classes),
        scaler=scaler,
        data=data,
        feature_names=None if names is None else tuple(names),
        target_name=target,
        args=check_saved_settings(extra.get("args"), what),
    )


def _labels(classes: Any) -> bool:
    if not isinstance(classes, list) or not classes:
        return False
    if not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in classes):
        return False
    return len({(type(c).__name__ == "str", c) for c in classes}) == len(classes)


def _names(names: Any) -> bool:
    return isinstance(names, list) and all(isinstance(n, str) for n in names)

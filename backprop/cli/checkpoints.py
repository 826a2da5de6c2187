"""What ``backprop train`` stores in a checkpoint's ``extra`` besides the model, and reading
it back for ``resume``, ``evaluate``, ``predict`` and ``gradcheck``.

``extra`` holds: ``"data"`` (the ``--data`` spec), ``"task"``, ``"loss"``, ``"classes"`` (the
original label of each output class, or ``None`` for regression), ``"feature_names"``,
``"target_name"``, ``"standardizer"`` (`Standardizer.to_dict`) and ``"args"`` (the resolved
training settings). A checkpoint saved from Python works too if its ``extra`` has at least
``"loss"``; without ``"standardizer"`` the features are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checkpoint import Checkpoint, CheckpointError
from ..loading import load_checkpoint
from ..datasets import DataError, Dataset, Standardizer
from ..losses import get_loss
from .errors import CliError

__all__ = ["SavedRun", "open_checkpoint", "run_extra"]


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


def run_extra(dataset: Dataset, scaler: Standardizer, loss: str, data: str, args: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` dict a training run stores with every checkpoint."""
    return {
        "data": data,
        "task": dataset.task,
        "loss": loss,
        "classes": None if dataset.classes is None else list(dataset.classes),
        "feature_names": list(dataset.feature_names),
        "target_name": dataset.target_name,
        "standardizer": scaler.to_dict(),
        "args": args,
    }


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
    except (ValueError, DataError) as exc:
        raise CliError(f"{what} has damaged extra values: {exc}") from None
    classes = extra.get("classes")
    task = extra.get("task") or ("regression" if loss == "mse" else "classification")
    names = extra.get("feature_names")
    args = extra.get("args")
    return SavedRun(
        loss=loss,
        task=str(task),
        classes=None if classes is None else tuple(classes),
        scaler=scaler,
        data=extra.get("data") if isinstance(extra.get("data"), str) else None,
        feature_names=None if names is None else tuple(names),
        target_name=extra.get("target_name"),
        args=args if isinstance(args, dict) else {},
    )

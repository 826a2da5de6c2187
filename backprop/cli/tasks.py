"""Which losses and metrics fit a data set, and what the model's output layer must give."""

from __future__ import annotations

from ..datasets import Dataset
from ..losses import get_loss
from ..metrics import get_metrics
from .errors import UsageError

__all__ = ["check_loss", "metric_names", "output_activation"]


def _fitting_losses(dataset: Dataset) -> tuple[str, ...]:
    if dataset.task == "regression":
        return ("mse",)
    if dataset.y_train.ndim == 1:  # class indices
        return ("cross_entropy",)
    return ("bce_with_logits", "bce", "mse")  # binary 0/1 targets


def check_loss(dataset: Dataset, loss: str | None) -> str:
    """``loss`` (default: the data set's own) if it fits the data set's targets, else a
    `UsageError` listing the losses that do."""
    if loss is None:
        return dataset.loss
    fitting = _fitting_losses(dataset)
    if loss not in fitting:
        kind = (
            "regression targets" if dataset.task == "regression"
            else f"class labels ({dataset.n_classes} classes)" if dataset.y_train.ndim == 1
            else "binary 0/1 targets"
        )
        raise UsageError(f"--loss {loss} does not fit the {kind} of {dataset.name}: use {' or '.join(fitting)}")
    return loss


def output_activation(loss: str) -> str | None:
    """``"sigmoid"`` for the BCE loss on probabilities; ``None`` (raw outputs: logits for
    ``cross_entropy``/``bce_with_logits``, values for ``mse``) otherwise."""
    return "sigmoid" if loss == "bce" else None


def metric_names(dataset: Dataset, loss: str, metrics: str | None) -> list[str]:
    """``--metrics`` as a list (``none`` for no metric); default ``accuracy`` for
    classification. A metric that does not fit the loss is a `UsageError`."""
    if metrics is None:
        return ["accuracy"] if dataset.task == "classification" and loss != "mse" else []
    names = [name.strip().lower() for name in metrics.split(",") if name.strip()]
    if names == ["none"]:
        return []
    try:
        get_metrics(names, get_loss(loss))
    except ValueError as exc:
        raise UsageError(f"--metrics {metrics}: {exc}") from None
    return names

"""Which losses and metrics fit a data set, and what the model's output layer must give."""

from __future__ import annotations

from ..datasets import Dataset
from ..datasets.spec import parse_csv_spec
from ..losses import get_loss
from ..metrics import get_metrics
from .errors import UsageError

__all__ = ["REGRESSION_LOSSES", "check_loss", "metric_names", "output_activation", "training_task"]

#: Losses of values, not classes: with ``--task auto`` a CSV label column is read as
#: regression targets when one of these is the loss.
REGRESSION_LOSSES = ("mse", "mae", "huber")


def training_task(task: str, loss: str | None, data: str) -> tuple[str, str | None]:
    """``(task, note)``: the task to load ``data`` with, and a note saying why when ``--loss``
    decided it. ``--task auto`` with a regression loss (`REGRESSION_LOSSES`) on a CSV file whose
    spec names no ``task=`` is regression: the label column is read as values even when they are
    whole numbers (counts, prices, scores), which ``auto`` alone would take as classes."""
    if task != "auto" or loss not in REGRESSION_LOSSES or not data.strip().lower().startswith("csv:"):
        return task, None
    if "task" in parse_csv_spec(data.strip()[4:])[1]:
        return task, None
    return "regression", (f"note: --loss {loss} implies --task regression: the label column is read as values, not "
                          "classes (--task classification would refuse the loss)")


def _fitting_losses(dataset: Dataset) -> tuple[str, ...]:
    if dataset.task == "regression":
        return REGRESSION_LOSSES
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
        hint = (" (or --task regression, if the labels are quantities rather than classes)"
                if loss in REGRESSION_LOSSES and dataset.y_train.ndim == 1 and dataset.task == "classification"
                else "")
        raise UsageError(f"--loss {loss} does not fit the {kind} of {dataset.name}: use {_either(fitting)}{hint}")
    return loss


def _either(names: tuple[str, ...]) -> str:
    """``"mse, mae or huber"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def output_activation(loss: str) -> str | None:
    """``"sigmoid"`` for the BCE loss on probabilities; ``None`` (raw outputs: logits for
    ``cross_entropy``/``bce_with_logits``, values for the regression losses) otherwise."""
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

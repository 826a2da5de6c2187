"""Class labels carried by a model: `check_classes` (what ``model.classes`` accepts) and
`labels_from_outputs` (a classifier's outputs turned into those labels)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .validation import real

__all__ = ["check_classes", "classes_json", "labels_from_outputs"]


def check_classes(classes: Any, outputs: int | None = None) -> np.ndarray | None:
    """``classes`` as a read-only 1-D NumPy array of distinct labels, all strings or all real
    numbers (``None`` stays ``None``: the labels are the class indices), one per class of a
    model with ``outputs`` outputs (one output: two classes) when that is given. Anything else
    raises `ValueError` or `TypeError` saying what is accepted."""
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise TypeError(f"classes must be a list or 1-D array of labels (strings or numbers); got {classes!r}")
    values = list(np.asarray(classes).tolist()) if isinstance(classes, np.ndarray) else list(classes)
    if not values or isinstance(values[0], list):
        raise ValueError(f"classes must be a non-empty 1-D list of labels; got {classes!r}")
    strings = all(isinstance(v, str) for v in values)
    numbers_ = all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values)
    if not (strings or numbers_):
        kinds = sorted({type(v).__name__ for v in values})
        raise TypeError(f"classes must be all strings or all numbers (not bools); got {', '.join(kinds)}")
    if numbers_ and not all(math.isfinite(float(v)) for v in values):
        raise ValueError("classes must be finite numbers")
    if len(set(values)) != len(values):
        raise ValueError(f"classes must be distinct; got {values!r}")
    if outputs is not None and len(values) != max(outputs, 2):
        raise ValueError(
            f"classes has {len(values)} labels but the model has {outputs} output{'s' if outputs != 1 else ''}, "
            f"so {max(outputs, 2)} classes: give one label per class, in the order of the outputs"
        )
    array = np.array(values)
    array.flags.writeable = False  # the model's own: replace model.classes rather than edit it
    return array


def classes_json(classes: np.ndarray | None) -> list[Any] | None:
    """``classes`` as a JSON list (Python ints, floats or strings), for a checkpoint."""
    return None if classes is None else classes.tolist()


def labels_from_outputs(
    outputs: Any, classes: np.ndarray | None, output_kind: str, threshold: float | None = None
) -> np.ndarray:
    """The label each row of ``outputs`` (host, shape ``(samples, outputs)``) predicts.

    Several outputs: ``classes[argmax]``. One output (binary): ``classes[int(output >
    threshold)]``, with ``threshold`` by default 0.5 where the model's last layer gives
    probabilities (``output_kind``, a Sigmoid) and 0 where it gives logits; pass 0.5 for a model
    trained with ``mse`` on 0/1 targets. Without ``classes`` the labels are the class indices
    (int64)."""
    outputs = np.asarray(outputs)
    width = outputs.shape[1]
    if width == 1:
        default = 0.5 if output_kind == "probabilities" else 0.0
        cut = default if threshold is None else real(threshold, "threshold", owner="predict_labels")
        index = (outputs[:, 0] > cut).astype(np.int64)
    else:
        index = outputs.argmax(axis=1).astype(np.int64)
    if classes is None:
        return index
    if len(classes) != max(width, 2):
        raise ValueError(
            f"predict_labels: the model has {len(classes)} class labels but {width} output{'s' if width != 1 else ''} "
            f"({max(width, 2)} classes): set model.classes to one label per class"
        )
    return np.asarray(classes)[index]

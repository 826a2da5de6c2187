"""`summarize`: a built container's layers as a table — each layer's position, what it is, the
shape of its output and its number of parameters — with the totals (Keras' ``model.summary()``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..memory import format_bytes
from ..validation import InvalidParameterError, integer
from .base import Layer

__all__ = ["LayerRow", "ModelSummary", "summarize"]


@dataclass(frozen=True)
class LayerRow:
    """One layer of the table: its ``name`` (its position in the model, the prefix of its
    parameters' names), ``layer`` (how it prints, ``Dense(4, 8)``), ``output_shape``
    (``(None, features)``: any number of samples; ``None`` features where the model cannot
    know them), ``params`` (its values, nested layers' included) and ``trainable`` (those of
    them an optimizer trains; the rest is saved state such as BatchNorm's running statistics)."""

    name: str
    layer: str
    output_shape: tuple[None, int | None]
    params: int
    trainable: int


@dataclass(frozen=True)
class ModelSummary:
    """What `bp.Sequential.summary` reports: the rows, and the totals over every variable.

    ``total = trainable + non_trainable`` values, taking ``size_bytes`` (``total`` times the
    size of one value of ``dtype``) on the model's device. ``str(summary)`` is the table;
    ``repr`` one line."""

    rows: tuple[LayerRow, ...]
    trainable: int
    non_trainable: int
    dtype: str
    itemsize: int

    @property
    def total(self) -> int:
        """Every parameter and saved state value."""
        return self.trainable + self.non_trainable

    @property
    def size_bytes(self) -> int:
        """The bytes all those values take in the model's dtype."""
        return self.total * self.itemsize

    def __str__(self) -> str:
        header = ("Layer", "Type", "Output shape", "Params")
        cells = [(r.name, r.layer, _shape(r.output_shape), f"{r.params:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]

        def line(row: tuple[str, str, str, str]) -> str:
            return "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths)), row[3].rjust(widths[3])])

        rule = "-" * len(line(header))
        lines = [line(header), rule, *(line(row) for row in cells), rule]
        totals = (("Total", self.total), ("Trainable", self.trainable), ("Non-trainable", self.non_trainable))
        for what, count in totals:
            lines.append(f"{what} params: {count:,} ({format_bytes(count * self.itemsize)})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"ModelSummary({len(self.rows)} layers, {self.total:,} params: {self.trainable:,} trainable, "
            f"{self.non_trainable:,} non-trainable, {format_bytes(self.size_bytes)} in {self.dtype})"
        )


def summarize(
    layers: Sequence[Layer], widths: Sequence[int | None], model_in: int | None, dtype: str,
    in_features: int | None = None, print_fn: Callable[[str], object] | None = None,
) -> ModelSummary:
    """The summary of a built container's ``layers``, whose outputs were ``widths`` features
    wide when it was built (``None``: not known then) from inputs ``model_in`` wide, and whose
    values are ``dtype``. Where the model could not know a width (a model whose first layers,
    activations say, keep any width), ``in_features``, the width of the inputs, fills it in.
    ``print_fn`` (``print``, a logger's ``info``) is given the table."""
    if print_fn is not None and not callable(print_fn):
        raise InvalidParameterError(
            f"summary print_fn must be a function such as print or logger.info, or None; got {type(print_fn).__name__}"
        )
    if in_features is not None:
        in_features = integer(in_features, "in_features", minimum=1, owner="summary")
        if model_in is not None and model_in != in_features:
            raise ValueError(
                f"summary: the model takes {model_in} input features, not in_features={in_features}; "
                "leave in_features out, or pass the model's own"
            )
    width = in_features if in_features is not None else model_in
    rows = []
    for layer, built in zip(layers, widths):
        width = built if built is not None else width  # None: the layer keeps its input's width
        variables = [p for sub in layer.walk() for p in sub.variables().values()]
        rows.append(LayerRow(
            name=layer.path, layer=_one_line(repr(layer)), output_shape=(None, width),
            params=sum(math.prod(p.shape) for p in variables),
            trainable=sum(math.prod(p.shape) for p in variables if p.trainable),
        ))
    trainable = sum(row.trainable for row in rows)
    itemsize = np.dtype(dtype).itemsize
    summary = ModelSummary(tuple(rows), trainable, sum(row.params for row in rows) - trainable, dtype, itemsize)
    if print_fn is not None:
        print_fn(str(summary))
    return summary


def _one_line(text: str) -> str:
    """A container's several-line repr on one line: ``Residual(Dense(3, 3), ReLU())``."""
    joined = " ".join(part.strip() for part in text.splitlines())
    return joined.replace("( ", "(").replace(", )", ")")


def _shape(shape: tuple[None, int | None]) -> str:
    return f"(None, {'?' if shape[1] is None else shape[1]})"

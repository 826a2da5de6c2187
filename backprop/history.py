"""`History`: what happened during `fit`, epoch by epoch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .plotting import plot_history

__all__ = ["History"]


class History:
    """Per-epoch records from `fit`.

    ``history["loss"]`` (also ``history.history["loss"]``, as in Keras) is the list of mean
    training losses, one per epoch; ``"val_loss"`` appears when validation data was given.
    ``epochs`` lists the epoch numbers (1-based, continuing across resumed runs).
    ``warnings`` lists what training warned about, as ``{"epoch": n, "message": text}``
    (a loss that grew far beyond its first value, say).
    """

    def __init__(
        self,
        history: dict[str, list[float]] | None = None,
        epochs: list[int] | None = None,
        warnings: list[dict[str, Any]] | None = None,
    ):
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}
        self.epochs: list[int] = list(epochs or [])
        self.warnings: list[dict[str, Any]] = [dict(w) for w in warnings or []]

    def warn(self, epoch: int, message: str) -> None:
        """Record a warning about epoch ``epoch``."""
        self.warnings.append({"epoch": int(epoch), "message": str(message)})

    def append(self, epoch: int, values: dict[str, float]) -> None:
        """Record one epoch's values."""
        self.epochs.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            known = ", ".join(map(repr, self.history)) or "nothing yet"
            raise KeyError(f"History has no {key!r}; it has {known}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (``warnings`` only when there are some, so files of runs
        without any read as they always did)."""
        data: dict[str, Any] = {"epochs": list(self.epochs), "history": {k: list(v) for k, v in self.history.items()}}
        if self.warnings:
            data["warnings"] = [dict(w) for w in self.warnings]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(data.get("history"), data.get("epochs"), data.get("warnings"))

    def plot(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Save the training curves as an image (PNG unless the suffix says otherwise) and
        return its path; see `backprop.plotting.plot_history` for ``kwargs`` (``title=``).
        Needs matplotlib (``pip install "backprop-nn[plot]"``); pyplot is never imported."""
        return plot_history(self, path, **kwargs)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History({len(self)} epochs{': ' + last if last else ''})"

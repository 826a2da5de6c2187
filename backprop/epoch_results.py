"""`EpochResults`: what `fit` learns from each batch, kept on the device and read in one go."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from .backends import Array, Backend
from .metrics import Metric

__all__ = ["READ_EVERY", "EpochResults", "weighted_mean"]

READ_EVERY = 1024  # batch results kept on the device at most, when nothing needs them sooner


class EpochResults:
    """Per-batch results of trained epochs, kept on the device until `read`: appending costs
    no kernel launch, and `read` brings all of them to the host at once (one sync)."""

    def __init__(self, backend: Backend, n_metrics: int, n_norms: int):
        self.backend = backend
        self.losses: list[Any] = []  # batch means
        self.sizes: list[int] = []
        self.metrics: list[list[Any]] = [[] for _ in range(n_metrics)]  # batch sums
        self.norms: list[list[Any]] = [[] for _ in range(n_norms)]
        self.epochs: list[tuple[int, int, float]] = []  # (epoch, its end in `losses`, its lr)

    def add(self, L: Array, n: int) -> None:
        self.losses.append(L)
        self.sizes.append(n)

    def end_epoch(self, epoch: int, lr: float) -> None:
        self.epochs.append((epoch, len(self.losses), lr))

    def full(self) -> bool:
        """Whether `READ_EVERY` batch results are kept: time to read them, even if nothing asks."""
        return len(self.losses) >= READ_EVERY

    def running_loss(self) -> float:
        """The mean loss so far of the epoch in progress."""
        start = self.epochs[-1][1] if self.epochs else 0
        return weighted_mean(self.backend.to_floats(self.losses[start:]), self.sizes[start:])

    def read(self, metrics: Sequence[Metric], params: Sequence[Any]) -> list[tuple[int, dict[str, float]]]:
        """Each ended epoch's values (``loss``, metrics, ``grad_norm/<param>``, ``lr``), and forget them."""
        rows = [self.losses, *self.metrics, *self.norms]
        host = self.backend.to_floats([v for row in rows for v in row] if len(rows) > 1 else self.losses)  # one sync
        k = len(self.losses)
        out = []
        start = 0
        for epoch, stop, lr in self.epochs:
            sizes = self.sizes[start:stop]
            values = {"loss": weighted_mean(host[start:stop], sizes)}
            n = sum(sizes)
            for i, m in enumerate(metrics):
                values[m.name] = math.fsum(host[k * (1 + i) + start : k * (1 + i) + stop]) / n
            first = k * (1 + len(metrics))
            for i, p in enumerate(params if self.norms else ()):
                values[f"grad_norm/{p.name}"] = math.fsum(host[first + k * i + start : first + k * i + stop]) / (
                    stop - start
                )
            values["lr"] = lr
            out.append((epoch, values))
            start = stop
        for row in rows:
            row.clear()
        self.sizes.clear()
        self.epochs.clear()
        return out


def weighted_mean(values: Sequence[float], weights: Sequence[int]) -> float:
    return math.fsum(map(operator.mul, values, weights)) / sum(weights)

"""`EpochResults`: what `fit` learns from each batch, kept on the device and read in one go."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from .backends import Array, Backend
from .metrics import Metric, metric_values

__all__ = ["READ_EVERY", "EpochResults", "weighted_mean"]

READ_EVERY = 1024  # batch results kept on the device at most, when nothing needs them sooner


class EpochResults:
    """Per-batch results of trained epochs, kept on the device until `read`: appending costs
    no kernel launch, and `read` brings all of them to the host at once (one sync).

    Besides each batch's loss and metric sums, named per-step values can be `record`-ed (a
    callback's gradient norms): each epoch reports their mean over the steps that recorded them."""

    def __init__(self, backend: Backend, n_metrics: int):
        self.backend = backend
        self.losses: list[Any] = []  # batch means
        self.sizes: list[int] = []
        self.metrics: list[list[Any]] = [[] for _ in range(n_metrics)]  # batch states (`Metric.batch_state`)
        self.series: dict[str, list[Any]] = {}  # recorded per step, by name, in the order first recorded
        # (epoch, its end in `losses`, its lr, its end in each series, its host values)
        self.epochs: list[tuple[int, int, float, dict[str, int], dict[str, float]]] = []

    def add(self, L: Array, n: int) -> None:
        self.losses.append(L)
        self.sizes.append(n)

    def record(self, name: str, value: Array) -> None:
        """Keep a per-step device value; the epoch's ``name`` is their mean."""
        self.series.setdefault(name, []).append(value)

    def end_epoch(self, epoch: int, lr: float, values: dict[str, float] | None = None) -> None:
        """The epoch ``epoch`` ended, trained with learning rate ``lr``; ``values``: what else it
        reports, known on the host already (the loss scale), the same on every process."""
        series = {name: len(row) for name, row in self.series.items()}
        self.epochs.append((epoch, len(self.losses), lr, series, dict(values or {})))

    def full(self) -> bool:
        """Whether `READ_EVERY` batch results are kept: time to read them, even if nothing asks."""
        return len(self.losses) >= READ_EVERY

    def running_loss(self) -> float:
        """The mean loss so far of the epoch in progress (NaN before its first batch)."""
        start = self.epochs[-1][1] if self.epochs else 0
        if not sum(self.sizes[start:]):
            return math.nan
        return weighted_mean(self.backend.to_floats(self.losses[start:]), self.sizes[start:])

    def read(
        self, metrics: Sequence[Metric], reduce: Callable[[list[float]], list[float]] | None = None
    ) -> list[tuple[int, dict[str, float]]]:
        """Each ended epoch's values (``loss``, metrics, recorded series, ``lr``), and forget them.

        Each batch's metric entry is the metric's state (`Metric.batch_state`, ``state_size()``
        sums): an epoch's states are added up and `Metric.result` gives its value.

        ``reduce``: in data-parallel training, the sum over the processes of a list of floats
        (one collective for all the epochs read). Each process kept its own batches' losses
        (means over its rows, weighted by its row counts) and metric states; the epoch's values
        are the sums of all processes over the rows of all. Recorded series (gradient norms,
        taken after the gradients were reduced) are the same everywhere and are not reduced."""
        rows = [self.losses, *self.metrics, *self.series.values()]
        host = self.backend.to_floats([v for row in rows for v in row] if len(rows) > 1 else self.losses)  # one sync
        k = len(self.losses)
        sizes = [m.state_size() for m in metrics]
        starts = []  # where each metric's states begin in `host`
        first = k
        for size in sizes:
            starts.append(first)
            first += k * size
        offsets = {}  # where the series begin in `host`
        for name, row in self.series.items():
            offsets[name] = first
            first += len(row)
        # per epoch: [sum of loss x rows, each metric's summed state, rows]
        sums: list[float] = []
        start = 0
        for _, stop, _, _, _ in self.epochs:
            sums.append(math.fsum(map(operator.mul, host[start:stop], self.sizes[start:stop])))
            for at, size in zip(starts, sizes):
                block = host[at + start * size : at + stop * size]
                sums += [math.fsum(block[j::size]) for j in range(size)]
            sums.append(float(sum(self.sizes[start:stop])))
            start = stop
        if reduce is not None:
            sums = reduce(sums)
        width = 2 + sum(sizes)
        out = []
        series_start: dict[str, int] = {}
        for j, (epoch, _, lr, series_stop, known) in enumerate(self.epochs):
            epoch_sums = sums[j * width : (j + 1) * width]
            n = epoch_sums[-1]
            values = {"loss": epoch_sums[0] / n}
            values.update(metric_values(metrics, epoch_sums[1:-1], n))
            for name, end in series_stop.items():
                begin = series_start.get(name, 0)
                if end > begin:
                    values[name] = math.fsum(host[offsets[name] + begin : offsets[name] + end]) / (end - begin)
                series_start[name] = end
            values.update(known)
            values["lr"] = lr
            out.append((epoch, values))
        for row in rows:
            row.clear()
        self.series.clear()
        self.sizes.clear()
        self.epochs.clear()
        return out


def weighted_mean(values: Sequence[float], weights: Sequence[int]) -> float:
    return math.fsum(map(operator.mul, values, weights)) / sum(weights)

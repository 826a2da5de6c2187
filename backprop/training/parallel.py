"""`DataParallel`: one `fit`'s data-parallel side on one rank (``fit(distributed=world)``).

N ranks follow the trajectory of one process on the same global batches. What makes it so,
in the order `fit` uses it:

1. `agree`: every rank checks that all ranks train alike (data shape, batch size, epochs,
   parameters, optimizer...) and raises the same error on every rank if not;
2. `synchronise`: rank 0's weights, saved state (BatchNorm statistics) and the states of the
   shuffling and noise generators on every rank (a model built with ``seed=None`` has a
   different seed on each rank);
3. `attach`: every layer gets the `ShardContext` (synchronised BatchNorm, host dropout masks
   of the global batch, backward's stage reports for overlapped reduction);
4. per step, `begin` (this rank's shard: the context and the gradient weight) and `reduce`
   (`GradientReduction`, between backward and clipping);
5. per epoch, `sum` of the loss, metric sums and row counts, and `validate` (each rank
   evaluates a slice of the validation data; the sums are added up), so that callbacks,
   schedules, early stopping and the divergence check see the same values on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..distributed import Communicator, Shard, World, shard_bounds
from ..layers import Layer, ShardContext
from ..losses import Loss
from ..metrics import Metric, metric_values
from . import reduction
from .evaluate import evaluate_sums
from .protocol import TrainableModel
from .reduction import GradientReduction

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["DataParallel", "DisagreementError"]


class DisagreementError(ValueError):
    """The ranks of a data-parallel `fit` were not given the same training to do."""


class DataParallel:
    """The collectives and per-step state of data-parallel training of ``model`` by
    ``optimizer`` on this rank of ``world`` (a world of more than one rank)."""

    def __init__(self, world: World, model: TrainableModel, optimizer: Optimizer):
        backend = model._require_built()
        self.world, self.rank, self.size = world, world.rank, world.size
        self.comm: Communicator = world.communicator(backend)
        collective = [layer for layer in model.walk() if layer.collective]
        overlap = self.comm.kind in reduction.OVERLAP_TRANSPORTS and not collective
        self.gradients = GradientReduction(self.comm, optimizer.params, overlap)
        ready: Callable[[Sequence[Layer]], None] | None = self.gradients.ready if self.gradients.overlap else None
        self.context = ShardContext(self.rank, self.size, self.comm.allreduce_sum_, gradients_ready=ready)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def graph_reason(self) -> str | None:
        """Why a step cannot be replayed from a CUDA graph here (``None``: it can, as far as
        the reduction goes): only NCCL's all-reduce is recorded by a capture."""
        if self.comm.kind == "Nccl":
            return None
        return f"the gradients are reduced through host memory ({self.comm.kind}), which a CUDA graph cannot capture"

    # ------------------------------------------------------------------ start
    def agree(self, facts: dict[str, Any]) -> None:
        """Raise `DisagreementError`, on every rank alike, unless every rank has the same
        ``facts`` (one collective)."""
        everyone = self.comm.allgather_object(facts)
        differ = [key for key in facts if any(other.get(key) != everyone[0].get(key) for other in everyone)]
        if differ:
            details = "; ".join(
                f"{key}: " + ", ".join(f"rank {r} {other.get(key)!r}" for r, other in enumerate(everyone))
                for key in differ
            )
            raise DisagreementError(
                f"the {self.size} ranks of fit(distributed=...) must train the same model on the same data with the "
                f"same settings, but they differ in {details}"
            )

    def synchronise(self, model: TrainableModel) -> None:
        """Rank 0's weights, saved state and generator states on every rank."""
        backend = model._require_built()
        params = model.parameters()
        arenas = params[0].arenas if params else None
        with backend.activate():
            if arenas is not None and all(p.arenas is arenas and p.data is arenas.data.views[p.index] for p in params):
                self.comm.broadcast_(arenas.data.flat)
            else:
                for p in params:
                    self.comm.broadcast_(p.data)
            for layer in model.walk():
                for p in layer.variables().values():
                    if not p.trainable:
                        self.comm.broadcast_(p.data)
        for rng in (model.shuffle_rng, model.noise_rng):
            rng.bit_generator.state = self.comm.broadcast_object(rng.bit_generator.state)

    def attach(self, model: TrainableModel) -> None:
        """Hand every layer the shard context (undone by `detach`)."""
        for layer in model.walk():
            layer.set_shard_context(self.context)

    def detach(self, model: TrainableModel) -> None:
        for layer in model.walk():
            layer.set_shard_context(None)

    # ------------------------------------------------------------------ steps
    def begin(self, shard: Shard) -> None:
        """The step about to run trains ``shard``."""
        context = self.context
        context.batch_rows, context.start, context.stop = shard.batch_rows, shard.start, shard.stop
        self.gradients.set_weight(shard.weight)

    def reduce(self) -> None:
        """The global batch's gradient in every ``.grad`` (between backward and clipping)."""
        self.gradients()

    # ------------------------------------------------------------------ epochs
    def sum(self, values: list[float]) -> list[float]:
        """Sums over the ranks (one collective)."""
        return self.comm.allreduce_sum(values)

    def validate(
        self, model: TrainableModel, X: Any, T: Any, loss: Loss, metrics: Sequence[Metric], batch_size: int
    ) -> dict[str, float]:
        """``val_loss`` and ``val_<metric>`` over all of ``(X, T)``: each rank evaluates its
        slice, and the sums are added up."""
        n = X.shape[0]
        start, stop = shard_bounds(n, self.rank, self.size)
        sums = evaluate_sums(model, X[start:stop, ...], T[start:stop, ...], loss, metrics, batch_size)
        totals = self.sum(sums)
        return {"val_loss": totals[0] / n, **metric_values(metrics, totals[1:], n, "val_")}

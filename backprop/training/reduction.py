"""`GradientReduction`: after backward, every rank's gradients weighted by its share of the
global batch and summed over the ranks, so that every rank holds the gradient one process
would have computed on the whole batch (`backprop.distributed.sharding` gives the rule).

Two ways, the same numbers:

- **after backward** (host MPI, and wherever overlap does not pay): the flat gradient buffer
  (`gradient_buffer`) is scaled by the shard weight and all-reduced in one call. On the CPU
  nothing is gained by overlapping: there is no spare core, and MPICH advances non-blocking
  collectives only inside MPI calls (measured, ``benchmarks/allreduce.py``).
- **overlapped with backward** (NCCL): the buffer is cut into buckets from the last layer back
  (`BucketedAllreduce`); containers report each finished stage (`ShardContext.gradients_ready`)
  and a bucket starts, on NCCL's own stream, as soon as all its gradients are final, while
  backward computes the earlier layers'. `finish` makes the compute stream wait for every
  bucket before clipping and the optimizer step.

The weight lives in a 0-d device array updated before each step, so that a CUDA graph that
captured the step (the NCCL all-reduce included) multiplies by this step's weight on replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..distributed import Communicator, gradient_buffer
from ..layers import Layer
from ..parameter import Parameter

__all__ = ["BUCKET_BYTES", "OVERLAP_TRANSPORTS", "GradientReduction"]

#: the transports on which overlapping the reduction with backward pays: the GPU runs NCCL's
#: kernels beside backward's, while host MPI would only take cores from the computation
OVERLAP_TRANSPORTS: tuple[str, ...] = ("Nccl",)
#: bucket size when overlapping: small enough that the models this library trains (1-8 MB of
#: float32 gradients) give a few buckets (PyTorch DDP's first bucket is 1 MiB, the rest 25 MiB)
BUCKET_BYTES = 2 * 2**20


class GradientReduction:
    """Reduces the gradients of ``params`` (a model's trainable parameters, in order) over the
    ranks of ``comm``: call `set_weight` before each step, `ready` from backward's stage
    reports (overlap only) and the object itself after backward."""

    def __init__(self, comm: Communicator, params: Sequence[Parameter], overlap: bool,
                 bucket_bytes: int | None = None):  # fmt: skip
        self.comm, self.params = comm, list(params)
        self.flat = gradient_buffer(self.params, zero=True)  # None off NumPy/CuPy: reduced one by one
        self.overlap = bool(overlap and self.flat is not None)
        self._weight = 1.0  # the host value, for the per-array path and to skip needless writes
        self.weight: Any = None
        self.buckets: Any = None
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self._marked = [False] * len(self.params)
        if self.flat is not None:
            backend = self.params[0].backend
            with backend.activate():
                self.weight = backend.from_host(np.asarray(1.0), dtype=self.flat.dtype)
            if self.overlap:
                sizes = [int(np.prod(p.shape)) for p in self.params]
                size = BUCKET_BYTES if bucket_bytes is None else bucket_bytes
                self.buckets = comm.bucketed(self.flat, sizes, size, scale=self.weight)

    def set_weight(self, weight: float) -> None:
        """This step's shard weight, ``n_r / B``."""
        if weight != self._weight:
            self._weight = weight
            if self.weight is not None:
                self.weight.fill(weight)  # in place: a captured graph reads it from here

    def ready(self, layers: Sequence[Layer]) -> None:
        """Backward has finished ``layers``: their gradients are final; start every bucket that
        is now complete (`ShardContext.gradients_ready`)."""
        for layer in layers:
            for sub in layer.walk():
                for p in sub.variables().values():
                    i = self._index.get(id(p))
                    if i is not None and not self._marked[i]:
                        self._adopt(i)
                        self.buckets.ready(i)

    def _adopt(self, i: int) -> None:
        """Parameter ``i``'s gradient into its slot of the flat buffer, if it is elsewhere."""
        self._marked[i] = True
        p = self.params[i]
        view = self.flat_view(i)
        if p.grad is not view:
            if p.grad is None:
                raise ValueError(f"{p.name} got no gradient in backward")
            view[...] = p.grad
            p.grad = view

    def flat_view(self, i: int) -> Any:
        p = self.params[i]
        assert p.arenas is not None
        return p.arenas.grad.views[p.index]

    def __call__(self) -> None:
        """After backward: scale and sum (or finish the buckets); every rank ends with the
        global batch's gradient in every ``.grad``."""
        if self.buckets is not None:
            for i, marked in enumerate(self._marked):
                if not marked:
                    self._adopt(i)
            self.buckets.wait()  # starts what backward did not, in order; joins the streams
            self._marked = [False] * len(self.params)
            return
        if self.flat is not None:
            flat = gradient_buffer(self.params)  # stragglers copied into their slots
            flat *= self.weight
            self.comm.allreduce_sum_(flat)
            return
        for p in self.params:  # other namespaces: no flat buffer
            if p.grad is None:
                raise ValueError(f"{p.name} got no gradient in backward")
            p.grad = p.grad * self._weight
            self.comm.allreduce_sum_(p.grad)

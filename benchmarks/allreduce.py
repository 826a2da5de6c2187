"""All-reduce of the flat gradient buffer, and whether overlapping it with backward pays (CPU).

Run under a launcher, one thread per rank on a small machine::

    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/allreduce.py
    OMP_NUM_THREADS=1 python benchmarks/allreduce.py          # one process: the baseline
    mpiexec -n 2 python benchmarks/allreduce.py --quick       # a few steps: a smoke test

For the benchmark models (784-256-256-10, global batch 128; 784-1024-1024-10, global batch
512; float32, softmax cross-entropy, Adam) it times, per global step (median over steps, all
ranks started together by a barrier):

- ``allreduce``: the all-reduce (sum) of the flat gradient buffer alone;
- ``step, no reduction``: forward and backward on the rank's rows (the shard weight applied
  to dL/dP), the optimizer step: the compute alone;
- ``step, reduce after``: the same with one all-reduce of the whole buffer after backward;
- ``step, buckets in backward``: the same with the buffer cut into 256 KiB buckets, each started
  (``MPI_Iallreduce``) as soon as backward has written its gradients and polled between layers.

Rank 0 prints a markdown table. The per-stage readiness here reaches into the model's stages
(`Sequential._stages`); the trainer will call `BucketedAllreduce.ready` from its own backward.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backprop as bp
from backprop import distributed
from backprop.losses import get_loss

ROUNDS = 5
BUCKET_BYTES = 256 * 2**10
MODELS = {"784-256-256-10": ((784, 256, 256, 10), 128, 200), "784-1024-1024-10": ((784, 1024, 1024, 10), 512, 40)}


def build(sizes: tuple[int, ...]) -> bp.Sequential:
    layers: list[bp.Layer] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(bp.Dense(a, b, init="he"))
        if i < len(sizes) - 2:
            layers.append(bp.ReLU())
    return bp.Sequential(*layers, dtype="float32", seed=0)


def forward_backward(model: bp.Sequential, X: Any, T: Any, loss: Any, weight: float, reducer: Any = None) -> None:
    """Forward and backward on the rank's rows with the shard weight applied to dL/dP (no
    extra pass over the gradient buffer); with a ``reducer``, each bucket is started as soon
    as backward has written its gradients, and the reductions are polled between layers."""
    params = model.parameters()
    if reducer is not None:
        for p in params:
            p.grad = None  # backward writes each gradient into its slot; None marks "not yet"
    backs = []
    with model.backend.activate():
        for stage in model._stages:
            X, back = stage(X, True)
            backs.append(back)
        _, dY = loss.value_and_grad(model.backend.ops, X, T)
        dY = dY * weight
        marked = [False] * len(params)
        for i in range(len(backs) - 1, -1, -1):
            dY = backs[i](dY, i > 0)
            if reducer is not None:
                for j, p in enumerate(params):
                    if not marked[j] and p.grad is not None:
                        marked[j] = True
                        reducer.ready(j)
                reducer.poll()


def measure(
    comm: distributed.Communicator, sizes: tuple[int, ...], batch: int, steps: int, rounds: int
) -> dict[str, float]:
    """Median seconds per global step of each variant on this rank, and the buffer's size."""
    loss = get_loss("cross_entropy")
    model = build(sizes)
    params = model.parameters()
    optimizer = bp.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    start, stop = distributed.shard_bounds(batch, comm.rank, comm.size)
    weight = (stop - start) / batch
    flat = params[0].arenas.grad.flat
    reducer = comm.bucketed(flat, [int(np.prod(p.shape)) for p in params], bucket_bytes=BUCKET_BYTES)
    Xd, Td = model.checked_data(X[start:stop], y[start:stop], loss)

    def reduce_only() -> None:
        comm.allreduce_sum_(flat)

    def compute_only() -> None:
        forward_backward(model, Xd, Td, loss, weight)
        optimizer.step()

    def reduce_after() -> None:
        forward_backward(model, Xd, Td, loss, weight)
        comm.allreduce_sum_(flat)
        optimizer.step()

    def buckets_in_backward() -> None:
        forward_backward(model, Xd, Td, loss, weight, reducer)
        reducer.wait()
        optimizer.step()

    variants = {
        "allreduce": reduce_only,
        "step, no reduction": compute_only,
        "step, reduce after": reduce_after,
        "step, buckets in backward": buckets_in_backward,
    }
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):  # interleaved, so that a busy moment of the machine hits all alike
        for label, run in variants.items():
            for k in range(2 + max(1, steps // rounds)):
                comm.barrier()
                t0 = time.perf_counter()
                run()
                elapsed = time.perf_counter() - t0
                if k >= 2:
                    times[label].append(elapsed)
    row = {label: statistics.median(t) for label, t in times.items()}
    row["buffer MB"] = flat.nbytes / 1e6
    row["buckets"] = len(reducer.plan.buckets)
    return row


def main() -> None:
    quick = "--quick" in sys.argv[1:]  # a few steps each: a smoke test, not a measurement
    world = distributed.init()
    comm = world.communicator()
    rows: dict[str, dict[str, float]] = {}
    for name, (sizes, batch, steps) in MODELS.items():
        mine = measure(comm, sizes, batch, 1 if quick else steps, 1 if quick else ROUNDS)
        everyone = comm.allgather_object(mine)
        rows[name] = {key: max(r[key] for r in everyone) for key in mine}  # the slowest rank sets the pace
    if world.is_root:
        print(f"{world.size} rank(s); times in ms per global step (median; the slowest rank)")
        labels = ["allreduce", "step, no reduction", "step, reduce after", "step, buckets in backward"]
        print("| model | buffer | " + " | ".join(labels) + " |")
        print("|---|---|" + "---|" * len(labels))
        for name, r in rows.items():
            cells = " | ".join(f"{r[k] * 1e3:.2f}" for k in labels)
            print(f"| {name} | {r['buffer MB']:.2f} MB, {int(r['buckets'])} buckets | {cells} |")


if __name__ == "__main__":
    main()

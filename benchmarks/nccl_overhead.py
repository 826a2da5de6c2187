"""On one GPU: what `fit`'s NCCL reduction adds to a training step, at one rank.

    python benchmarks/nccl_overhead.py            # needs CuPy, a GPU and NCCL (pip install nvidia-nccl-cu12)

The issue asks that the NCCL path cost under 2% of a step at one rank. A world of one rank
makes no communicator in `fit`, so this builds one: an NCCL communicator of one rank (its id
"broadcast" by a stand-in for MPI), and `fit`'s own `GradientReduction` on it (shard weight,
flat buffer, all-reduce; after backward, or bucketed and overlapped as on several ranks). Each
variant is the whole step replayed from a CUDA graph (the NCCL call captured with it) on the
benchmark models, timed against the same step without any reduction: median ms per step over
rounds of back-to-back replays, one device sync per round.

NOT YET RUN: written and reviewed without a GPU; its first run is a check of the capture too.
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
from backprop.backends.nccl import NcclCollectives
from backprop.distributed import Communicator
from backprop.layers import ShardContext
from backprop.losses import get_loss
from backprop.training import build_step
from backprop.training.reduction import GradientReduction

MODELS = {"784-256-256-10": ((784, 256, 256, 10), 128), "784-1024-1024-10": ((784, 1024, 1024, 10), 512)}
ROUNDS, STEPS = 20, 100


class OneRank:
    """What `NcclCollectives` asks of an MPI communicator, for a world of one."""

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj


class NcclComm:
    """The collectives `GradientReduction` calls, on a one-rank NCCL communicator."""

    bucketed = Communicator.bucketed
    kind = "Nccl"
    size = 1

    def __init__(self, device: int):
        self.nccl = NcclCollectives(OneRank(), device)

    def allreduce_sum_(self, x: Any) -> None:
        self.nccl.allreduce_(x, "sum")

    def start_allreduce_sum_(self, x: Any) -> Any:
        return self.nccl.start_allreduce_(x, "sum")

    def poll(self, handles: list[Any]) -> None:
        return None

    def finish(self, handles: list[Any]) -> None:
        self.nccl.finish(handles)


def build(sizes: tuple[int, ...]) -> bp.Sequential:
    layers: list[bp.Layer] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(bp.Dense(a, b, init="he"))
        if i < len(sizes) - 2:
            layers.append(bp.ReLU())
    return bp.Sequential(*layers, device="cuda", dtype="float32", seed=0)


def time_variant(sizes: tuple[int, ...], batch: int, reduction: str) -> tuple[float, str | None]:
    """Median ms per replayed step, and why the step was not replayed (``None`` if it was)."""
    import cupy  # noqa: PLC0415 - GPU only

    model = build(sizes)
    optimizer = bp.optim.Adam(model.parameters(), lr=1e-3)
    loss = get_loss("cross_entropy")
    reduce = None
    if reduction != "none":
        gradients = GradientReduction(NcclComm(0), optimizer.params, overlap=reduction == "overlapped")
        ready = gradients.ready if gradients.overlap else None
        for layer in model.walk():  # what DataParallel.attach does: backward's stage reports
            layer.set_shard_context(ShardContext(0, 1, lambda A: None, batch, 0, batch, ready))
        reduce = gradients
    step = build_step(model, loss, optimizer, graph=True, keep=1, reduce=reduce)
    rng = np.random.default_rng(1)
    X, T = model.checked_data(rng.normal(size=(batch, sizes[0])), rng.integers(0, sizes[-1], batch), loss)
    with model.backend.activate():
        for _ in range(10):
            step(X, T)
        times = []
        for _ in range(ROUNDS):
            cupy.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for _ in range(STEPS):
                step(X, T)
            cupy.cuda.Device().synchronize()
            times.append((time.perf_counter() - t0) / STEPS * 1e3)
    return statistics.median(times), getattr(step, "reason", None)


def main() -> None:
    print("| model | batch | no reduction ms | NCCL after backward ms | overhead | NCCL overlapped ms | overhead |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for name, (sizes, batch) in MODELS.items():
        row = {}
        for variant in ("none", "after", "overlapped"):
            row[variant], reason = time_variant(sizes, batch, variant)
            if reason is not None:
                notes.append(f"{name} {variant}: not replayed ({reason})")
        base = row["none"]
        print(f"| {name} | {batch} | {base:.3f} | {row['after']:.3f} | {row['after'] / base - 1:+.1%} | "
              f"{row['overlapped']:.3f} | {row['overlapped'] / base - 1:+.1%} |")  # fmt: skip
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()

"""What each rank runs in the multi-process tests (`test_distributed_mpi.py`), under
``mpiexec -n N python -m mpi4py tests/distributed_ranks.py OUTDIR MODE``.

``check``: collectives (sum, mean, buckets, broadcast, Python values) checked on every rank,
then the training cases of `CASES`, each a hand-written data-parallel loop built from the
library's pieces (`epoch_shards`, ``model.backprop`` on the rank's rows, `gradient_buffer`,
the shard weight, ``allreduce_sum_``, ``optimizer.step``); rank 0 writes the final weights and
epoch losses to OUTDIR for the test to compare with one process's ``fit``.
``fail``: the last rank raises while the others wait in an all-reduce; the job must end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

import backprop as bp
from backprop import distributed

# name -> (optimizer, loss, rows, batch_size, epochs, l2, reduction)
CASES: dict[str, dict[str, Any]] = {
    # 23 rows in batches of 6: 6, 6, 6, 5 -> uneven shares at 2 ranks (3/3, 3/2) and 4 ranks
    "sgd": {
        "optimizer": "sgd",
        "loss": "cross_entropy",
        "rows": 23,
        "batch": 6,
        "epochs": 3,
        "l2": 0.0,
        "reduce": "flat",
    },
    # 21 rows in batches of 4: the last batch has 1 row, so every rank but rank 0 holds none
    "adam": {
        "optimizer": "adam",
        "loss": "cross_entropy",
        "rows": 21,
        "batch": 4,
        "epochs": 3,
        "l2": 0.0,
        "reduce": "buckets",
    },
    # an l2 penalty (the same gradient on every rank), MSE (averaged over every element), the
    # data read from .npy files a shard at a time
    "adamw_l2": {"optimizer": "adamw", "loss": "mse", "rows": 23, "batch": 5, "epochs": 3, "l2": 0.01, "reduce": "npy"},
}


def data(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(case["rows"], 5))
    y = rng.integers(0, 3, size=case["rows"]) if case["loss"] == "cross_entropy" else rng.normal(size=(case["rows"], 3))
    return X, y


def build(case: dict[str, Any]) -> tuple[bp.Sequential, bp.optim.Optimizer]:
    model = bp.Sequential(
        bp.Dense(5, 8, l2=case["l2"]), bp.Tanh(), bp.Dense(8, 6), bp.ReLU(), bp.Dense(6, 3), dtype="float64", seed=3
    )
    params = model.parameters()
    optimizer = {
        "sgd": lambda: bp.optim.SGD(params, lr=0.1, momentum=0.9),
        "adam": lambda: bp.optim.Adam(params, lr=0.01),
        "adamw": lambda: bp.optim.AdamW(params, lr=0.01, weight_decay=0.1),
    }[case["optimizer"]]()
    return model, optimizer


def train(case: dict[str, Any], world: distributed.World, outdir: str) -> tuple[bp.Sequential, list[float]]:
    """Data-parallel training that must follow one process's ``fit`` on the same global batches."""
    model, optimizer = build(case)
    comm = world.communicator(model.backend)
    params = model.parameters()
    comm.broadcast_(params[0].arenas.data.flat)  # rank 0's initial weights (the same seed gives them anyway)
    if case["reduce"] == "npy":
        X, y = (
            distributed.open_array(os.path.join(outdir, "X.npy")),
            distributed.open_array(os.path.join(outdir, "y.npy")),
        )
    else:
        X, y = data(case)
    n, B = case["rows"], case["batch"]
    buckets = None
    losses = []
    for _ in range(case["epochs"]):
        order = distributed.epoch_order(model.shuffle_rng, n, B, shuffle=True)
        total = 0.0
        for shard in distributed.epoch_shards(order, n, B, world.rank, world.size):
            if shard.empty:
                flat = distributed.gradient_buffer(params, zero=True)
            else:
                Xr, yr = distributed.read_rows(X, shard.rows), distributed.read_rows(y, shard.rows)
                total += model.backprop(Xr, yr, case["loss"]) * shard.count
                flat = distributed.gradient_buffer(params)
                flat *= shard.weight
            if case["reduce"] == "buckets":
                if buckets is None:  # 64-byte buckets: several per step, started as "backward" reaches them
                    buckets = comm.bucketed(flat, [int(np.prod(p.shape)) for p in params], bucket_bytes=64)
                for i in reversed(range(len(params))):
                    buckets.ready(i)
                buckets.wait()
            else:
                comm.allreduce_sum_(flat)
            optimizer.step()
        (total,) = comm.allreduce_sum([total])
        losses.append(total / n)
    return model, losses


def check_collectives(world: distributed.World) -> dict[str, Any]:
    comm = world.communicator()
    r, size = world.rank, world.size
    ranks_sum = size * (size + 1) / 2
    timings = {}
    for k in (0, 1, 7, 1000, 100_003):
        x = np.arange(k, dtype=np.float64) * (r + 1)
        comm.allreduce_sum_(x)
        np.testing.assert_array_equal(x, np.arange(k) * ranks_sum)
        x = np.full(k, float(r), dtype=np.float32)
        comm.allreduce_mean_(x)
        np.testing.assert_allclose(x, (size - 1) / 2, rtol=1e-6)
    # a slice of a buffer is reduced in place, the rest untouched
    buf = np.full(10, float(r + 1))
    comm.allreduce_sum_(buf[3:7])
    np.testing.assert_array_equal(buf, [r + 1] * 3 + [ranks_sum] * 4 + [r + 1] * 3)
    # buckets, with ready() in an order that differs between ranks: started in plan order anyway
    sizes = [12, 3, 40, 5, 7]
    flat = np.arange(sum(sizes), dtype=np.float64) + r
    reducer = comm.bucketed(flat, sizes, bucket_bytes=80, mean=True)
    marks = list(range(len(sizes)))
    np.random.default_rng(r).shuffle(marks)
    for i in marks:
        reducer.ready(i)
        reducer.poll()
    reducer.wait()
    np.testing.assert_allclose(flat, np.arange(sum(sizes)) + (size - 1) / 2, rtol=0, atol=1e-12)
    reducer.run()  # reusable: a second step, everything at once
    np.testing.assert_allclose(flat, np.arange(sum(sizes)) + (size - 1) / 2, rtol=0, atol=1e-12)
    # broadcast from a non-zero root, and Python values
    b = np.full(5, float(r))
    comm.broadcast_(b, root=size - 1)
    np.testing.assert_array_equal(b, size - 1)
    assert comm.allreduce_sum([1.0, r]) == [float(size), float(size * (size - 1) / 2)]
    assert comm.broadcast_object({"rank": r}, root=0) == {"rank": 0}
    assert comm.allgather_object(r) == list(range(size))
    comm.barrier()
    assert distributed.except_hook_installed()
    assert distributed.init() is world and world.communicator() is comm  # one world, one set of communicators
    # timings of the flat gradient buffers of the benchmark models (float32 and float64)
    for name, count in (
        ("784-256-256-10", 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10),
        ("784-1024-1024-10", 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10),
    ):
        for dtype in ("float32", "float64"):
            x = np.ones(count, dtype=dtype)
            comm.allreduce_sum_(x)
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(5):
                comm.allreduce_sum_(x)
            timings[f"{name} {dtype}"] = (time.perf_counter() - t0) / 5
    return {"world": [world.rank, world.size, world.local_rank, world.local_size, world.nodes], "timings": timings}


def main() -> None:
    outdir, mode = sys.argv[1], sys.argv[2]
    world = distributed.init()
    if mode == "fail":
        comm = world.communicator()
        comm.barrier()
        if world.rank == world.size - 1:
            raise ValueError(f"rank {world.rank} fails on purpose")
        comm.allreduce_sum_(np.zeros(4))  # never completes: the failing rank does not join
        return
    report = check_collectives(world)
    report["cases"] = {}
    for name, case in CASES.items():
        model, losses = train(case, world, outdir)
        flat = model.parameters()[0].arenas.data.flat
        everyone = world.communicator().allgather_object(flat.tobytes())
        report["cases"][name] = {"identical_on_all_ranks": all(b == everyone[0] for b in everyone), "losses": losses}
        if world.is_root:
            np.savez(os.path.join(outdir, f"{name}-{world.size}.npz"), **model.state_dict())
    if world.is_root:
        with open(os.path.join(outdir, f"report-{world.size}.json"), "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()

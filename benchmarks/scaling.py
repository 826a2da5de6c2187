"""Data-parallel scaling of ``fit(distributed=world)`` on this machine's CPU: step time and
efficiency at 1, 2, ... ranks, and ``fit`` from a memory-mapped file against the bare step.

Run the driver, which launches itself under ``mpiexec`` for each world size (one thread per
rank, so that N ranks use N cores)::

    python benchmarks/scaling.py                    # 1 and 2 ranks, both benchmark models
    python benchmarks/scaling.py --ranks 1,2,4      # on a machine with 4 cores or more
    python benchmarks/scaling.py --quick            # a few steps: a smoke test, not a measurement
    python benchmarks/scaling_model.py              # the paper model at 2-64 GPUs (no measurement)

For each model (784-256-256-10 at global batch 128; 784-1024-1024-10 at 512; float32, softmax
cross-entropy, Adam; synthetic data in memory) and each world size N it times, per global
step (median of epochs, after a warm-up epoch; the slowest rank):

- **strong**: ``fit`` on the global batch B split over N ranks: ideal ``T_1 / N``;
  efficiency ``T_1 / (N T_N)``;
- **weak**: ``fit`` on a global batch of ``N B`` (B per rank): ideal ``T_1``; efficiency
  ``T_1 / T_N``;
- **compute only**: the same rank's steps (its share of B) without any reduction
  (`make_step` on contiguous batches), so that the cost of the all-reduce and of `fit`'s
  sharding shows;
- **1 rank, all threads**: one process with every core for BLAS, the alternative to ranks on
  one machine.

At one rank it also times ``fit`` on the small model from a ``.npy`` memory map (rows read
shard by shard on a background thread) against ``fit`` on the array in memory and against the
bare step rate (``make_step`` on contiguous batches already in memory).

The driver prints a markdown table and the share of CPU time other processes used while it
ran (numbers taken beside other work mean little: rerun on a quiet machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backprop as bp  # noqa: E402
from backprop import distributed  # noqa: E402
from backprop.training import make_step  # noqa: E402

#: name -> (layer widths, global batch per rank at N = 1, steps per timed epoch)
MODELS = {"784-256-256-10": ((784, 256, 256, 10), 128, 40), "784-1024-1024-10": ((784, 1024, 1024, 10), 512, 8)}
EPOCHS = 5  # timed epochs (after one warm-up epoch)


def build(sizes: tuple[int, ...]) -> tuple[bp.Sequential, bp.optim.Optimizer]:
    layers: list[bp.Layer] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(bp.Dense(a, b, init="he"))
        if i < len(sizes) - 2:
            layers.append(bp.ReLU())
    model = bp.Sequential(*layers, dtype="float32", seed=0)
    return model, bp.optim.Adam(model.parameters(), lr=1e-3)


def data(sizes: tuple[int, ...], rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(rows, sizes[0])).astype(np.float32), rng.integers(0, sizes[-1], size=rows)


def time_fit(world: Any, sizes: tuple[int, ...], batch: int, steps: int, epochs: int, X: Any = None,
             y: Any = None) -> float:  # fmt: skip
    """Median seconds per global step of ``fit`` (one epoch per call), the slowest rank's."""
    model, optimizer = build(sizes)
    if X is None:
        X, y = data(sizes, batch * steps)
    where = world if world.size > 1 else None
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer, batch_size=batch, verbose=0, distributed=where)
    times = []
    for _ in range(epochs):
        world.communicator().barrier()
        t0 = time.perf_counter()
        model.fit(X, y, loss="cross_entropy", optimizer=optimizer, batch_size=batch, verbose=0, distributed=where)
        times.append((time.perf_counter() - t0) / steps)
    return max(world.communicator().allgather_object(statistics.median(times)))


def time_steps(world: Any, sizes: tuple[int, ...], rows: int, steps: int, epochs: int) -> float:
    """Median seconds per step of bare `make_step` on ``rows``-row contiguous batches (no reduction)."""
    model, optimizer = build(sizes)
    step = make_step(model, "cross_entropy", optimizer)
    X, y = data(sizes, rows * steps)
    loss = bp.losses.get_loss("cross_entropy")
    batches = [model.checked_data(X[i : i + rows], y[i : i + rows], loss) for i in range(0, rows * steps, rows)]
    for Xb, Tb in batches:
        step(Xb, Tb)
    times = []
    for _ in range(epochs):
        world.communicator().barrier()
        t0 = time.perf_counter()
        for Xb, Tb in batches:
            step(Xb, Tb)
        times.append((time.perf_counter() - t0) / steps)
    return max(world.communicator().allgather_object(statistics.median(times)))


def measure(quick: bool) -> dict[str, Any]:
    """This world size's figures (run under the launcher, every rank)."""
    world = distributed.init()
    epochs = 1 if quick else EPOCHS
    out: dict[str, Any] = {"ranks": world.size, "threads": os.environ.get("OMP_NUM_THREADS"), "models": {}}
    for name, (sizes, batch, steps) in MODELS.items():
        steps = 2 if quick else steps
        start, stop = distributed.shard_bounds(batch, world.rank, world.size)
        out["models"][name] = {
            "strong": time_fit(world, sizes, batch, steps, epochs),
            "weak": time_fit(world, sizes, batch * world.size, steps, epochs),
            "compute": time_steps(world, sizes, stop - start, steps, epochs),
        }
    if world.size == 1:
        out["memmap"] = memmap_figures(world, quick)
    return out


def memmap_figures(world: Any, quick: bool) -> dict[str, float]:
    """Seconds per step of the small model: fit from a .npy memory map, fit in memory, bare steps."""
    sizes, batch, steps = MODELS["784-256-256-10"]
    steps = 2 if quick else steps * 4
    X, y = data(sizes, batch * steps)
    epochs = 1 if quick else EPOCHS
    with tempfile.TemporaryDirectory() as folder:
        np.save(os.path.join(folder, "X.npy"), X)
        mapped = np.load(os.path.join(folder, "X.npy"), mmap_mode="r")
        figures = {
            "fit, memory map": time_fit(world, sizes, batch, steps, epochs, mapped, y),
            "fit, in memory": time_fit(world, sizes, batch, steps, epochs, X, y),
            "bare steps": time_steps(world, sizes, batch, steps, epochs),
        }
        del mapped
    return figures


def launch(ranks: int, threads: int, quick: bool) -> dict[str, Any]:
    """Run `measure` under ``mpiexec -n ranks`` with ``threads`` BLAS threads per rank."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "PMIX", "HYDRA"))}
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable, __file__,
                   "--measure", out.name] + (["--quick"] if quick else [])  # fmt: skip
        subprocess.run(command, env=env, check=True, timeout=1800)
        return json.loads(Path(out.name).read_text())


def table(runs: list[dict[str, Any]], alone: dict[str, Any]) -> str:
    base = runs[0]["models"]
    lines = ["| model | ranks | strong ms/step | strong eff. | weak ms/step | weak eff. | compute only ms | "
             "reduction and sharding, % of strong step |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run in runs:
        n = run["ranks"]
        for name, r in run["models"].items():
            strong, weak = base[name]["strong"] / (n * r["strong"]), base[name]["weak"] / r["weak"]
            share = 100 * (r["strong"] - r["compute"]) / r["strong"]
            lines.append(f"| {name} | {n} | {r['strong'] * 1e3:.2f} | {strong:.0%} | {r['weak'] * 1e3:.2f} | "
                         f"{weak:.0%} | {r['compute'] * 1e3:.2f} | {share:.0f}% |")  # fmt: skip
    for name, r in alone["models"].items():
        lines.append(f"| {name} | 1 rank, {alone['threads']} threads | {r['strong'] * 1e3:.2f} | – | "
                     f"{r['weak'] * 1e3:.2f} | – | {r['compute'] * 1e3:.2f} | – |")  # fmt: skip
    m = runs[0].get("memmap")
    if m:
        lines.append("")
        lines.append("| 784-256-256-10, batch 128, 1 rank | ms/step | ÷ bare steps |")
        lines.append("|---|---|---|")
        for label, seconds in m.items():
            lines.append(f"| {label} | {seconds * 1e3:.2f} | {seconds / m['bare steps']:.2f} |")
    return "\n".join(lines)


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(all CPUs' total seconds, their busy seconds, this process's and its children's CPU
    seconds), from Linux's /proc/stat; ``None`` elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return sum(values) / tick, (sum(values) - values[3] - values[4]) / tick, own


def _others_share(before: Any, after: Any) -> float | None:
    """Share of all CPU time that other processes (not this one, not the ranks it launched) used."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return min(1.0, max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1,2", help="world sizes to launch (default 1,2)")
    parser.add_argument("--quick", action="store_true", help="a few steps each: a smoke test")
    parser.add_argument("--measure", metavar="JSON", help=argparse.SUPPRESS)  # what each launch runs
    args = parser.parse_args()
    if args.measure:
        figures = measure(args.quick)
        if distributed.init().is_root:
            Path(args.measure).write_text(json.dumps(figures))
        return
    sizes = [int(n) for n in args.ranks.split(",")]
    before = _cpu_seconds()
    runs = [launch(n, 1, args.quick) for n in sizes]
    alone = launch(1, os.cpu_count() or 1, args.quick)
    busy = _others_share(before, _cpu_seconds())
    print(f"{os.cpu_count()} cores; one BLAS thread per rank; times per global step (median of epochs, slowest rank)")
    print(table(runs, alone))
    if busy is not None:
        quiet = ": rerun on a quiet machine" if busy > 0.1 else ""
        print(f"\nother processes used {busy:.0%} of the CPU while this ran{quiet}")


if __name__ == "__main__":
    main()

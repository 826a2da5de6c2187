"""Where `fit`'s time goes beyond its bare steps, for one benchmark configuration.

    python benchmarks/profile_fit.py [--device cpu|cuda] [--config mnist-wide] [--rounds 20]

Times, alternately over ``--rounds`` rounds (medians, the device synced before each clock
read), one epoch of ``fit(epochs=1, verbose=0)`` over the benchmark's `fit` samples; the same
samples as bare `make_step` calls on contiguous device batches (and how long the host takes
to queue them, without the final sync); `fit` on one batch against one bare step (what a
call costs besides its steps); and each thing `fit` does besides its steps, on its own:
checking the data, the shuffled batches (permutation, gathers, slices), reading the epoch's
losses; and the floors: the least a hand-written loop of bare steps does that makes its own
batches (slices in order; shuffled rows gathered; the same after fit's input check), against
which `fit`'s own overhead shows. Then prints a cProfile of a few `fit` calls, sorted by own
time. A tool for finding a gap, not a benchmark: its numbers go to stdout only.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` and the repo's backprop importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop.batching import batches
from backprop.epoch_results import EpochResults
from benchmarks.backprop_runner import prepare_fit, warm_device
from benchmarks.configs import CONFIGS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--config", choices=tuple(CONFIGS), default="mnist-wide")
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args(argv)
    config = CONFIGS[args.config]
    counts = config.counts.get(args.device)
    if counts is None:
        p.error(f"{config.name} does not run on {args.device}")
    warm_device(args.device)
    bench = prepare_fit(config, args.device, counts.fit_samples)
    n, b, backend, sync = bench.n, config.batch, bench.backend, bench.sync
    rng = np.random.default_rng(0)

    def fit_one_batch() -> None:
        bench.fit_model.fit(bench.X[:b], bench.y[:b], **bench.options)

    def one_step() -> None:
        bench.step(*bench.batches[0])

    def check_data() -> None:
        bench.fit_model.checked_data(bench.X, bench.y, bench.options["loss"])

    def shuffled_batches() -> None:
        for _ in batches(backend, rng, bench.X, bench.T, b, True):
            pass

    def read_losses() -> None:
        results = EpochResults(backend, 0)
        for Xb, _ in bench.batches:
            results.add(backend.xp.sum(Xb[:1, :1]), Xb.shape[0])
        results.end_epoch(1, 0.0)
        results.read([])

    def loop(shuffle: bool, check: bool = False) -> Callable[[], None]:
        """The least a loop that makes its own batches does: bare steps over `batches` (slices
        in order, or shuffled rows gathered), keeping each loss; with ``check``, after fit's
        NaN/Inf check of the inputs. The floor `fit` is measured against, beside the bare steps'."""

        def run() -> None:
            if check and not backend.all_finite(bench.X):
                raise ValueError("the inputs are not finite")
            losses = []
            for Xb, Tb in batches(backend, rng, bench.X, bench.T, b, shuffle):
                losses.append(bench.step(Xb, Tb))

        return run

    parts: dict[str, Callable[[], None]] = {
        "fit epoch": bench.fit,
        "fit epoch, shuffle=False": lambda: bench.fit(shuffle=False),
        "bare steps": bench.steps,
        "loop over slices": loop(False),
        "loop over shuffled rows": loop(True),
        "  ... after the input check": loop(True, check=True),
        "fit, one batch": fit_one_batch,
        "one bare step": one_step,
        "checked_data": check_data,
        "shuffled batches": shuffled_batches,
        "results read (+tiny sums)": read_losses,
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    queued: list[float] = []
    with backend.activate():
        for _ in range(args.rounds):
            for name, work in parts.items():
                sync()
                t0 = time.perf_counter()
                work()
                if name == "bare steps":
                    queued.append(time.perf_counter() - t0)
                sync()
                times[name].append(time.perf_counter() - t0)
    print(f"{config.name} on {args.device}: {n} samples, batch {b}, {-(-n // b)} steps, {args.rounds} rounds")
    for name, ts in times.items():
        print(f"  {name:28s} median {1e3 * np.median(ts):8.3f} ms  min {1e3 * min(ts):8.3f} ms")
    print(f"  {'bare steps, host queueing':28s} median {1e3 * np.median(queued):8.3f} ms  (no final sync)")
    bare = np.array(times["bare steps"])
    print("  rate ratios to the bare steps (median of each round's):")
    for name in ("fit epoch", "fit epoch, shuffle=False", "loop over slices", "loop over shuffled rows",
                 "  ... after the input check"):  # fmt: skip
        print(f"    {name:28s} {np.median(bare / np.array(times[name])):.3f}")
    floor = np.median(np.array(times["  ... after the input check"]) / np.array(times["fit epoch"]))
    print(f"  fit / the shuffled, checked loop's rate {floor:.3f}")
    with backend.activate():
        profile = cProfile.Profile()
        sync()
        profile.enable()
        for _ in range(5):
            bench.fit()
        sync()
        profile.disable()
    stats = pstats.Stats(profile, stream=sys.stdout)
    print("\ncProfile of 5 fit epochs, by own time:")
    stats.sort_stats("tottime").print_stats(30)
    print("\n... and by cumulative time:")
    stats.sort_stats("cumulative").print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""backprop next to the tutorial it grew from, on the tutorial's own task (``--tutorial PATH``).

The tutorial's ``NeuralNetwork([2, 4, 1]).train(X, Y, epochs, lr=0.1)`` is a NumPy loop over
full-batch epochs of XOR: 2-4-1, ReLU, sigmoid output, BCE, plain SGD, float64. backprop runs
the same network the two ways a user would: ``model.fit(X, y, epochs=E, batch_size=4)`` (each
epoch one step on the four points, with fit's per-epoch bookkeeping) and ``E`` bare
`make_step` calls. The three are timed in many short interleaved rounds of ``E`` epochs (a
slow spell of a shared machine then hits all three alike); the result is the median time per
epoch of each and the ratios to the tutorial.

The tutorial is not part of this project: give the path to its ``seed_tutorial.py``.
"""

from __future__ import annotations

import importlib.util
import os
import time
from types import ModuleType
from typing import Any

import numpy as np

import backprop as bp
from backprop.training import make_step

__all__ = ["load_tutorial", "markdown", "run_tutorial_comparison"]

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def load_tutorial(path: str | os.PathLike[str]) -> ModuleType:
    """Import the tutorial's file as a module (it trains nothing on import)."""
    spec = importlib.util.spec_from_file_location("backprop_benchmark_tutorial", os.fspath(path))
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import the tutorial from {os.fspath(path)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "NeuralNetwork"):
        raise ValueError(f"{os.fspath(path)!r} has no NeuralNetwork class: is it the tutorial's seed_tutorial.py?")
    return module


def run_tutorial_comparison(path: str | os.PathLike[str], epochs: int = 200, rounds: int = 50) -> dict[str, Any]:
    tutorial = load_tutorial(path)
    net = tutorial.NeuralNetwork([2, 4, 1])
    fit_model, step_model = (
        bp.Sequential(bp.Dense(2, 4), bp.ReLU(), bp.Dense(4, 1), bp.Sigmoid(), dtype="float64", seed=0)
        for _ in range(2)
    )
    fit_opt, step_opt = bp.optim.SGD(fit_model.parameters(), lr=0.1), bp.optim.SGD(step_model.parameters(), lr=0.1)
    backend = step_model.backend
    step = make_step(step_model, "bce", step_opt)
    Xd, Yd = backend.from_host(X), backend.from_host(Y)

    def run_tutorial() -> None:
        net.train(X.T, Y.T, epochs=epochs, lr=0.1, verbose=False)

    def run_fit() -> None:
        fit_model.fit(X, Y, loss="bce", optimizer=fit_opt, epochs=epochs, batch_size=4, verbose=0)

    def run_steps() -> None:
        with backend.activate():
            for _ in range(epochs):
                step(Xd, Yd)

    variants = {"tutorial": run_tutorial, "backprop fit": run_fit, "backprop step": run_steps}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up: first calls, kernel lookups, allocations
        run()
    for _ in range(rounds):
        for name, run in variants.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    per_epoch = {name: 1e3 * float(np.median(t)) / epochs for name, t in times.items()}
    return {
        "epochs": epochs,
        "rounds": rounds,
        "median_ms_per_epoch": per_epoch,
        "ratio_to_tutorial": {name: ms / per_epoch["tutorial"] for name, ms in per_epoch.items() if name != "tutorial"},
        "tutorial_path": os.fspath(path),
        "what": f"median over {rounds} interleaved rounds of {epochs} full-batch XOR epochs each "
        "(2-4-1, ReLU, sigmoid, BCE, SGD lr 0.1, float64): the tutorial's train(), backprop's fit(), "
        "and backprop's bare make_step calls",
    }


def markdown(result: dict[str, Any]) -> str:
    """A small table: per-epoch time of each and the ratio to the tutorial."""
    rows = ["| xor, full batch, float64 | ms/epoch | ÷ tutorial |", "|---|---|---|"]
    for name, ms in result["median_ms_per_epoch"].items():
        ratio = result["ratio_to_tutorial"].get(name, 1.0)
        rows.append(f"| {name} | {ms:.4f} | {ratio:.3f} |")
    return "\n".join(rows)

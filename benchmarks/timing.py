"""Timing shared by both runners: every step timed on its own, the device synced before the
clock is read, and (on a GPU) a pipelined rate with one sync at the end.

The variants of one configuration are timed *interleaved*: in each of several rounds every
variant runs its share of the steps in turn, so a slow spell of a shared machine hits them all
alike instead of whichever happened to be running (`measure_interleaved`)."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Prepared", "measure_interleaved"]

Step = Callable[[int], Any]  # run_step(i) runs one training step on batch i % k, returns the loss


@dataclass
class Prepared:
    """A variant built and ready to time: ``run_step(i)`` runs step ``i``; ``done`` steps (and
    the very first loss) have run already; ``finish()`` returns fields read after timing."""

    run_step: Step
    sync: Callable[[], None]
    to_float: Callable[[Any], float]
    first_loss: float | None = None
    done: int = 0
    finish: Callable[[], dict[str, Any]] = field(default=dict)


def measure_interleaved(
    variants: dict[str, Prepared], warmup: int, steps: int, pipelined: bool, rounds: int = 10
) -> dict[str, dict[str, Any]]:
    """Warm every variant up, then time ``steps`` steps of each, one by one, in ``rounds``
    interleaved rounds; then (``pipelined``) each variant's back-to-back rate. A variant that
    raises gets ``{"error", "traceback"}`` and drops out; the others are timed on."""
    state: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}  # a variant that raised drops out; the others go on

    def attempt(name: str, work: Callable[..., Any], *args: Any) -> Any:
        try:
            return work(*args)
        except Exception as exc:  # noqa: BLE001 - reported in the variant's row
            failed[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            return None

    def warm(name: str, v: Prepared) -> None:
        i, first = v.done, v.first_loss
        if first is None:
            first = v.to_float(v.run_step(i))
            i += 1
        while i < warmup:  # the warm-up counts the steps already done
            v.run_step(i)
            i += 1
        v.sync()
        state[name] = {"i": i, "first": first, "times": [], "loss": None}

    def timed(v: Prepared, s: dict[str, Any], count: int) -> None:
        for _ in range(count):
            t0 = time.perf_counter()
            s["loss"] = v.run_step(s["i"])
            v.sync()
            s["times"].append(time.perf_counter() - t0)
            s["i"] += 1

    for name, v in variants.items():
        attempt(name, warm, name, v)
    per_round = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
    for count in per_round:
        for name, v in variants.items():
            if name not in failed:
                attempt(name, timed, v, state[name], count)
    results: dict[str, dict[str, Any]] = {}
    for name, v in variants.items():
        if name not in failed:
            results[name] = attempt(name, _summary, v, state[name], warmup, steps, rounds, pipelined)
        if name in failed:
            results[name] = failed[name]
    return results


def _summary(v: Prepared, s: dict[str, Any], warmup: int, steps: int, rounds: int, pipelined: bool) -> dict[str, Any]:
    """A timed variant's numbers, after (``pipelined``) its back-to-back rate is measured."""
    times = s["times"]
    result: dict[str, Any] = {
        "warmup": warmup,
        "steps": steps,
        "rounds": rounds,
        "median_ms": 1e3 * float(np.median(times)),
        "min_ms": 1e3 * min(times),
        "max_ms": 1e3 * max(times),
        "mean_ms": 1e3 * float(np.mean(times)),
        "pipelined_ms": None,
        "first_loss": s["first"],
        "last_loss": v.to_float(s["loss"]) if s["loss"] is not None else None,
    }
    if pipelined:
        v.sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            s["loss"] = v.run_step(s["i"])
            s["i"] += 1
        v.sync()
        result["pipelined_ms"] = 1e3 * (time.perf_counter() - t0) / steps
        result["last_loss"] = v.to_float(s["loss"])
    for key in ("first_loss", "last_loss"):
        if result[key] is not None and not math.isfinite(result[key]):
            result.setdefault("warnings", []).append(f"{key} is {result[key]}")
    extra = v.finish()
    result.setdefault("warnings", []).extend(extra.pop("warnings", []))
    if not result["warnings"]:
        del result["warnings"]
    result.update(extra)
    return result

"""Mixed precision on a GPU, next to PyTorch: every configuration in every precision, in one run.

    python benchmarks/precision.py [--configs mnist-small,mnist-wide,deep-4096]
                                   [--precisions fp32,tf32,bf16-mixed,fp16-mixed] [--json out.json] [--quick]

Per configuration, all interleaved (`timing.measure_interleaved`): backprop's step in each
precision, eager and replayed from a CUDA graph (fp16-mixed is not replayed: its loss scaling
decides on the host), its matrix products alone in each precision (the floor), and PyTorch's
step eager and as a CUDA graph in fp32, TF32 (``allow_tf32``), and bf16 and fp16 autocast
(fp16 eager with GradScaler; see `torch_runner`). Every step row has its peak memory (bytes in
use in CuPy's pools, or ``torch.cuda.max_memory_allocated``, over build, data, the first steps
and the capture). Then the issue's targets on an H200 (#18), each PASS or FAIL:

- deep-4096: tf32 <= PyTorch TF32; bf16-mixed <= 0.8 x PyTorch bf16 autocast (eager and graph);
- mnist-wide, mnist-small: bf16-mixed graph <= 0.8 x PyTorch graph bf16 autocast.

Prints a markdown table on stdout (progress on stderr). Exit status: 0 when every variant ran
(whatever the targets say), 1 when one failed or a graph row did not replay, 2 for bad
arguments. ``--device cpu`` (with ``--quick``) smoke-tests the script itself on the emulation:
backprop's rows only, no targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and the repo's backprop importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import backprop_runner, report, torch_runner
from benchmarks.configs import CONFIGS, QUICK, make_batches
from benchmarks.machine import describe_machine
from benchmarks.timing import Prepared, measure_interleaved

PRECISIONS = ("fp32", "tf32", "bf16-mixed", "fp16-mixed")
GPU_CONFIGS = ("mnist-small", "mnist-wide", "deep-4096")
N_BATCHES = 4
#: (config, backprop variant, PyTorch variant, at most this ratio)
TARGETS = [
    ("deep-4096", "backprop tf32 eager", "torch tf32 eager", 1.0),
    ("deep-4096", "backprop tf32 graph", "torch tf32 graph", 1.0),
    ("deep-4096", "backprop bf16-mixed eager", "torch bf16 eager", 0.8),
    ("deep-4096", "backprop bf16-mixed graph", "torch bf16 graph", 0.8),
    ("mnist-wide", "backprop bf16-mixed graph", "torch bf16 graph", 0.8),
    ("mnist-small", "backprop bf16-mixed graph", "torch bf16 graph", 0.8),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default), or cpu to smoke-test")
    p.add_argument("--configs", default=",".join(GPU_CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help=f"comma-separated, from {', '.join(PRECISIONS)}")
    p.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="a few steps each: a smoke test, not a measurement")
    p.add_argument("--no-torch", action="store_true", help="backprop's rows alone")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def variants(
    config: Any, device: str, precisions: list[str], torch: Any, counts: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every row's builder (called once, just before timing) and what the row is."""
    batches = make_batches(config, N_BATCHES)
    where = "cpu" if device == "cpu" else "cuda:0"
    builders: dict[str, Any] = {}
    whats: dict[str, str] = {}
    for p in precisions:
        builders[f"backprop {p} eager"] = lambda p=p: backprop_runner.prepare_step_variant(
            config, where, batches, counts, precision=p)  # fmt: skip
        whats[f"backprop {p} eager"] = f"make_step, precision={p!r}"
        if device != "cpu" and p != "fp16-mixed":
            builders[f"backprop {p} graph"] = lambda p=p: backprop_runner.prepare_step_variant(
                config, where, batches, counts, graph=True, precision=p)  # fmt: skip
            whats[f"backprop {p} graph"] = f"make_step(graph=True), precision={p!r}"
        builders[f"backprop {p} GEMMs"] = lambda p=p: backprop_runner.prepare_gemm_variant(config, where, p)
        whats[f"backprop {p} GEMMs"] = f"the step's matrix products alone, operands rounded beforehand ({p})"
    if torch is not None and device != "cpu":
        state = backprop_runner.initial_state(config)
        for p in precisions:
            tp = torch_runner.PRECISIONS[p]
            for kind in ("eager", "graph"):
                name = f"torch {tp} {kind}"
                builders[name] = lambda tp=tp, kind=kind: torch_runner.prepare_variant(
                    torch, config, where, state, batches, counts, f"torch {kind}", tp)  # fmt: skip
                whats[name] = f"{torch_runner.VARIANTS['cuda'][f'torch {kind}']}, {tp}"
    return builders, whats


def run_config(config: Any, device: str, precisions: list[str], torch: Any, quick: bool) -> dict[str, Any]:
    counts = QUICK if quick else config.counts[device]
    builders, whats = variants(config, device, precisions, torch, counts)
    prepared: dict[str, Prepared] = {}
    errors: dict[str, dict[str, Any]] = {}
    log(f"{config.name}: {config.describe()}")
    for name, build in builders.items():
        try:
            prepared[name] = build()
        except Exception as exc:  # noqa: BLE001 - reported in the row; the others still run
            log(traceback.format_exc())
            errors[name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        timed = measure_interleaved(prepared, counts.warmup, counts.steps, device != "cpu", rounds=1 if quick else 5)
    except Exception as exc:  # noqa: BLE001 - reported in every row
        log(traceback.format_exc())
        timed = {name: {"error": f"{type(exc).__name__}: {exc}"} for name in prepared}
    rows = []
    for name in builders:
        row = {"name": name, "what": whats[name], **errors.get(name, timed.get(name, {}))}
        row.pop("traceback", None)
        rows.append(row)
        log(f"    {name:28s} " + (f"{row['median_ms']:.3f} ms/step" if "median_ms" in row else row.get("error", "?")))
    prepared.clear()
    backprop_runner.release(device)
    if torch is not None and device != "cpu":
        torch.cuda.empty_cache()
    return {"config": config.name, "model": config.describe(), "counts": dataclasses.asdict(counts), "rows": rows}


def targets(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of `TARGETS` whose two rows were measured: the ratio and PASS/FAIL."""
    medians = {(e["config"], r["name"]): r.get("median_ms") for e in entries for r in e["rows"]}
    out = []
    for config, ours, theirs, bound in TARGETS:
        a, b = medians.get((config, ours)), medians.get((config, theirs))
        if a and b:
            ratio = a / b
            out.append({"config": config, "ours": ours, "theirs": theirs, "bound": bound, "ratio": ratio,
                        "pass": ratio <= bound})  # fmt: skip
    return out


def markdown(entries: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    lines = ["| config | variant | median ms | pipelined ms | peak MiB | first loss | last loss |", "|---" * 7 + "|"]
    for e in entries:
        for r in e["rows"]:
            if "median_ms" not in r:
                lines.append(f"| {e['config']} | {r['name']} | failed: {r.get('error', '?')} | | | | |")
                continue
            peak = f"{r['peak_bytes'] / 2**20:.1f}" if r.get("peak_bytes") else "–"
            cells = [e["config"], r["name"], f"{r['median_ms']:.3f}", _num(r.get("pipelined_ms")), peak,
                     _num(r.get("first_loss")), _num(r.get("last_loss"))]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    for g in goals:
        verdict = "PASS" if g["pass"] else "FAIL"
        ratio = f"{g['ratio']:.3f} (target <= {g['bound']})"
        lines.append(f"\n- {verdict}: {g['config']} {g['ours']} / {g['theirs']} = {ratio}")
    return "\n".join(lines)


def _num(x: Any) -> str:
    return "–" if x is None else f"{x:.4g}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [n for n in names if n not in CONFIGS or args.device not in CONFIGS[n].devices] + [
        p for p in precisions if p not in PRECISIONS
    ]
    if bad or not names or not precisions:
        log(f"error: unknown or not runnable on {args.device}: {', '.join(bad) or 'nothing chosen'}")
        return 2
    torch = None
    cupy = None
    if args.device == "cuda":
        try:
            import cupy  # noqa: PLC0415

            import backprop as bp  # noqa: PLC0415

            bp.Sequential(bp.Dense(1, 1), device="cuda")
        except Exception as exc:  # noqa: BLE001 - no usable GPU
            log(f"error: --device cuda needs a usable CUDA GPU: {exc}")
            return 2
        if not args.no_torch:
            try:
                import torch  # noqa: PLC0415

                torch.set_float32_matmul_precision("highest")  # TF32 only where a variant asks for it
            except ImportError:
                torch = None
    started = time.perf_counter()
    machine = describe_machine(torch, cupy, 0 if args.device == "cuda" else None)
    backprop_runner.warm_device("cuda:0" if args.device == "cuda" else "cpu")
    entries = []
    for name in names:
        entries.append(run_config(CONFIGS[name], args.device, precisions, torch, args.quick))
        if args.json:
            report.write_json(args.json, {"machine": machine, "partial": True, "results": entries})
    goals = targets(entries) if args.device == "cuda" else []
    table = markdown(entries, goals)
    print(table)
    if args.quick:
        print("\n- --quick: a few steps each, a smoke test; these numbers are not measurements")
    failed = [f"{e['config']}/{r['name']}" for e in entries for r in e["rows"] if "error" in r]
    failed += [f"{e['config']}/{r['name']} (not replayed)" for e in entries for r in e["rows"]
               if r.get("graph_replaying") is False]  # fmt: skip
    if args.json:
        report.write_json(args.json, {"machine": machine, "partial": False, "results": entries, "targets": goals,
                                      "failed": failed, "table_markdown": table,
                                      "wall_s": round(time.perf_counter() - started, 2)})  # fmt: skip
    log(f"done in {time.perf_counter() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark backprop next to PyTorch: same model, initial weights, data and optimizer, float32.

    python benchmarks/run.py [--device cpu|cuda] [--configs xor,mnist-small,...] [--json out.json] [--quick]
                             [--tutorial path/to/seed_tutorial.py] [--kernels auto|numpy|numba[,...]]

Prints the machine and a markdown table on stdout (progress goes to stderr); see
benchmarks/README.md for what each column means. Exit status: 0 when every variant ran,
1 when one failed (its row says so) or a graph row did not replay, 2 for bad arguments or
``--device cuda`` without a GPU. ``--json`` is rewritten after each configuration, with
``"partial": true`` until the run ends, so a run cut short keeps what it measured.
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

from backprop.backends import Backend
from benchmarks import backprop_runner, report, torch_runner, tutorial_runner
from benchmarks.configs import CONFIGS, QUICK, flops_per_step, make_batches
from benchmarks.machine import OthersLoad, bp_device, cpu_busy, describe_machine, gemm_rate, numba_info
from benchmarks.timing import Prepared, measure_interleaved

KERNELS = ("auto", "numpy", "numba")
N_BATCHES = 4  # distinct device batches every timed loop cycles through
GEMMS_WHAT = "the step's matrix products alone, same shapes and transposes, the library's own kernels"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default: cpu)")
    p.add_argument("--configs", help=f"comma-separated, from {', '.join(CONFIGS)} (default: all that run there)")
    p.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="a few steps each: a smoke test, not a measurement")
    p.add_argument("--no-torch", action="store_true", help="run backprop alone, as when PyTorch is not installed")
    p.add_argument(
        "--kernels",
        default="auto",
        help=(
            "backprop's CPU kernels: auto (numba's where installed), numpy or numba; comma-separated for "
            "more than one step row, the first is the 'backprop' row (default: auto)"
        ),
    )
    p.add_argument(
        "--tutorial",
        metavar="PATH",
        help=(
            "also time the tutorial's own NumPy network (its seed_tutorial.py) against backprop on full-batch XOR (CPU)"
        ),
    )
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _import_torch(no_torch: bool) -> tuple[Any, str | None]:
    if no_torch:
        return None, "PyTorch left out (--no-torch): backprop alone, no ratios"
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None, "PyTorch is not installed: backprop alone, no ratios"
    return torch, None


def _check_cuda() -> tuple[Any, str | None]:
    """``(cupy, None)`` when backprop can use GPU 0, else ``(None, why not)``."""
    import backprop as bp  # noqa: PLC0415

    try:
        bp.Sequential(bp.Dense(1, 1), device="cuda")
    except bp.CudaUnavailableError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a CUDA error of another kind: still no usable GPU
        return None, f"{type(exc).__name__}: {exc}"
    import cupy  # noqa: PLC0415

    return cupy, None


def run_config(
    config: Any, device: str, quick: bool, torch: Any, gpu: str, more_kernels: tuple[str, ...] = ()
) -> dict[str, Any]:
    counts = QUICK if quick else config.counts[device]
    if quick:
        counts = dataclasses.replace(counts, fit_samples=4 * config.batch)
    bp_device = "cpu" if device == "cpu" else gpu
    batches = make_batches(config, N_BATCHES)
    entry: dict[str, Any] = {
        "config": config.name,
        "device": device,
        "model": config.describe(),
        "sizes": list(config.sizes),
        "batch": config.batch,
        "flops_per_step": flops_per_step(config),
        "counts": dataclasses.asdict(counts),
        "variants": [],
    }
    log(f"{config.name} on {device}: {config.describe()}")

    prepared: dict[str, Prepared] = {}
    whats: dict[str, str] = {}
    errors: dict[str, dict[str, Any]] = {}

    def prepare(name: str, what: str, fn: Any) -> None:
        whats[name] = what
        try:
            prepared[name] = fn()
        except Exception as exc:  # noqa: BLE001 - reported in the variant's row; the others still run
            log(traceback.format_exc())
            errors[name] = {"error": f"{type(exc).__name__}: {exc}"}

    prepare(
        "backprop", "make_step, eager", lambda: backprop_runner.prepare_step_variant(config, bp_device, batches, counts)
    )
    for kernels in more_kernels:  # the same step on other CPU kernels, e.g. NumPy's beside numba's
        prepare(
            f"backprop ({kernels} kernels)",
            f"make_step, eager, Device('cpu', kernels={kernels!r})",
            lambda k=kernels: backprop_runner.prepare_step_variant(config, bp_device, batches, counts, kernels=k),
        )
    if device != "cpu" and backprop_runner.has_graph_step():
        prepare(
            "backprop graph",
            "make_step(graph=True)",
            lambda: backprop_runner.prepare_step_variant(config, bp_device, batches, counts, graph=True),
        )
    prepare("backprop GEMMs", GEMMS_WHAT, lambda: backprop_runner.prepare_gemm_variant(config, bp_device))
    if torch is not None:
        state = backprop_runner.initial_state(config)
        torch_device = "cpu" if device == "cpu" else gpu
        for name, what in torch_runner.VARIANTS[device].items():
            prepare(
                name,
                what,
                lambda n=name: torch_runner.prepare_variant(torch, config, torch_device, state, batches, counts, n),
            )
        prepare("torch GEMMs", GEMMS_WHAT, lambda: torch_runner.prepare_gemm_variant(torch, config, torch_device))
    t0 = time.perf_counter()
    load = OthersLoad().start()
    try:
        timed = measure_interleaved(prepared, counts.warmup, counts.steps, device != "cpu", rounds=1 if quick else 10)
    except Exception as exc:  # noqa: BLE001 - reported in every variant's row; the fit and the next config still run
        log(traceback.format_exc())
        timed = {name: {"error": f"{type(exc).__name__}: {exc}"} for name in prepared}
    busy = load.stop()
    seconds = time.perf_counter() - t0
    for name in whats:
        result = {"name": name, "what": whats[name], **errors.get(name, timed.get(name, {}))}
        if "traceback" in result:  # a variant that failed while being timed
            log(result.pop("traceback"))
        result["others_cpu_busy"] = busy
        shown = f"{result['median_ms']:.3f} ms/step" if "median_ms" in result else result["error"]
        log(f"    {name:15s} {shown}")
        for warning in result.get("warnings", []):
            log(f"    WARNING: {name}: {warning}")
        entry["variants"].append(result)
    log(f"    (all variants interleaved in {seconds:.1f} s)")
    prepared.clear()
    backprop_runner.release(device)
    if torch is not None and device != "cpu":
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    try:
        entry["fit"] = backprop_runner.run_fit(config, bp_device, counts, rounds=1 if quick else 20)
        log(f"    fit             {entry['fit']['samples_per_s']:.4g} samples/s   ({time.perf_counter() - t0:.1f} s)")
    except Exception as exc:  # noqa: BLE001 - reported in the fit row
        log(traceback.format_exc())
        entry["fit"] = {"error": f"{type(exc).__name__}: {exc}"}
    backprop_runner.release(device)
    for key in ("first_loss", "last_loss"):
        values = [v[key] for v in entry["variants"] if v.get(key) is not None]
        if len(values) > 1:
            entry[f"{key}_spread"] = (max(values) - min(values)) / max(abs(min(values)), 1e-12)
    if entry.get("first_loss_spread", 0.0) > 1e-3:
        entry["warning"] = "first-step losses differ across variants: the initial weights or data are not the same"
        log(f"    WARNING: {entry['warning']}")
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device
    names = [n.strip() for n in args.configs.split(",") if n.strip()] if args.configs else None
    unknown = [n for n in names or [] if n not in CONFIGS]
    if unknown:
        log(f"error: unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
        return 2
    notes: list[str] = []
    chosen = [CONFIGS[n] for n in names] if names else [c for c in CONFIGS.values() if device in c.devices]
    skipped = [c.name for c in chosen if device not in c.devices]
    chosen = [c for c in chosen if device in c.devices]
    if skipped:
        notes.append(f"not run on {device}: {', '.join(skipped)} (see configs.py for where each runs)")
    if not chosen:
        log(f"error: none of the chosen configs runs on {device}")
        return 2
    kernels = tuple(k.strip() for k in args.kernels.split(",") if k.strip())
    bad = [k for k in kernels if k not in KERNELS]
    if bad or not kernels:
        log(f"error: --kernels {args.kernels!r}: choose from {', '.join(KERNELS)}")
        return 2
    if device != "cpu" and kernels != ("auto",):
        log("error: --kernels chooses backprop's CPU kernels; leave it out with --device cuda")
        return 2
    try:  # numba asked for but not installed: say so before measuring anything
        for k in kernels:
            Backend(bp_device(k), "float32")
    except ImportError as exc:
        log(f"error: --kernels {args.kernels}: {exc}")
        return 2
    backprop_runner.CPU_KERNELS = kernels[0]
    if args.tutorial and device != "cpu":
        log("error: --tutorial compares NumPy code on the CPU; leave it out with --device cuda")
        return 2
    if args.tutorial and not Path(args.tutorial).is_file():
        log(f"error: --tutorial {args.tutorial!r} is not a file; give the path to the tutorial's seed_tutorial.py")
        return 2

    cupy, gpu = None, None
    if device == "cuda":
        cupy, why = _check_cuda()
        if cupy is None:
            log(f"error: --device cuda needs a usable CUDA GPU, and there is none: {why}")
            return 2
        gpu = "cuda:0"
    torch, why = _import_torch(args.no_torch)
    if why:
        notes.append(why)
    if torch is not None:
        torch.set_float32_matmul_precision("highest")  # true fp32 matmuls, no TF32, like CuPy's default
        if device == "cuda" and not torch.cuda.is_available():
            notes.append(f"this PyTorch ({torch.__version__}) has no CUDA: backprop alone on the GPU")
            torch = None
    if torch is not None:
        notes.append(f"PyTorch CPU runs use torch's default thread count ({torch.get_num_threads()}), not set by us")
    if not backprop_runner.has_graph_step() and device == "cuda":
        notes.append("make_step has no graph= keyword: no 'backprop graph' variant")

    started = time.perf_counter()
    busy_before = cpu_busy(0.2 if args.quick else 0.5)
    machine = describe_machine(torch, cupy, 0 if gpu else None)
    backprop_runner.warm_device(gpu or "cpu")
    log("measuring the GEMM rate ...")
    n, reps = (256, 3) if args.quick else ((2048, 5) if device == "cpu" else (8192, 10))
    gemm = {device: gemm_rate(device, n, reps, torch=torch, cupy=cupy)}
    settings = {
        "device": device,
        "quick": args.quick,
        "batches_cycled": N_BATCHES,
        "seed": backprop_runner.SEED,
        "kernels": list(kernels),
    }
    entries: list[dict[str, Any]] = []
    for config in chosen:
        entry = run_config(config, device, args.quick, torch, gpu, kernels[1:])
        report.derive(entry, gemm[device]["gflops"])
        entries.append(entry)
        log(report.markdown_table([entry]))  # as soon as measured: a run cut short keeps what it has
        if args.json:
            report.write_json(
                args.json, {"machine": machine, "gemm": gemm, "settings": settings, "partial": True, "results": entries}
            )
    tutorial = None
    if args.tutorial:
        log("xor against the tutorial's own code ...")
        try:
            tutorial = tutorial_runner.run_tutorial_comparison(args.tutorial, *((50, 1) if args.quick else (200, 50)))
        except Exception as exc:  # noqa: BLE001 - reported under the table (someone else's code)
            log(traceback.format_exc())
            tutorial = {"error": f"{type(exc).__name__}: {exc}"}
    for entry in entries:
        if "warning" in entry:
            notes.append(f"{entry['config']}: {entry['warning']}")
        for v in entry["variants"]:
            notes.extend(f"{entry['config']}/{v['name']}: {w}" for w in v.get("warnings", []))

    if device == "cpu":  # read after the run: numba's threading layer is known once a kernel ran
        machine["numba"] = next((info for k in kernels if (info := numba_info(k))), None)
        machine["kernels"] = list(kernels)
    machine["cpu_busy_before"] = busy_before
    machine["cpu_busy_after"] = cpu_busy(0.2 if args.quick else 0.5)
    busy = {"before the run": busy_before, "after it": machine["cpu_busy_after"]}
    busy.update({f"during {e['config']}/{v['name']}": v["others_cpu_busy"] for e in entries for v in e["variants"]})
    busy = {k: b for k, b in busy.items() if b is not None and b > 0.1}
    if busy:
        notes.append(
            "other processes used the CPUs ("
            + ", ".join(f"{100 * b:.0f}% {k}" for k, b in busy.items())
            + "): those timings are unreliable, OpenBLAS especially slows down many times over when its "
            "threads compete for cores"
        )
    line = report.machine_line(machine, gemm)
    table = report.markdown_table(entries)
    print(line + "\n")
    print(table)
    if tutorial is not None:
        failure = f"tutorial: failed, {tutorial['error']}" if "error" in tutorial else None
        print("\n" + (failure or tutorial_runner.markdown(tutorial)))
    if args.quick:
        notes.insert(0, "--quick: a few steps each, a smoke test; these numbers are not measurements")
    for note in notes:
        print(f"\n- {note}", end="")
    print()
    failed = [f"{e['config']}/{v['name']}" for e in entries for v in e["variants"] if "error" in v]
    # a graph row that did not replay timed eager steps: on a GPU that is a failure, not a number
    failed += [
        f"{e['config']}/{v['name']} (not replayed)"
        for e in entries
        for v in e["variants"]
        if v.get("graph_replaying") is False
    ]
    failed += [f"{e['config']}/fit" for e in entries if "error" in e.get("fit", {})]
    failed += ["tutorial"] if tutorial is not None and "error" in tutorial else []
    if args.json:
        report.write_json(
            args.json,
            {
                "machine": machine,
                "gemm": gemm,
                "settings": settings,
                "partial": False,
                "torch": torch is not None,
                "graph_step": backprop_runner.has_graph_step(),
                "notes": notes,
                "results": entries,
                "tutorial": tutorial,
                "failed": failed,
                "machine_line": line,
                "table_markdown": table,
                "wall_s": round(time.perf_counter() - started, 2),
            },
        )
    log(f"done in {time.perf_counter() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

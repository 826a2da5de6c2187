"""Derived numbers (ratios, TFLOP/s, % of GEMM, fit vs step rate), the markdown table, JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["derive", "machine_line", "markdown_table", "write_json"]


def derive(entry: dict[str, Any], gemm_gflops: float | None) -> None:
    """Fill in, in place: each step variant's ratios to every PyTorch step variant of the same
    run and to its own library's matrix products alone (the ``floor`` variants), every
    variant's TFLOP/s and % of the GEMM rate, and the fit/step ratio."""
    ok = [v for v in entry["variants"] if v.get("median_ms")]
    floors = {_library(v["name"]): v["median_ms"] for v in ok if v.get("floor")}
    torch_medians = {v["name"]: v["median_ms"] for v in ok if v["name"].startswith("torch") and not v.get("floor")}
    for v in ok:
        if not v.get("floor"):
            v["time_ratio_vs"] = {name: v["median_ms"] / median for name, median in torch_medians.items()}
            floor = floors.get(_library(v["name"]))
            v["ratio_to_own_gemms"] = v["median_ms"] / floor if floor else None
        v["tflops"] = entry["flops_per_step"] / (v["median_ms"] * 1e-3) / 1e12
        v["pct_gemm"] = 100.0 * v["tflops"] * 1e3 / gemm_gflops if gemm_gflops else None
    fit = entry.get("fit")
    step = next((v for v in ok if v["name"] == "backprop"), None)
    if fit and "samples_per_s" in fit and step:
        fit["median_step_samples_per_s"] = entry["batch"] / (step["median_ms"] * 1e-3)


def _library(variant: str) -> str:
    """``"backprop"`` or ``"torch"``: whose kernels a variant (``"torch graph"``, ...) runs."""
    return variant.split()[0]


def machine_line(machine: dict[str, Any], gemm: dict[str, Any]) -> str:
    features = f", {machine['cpu_features']}" if machine.get("cpu_features") else ""
    parts = [f"{machine['cpu']} ({machine['cores']} cores{features})"]
    versions = f"Python {machine['python']}, numpy {machine['numpy']} with {machine['numpy_blas']}"
    if machine["torch"]:
        versions += f", torch {machine['torch']} ({machine['torch_threads']} CPU threads, torch's default"
        versions += f"; {machine['torch_blas']})" if machine.get("torch_blas") else ")"
    else:
        versions += ", torch not installed"
    numba = machine.get("numba")
    if numba:
        versions += f", numba {numba['version']} (backprop's CPU kernels, one thread each)"
    elif machine.get("kernels"):
        versions += f", backprop's CPU kernels: {', '.join(machine['kernels'])} (NumPy's)"
    if machine["cupy"]:
        versions += f", cupy {machine['cupy']}"
    parts.append(versions)
    gpu = machine.get("gpu")
    if gpu:
        parts.append(f"GPU {gpu['name']} ({gpu['memory_gib']} GiB, compute capability {gpu['compute_capability']})")
    for device, g in gemm.items():
        text = f"fp32 GEMM {device}: {g['library']} {_rate(g['gflops'])} (n={g['n']})"
        if g.get("torch_gflops"):
            text += f", torch {_rate(g['torch_gflops'])}"
        parts.append(text)
    return "**Machine:** " + "; ".join(parts)


def _rate(gflops: float) -> str:
    return f"{gflops / 1e3:.1f} TFLOP/s" if gflops >= 1e3 else f"{gflops:.0f} GFLOP/s"


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _ms(x: Any) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


Column = tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]]


def _columns(torch_names: list[str]) -> list[Column]:
    cols: list[Column] = [
        ("config", lambda e, v: e["config"]),
        ("device", lambda e, v: e["device"]),
        ("variant", lambda e, v: v["name"]),
        ("median ms", lambda e, v: _ms(v.get("median_ms")) if not v.get("error") else "failed"),
        ("min–max ms", lambda e, v: f"{_ms(v['min_ms'])}–{_ms(v['max_ms'])}" if v.get("median_ms") else "–"),
        ("pipelined ms", lambda e, v: _ms(v.get("pipelined_ms"))),
    ]
    for name in torch_names:
        cols.append((f"÷ {name}", lambda e, v, n=name: _num(v.get("time_ratio_vs", {}).get(n))))
    cols += [
        ("÷ own GEMMs", lambda e, v: _num(v.get("ratio_to_own_gemms"))),
        ("TFLOP/s", lambda e, v: _num(v.get("tflops"))),
        ("% GEMM", lambda e, v: _num(v.get("pct_gemm"))),
        ("peak MiB", lambda e, v: _num(v["peak_bytes"] / 2**20) if v.get("peak_bytes") else "n/a"),
        ("fit samples/s", lambda e, v: _fit(e, v, "samples_per_s", 4)),
        ("fit ÷ step", lambda e, v: _fit(e, v, "ratio_to_step", 3)),
    ]
    return cols


def _fit(entry: dict[str, Any], variant: dict[str, Any], key: str, digits: int) -> str:
    fit = entry.get("fit") or {}
    if variant["name"] != "backprop" or key not in fit:
        return "–"
    return _num(fit[key], digits)


def markdown_table(entries: list[dict[str, Any]]) -> str:
    torch_names = sorted({n for e in entries for v in e["variants"] for n in v.get("time_ratio_vs", {})})
    cols = _columns(torch_names)
    rows = [[fn(e, v) for _, fn in cols] for e in entries for v in e["variants"]]
    keep = [i for i, (head, _) in enumerate(cols) if head in ("config", "variant") or any(r[i] != "–" for r in rows)]
    lines = ["| " + " | ".join(cols[i][0] for i in keep) + " |", "|" + "|".join("---" for _ in keep) + "|"]
    lines += ["| " + " | ".join(r[i] for i in keep) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_finite(report), f, indent=2, default=_jsonable, allow_nan=False)
        f.write("\n")


def _finite(x: Any) -> Any:
    """NaN and infinities become ``None``: strict JSON has no spelling for them."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")

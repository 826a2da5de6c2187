"""CI smoke test of the benchmark suite: ``benchmarks/run.py --quick`` runs end to end on the
CPU and writes JSON with every config, variant and field, with sane values.

This is not a timing assertion: nothing here compares one variant's speed with another's.
The only cross-variant check is that every variant starts from the same loss, i.e. from the
same initial weights and data.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = _run("--quick", "--device", "cpu", "--configs", "xor,mnist-small", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_quick_run_covers_every_config_and_variant(quick_report: tuple[dict, str]) -> None:
    report, stdout = quick_report
    assert [e["config"] for e in report["results"]] == ["xor", "mnist-small"]
    assert report["failed"] == [] and report["partial"] is False
    assert report["settings"] == {**report["settings"], "device": "cpu", "quick": True}
    expected = ["backprop", "backprop GEMMs"] + (["torch eager", "torch GEMMs"] if HAS_TORCH else [])
    for entry in report["results"]:
        assert entry["device"] == "cpu"
        assert [v["name"] for v in entry["variants"]] == expected
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    assert report["gemm"]["cpu"]["gflops"] > 0
    assert stdout.startswith("**Machine:**")
    assert "| config |" in stdout and "| mnist-small | cpu | backprop |" in stdout


def test_quick_run_numbers_are_sane(quick_report: tuple[dict, str]) -> None:
    report, _ = quick_report
    for entry in report["results"]:
        assert entry["flops_per_step"] > 0
        variants = {v["name"]: v for v in entry["variants"]}
        steps = {n: v for n, v in variants.items() if not v.get("floor")}
        assert set(variants) - set(steps) == {f"{n.split()[0]} GEMMs" for n in steps}
        for v in variants.values():
            assert "error" not in v, v
            assert v["steps"] == 5
            assert v["others_cpu_busy"] is None or 0.0 <= v["others_cpu_busy"] <= 1.0
            assert 0 < v["min_ms"] <= v["median_ms"] <= v["max_ms"] < 60_000
            assert _close(v["tflops"], entry["flops_per_step"] / (v["median_ms"] * 1e-3) / 1e12)
            assert _close(v["pct_gemm"], 100 * v["tflops"] * 1e3 / report["gemm"]["cpu"]["gflops"])
        for name, v in steps.items():
            for key in ("first_loss", "last_loss"):
                assert math.isfinite(v[key]) and v[key] > 0
            # ratios are this variant's median over each torch step's median of the same run ...
            assert set(v["time_ratio_vs"]) == {n for n in steps if n.startswith("torch")}
            for other, ratio in v["time_ratio_vs"].items():
                assert _close(ratio, v["median_ms"] / variants[other]["median_ms"])
            # ... and over its own library's matrix products alone
            floor = variants[f"{name.split()[0]} GEMMs"]
            assert _close(v["ratio_to_own_gemms"], v["median_ms"] / floor["median_ms"])
        for v in variants.values():
            if v.get("floor"):  # no loss, no ratios: the products alone are no training step
                assert v["first_loss"] is None and v["last_loss"] is None and "time_ratio_vs" not in v
        bp_step = variants["backprop"]
        if HAS_TORCH:
            assert variants["torch eager"]["time_ratio_vs"]["torch eager"] == 1.0
            # same initial weights, data and step sequence: the losses agree (correctness, not timing)
            assert entry["first_loss_spread"] < 1e-4
            assert entry["last_loss_spread"] < 1e-3
        # tracemalloc's peak covers at least the float32 weights and Adam's/SGD's state
        n_params = sum(a * b + b for a, b in zip(entry["sizes"][:-1], entry["sizes"][1:]))
        assert bp_step["peak_bytes"] >= 4 * n_params
        fit = entry["fit"]
        assert fit["samples"] == 4 * entry["batch"] and fit["samples_per_s"] > 0 and math.isfinite(fit["loss"])
        assert _close(fit["median_step_samples_per_s"], entry["batch"] / (bp_step["median_ms"] * 1e-3))
        assert _close(fit["ratio_to_step"], fit["samples_per_s"] / fit["step_samples_per_s"])
        assert fit["step_samples_per_s"] > 0 and fit["rounds"] >= 1


def _product_flops(calls: list[tuple[str, tuple, tuple]]) -> int:
    """2*m*k*n per product; the operands' shapes as passed, with the transposes each kernel applies."""
    total = 0
    for name, a, b in calls:
        (m, k), n = (a[::-1] if name.endswith("_tn") else a), (b[0] if name.endswith("_nt") else b[1])
        total += 2 * m * k * n
    return total


def test_gemm_floors_run_the_steps_own_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'GEMMs' variants run exactly the step's matrix products: the kernels `Dense` uses on
    backprop's side and torch.mm as Linear's autograd on torch's, adding up to the step's FLOPs."""
    monkeypatch.syspath_prepend(str(ROOT))
    from backprop.backends.numpy_ops import NumpyOps  # noqa: PLC0415
    from benchmarks import backprop_runner  # noqa: PLC0415
    from benchmarks.configs import CONFIGS, flops_per_step  # noqa: PLC0415

    config = CONFIGS["mnist-small"]
    calls: list[tuple[str, tuple, tuple]] = []
    for name in ("matmul", "matmul_tn", "matmul_nt"):
        real = getattr(NumpyOps, name)

        def counted(
            self: NumpyOps,
            A: np.ndarray,
            B: np.ndarray,
            *rest: object,
            name: str = name,
            real: object = real,
            **kw: object,
        ) -> object:
            calls.append((name, A.shape, B.shape))
            return real(self, A, B, *rest, **kw)  # type: ignore[operator]

        monkeypatch.setattr(NumpyOps, name, counted)
    backprop_runner.prepare_gemm_variant(config, "cpu").run_step(0)
    B = config.batch
    assert calls == [
        ("matmul", (B, 784), (784, 256)),
        ("matmul_tn", (B, 784), (B, 256)),
        ("matmul", (B, 256), (256, 256)),
        ("matmul_tn", (B, 256), (B, 256)),
        ("matmul_nt", (B, 256), (256, 256)),
        ("matmul", (B, 256), (256, 10)),
        ("matmul_tn", (B, 256), (B, 10)),
        ("matmul_nt", (B, 10), (256, 10)),
    ]
    assert _product_flops(calls) == flops_per_step(config)
    if not HAS_TORCH:
        return
    import torch  # noqa: PLC0415

    from benchmarks import torch_runner  # noqa: PLC0415

    shapes: list[tuple[tuple, tuple]] = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b: shapes.append((tuple(a.shape), tuple(b.shape))) or real_mm(a, b))
    torch_runner.prepare_gemm_variant(torch, config, "cpu").run_step(0)
    assert len(shapes) == len(calls)
    assert sum(2 * a[0] * a[1] * b[1] for a, b in shapes) == flops_per_step(config)


def test_a_variant_that_fails_while_timed_drops_out_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.timing import Prepared, measure_interleaved  # noqa: PLC0415

    ran: list[int] = []

    def fine(i: int) -> float:
        ran.append(i)
        return 1.0

    def breaks(i: int) -> float:
        if i >= 3:
            raise RuntimeError("boom")
        return 1.0

    variants = {"fine": Prepared(fine, lambda: None, float), "breaks": Prepared(breaks, lambda: None, float)}
    results = measure_interleaved(variants, warmup=2, steps=10, pipelined=True, rounds=5)
    assert results["breaks"]["error"] == "RuntimeError: boom" and "boom" in results["breaks"]["traceback"]
    assert results["fine"]["steps"] == 10 and "error" not in results["fine"]
    assert ran == list(range(22))  # 2 warm-up, 10 timed in 5 rounds, 10 pipelined: none skipped


def test_without_torch_backprop_runs_alone(tmp_path: Path) -> None:
    out = tmp_path / "alone.json"
    proc = _run("--quick", "--configs", "xor", "--no-torch", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["torch"] is False
    assert [v["name"] for v in report["results"][0]["variants"]] == ["backprop", "backprop GEMMs"]
    assert "backprop alone" in proc.stdout


def test_cuda_without_gpu_exits_2() -> None:
    import backprop as bp  # noqa: PLC0415

    if any(d.type == "cuda" for d in bp.available_devices()):
        pytest.skip("a GPU is usable here")
    proc = _run("--quick", "--device", "cuda", timeout=120)
    assert proc.returncode == 2
    assert "--device cuda needs a usable CUDA GPU" in proc.stderr


def test_fit_profile_times_every_part_and_profiles_fit() -> None:
    """``benchmarks/profile_fit.py`` (the tool behind the GPU check's fit profile) on the CPU."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_fit.py"), "--config", "xor", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for part in ("fit epoch", "fit epoch, shuffle=False", "bare steps", "loop over slices", "loop over shuffled rows",
                 "... after the input check", "fit, one batch", "one bare step", "checked_data", "shuffled batches",
                 "results read", "bare steps, host queueing"):  # fmt: skip
        assert f"  {part}" in proc.stdout, part
    assert "rate ratios to the bare steps" in proc.stdout and "fit / the shuffled, checked loop's rate" in proc.stdout
    assert "training/loop.py" in proc.stdout  # the profile lists fit's frames


def test_bad_config_exits_2() -> None:
    proc = _run("--quick", "--configs", "nope", timeout=120)
    assert proc.returncode == 2 and "unknown config" in proc.stderr


FAKE_TUTORIAL = """
import numpy as np

class NeuralNetwork:  # the tutorial's interface: layers, then train(X, Y, epochs, lr, verbose) on (features, samples)
    def __init__(self, layers):
        self.W = np.random.default_rng(0).standard_normal((layers[-1], layers[0]))

    def train(self, X, Y, epochs=1000, lr=0.01, verbose=True):
        for _ in range(epochs):
            self.W -= lr * (self.W @ X - Y) @ X.T / X.shape[1]
"""


def test_tutorial_comparison(tmp_path: Path) -> None:
    """--tutorial times the given tutorial file's NeuralNetwork.train against fit and bare steps."""
    tutorial = tmp_path / "tutorial.py"
    tutorial.write_text(FAKE_TUTORIAL)
    out = tmp_path / "tutorial.json"
    proc = _run("--quick", "--configs", "xor", "--no-torch", "--tutorial", str(tutorial), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())["tutorial"]
    per_epoch = result["median_ms_per_epoch"]
    assert set(per_epoch) == {"tutorial", "backprop fit", "backprop step"} and all(v > 0 for v in per_epoch.values())
    for name in ("backprop fit", "backprop step"):
        assert _close(result["ratio_to_tutorial"][name], per_epoch[name] / per_epoch["tutorial"])
    assert "| backprop fit |" in proc.stdout
    missing = _run("--quick", "--configs", "xor", "--tutorial", str(tmp_path / "nope.py"), timeout=120)
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    not_it = tmp_path / "other.py"
    not_it.write_text("x = 1\n")
    wrong = _run("--quick", "--configs", "xor", "--no-torch", "--tutorial", str(not_it), timeout=120)
    assert wrong.returncode == 1 and "has no NeuralNetwork class" in wrong.stdout + wrong.stderr


def test_the_precision_benchmark_runs_on_the_cpu_emulation(tmp_path: Path) -> None:
    """benchmarks/precision.py end to end (its GPU rows and targets need a GPU: scripts/gpu_check.sh)."""
    out = tmp_path / "precision.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "precision.py"), "--device", "cpu", "--quick", "--configs", "xor",
         "--precisions", "fp32,bf16-mixed,fp16-mixed", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["results"][0]["rows"]}
    assert set(rows) == {f"backprop {p} {k}" for p in ("fp32", "bf16-mixed", "fp16-mixed") for k in ("eager", "GEMMs")}
    assert report["failed"] == [] and report["targets"] == []
    for name, row in rows.items():
        assert 0 < row["median_ms"] < 60_000, name
        if "eager" in name:
            assert math.isclose(row["first_loss"], rows["backprop fp32 eager"]["first_loss"], rel_tol=1e-2)
    assert "| xor | backprop bf16-mixed eager |" in proc.stdout

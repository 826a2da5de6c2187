"""What the benchmark ran on, and the float32 GEMM rate each device reaches."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

__all__ = ["OthersLoad", "cpu_busy", "cpu_model", "describe_machine", "gemm_rate", "gpu_properties"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _proc_stat() -> tuple[float, float] | None:
    """All CPUs' (total, busy) seconds since boot from Linux's /proc/stat, or ``None``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    total = sum(values)
    return total / tick, (total - values[3] - values[4]) / tick  # idle and iowait are not busy


class OthersLoad:
    """Share of all CPU time that *other* processes used between `start` and `stop`: busy
    time from /proc/stat minus this process's own CPU time. CPU timings mean little on a busy
    machine: OpenBLAS in particular slows down many times over when its threads compete for
    cores. `stop` returns ``None`` where /proc/stat is unavailable."""

    def start(self) -> OthersLoad:
        self._stat = _proc_stat()
        self._own = _own_cpu()
        return self

    def stop(self) -> float | None:
        stat = _proc_stat()
        if stat is None or self._stat is None or stat[0] <= self._stat[0]:
            return None
        busy = (stat[1] - self._stat[1]) - (_own_cpu() - self._own)
        return min(1.0, max(0.0, busy / (stat[0] - self._stat[0])))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def cpu_busy(seconds: float = 0.3) -> float | None:
    """Share of all CPU time other processes used over ``seconds`` while we sleep."""
    load = OthersLoad().start()
    time.sleep(seconds)
    return load.stop()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415 - optional
    except ImportError:
        return "BLAS unknown"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "BLAS unknown"
    lib = libs[0]
    return f"{lib.get('internal_api', 'BLAS')} {lib.get('num_threads', '?')} threads"


def gpu_properties(cupy: Any, index: int) -> dict[str, Any]:
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return {
        "index": index,
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "memory_gib": round(int(props["totalGlobalMem"]) / 2**30, 1),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "driver": cupy.cuda.runtime.driverGetVersion(),
        "runtime": cupy.cuda.runtime.runtimeGetVersion(),
    }


def describe_machine(torch: Any, cupy: Any | None, gpu_index: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": _cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _blas(),
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "cupy": None,
        "gpu": None,
    }
    if cupy is not None:
        info["cupy"] = cupy.__version__
        info["cupy_tf32"] = os.environ.get("CUPY_TF32", "0")
        if gpu_index is not None:
            info["gpu"] = gpu_properties(cupy, gpu_index)
    return info


def gemm_rate(device: str, n: int, reps: int, torch: Any = None, cupy: Any = None) -> dict[str, Any]:
    """Median float32 ``n x n @ n x n`` rate in GFLOP/s: NumPy on the CPU, CuPy on the GPU, and
    PyTorch on the same device when given (for reference)."""
    flops = 2.0 * n**3
    out: dict[str, Any] = {"n": n, "reps": reps}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if device == "cpu":
        c = np.empty_like(a)
        out["library"] = "numpy"
        out["gflops"] = flops / _median_seconds(lambda: np.matmul(a, b, out=c), lambda: None, reps) / 1e9
    else:
        ga, gb = cupy.asarray(a), cupy.asarray(b)
        gc = cupy.empty_like(ga)
        sync = cupy.cuda.Device().synchronize
        out["library"] = "cupy"
        out["gflops"] = flops / _median_seconds(lambda: cupy.matmul(ga, gb, out=gc), sync, reps) / 1e9
        del ga, gb, gc
        cupy.get_default_memory_pool().free_all_blocks()
    if torch is not None:
        dev = "cpu" if device == "cpu" else "cuda"
        ta, tb = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
        tc = torch.empty_like(ta)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        out["torch_gflops"] = flops / _median_seconds(lambda: torch.matmul(ta, tb, out=tc), sync, reps) / 1e9
        del ta, tb, tc
        if dev == "cuda":
            torch.cuda.empty_cache()
    return out


def _median_seconds(fn: Any, sync: Any, reps: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))

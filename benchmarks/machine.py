"""What the benchmark ran on, and the float32 GEMM rate each device reaches."""

from __future__ import annotations

import os
import platform
import re
import time
from typing import Any

import numpy as np

__all__ = [
    "OthersLoad",
    "bp_device",
    "cpu_busy",
    "cpu_features",
    "cpu_model",
    "describe_blas",
    "describe_machine",
    "gemm_rate",
    "gpu_properties",
    "numba_info",
    "numpy_blas",
    "torch_blas",
]


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


def cpu_features() -> str:
    """The vector extensions the matrix kernels may use (from /proc/cpuinfo's flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    shown = [name for name in ("avx512f", "avx2", "fma", "avx") if name in flags]
    return "+".join(shown) if shown else "no AVX"


def _loaded_openblas() -> str | None:
    """The path of the OpenBLAS library this process loaded (NumPy's), from /proc/self/maps."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    return min(paths) if paths else None


def _openblas_call(lib: Any, names: tuple[str, ...], restype: Any) -> Any:
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            return fn()
    return None


def numpy_blas() -> dict[str, Any]:
    """NumPy's BLAS: library and version (``numpy.show_config``), and, for OpenBLAS, the kernel
    it chose for this processor at run time (``openblas_get_corename``: ``Haswell``, ``Zen``,
    ``SkylakeX``, ...) and its thread count, read through ctypes from the loaded library (the
    symbols of NumPy's wheels carry a ``scipy_`` prefix and a ``64_`` suffix)."""
    info: dict[str, Any] = {"library": "unknown", "version": None, "kernel": None, "threads": None}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["library"], info["version"] = blas.get("name", "unknown"), blas.get("version")
    except Exception:  # noqa: BLE001 - older NumPy: no dict mode; the rest still helps
        pass
    path = _loaded_openblas()
    if path:
        import ctypes  # noqa: PLC0415 - only where an OpenBLAS is loaded

        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", "")):
            core = _openblas_call(lib, (f"{prefix}openblas_get_corename{suffix}",), ctypes.c_char_p)
            if core:
                info["kernel"] = core.decode()
                info["threads"] = _openblas_call(lib, (f"{prefix}openblas_get_num_threads{suffix}",), ctypes.c_int)
                break
    if info["threads"] is None:
        try:
            from threadpoolctl import threadpool_info  # noqa: PLC0415 - optional
        except ImportError:
            return info
        libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            info["kernel"] = info["kernel"] or libs[0].get("architecture")
            info["threads"] = libs[0].get("num_threads")
    return info


def torch_blas(torch: Any) -> dict[str, Any]:
    """PyTorch's CPU BLAS (``BLAS_INFO`` of its build, MKL's version line where it is MKL) and
    the vector instructions its kernels dispatch to (``torch.backends.cpu.get_cpu_capability``)."""
    words = torch.__config__.show().replace(",", " ").split()
    library = next((w.split("=", 1)[1] for w in words if w.startswith("BLAS_INFO=")), None)
    lines = torch.__config__.parallel_info().splitlines()
    mkl = next((re.search(r"Version ([\d.]+)", line) for line in lines if "Math Kernel Library" in line), None)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = None
    return {
        "library": library,
        "version": mkl.group(1) if mkl else None,
        "kernel": f"ATen {capability}" if capability else None,
        "threads": torch.get_num_threads(),
    }


def describe_blas(info: dict[str, Any]) -> str:
    """``"scipy-openblas 0.3.31 (Haswell kernels, 2 threads)"``, from `numpy_blas`/`torch_blas`."""
    inside = [
        f"{info['kernel']} kernels" if info.get("kernel") else None,
        f"{info['threads']} threads" if info.get("threads") else None,
    ]
    text = " ".join(str(x) for x in (info.get("library"), info.get("version")) if x)
    inner = ", ".join(x for x in inside if x)
    return f"{text} ({inner})" if inner else text


def bp_device(kernels: str) -> Any:
    """backprop's CPU device with the ``--kernels`` choice (``"auto"``, ``"numpy"``, ``"numba"``)."""
    import backprop as bp  # noqa: PLC0415

    return bp.Device("cpu", kernels=kernels)


def numba_info(kernels: str) -> dict[str, Any] | None:
    """numba's version where backprop's CPU kernels are numba's (``kernels`` is the ``--kernels``
    choice), ``None`` otherwise. The kernels run on the calling thread: numba's threading layer
    is not used (see backprop/backends/numba_kernels.py for why)."""
    from backprop.backends import Backend  # noqa: PLC0415

    if type(Backend(bp_device(kernels), "float32").ops).__name__ != "NumbaOps":
        return None
    import numba  # noqa: PLC0415 - installed: NumbaOps was chosen

    return {"version": numba.__version__, "threads": 1}


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
    blas = numpy_blas()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cores": _cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": describe_blas(blas),
        "numpy_blas_info": blas,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "torch_blas": None if torch is None else describe_blas(torch_blas(torch)),
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

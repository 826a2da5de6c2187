"""backprop's side: build the model, time the bare step (`make_step`, eager, and with
``graph=True`` where `make_step` has that keyword) and the step's matrix products alone,
measure its peak memory, time `fit`.

Public API only: `bp.Sequential`, the layers, `bp.losses`, `bp.optim`,
`backprop.training.make_step`, `model.backend` (and its `kernel` lookup), `bp.to_numpy`.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import backprop as bp
from backprop.training import make_step

from .configs import Config, Counts, make_dataset
from .timing import Prepared

__all__ = [
    "SEED",
    "FitSetup",
    "build",
    "has_graph_step",
    "initial_state",
    "prepare_fit",
    "prepare_gemm_variant",
    "prepare_step_variant",
    "release",
    "run_fit",
    "warm_device",
]

SEED = 1234  # the initial weights: torch gets a copy of exactly these
CPU_KERNELS = "auto"  # the CPU kernels of every CPU model built here (run.py's --kernels)


def has_graph_step() -> bool:
    """Whether this backprop's `make_step` takes ``graph=True`` (whole-step CUDA graphs)."""
    try:
        return "graph" in inspect.signature(make_step).parameters
    except (TypeError, ValueError):
        return False


def build(config: Config, device: str, kernels: str | None = None, precision: str = "fp32") -> bp.Sequential:
    """The config's model on ``device`` in ``precision``; on the CPU with ``kernels`` (default
    `CPU_KERNELS`)."""
    where: Any = bp.Device("cpu", kernels=kernels or CPU_KERNELS) if device == "cpu" else device
    pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
    layers: list[bp.Layer] = []
    for i, (n_in, n_out) in enumerate(pairs):
        last = i == len(pairs) - 1
        layers.append(bp.Dense(n_in, n_out, init="xavier" if last else "he"))
        if not last:
            layers.append(bp.ReLU())
    if config.head == "sigmoid-bce":
        layers.append(bp.Sigmoid())
    if precision == "fp32":  # the keyword is left out where it is not needed: older backprops lack it
        return bp.Sequential(*layers, device=where, dtype="float32", seed=SEED)
    return bp.Sequential(*layers, device=where, dtype="float32", seed=SEED, precision=precision)


def initial_state(config: Config) -> dict[str, np.ndarray]:
    """The initial weights by name (``"0.W"`` of shape (in, out), ``"0.b"``, ``"2.W"``, ...), on
    the host. The seed gives the same weights on every device, so the CPU model will do."""
    return build(config, "cpu").state_dict()


def _loss(config: Config) -> bp.losses.Loss:
    return bp.losses.BCE() if config.head == "sigmoid-bce" else bp.losses.SoftmaxCrossEntropy()


def _optimizer(config: Config, model: bp.Sequential) -> Any:
    if config.optimizer == "sgd":
        return bp.optim.SGD(model.parameters(), lr=config.lr)
    return bp.optim.Adam(model.parameters(), lr=config.lr)


def _sync(model: bp.Sequential) -> Callable[[], None]:
    if model.device.type == "cuda":
        import cupy  # noqa: PLC0415 - only on GPU runs

        return cupy.cuda.Device(model.device.index or 0).synchronize
    return lambda: None


def _to_float(x: Any) -> float:
    return float(bp.to_numpy(x))


class _Peak:
    bytes: int | None = None
    what = "n/a"


@contextlib.contextmanager
def _peak_memory(device: str) -> Iterator[_Peak]:
    """Peak bytes allocated inside the block: on the CPU, tracemalloc's peak (NumPy reports its
    buffers to it; Python objects count too); on a GPU, the peak bytes in use in CuPy's memory
    pools (a memory hook sees every block handed out and returned)."""
    peak = _Peak()
    if device == "cpu":
        if tracemalloc.is_tracing():  # someone else is tracing: their numbers would mix with ours
            yield peak
            return
        tracemalloc.start()
        try:
            yield peak
            peak.bytes = tracemalloc.get_traced_memory()[1]
            peak.what = "tracemalloc peak (NumPy buffers + Python objects) over build, data and first steps"
        finally:
            tracemalloc.stop()
        return
    import cupy  # noqa: PLC0415

    class PoolPeak(cupy.cuda.MemoryHook):
        name = "BenchmarkPoolPeak"

        def __init__(self) -> None:
            self.live: dict[int, int] = {}
            self.now = 0
            self.peak = 0

        def malloc_postprocess(self, **kw: Any) -> None:
            self.live[kw["mem_ptr"]] = kw["mem_size"]
            self.now += kw["mem_size"]
            self.peak = max(self.peak, self.now)

        def free_postprocess(self, **kw: Any) -> None:
            self.now -= self.live.pop(kw["mem_ptr"], 0)

    hook = PoolPeak()
    with hook:
        yield peak
    peak.bytes = hook.peak
    peak.what = (
        "peak bytes in use in CuPy memory pools (memory hook) over build, data, first steps (and capture); "
        "not the process-wide 32 MiB cuBLAS workspace"
    )


def prepare_step_variant(
    config: Config, device: str, batches: list, counts: Counts, graph: bool = False, kernels: str | None = None,
    precision: str = "fp32",
) -> Prepared:  # fmt: skip
    """``make_step`` ready to time on ``batches`` (host (X, y) pairs, moved to the device first)
    in ``precision``; on the CPU with ``kernels`` (default `CPU_KERNELS`)."""
    with _peak_memory(device) as peak:
        model = build(config, device, kernels, precision)
        loss = _loss(config)
        optimizer = _optimizer(config, model)
        backend = model.backend
        sync = _sync(model)
        with backend.activate():
            data = [
                (backend.from_host(X), loss.prepare_target(backend, y, X.shape[0], config.out_features))
                for X, y in batches
            ]
            step = make_step(model, loss, optimizer, graph=True) if graph else make_step(model, loss, optimizer)

            def run_step(i: int) -> Any:
                X, T = data[i % len(data)]
                return step(X, T)

            first_loss = _to_float(run_step(0))
            done = 1 + min(2, max(0, counts.warmup - 1))  # a few steps inside the memory measurement
            if graph:  # ... and the capture, whose private pool holds the graph's memory
                done = max(done, step.core.warmup + 1) if hasattr(step.core, "warmup") else done
            for i in range(1, done):
                run_step(i)
            sync()

    def activated(i: int) -> Any:
        with backend.activate():
            return run_step(i)

    def finish() -> dict[str, Any]:
        result: dict[str, Any] = {"peak_bytes": peak.bytes, "peak_what": peak.what}
        if graph:  # a capture that failed leaves the variant eager: say so rather than time it silently
            core = step.core
            result["graph_replaying"] = bool(getattr(core, "replaying", False))
            result["graph_reason"] = getattr(core, "reason", "make_step has no graph replay")
            if not result["graph_replaying"]:
                result["warnings"] = [f"not replayed from a CUDA graph: {result['graph_reason']}"]
        return result

    return Prepared(activated, sync, _to_float, first_loss=first_loss, done=done, finish=finish)


def prepare_gemm_variant(config: Config, device: str, precision: str = "fp32") -> Prepared:
    """The step's matrix products alone, as `Dense` runs them: per layer ``X @ W``, the weight
    gradient ``X^T dY`` into a preallocated array (the flat gradient buffer in a real step),
    and ``dY W^T`` except in the first layer, on seeded random operands of the step's shapes,
    with the backend's own kernels (the CPU and CUDA backends both have them). The floor a
    step's time is measured against. In a reduced ``precision`` the operands are rounded once,
    before timing: the products alone, without the conversions a step makes."""
    model = build(config, device, precision=precision)
    backend = model.backend
    ops = backend.ops
    kind = getattr(backend, "operands", "float32")
    if type(ops) is bp.backends.Ops:
        raise ValueError(f"{backend.device.name} has no matrix-product kernels of its own to time")
    rng = np.random.default_rng(0)
    operands = []
    with backend.activate():
        for layer in model.layers:
            if isinstance(layer, bp.Dense):
                n_in, n_out = layer.in_features, layer.out_features
                X = backend.from_host(rng.standard_normal((config.batch, n_in)))
                dY = backend.from_host(rng.standard_normal((config.batch, n_out)))
                W = layer.W.data
                if kind != "float32":
                    X, W, dY = (ops.round_operand(A, kind) for A in (X, W, dY))
                operands.append((X, W, dY, backend.zeros((n_in, n_out))))
    mixed = {} if kind == "float32" else {"kind": kind}

    def run_step(i: int) -> None:
        with backend.activate():
            for k, (X, W, dY, dW) in enumerate(operands):
                ops.matmul(X, W, **mixed)
                ops.matmul_tn(X, dY, out=dW, **mixed)
                if k:
                    ops.matmul_nt(dY, W, **mixed)

    return Prepared(run_step, _sync(model), lambda _: None, finish=lambda: {"floor": True})


def warm_device(device: str) -> None:
    """Make the process-wide GPU resources backprop creates once (the cuBLAS handle and its 32 MiB
    workspace, CuPy's contexts) before anything is measured, so no one configuration is charged."""
    if device == "cpu":
        return
    model = bp.Sequential(bp.Dense(2, 2), device=device, dtype="float32", seed=0)
    backend = model.backend
    with backend.activate():
        A = backend.zeros((2, 2))
        backend.ops.matmul(A, A)
    _sync(model)()


@dataclass
class FitSetup:
    """`fit` and bare steps ready to time against each other over the same ``n`` samples: two
    identical models, the inputs already on the device (`fit` would otherwise copy them once per
    call), the labels as NumPy for `fit` and the bare steps' contiguous device batches."""

    n: int
    fit_model: bp.Sequential
    options: dict[str, Any]  # fit's keywords: one silent epoch of the config's batches
    X: Any  # the inputs, on the device
    y: np.ndarray  # the labels, on the host
    T: Any  # the targets the loss takes, on the device
    step: Callable[[Any, Any], Any]  # make_step of the other model
    batches: list[tuple[Any, Any]]  # the same samples as contiguous device batches
    backend: Any
    sync: Callable[[], None]

    def fit(self, **extra: Any) -> Any:
        """One `fit` epoch over all ``n`` samples (``extra`` overrides its keywords); its `History`."""
        return self.fit_model.fit(self.X, self.y, **{**self.options, **extra})

    def steps(self) -> None:
        """The bare steps over the same samples."""
        with self.backend.activate():
            for Xb, Tb in self.batches:
                self.step(Xb, Tb)


def prepare_fit(config: Config, device: str, n: int) -> FitSetup:
    """`FitSetup` over ``n`` seeded synthetic samples, `fit` warmed up on its first two batches
    (kernels compiled, optimizer state allocated)."""
    X, y = make_dataset(config, n, seed=1)
    fit_model, step_model = build(config, device), build(config, device)
    loss = _loss(config)
    backend = fit_model.backend
    with backend.activate():
        Xd = backend.from_host(X)
        T = loss.prepare_target(backend, y, n, config.out_features)
        step = make_step(step_model, loss, _optimizer(config, step_model))
        batches = [
            (Xd[i : min(i + config.batch, n)], T[i : min(i + config.batch, n)]) for i in range(0, n, config.batch)
        ]
    options = {
        "loss": loss,
        "optimizer": _optimizer(config, fit_model),
        "epochs": 1,
        "batch_size": config.batch,
        "verbose": 0,
    }
    warm = min(n, 2 * config.batch)
    fit_model.fit(Xd[:warm], y[:warm], **options)
    return FitSetup(n, fit_model, options, Xd, y, T, step, batches, backend, _sync(fit_model))


def run_fit(config: Config, device: str, counts: Counts, rounds: int = 20) -> dict[str, Any]:
    """Samples/s of ``model.fit(..., epochs=1, batch_size=config.batch, verbose=0)`` over an epoch
    of synthetic samples (shuffling and batching included), against the bare steps over the
    same samples (`make_step` on contiguous device batches), timed alternately for ``rounds``
    rounds on two identical models (`prepare_fit`): medians of each."""
    bench = prepare_fit(config, device, counts.fit_samples or 4 * config.batch)
    fit_times, step_times = [], []
    history = None
    for _ in range(rounds):
        bench.sync()
        t0 = time.perf_counter()
        history = bench.fit()
        bench.sync()
        fit_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bench.steps()
        bench.sync()
        step_times.append(time.perf_counter() - t0)
    n = bench.n
    fit_s, step_s = float(np.median(fit_times)), float(np.median(step_times))
    return {
        "samples": n,
        "batch": config.batch,
        "rounds": rounds,
        "seconds": fit_s,
        "samples_per_s": n / fit_s,
        "step_epoch_seconds": step_s,
        "step_samples_per_s": n / step_s,
        "ratio_to_step": step_s / fit_s,
        "loss": float(history["loss"][-1]),
        "what": "median epoch of fit(epochs=1) over device-resident inputs, shuffle=True, host labels, "
        "against the median epoch of bare make_step calls over the same samples, timed alternately",
    }


def release(device: str) -> None:
    """Give memory back between variants so each starts from an empty GPU."""
    gc.collect()
    if device != "cpu":
        import cupy  # noqa: PLC0415

        cupy.get_default_memory_pool().free_all_blocks()

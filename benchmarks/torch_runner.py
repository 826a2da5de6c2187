"""PyTorch's side: the same network with backprop's initial weights, the same data and
optimizer. Variants: eager (CPU; on a GPU with ``fused=True``) and, on a GPU, the whole step
captured in one CUDA graph (``capturable=True``, the torch.cuda.graphs whole-network recipe).

Each in a ``precision`` (`PRECISIONS`): ``fp32`` (TF32 off), ``tf32`` (matrix products in TF32,
``allow_tf32`` on for the step, and at capture), ``bf16`` and ``fp16`` (forward and loss under
``torch.autocast``, the autocast cache off as CUDA graphs need; fp16 eager with
``torch.amp.GradScaler``, whose host-side skip decision a graph cannot hold, so the fp16 graph
runs without loss scaling)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .configs import Config, Counts
from .timing import Prepared

__all__ = ["PRECISIONS", "VARIANTS", "build", "prepare_gemm_variant", "prepare_variant"]

#: PyTorch's counterpart of each backprop precision
PRECISIONS = {"fp32": "fp32", "tf32": "tf32", "bf16-mixed": "bf16", "fp16-mixed": "fp16"}

#: variant name -> what it is, per device type
VARIANTS = {
    "cpu": {"torch eager": "PyTorch eager, default optimizer implementation"},
    "cuda": {
        "torch eager": "PyTorch eager, fused=True optimizer",
        "torch graph": "PyTorch, whole step in one CUDA graph, capturable=True optimizer",
    },
}


def build(torch: Any, config: Config, state: dict[str, np.ndarray], device: str) -> Any:
    """``nn.Sequential`` laid out like backprop's model (Linear at the same indices), holding
    backprop's initial weights: our ``W`` is (in, out), torch's ``weight`` is (out, in)."""
    nn = torch.nn
    pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(pairs) - 1:
            layers.append(nn.ReLU())
    if config.head == "sigmoid-bce":
        layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    copied = 0
    with torch.no_grad():
        for name, value in state.items():
            index, kind = name.split(".")
            layer = model[int(index)]
            if kind == "W":
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(value.T)))
            elif kind == "b":
                layer.bias.copy_(torch.from_numpy(value))
            else:
                raise ValueError(f"unexpected backprop parameter {name!r}")
            copied += 1
    if copied != len(list(model.parameters())):
        raise ValueError(f"copied {copied} tensors into a torch model with {len(list(model.parameters()))}")
    return model.to(device)


def prepare_gemm_variant(torch: Any, config: Config, device: str) -> Prepared:
    """The step's matrix products alone, as ``nn.Linear`` and its autograd run them: per layer
    ``X @ W^T`` (W is (out, in)), the weight gradient ``dY^T @ X``, and the input gradient
    ``dY @ W`` except in the first layer, on seeded random operands of the step's shapes."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    operands = []
    for n_in, n_out in zip(config.sizes[:-1], config.sizes[1:]):
        shapes = ((config.batch, n_in), (n_out, n_in), (config.batch, n_out))
        operands.append(tuple(torch.randn(*shape, generator=gen).to(dev) for shape in shapes))

    def run_step(i: int) -> None:
        for k, (X, W, dY) in enumerate(operands):
            torch.mm(X, W.t())
            torch.mm(dY.t(), X)
            if k:
                torch.mm(dY, W)

    return Prepared(run_step, _sync(torch, dev), lambda _: None, finish=lambda: {"floor": True})


def _sync(torch: Any, dev: Any) -> Callable[[], None]:
    """Waits for the device's queued work (nothing to wait for on the CPU)."""
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def _optimizer(torch: Any, config: Config, model: Any, **kw: Any) -> Any:
    if config.optimizer == "sgd":
        kw.pop("capturable", None)  # plain SGD keeps no step count on the host
        return torch.optim.SGD(model.parameters(), lr=config.lr, **kw)
    return torch.optim.Adam(model.parameters(), lr=config.lr, **kw)


@contextlib.contextmanager
def _tf32(torch: Any, on: bool) -> Iterator[None]:
    """TF32 matrix products while inside (PyTorch's switch is process-wide: restored after)."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = on
    try:
        yield
    finally:
        matmul.allow_tf32 = before


def _autocast(torch: Any, precision: str) -> Callable[[], Any]:
    """The forward pass's context: autocast to bf16/fp16 (cache off, as graphs need), or nothing."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type="cuda", dtype=dtype, cache_enabled=False)


def _captured_step(
    torch: Any, config: Config, model: Any, data: list, dev: Any, fused: bool, precision: str = "fp32"
) -> tuple[Any, Any, tuple[Any, Any, Any], float]:
    """The torch.cuda.graphs whole-network recipe: three warm-up steps on a side stream (steps
    0-2 of the batch cycle), then forward, loss, backward and ``step()`` captured in one graph."""
    criterion = _criterion(torch, config)
    optimizer = _optimizer(torch, config, model, capturable=True, **({"fused": True} if fused else {}))
    forward = _autocast(torch, precision)

    def eager_step(X: Any, T: Any) -> Any:
        optimizer.zero_grad(set_to_none=True)
        with forward():
            loss = criterion(model(X), T)
        loss.backward()
        optimizer.step()
        return loss

    static_X, static_T = data[0][0].clone(), data[0][1].clone()
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    first_loss = None
    with torch.cuda.stream(side):
        for i in range(3):
            loss = eager_step(*data[i % len(data)])
            if i == 0:
                first_loss = float(loss.item())
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        with forward():
            static_loss = criterion(model(static_X), static_T)
        static_loss.backward()
        optimizer.step()
    return optimizer, graph, (static_X, static_T, static_loss), first_loss


def _criterion(torch: Any, config: Config) -> Any:
    return torch.nn.BCELoss() if config.head == "sigmoid-bce" else torch.nn.CrossEntropyLoss()


def prepare_variant(
    torch: Any, config: Config, device: str, state: dict[str, np.ndarray], batches: list, counts: Counts, variant: str,
    precision: str = "fp32",
) -> Prepared:  # fmt: skip
    """``variant`` (`VARIANTS`) in ``precision`` (``"fp32"``, ``"tf32"``, ``"bf16"``, ``"fp16"``;
    the last three on a GPU only)."""
    if precision != "fp32" and device == "cpu":
        raise ValueError(f"PyTorch's {precision} variants run on a GPU")
    with _tf32(torch, precision == "tf32"):
        prepared = _prepare(torch, config, device, state, batches, counts, variant, precision)
    if precision != "tf32":
        return prepared
    step = prepared.run_step

    def run_step(i: int) -> Any:
        with _tf32(torch, True):
            return step(i)

    prepared.run_step = run_step
    return prepared


def _prepare(
    torch: Any, config: Config, device: str, state: dict[str, np.ndarray], batches: list, counts: Counts, variant: str,
    precision: str,
) -> Prepared:  # fmt: skip
    cuda = device != "cpu"
    dev = torch.device(device)
    base = 0
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)  # other variants' memory, still alive
    model = build(torch, config, state, dev)
    criterion = _criterion(torch, config)
    data = [(torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)) for X, y in batches]
    sync = _sync(torch, dev)

    def to_float(loss: Any) -> float:
        return float(loss.item())

    forward = _autocast(torch, precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def eager_step(optimizer: Any, X: Any, T: Any) -> Any:
        optimizer.zero_grad(set_to_none=True)
        with forward():
            loss = criterion(model(X), T)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # the standard recipe: scaled backward, unscale and skip on overflow, update
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    first_loss, done = None, 0
    if variant == "torch eager":
        optimizer = _optimizer(torch, config, model, **({"fused": True} if cuda else {}))

        def run_step(i: int) -> Any:
            return eager_step(optimizer, *data[i % len(data)])

    elif variant == "torch graph" and cuda:
        # fused Adam, as the eager variant, where this torch captures it; else foreach
        try:
            optimizer, graph, static, first_loss = _captured_step(torch, config, model, data, dev, True, precision)
        except Exception:  # noqa: BLE001 - an older torch: the capturable foreach Adam instead
            model = build(torch, config, state, dev)
            optimizer, graph, static, first_loss = _captured_step(torch, config, model, data, dev, False, precision)
        done = 3
        static_X, static_T, static_loss = static

        def run_step(i: int) -> Any:
            X, T = data[i % len(data)]
            static_X.copy_(X)
            static_T.copy_(T)
            graph.replay()
            return static_loss

    else:
        raise ValueError(f"unknown variant {variant!r} on {device}")

    if cuda:  # as backprop's: over build, data, the first steps (and the capture), this variant's own
        for i in range(done, 3):
            loss = run_step(i)
            if i == 0:
                first_loss = to_float(loss)
        done = max(done, 3)
        torch.cuda.synchronize(dev)
        peak = {
            "peak_bytes": int(torch.cuda.max_memory_allocated(dev)) - base,
            "peak_what": "torch.cuda.max_memory_allocated over build, data, first steps (and capture), "
            "less what other variants held",
        }
    else:
        peak = {"peak_bytes": None, "peak_what": "n/a: PyTorch's CPU allocator is invisible to tracemalloc"}
    fused = getattr(optimizer, "defaults", {}).get("fused")

    def finish() -> dict[str, Any]:
        return {**peak, "optimizer_fused": bool(fused)}

    return Prepared(run_step, sync, to_float, first_loss=first_loss, done=done, finish=finish)

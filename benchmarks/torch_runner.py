"""PyTorch's side: the same network with backprop's initial weights, the same data and
optimizer. Variants: eager (CPU; on a GPU with ``fused=True``) and, on a GPU, the whole step
captured in one CUDA graph (``capturable=True``, the torch.cuda.graphs whole-network recipe)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .configs import Config, Counts
from .timing import Prepared

__all__ = ["VARIANTS", "build", "prepare_variant"]

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


def _optimizer(torch: Any, config: Config, model: Any, **kw: Any) -> Any:
    if config.optimizer == "sgd":
        kw.pop("capturable", None)  # plain SGD keeps no step count on the host
        return torch.optim.SGD(model.parameters(), lr=config.lr, **kw)
    return torch.optim.Adam(model.parameters(), lr=config.lr, **kw)


def _criterion(torch: Any, config: Config) -> Any:
    return torch.nn.BCELoss() if config.head == "sigmoid-bce" else torch.nn.CrossEntropyLoss()


def prepare_variant(
    torch: Any, config: Config, device: str, state: dict[str, np.ndarray], batches: list, counts: Counts, variant: str
) -> Prepared:
    cuda = device != "cpu"
    dev = torch.device(device)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    model = build(torch, config, state, dev)
    criterion = _criterion(torch, config)
    data = [(torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)) for X, y in batches]
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)

    def to_float(loss: Any) -> float:
        return float(loss.item())

    def eager_step(optimizer: Any, X: Any, T: Any) -> Any:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(X), T)
        loss.backward()
        optimizer.step()
        return loss

    first_loss, done = None, 0
    if variant == "torch eager":
        optimizer = _optimizer(torch, config, model, **({"fused": True} if cuda else {}))

        def run_step(i: int) -> Any:
            return eager_step(optimizer, *data[i % len(data)])

    elif variant == "torch graph" and cuda:
        optimizer = _optimizer(torch, config, model, capturable=True)
        static_X = data[0][0].clone()
        static_T = data[0][1].clone()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        done = 3  # warm-up outside the graph, on a side stream: steps 0-2 of the same batch cycle
        with torch.cuda.stream(side):
            for i in range(done):
                loss = eager_step(optimizer, *data[i % len(data)])
                if i == 0:
                    first_loss = to_float(loss)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = criterion(model(static_X), static_T)
            static_loss.backward()
            optimizer.step()

        def run_step(i: int) -> Any:
            X, T = data[i % len(data)]
            static_X.copy_(X)
            static_T.copy_(T)
            graph.replay()
            return static_loss

    else:
        raise ValueError(f"unknown variant {variant!r} on {device}")

    def finish() -> dict[str, Any]:
        if cuda:  # the peak of every torch variant built for this configuration together
            return {
                "peak_bytes": int(torch.cuda.max_memory_allocated(dev)),
                "reserved_bytes": int(torch.cuda.max_memory_reserved(dev)),
                "peak_what": "torch.cuda.max_memory_allocated over build, data, warm-up and timed steps "
                "(all torch variants of the configuration alive together)",
            }
        return {"peak_bytes": None, "peak_what": "n/a: PyTorch's CPU allocator is invisible to tracemalloc"}

    return Prepared(run_step, sync, to_float, first_loss=first_loss, done=done, finish=finish)

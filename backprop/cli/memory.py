"""How much memory a command's model and batches will take, estimated before anything is
allocated, and the refusal when that is more than the device has.

For a model of layer sizes ``n_0, n_1, ..., n_L`` (the input first) in a dtype of ``b`` bytes:
``P = sum(n_i * n_{i+1} + n_{i+1})`` parameters take ``P * b`` bytes, training adds as much
again for the gradients and ``k`` times as much for the optimizer's state (``k`` = 2 for Adam
and AdamW, 1 for RMSprop (plus one each for ``centered`` and momentum), Adagrad and SGD with
momentum, 0 for plain SGD); building draws the largest layer's initial values as float64 on the
host first. A batch of ``B`` samples keeps every layer's output for the backward pass and its
gradient (counted four times ``B * sum(n_i) * b``, which also covers dropout masks and the fused
kernels' temporaries). These are estimates meant to refuse what cannot fit, not to promise
what can: a model within a few percent of the limit may still fail, and is then reported as
running out of memory by `backprop.cli.main`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from ..backends.cuda import free_memory
from ..memory import available_host_memory, format_bytes
from .errors import CliError

__all__ = ["Estimate", "check_fits", "layer_sizes", "optimizer_state_factor", "training_estimate"]

_ACTIVATION_COPIES = 4


class Estimate:
    """Bytes a command needs: at its peak on its device while training or predicting
    (``device_bytes``: weights, gradients, optimizer state, activations); while the model is
    built (``build_bytes``: the weights so far and the largest layer's float64 initial values,
    drawn on the host and freed before training); and on the host throughout (``host_bytes``:
    the batch of inputs a command holds there)."""

    def __init__(self, device_bytes: int, build_bytes: int, init_bytes: int, host_bytes: int, parameters: int,
                 what: str):
        self.device_bytes, self.build_bytes, self.init_bytes = device_bytes, build_bytes, init_bytes
        self.host_bytes, self.parameters, self.what = host_bytes, parameters, what


def optimizer_state_factor(name: str, momentum: float | None = None, centered: bool = False) -> int:
    """Arrays of optimizer state per parameter array."""
    if name in ("adam", "adamw"):
        return 2
    if name == "rmsprop":
        return 1 + int(bool(momentum)) + int(centered)
    if name == "adagrad":
        return 1
    if name == "sgd":
        return 1 if momentum is None or momentum else 0  # plain SGD gets momentum 0.9 from the CLI
    return 2  # an optimizer of the user's own: assume Adam's


def layer_sizes(model: Any) -> list[int]:
    """``[in, out of each Dense ...]`` of a built model (its widths, the input first)."""
    sizes: list[int] = []
    for layer in model.walk():
        if layer is model:
            continue
        if hasattr(layer, "in_features") and hasattr(layer, "out_features") and not hasattr(layer, "layers"):
            if not sizes:
                sizes.append(int(layer.in_features))
            sizes.append(int(layer.out_features))
    return sizes


def training_estimate(sizes: Sequence[int], itemsize: int, state_factor: int, batch: int, *, build: bool = True,
                      train: bool = True, extra_host: int = 0) -> Estimate:
    """What a model of ``sizes`` (the input first) needs to be built (``build``), trained
    (``train``: gradients and ``state_factor`` optimizer arrays per parameter) and run on
    batches of ``batch`` samples."""
    pairs = list(pairwise(sizes))
    parameters = sum(a * b + b for a, b in pairs)
    weights = parameters * itemsize
    device = weights if build else 0  # a model loaded from a checkpoint has its weights already
    if train:
        device += weights * (1 + state_factor)  # the gradients and the optimizer's state
    device += _ACTIVATION_COPIES * batch * sum(sizes) * itemsize
    init = max((a * b for a, b in pairs), default=0) * 8 if build else 0
    kind = "training" if train else "running"
    return Estimate(device, (weights if build else 0) + init, init, extra_host, parameters,
                    f"{kind} this model ({parameters:,} parameters, batches of {batch:,})")


def check_fits(estimate: Estimate, device: str, advice: str) -> None:
    """Raise `CliError` with both numbers if ``estimate`` does not fit ``device`` (or the host)."""
    host_only = not str(device).startswith("cuda")
    checks: list[tuple[int, int | None, str]] = []
    if host_only:
        needed = max(estimate.device_bytes, estimate.build_bytes) + estimate.host_bytes
        checks.append((needed, available_host_memory(), "this machine"))
    else:
        checks.append((estimate.device_bytes, free_memory(device), f"GPU {device}"))
        host = estimate.init_bytes + estimate.host_bytes
        checks.append((host, available_host_memory(), "this machine's host memory"))
    for needed, available, where in checks:
        if available is not None and needed > available:
            raise CliError(
                f"{estimate.what} needs about {format_bytes(needed)} of memory but {where} has "
                f"{format_bytes(available)} available: {advice}"
            )

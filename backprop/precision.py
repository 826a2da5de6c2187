"""Mixed precision: the arithmetic a model's matrix products use (``precision=``), checked
against its dtype and its GPU, and the rounded weights its forward passes read.

=============  ==========================================  ==============  ==================
precision      matrix products                             loss scaling    GPU
=============  ==========================================  ==============  ==================
``fp32``       float32 operands, float32 sums (default)    no              any
``tf32``       TF32 operands (10 mantissa bits), f32 sums  no              compute cap. 8.0+
``bf16-mixed`` bfloat16 operands, float32 sums             no              compute cap. 8.0+
``fp16-mixed`` float16 operands, float32 sums              dynamic         compute cap. 7.0+
=============  ==========================================  ==============  ==================

Everything else stays float32 in every mode: the weights (the master copy the optimizer
updates, as NVIDIA's apex keeps it), gradients, optimizer state, the layers' outputs, losses,
softmax, normalisation and every reduction. Only the inputs of each `Dense` product (``X @ W``
forward, ``dY @ W^T`` and ``X^T @ dY`` backward) are rounded, as ``cublasGemmEx`` takes
16-bit A and B with a float32 C. This differs from PyTorch's autocast, which also keeps the
activations between layers in 16 bits; here each product's output is float32.

On the CPU (and any Array API namespace) it is an emulation: the operands are rounded exactly as
the GPU rounds them (`backprop.backends.rounding`) and NumPy multiplies them in float32, which
is exact for products of such values, so a mixed-precision run can be tested in CPU-only CI
and previewed on a laptop. It is not faster there: rounding costs a few passes over memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .backends import Backend, DeviceLike
from .backends.cuda import compute_capability
from .layers.base import Layer
from .parameter import Parameter
from .validation import InvalidParameterError, choice

__all__ = ["PRECISIONS", "Precision", "get_precision", "precision_backend", "rounded_weights", "scaled_gradients"]


@dataclass(frozen=True)
class Precision:
    """One ``precision=`` mode: ``operands`` (what matrix products multiply,
    `backprop.backends.rounding.OPERANDS`), whether training scales the loss (``loss_scaling``,
    fp16's narrow range), and the least CUDA compute capability with tensor cores for it."""

    name: str
    operands: str
    loss_scaling: bool
    capability: tuple[int, int]
    hardware: str  # the GPUs that have it, for messages

    @property
    def reduced(self) -> bool:
        """Whether matrix products take rounded operands."""
        return self.operands != "float32"


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "float32", False, (0, 0), "every GPU"),
        Precision("tf32", "tf32", False, (8, 0), "TF32 tensor cores (A100, RTX 30xx, H100 and later)"),
        Precision("bf16-mixed", "bfloat16", False, (8, 0), "bfloat16 tensor cores (A100, RTX 30xx, H100 and later)"),
        Precision("fp16-mixed", "float16", True, (7, 0), "float16 tensor cores (V100, T4 and later)"),
    )
}


def get_precision(precision: str | Precision) -> Precision:
    """The `Precision` of a name in `PRECISIONS` (a `Precision` is returned as it is)."""
    if isinstance(precision, Precision):
        return precision
    return PRECISIONS[choice(precision, "precision", list(PRECISIONS))]


def precision_backend(precision: Precision, device: DeviceLike, dtype: str) -> Backend:
    """The `Backend` of a model of ``precision`` on ``device`` as ``dtype``: refused, with the
    reason and the fix, for a float64 model in a reduced precision and for a GPU older than the
    precision's tensor cores."""
    if precision.reduced and str(getattr(dtype, "__name__", dtype)).rsplit(".", 1)[-1] == "float64":
        raise InvalidParameterError(
            f"precision={precision.name!r} rounds float32 weights and activations for its matrix products, but the "
            "model's dtype is float64, which computes in float64 throughout: build it with dtype='float32', or keep "
            "precision='fp32' (the default)"
        )
    backend = Backend(device, dtype, precision.operands)
    if precision.reduced and backend.device.type == "cuda":
        index = backend.device.index or 0
        have = compute_capability(index)
        if have < precision.capability:
            need = ".".join(map(str, precision.capability))
            raise InvalidParameterError(
                f"precision={precision.name!r} needs {precision.hardware}, compute capability {need} or newer; "
                f"{backend.device.name} has compute capability {have[0]}.{have[1]}. Use "
                + ("precision='fp16-mixed' or " if have >= (7, 0) else "")
                + "precision='fp32' on this GPU"
            )
    return backend


@contextlib.contextmanager
def rounded_weights(params: Sequence[Parameter]) -> Iterator[None]:
    """For one forward pass (and the backward pass it returns): every trainable parameter's
    ``operand`` set to its values rounded as its backend's matrix-product operands, all made
    by one pass over the flat buffer (one kernel on a GPU: PyTorch's autocast instead casts
    each weight where it is used); reset to ``None`` after. Nothing happens for float32
    operands, or for parameters outside a flat buffer (their layers round them as they go)."""
    arenas = params[0].arenas if params else None
    views = None if arenas is None or any(p.arenas is not arenas for p in params) else arenas.refresh_operands()
    if arenas is None or views is None:
        yield
        return
    packed = arenas.data.views
    for p in params:  # a value rebound since it was packed is not in the buffer: its layer rounds it
        p.operand = views[p.index] if p.data is packed[p.index] else None
    try:
        yield
    finally:
        for p in params:
            p.operand = None


@contextlib.contextmanager
def scaled_gradients(layers: Sequence[Layer], scale: float) -> Iterator[None]:
    """For one backward pass of a scaled loss (dynamic loss scaling): each of ``layers`` (those
    that add gradient terms of their own, penalties) has ``loss_scale`` set to ``scale``, and
    back to 1 after; and NumPy's floating-point warnings are off, since overflowing is what
    a scaled backward pass may do, and the step it spoils is then skipped (`LossScaler`)."""
    for layer in layers:
        layer.loss_scale = scale
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            yield
    finally:
        for layer in layers:
            layer.loss_scale = 1.0

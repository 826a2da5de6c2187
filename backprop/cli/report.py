"""The lines commands print: model summaries and loss/accuracy results."""

from __future__ import annotations

import math

from ..model import Sequential

__all__ = ["describe_model", "result_line"]


def describe_model(model: Sequential) -> str:
    """``Dense(64, 128) -> ReLU() -> Dense(128, 10): 9,610 parameters, cpu float32, seed 0``
    (``cpu float32 bf16-mixed`` for a model of reduced precision)."""
    count = sum(math.prod(p.shape) for p in model.parameters())
    layers = " -> ".join(repr(layer) for layer in model.layers)
    precision = "" if model.precision == "fp32" else f" {model.precision}"
    return f"{layers}: {count:,} parameters, {model.device.name} {model.dtype}{precision}, seed {model.seed}"


def result_line(part: str, values: dict[str, float], samples: int) -> str:
    """``test: loss 0.0716, accuracy 97.78% (360 samples)``."""
    shown = [f"loss {values['loss']:.4f}"]
    for key, value in values.items():
        if key == "loss":
            continue
        shown.append(f"{key} {100 * value:.2f}%" if key == "accuracy" else f"{key} {value:.4f}")
    return f"{part}: {', '.join(shown)} ({samples} samples)"

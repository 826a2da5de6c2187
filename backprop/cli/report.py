"""The lines commands print: model summaries and loss/accuracy results."""

from __future__ import annotations

import math
import shutil
import sys
import textwrap

from ..model import Sequential

__all__ = ["describe_model", "fit_terminal", "result_line", "say"]


def fit_terminal(line: str, width: int | None = None) -> str:
    """``line`` broken at spaces into lines of at most ``width`` characters (default: the
    terminal's, ``COLUMNS`` or 80), the continuations indented by two spaces."""
    width = shutil.get_terminal_size((80, 24)).columns if width is None else width
    return textwrap.fill(line, width=max(width, 20), subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)  # fmt: skip


def say(line: str) -> None:
    """Print ``line``: as it is into a pipe or file (one line per fact, for grep), wrapped to the
    width of a terminal."""
    print(fit_terminal(line) if _is_terminal(sys.stdout) else line)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
        return False


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

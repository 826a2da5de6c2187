"""`plot_history`: training curves as an image file, without pyplot.

matplotlib is optional (``pip install "backprop-nn[plot]"``) and imported only when a plot is
made. Only the object-oriented API is used (`matplotlib.figure.Figure` drawn by the Agg
canvas): no window opens, pyplot is never imported and the global backend is left alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from .atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

__all__ = ["HistoryLike", "history_figure", "legend_outside", "line_colors", "panels", "plot_history"]


class HistoryLike(Protocol):
    """What a plot reads from a `bp.History` (which calls this module, so this module names
    only the shape it needs, not the class)."""

    history: dict[str, list[float]]
    epochs: list[int]


GRAD_NORM = "grad_norm"
INSTALL_HINT = 'plotting needs matplotlib: pip install "backprop-nn[plot]" (or pip install matplotlib)'


def plot_history(history: HistoryLike | Mapping[str, Sequence[float]], path: str | os.PathLike[str], *,
                 title: str | None = None, dpi: int = 100) -> Path:
    """Write ``history``'s curves to ``path`` and return it as a `Path`.

    One panel for the loss (training and ``val_loss``), one per metric (``"accuracy"`` with
    ``"val_accuracy"``, ...) and, when ``"grad_norm/<parameter>"`` keys exist, a log-scale panel
    of the per-parameter gradient norms (with the global ``"grad_norm"`` if recorded). The
    format follows the suffix (``.png``, ``.svg``, ``.pdf``, ...); no suffix means PNG. Parent
    folders are created; the file is written atomically (`backprop.atomic`). Raises
    `ImportError` saying how to install matplotlib if it is missing.
    """
    figure = history_figure(history, title=title)
    canvas = _matplotlib()[1](figure)
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    if fmt not in canvas.get_supported_filetypes():
        supported = ", ".join(sorted(canvas.get_supported_filetypes()))
        raise ValueError(f"cannot write {path.name!r}: unknown image format {fmt!r}; use one of {supported}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: figure.savefig(fh, format=fmt, dpi=dpi))  # no half-written image, ever
    return path


def history_figure(history: HistoryLike | Mapping[str, Sequence[float]], *, title: str | None = None) -> Figure:
    """The `Figure` `plot_history` saves: one axes per entry of `panels`, in that order."""
    Figure = _matplotlib()[0]
    series, epochs = _series(history)
    layout = panels(series)
    if not layout:
        raise ValueError("the history is empty: there is nothing to plot")
    ncols = 1 if len(layout) == 1 else 2 if len(layout) <= 4 else 3
    nrows = math.ceil(len(layout) / ncols)
    figure = Figure(figsize=(5.0 * ncols, 3.5 * nrows), layout="constrained")
    if title:
        figure.suptitle(title)
    for index, (name, keys) in enumerate(layout):
        ax = figure.add_subplot(nrows, ncols, index + 1)
        for key in keys:
            _line(ax, epochs, series[key], _label(name, key))
        ax.set_title("gradient norm per parameter" if name == GRAD_NORM else name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if name == GRAD_NORM and any(v > 0 and math.isfinite(v) for k in keys for v in series[k]):
            ax.set_yscale("log")
        if name == GRAD_NORM:
            for line, color in zip(ax.get_lines(), line_colors(len(keys))):
                line.set_color(color)
            legend_outside(ax)  # one line per parameter: a legend inside would cover them
        elif len(keys) > 1:
            ax.legend(fontsize="small")
    return figure


def line_colors(n: int) -> list[Any]:
    """``n`` colours that tell ``n`` lines apart: matplotlib's ``tab10`` for up to 10, else
    evenly spaced samples of the ``turbo`` colour map (in order, so that neighbours in a
    sequence, such as a network's layers, get neighbouring hues, and none repeats)."""
    colormaps = _matplotlib_colormaps()
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    turbo = colormaps["turbo"]
    return [turbo(0.05 + 0.9 * i / (n - 1)) for i in range(n)]  # its ends are too dark and too pale


def legend_outside(ax: Axes, title: str | None = None) -> None:
    """``ax``'s legend to the right of it, outside the data (a constrained layout makes room)."""
    count = len(ax.get_lines())
    ax.legend(fontsize="small", title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              ncols=1 + count // 16)


def panels(keys: Mapping[str, Any] | Sequence[str]) -> list[tuple[str, list[str]]]:
    """The panels for these history keys: ``[(name, [keys drawn in it]), ...]``.

    ``"loss"`` comes first; each metric ``m`` is drawn with ``"val_m"``; the gradient-norm panel
    (named ``"grad_norm"``) comes last, holding ``"grad_norm"`` and every ``"grad_norm/<p>"``.
    Other keys containing ``"/"`` are not drawn.
    """
    names: list[str] = []
    grads: list[str] = []
    for key in keys:
        if key == GRAD_NORM or key.startswith(GRAD_NORM + "/"):
            grads.append(key)
        elif "/" not in key:
            base = key[4:] if key.startswith("val_") else key
            if base not in names:
                names.append(base)
    if "loss" in names:
        names.remove("loss")
        names.insert(0, "loss")
    result = [(name, [k for k in (name, "val_" + name) if k in keys]) for name in names]
    if grads:
        result.append((GRAD_NORM, [k for k in grads if k == GRAD_NORM] + [k for k in grads if k != GRAD_NORM]))
    return result


def _series(history: HistoryLike | Mapping[str, Sequence[float]]) -> tuple[dict[str, list[float]], list[int] | None]:
    data = cast("Mapping[str, Sequence[float]]", getattr(history, "history", history))
    epochs = getattr(history, "epochs", None)
    series = {k: [float(v) for v in values] for k, values in data.items() if len(values)}
    if len(set(series.get("lr", []))) == 1:
        del series["lr"]  # a constant learning rate (no schedule) is not worth a panel
    return series, list(epochs) if epochs else None


def _line(ax: Axes, epochs: list[int] | None, values: list[float], label: str) -> None:
    x = epochs if epochs is not None and len(epochs) == len(values) else list(range(1, len(values) + 1))
    ax.plot(x, values, label=label, marker="o" if len(values) == 1 else None)


def _label(panel: str, key: str) -> str:
    if panel == GRAD_NORM:
        return "global" if key == GRAD_NORM else key[len(GRAD_NORM) + 1:]
    return "validation" if key.startswith("val_") and key != panel else "training"


def _matplotlib_colormaps() -> Any:
    try:
        from matplotlib import colormaps  # noqa: PLC0415 - optional: imported when a plot is made
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return colormaps


def _matplotlib() -> tuple[type[Figure], type[FigureCanvasAgg]]:
    """`Figure` and the Agg canvas, imported on first use."""
    try:
        # matplotlib is optional: imported when a plot is made
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return Figure, FigureCanvasAgg
